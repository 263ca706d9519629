"""Long work that resumes: finished units kept under a hash of their inputs, in a folder that outlives Ctrl-C.

``sleepnet run`` and ``sleepnet evaluate`` write into ``resumable_dir(OUT)``, the folder
``.OUT.partial`` beside ``OUT``, renamed to ``OUT`` when everything is done (so ``OUT`` is
either complete or absent, as with ``fsio.atomic_dir``). An interruption (Ctrl-C, SIGTERM, a
crash) leaves ``.OUT.partial`` in place; the same command again continues from it and says so.

A unit is one piece of work whose result is kept: a model trained, a sleep, a defence
(a model folder, whose record holds its ``unit`` hash), or one measure of one model's evaluation
(clean accuracy, a distortion, an attack: a JSON file under ``units/``). Its hash covers every
input that decides the result (data hash, recipe, config, seed, device, the parent's hash), so a
changed experiment file redoes exactly the units whose inputs changed, and reuses the rest;
with ``--force`` over a finished ``OUT`` the units already in it are reused the same way.
Every write is atomic (``fsio``): a unit is either kept whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import SleepnetError
from .fsio import atomic_write, check_output, install, read_json, remove, write_json
from .hashing import sha256_bytes
from .progress import LOG, unit_done


def unit_hash(*parts: Any) -> str:
    """The SHA-256 of ``parts`` as canonical JSON (sorted keys; anything else by its ``repr``)."""
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=repr))


def partial_path(out: Path) -> Path:
    """Where the unfinished output ``out`` lives: ``.NAME.partial`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


#: what a finished output hands on to a ``--force`` run over it: its units and model folders, not its
#: report or figures (made again from the new results)
_UNITS = ("units", "seed*")


@contextlib.contextmanager
def resumable_dir(out: str | os.PathLike, overwrite: bool = False, inputs=(),
                  finish: bool = True) -> Iterator[Path]:  # fmt: skip
    """Yield the work folder of ``out`` (``partial_path``): resumed if it exists, else new, else (with
    ``overwrite`` and a finished ``out``) seeded with ``out``'s units by hard links.

    The work folder is locked (``flock``) for the duration: a second command on the same ``out``
    is refused in one line. On success it becomes ``out`` (``fsio.atomic_dir``'s rename, marks and
    modes), unless ``finish`` is false (a first pass: part of the work); on any exception, the last
    rename included, it stays, for the same command to resume.
    """
    out = Path(out)
    check_output(out, overwrite, inputs)
    existed = out.exists()
    work = partial_path(out)
    resumed = work.is_dir()
    work.mkdir(parents=True, exist_ok=True)
    with _locked(work, out):
        if resumed:
            for stale in sorted(work.rglob(".*.tmp"), reverse=True):  # writes a kill cut short
                if stale.exists():
                    remove(stale, ignore_errors=True)
            LOG.info("resuming from %s (the finished units there are reused)", work)
        elif existed and overwrite:
            for pattern in _UNITS:
                for src in out.glob(pattern):
                    if src.is_dir():
                        shutil.copytree(src, work / src.name, copy_function=_link)
            LOG.info("reusing the units of %s where their inputs are unchanged", out)
        yield work
        if finish:
            check_output(out, overwrite or existed)  # an output that appeared meanwhile: refused, work kept
            install(work, out)


@contextlib.contextmanager
def _locked(work: Path, out: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder ``work`` for the block; one clear error if another process
    holds it (two commands writing the same output would overwrite each other's units). A file system
    that refuses the lock (some NFS and Lustre mounts: ``ENOLCK``, ``EBADF`` on a folder opened for
    reading, ``EOPNOTSUPP``) is worked on without it, with a warning."""
    import fcntl

    fd = os.open(work, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SleepnetError(f"another sleepnet command is writing {out} ({work} is locked)") from None
        except OSError as exc:
            LOG.warning("cannot lock %s (%s): going on without the lock, so make sure no other sleepnet "
                        "command writes %s meanwhile", work, exc.strerror or exc, out)  # fmt: skip
        yield
    finally:
        os.close(fd)


def _link(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (every later write replaces, never edits, so ``src`` is safe); copy
    where links are not possible."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path, replace: bool = True) -> None:
    """The files of folder ``src`` copied into ``dst`` (copies, not links: ``src`` may be another output,
    whose files this run must never share, and ``install`` sets the modes of what it installs).
    ``replace``: ``dst`` becomes ``src``'s copy whole (copied into a temporary folder beside it, then
    ``fsio.install``'s rename over what was there); else only the top-level files ``dst`` lacks are
    added, each atomically (hidden ones skipped). An ``OSError`` (``src`` renamed or removed
    meanwhile) leaves no temporary behind and is raised."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")  # a kill leaves it to resume's sweep
        try:
            shutil.copytree(src, tmp)
            install(tmp, dst)  # over what was there: moved aside, put back if the rename fails
        finally:
            if tmp.exists():
                remove(tmp, ignore_errors=True)
        return
    dst.mkdir(exist_ok=True)
    for file in sorted(src.iterdir()):
        if file.is_file() and not file.name.startswith(".") and not (dst / file.name).exists():
            atomic_write(dst / file.name, file.read_bytes())


class Units:
    """The measures of one model's evaluation kept in ``folder`` as ``NAME.json``, each under its hash.

    ``context`` holds what every measure depends on (the model's hash, the data, the seed and the
    options); ``run(name, inputs, fn)`` returns the kept result if its hash matches, else computes
    ``fn()``, keeps it and returns it as read back from JSON, so a fresh result and a resumed one are
    the very same object. ``done`` and ``reused`` count them; ``seconds`` holds the time of each measure
    computed now, ``kept_seconds`` that of each one kept, as it took when it was made (a unit file
    records it).

    ``keep``: a second folder that receives a copy of every unit as it is kept, as ``NAME.HASH.json``
    (the first 16 hex digits of its inputs' hash: other inputs' copies are kept beside it, never
    replaced), and whose units are taken where ``folder`` lacks them (``sleepnet run --keep``): a
    durable copy of the measures, e.g. in a repository, for a machine that does not outlive the run.
    ``also``: more folders of such copies, whose units are taken where both lack them, never written
    (another run's ``--keep`` copy, ``--reuse``). ``stamp``: keys added to each durable copy (the
    experiment adds its model's weights hash, so that a reader of the copy can tell which model a
    measure is of where two runs made the same measure of different weights). ``only``: the names of
    the units to compute now (``sleepnet run --only-measures``); any other is taken where it is kept
    and otherwise left for a later run: ``run`` returns None for it and counts it in ``deferred``.
    """

    def __init__(self, folder: str | os.PathLike, context: Any, label: str | None = None,
                 keep: str | os.PathLike | None = None, also=(),
                 stamp: dict | None = None, only=None) -> None:  # fmt: skip
        self.folder, self.context = Path(folder), context
        self.keep = Path(keep) if keep is not None else None
        self.stamp = dict(stamp or {})
        self.also = [Path(d) for d in also]
        self.label = label or self.folder.name
        self.only = None if only is None else frozenset(only)
        self.done = self.reused = self.deferred = 0
        self.seconds: dict[str, float] = {}
        self.kept_seconds: dict[str, float] = {}

    def run(self, name: str, inputs: Any, fn: Callable[[], Any]) -> Any:
        """The result of unit ``name`` with ``inputs``: kept (here, else in ``keep``, else in one of the
        ``also`` folders), or computed now; kept here and in ``keep`` either way. None for a unit that
        is not kept and not among ``only``."""
        digest = unit_hash(self.context, name, inputs)
        path = self.folder / f"{name}.json"
        # in a durable copy under its inputs' hash too: a run of other inputs (other weights, threads)
        # adds its measures beside those there, never over them
        kept_as = f"{name}.{digest[:16]}.json"
        copy = self.keep / kept_as if self.keep is not None else None
        data, found = _kept(path, digest), path
        if data is None:
            found = next((f for f in (copy, *(d / kept_as for d in self.also))
                          if (data := _kept(f, digest)) is not None), None)  # fmt: skip
            if data is not None:
                atomic_write(path, data)
        if data is not None:
            # the durable copy made current (read above already unless the unit was found here)
            if copy is not None and found != copy and (found != path or _kept(copy, digest) is None):
                self._keep(copy, data)
            self.reused += 1
            LOG.debug("%s: %s kept from an earlier run", self.label, name)
            kept = json.loads(data)
            if isinstance(kept.get("seconds"), (int, float)):
                self.kept_seconds[name] = float(kept["seconds"])
            return kept["result"]
        if self.only is not None and name not in self.only:
            self.deferred += 1
            return None
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        write_json(path, {"inputs": digest, "seconds": seconds, "result": result})
        if copy is not None:
            self._keep(copy, path.read_bytes())
        self.done += 1
        self.seconds[name] = seconds
        unit_done("%s: %s %.1f s", self.label, name, seconds)
        return read_json(path)["result"]

    def _keep(self, copy: Path, data: bytes) -> None:
        """Write the unit ``data`` as the durable copy ``copy``, with ``stamp``'s keys."""
        if self.stamp:
            write_json(copy, json.loads(data) | self.stamp)
        else:
            atomic_write(copy, data)


def _kept(path: Path | None, digest: str) -> bytes | None:
    """The bytes of the unit file ``path`` if it holds a result with inputs ``digest``, else None (absent,
    damaged or of other inputs: done again)."""
    if path is None or not path.is_file():
        return None
    with contextlib.suppress(Exception):
        data = path.read_bytes()
        kept = json.loads(data)
        if kept.get("inputs") == digest and "result" in kept:
            return data
    return None
