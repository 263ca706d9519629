"""Output that is either complete or absent: one overwrite guard, atomic files, atomic folders.

- ``refuse_existing(path, overwrite)``: the one "already exists" check of every
  command that writes an output (``--force`` sets ``overwrite``).
- ``atomic_write(path, data)``: every single file sleepnet writes (JSON, CSV,
  Markdown, TOML, PNG) goes to a temporary file in the same folder, then
  ``os.replace`` renames it into place; a failed write removes the temporary
  file and leaves the old ``path`` (if any) as it was.
- ``atomic_dir(path, overwrite)``: a run writes into a temporary sibling folder
  that is renamed into place when the block succeeds; an interrupted or failed
  run leaves nothing behind, and an existing folder is only replaced (with
  ``overwrite=True``) once the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import SleepnetError


def refuse_existing(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise ``SleepnetError`` if ``path`` exists and ``overwrite`` is not set."""
    if Path(path).exists() and not overwrite:
        raise SleepnetError(f"{path} already exists (use --force to replace it)")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` via a temporary file in its folder and a rename.

    The folder is created if needed. The temporary file (``.NAME.RANDOM.tmp``) is created with the
    mode a new file gets (the umask applies), and is removed if anything fails; ``path`` is then
    left as it was. Returns ``path``.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` when the block succeeds."""
    path = Path(path)
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (``atomic_write``)."""
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON content of ``path``; ``SleepnetError`` if it is missing or not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SleepnetError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SleepnetError(f"{path} is not valid JSON ({exc})") from None


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
