"""Where a study lives: a study folder or database URL, Optuna's storage over it, loading a study.

The bottom of the tuning package: it imports no other tuning module. The
order is ``storage`` <- ``space``, ``objectives`` <- ``study`` (the trials) <-
``report`` (what a study found) <- ``run`` (``tune``: the trials, then the
report); no module imports one to its right, at module level or in a function.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import SleepnetError
from ..state import optuna_quiet


def storage_url(study: str | Path) -> str:
    """A study folder (holding ``study.db``) or a database URL, as ``sleepnet tune`` wrote it."""
    study = str(study)
    if "://" in study:
        return study
    db = Path(study) / "study.db"
    if not db.is_file():
        raise SleepnetError(f"{study} holds no study.db: give the tuning output folder or a storage URL")
    return f"sqlite:///{db.resolve()}"


def redact(url: str) -> str:
    """``url`` without its user and password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock (``flock`` on ``FILE.lock`` beside the database) while an SQLite storage
    that does not exist yet is opened: the first opening creates the schema, and two processes
    creating it at once collide (``UNIQUE constraint failed: alembic_version.version_num``). The
    database file appears before its schema is whole, so a database that exists beside a lock file
    (one a creator may still be writing) is opened under the lock too; one without a lock file
    (a shared or read-only study being read) is opened without, and so is one whose folder refuses
    the lock file; other URLs too (a PostgreSQL server: ``server_lock``)."""
    prefix = "sqlite:///"
    db = Path(url[len(prefix):]) if url.startswith(prefix) and len(url) > len(prefix) else None
    lock = db.with_name(db.name + ".lock") if db is not None else None  # made by every creator first
    with contextlib.ExitStack() as held:
        # the database is looked at before the lock file: a creator makes the lock file before the
        # database, so a database seen here has its lock file by the next look (the other order lets
        # a creator make both between the two looks, and this process open a half-made schema)
        if db is not None and db.parent.is_dir() and (not db.exists() or lock.exists()):
            import fcntl

            # a folder that refuses the lock file, or a file system without flock (some NFS and
            # Lustre mounts): opened without the lock
            with contextlib.suppress(OSError):
                f = held.enter_context(open(lock, "a"))
                fcntl.flock(f, fcntl.LOCK_EX)
                held.callback(fcntl.flock, f, fcntl.LOCK_UN)
        yield


def storage_for(url: str, heartbeat: int = 10, grace: int = 60):
    """Optuna's RDB storage over ``url``, with heartbeats (a dead worker's trial is retried twice).

    Opening is safe from several processes at once (``creation_lock``, ``server_lock``)."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, whatever SQLAlchemy's default
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with creation_lock(url), server_lock(url, kwargs):
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    except ImportError as exc:
        raise SleepnetError(f"the storage {url.split(':')[0]} needs a driver: {exc}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: bad URL, server down
        first = str(exc).splitlines()[0]
        raise SleepnetError(f"cannot open the study storage {redact(url)}: {first}") from None


#: the PostgreSQL advisory lock held while a storage is opened (any fixed 64-bit key of our own)
SCHEMA_LOCK = 0x736C65_65706E6574  # "sleepnet"


@contextlib.contextmanager
def server_lock(url: str, engine_kwargs: dict, wait_s: float = 300.0) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock (session-level, on a connection of its own) while the storage at
    ``url`` is opened: optuna creates its tables on first opening, and processes creating them at once
    collide (``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``; array
    tasks starting on a fresh database). Taken by polling ``pg_try_advisory_lock``: after ``wait_s``
    one clear error rather than a wait for ever. Other URLs: no lock (SQLite has ``creation_lock``)."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    # autocommit: the lock's connection never sits idle in a transaction a server may time out
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", **engine_kwargs)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + wait_s
            take = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
            while not conn.execute(take, {"key": SCHEMA_LOCK}).scalar():
                if time.monotonic() > deadline:
                    raise SleepnetError(f"another process has held the creation lock (advisory lock "
                                        f"{SCHEMA_LOCK}) for {wait_s:.0f} s: is it stuck?")  # fmt: skip
                time.sleep(0.2)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
    finally:
        engine.dispose()


@optuna_quiet()
def load(study_name: str, url: str):
    """The study ``study_name`` in the storage at ``url``."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage_for(url))
    except KeyError:
        raise SleepnetError(f"no study {study_name!r} in {redact(url)}") from None
