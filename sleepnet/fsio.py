"""Output that is either complete or absent: one overwrite guard, atomic files, atomic folders.

- ``check_output(path, overwrite, inputs)``: the one check of every output path, run
  before any work: it can be created (its nearest existing folder is writable), it is
  not one of the command's inputs nor inside one (nor holds one), and it does not
  exist unless ``--force`` (``overwrite``) is given, which replaces only a folder
  sleepnet wrote (it holds the mark ``.sleepnet``, a ``model.json`` or a ``study.db``) or an empty one,
  never a plain file.
- ``atomic_write(path, data)``: every single file sleepnet writes (JSON, CSV,
  Markdown, TOML, PNG) goes to a temporary file in the same folder, then
  ``os.replace`` renames it into place; a failed write removes the temporary
  file and leaves the old ``path`` (if any) as it was.
- ``atomic_dir(path, overwrite)``: a run writes into a temporary sibling folder
  that is renamed into place when the block succeeds; an interrupted or failed
  run leaves nothing behind, and an existing folder is only replaced (with
  ``overwrite=True``) once the new one is complete.

Permissions follow the umask: files 0666 and folders 0777 less the umask (0644 and
0755 under the usual 022), so a lab's shared results folder reads as its members expect.
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

MARK = ".sleepnet"


def check_output(path: str | os.PathLike, overwrite: bool = False, inputs=(), file: bool = False) -> None:
    """Raise ``SleepnetError`` unless ``path`` can be written as an output; writes nothing.

    Parameters
    ----------
    path : path-like
        The output: a folder, or a single file if ``file``.
    overwrite : bool
        ``--force``: an existing output may be replaced; a folder only if sleepnet wrote it
        (``is_own``) or it is empty; a file only by a file.
    inputs : iterable of path-like
        The command's inputs (model folders, experiment files); the output may be none of
        them, may not lie inside one and may not contain one.
    """
    path = Path(path)
    target = path.resolve()
    for inp in inputs:
        src = Path(inp).resolve()
        if target == src or src in target.parents or target in src.parents:
            raise SleepnetError(f"the output {path} would overwrite the input {inp}: choose another output")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise SleepnetError(f"{path} already exists (use --force to replace it)")
        if file and path.is_dir():
            raise SleepnetError(f"{path} is a folder, not a file: --force replaces only a file here")
        if not file and not path.is_dir():
            raise SleepnetError(f"{path} is a file: --force replaces only a folder sleepnet wrote")
        if not file and not is_own(path):
            raise SleepnetError(f"{path} is a folder sleepnet did not write (no {MARK}, model.json or "
                                "study.db): sleepnet will not replace it; remove it or choose another "
                                "output")  # fmt: skip
    check_creatable(path)


def check_creatable(path: str | os.PathLike) -> None:
    """Raise ``SleepnetError`` unless ``path`` could be made: its nearest existing folder (``path``'s parent
    or above) is a folder and is writable, probed by making and removing a folder there."""
    path = Path(path)
    ancestor = path.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SleepnetError(f"cannot create {path}: {ancestor} is a file")
    try:  # a real probe: os.access says yes to root on a read-only file system or in /proc
        os.rmdir(tempfile.mkdtemp(prefix=".sleepnet-probe-", dir=ancestor))
    except OSError as exc:
        raise SleepnetError(f"cannot create {path}: {ancestor} is not writable ({exc.strerror})") from None


def marked(folder: Path) -> bool:
    """Whether sleepnet wrote ``folder``: ``atomic_dir`` marks each with ``.sleepnet``; a model folder holds
    ``model.json``, a study folder ``study.db``."""
    return any((Path(folder) / name).is_file() for name in (MARK, "model.json", "study.db"))


def is_own(folder: Path) -> bool:
    """Whether ``folder`` is empty or one sleepnet wrote (``marked``): what ``--force`` may replace."""
    return marked(folder) or not any(Path(folder).iterdir())


def remove(path: Path, ignore_errors: bool = False) -> None:
    """Remove a folder with what it holds (``ignore_errors`` as ``shutil.rmtree``'s), or a file (a link is
    removed, never followed)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
    else:
        path.unlink()


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
    """Yield a temporary folder that becomes ``path`` (marked ``.sleepnet``) when the block succeeds.

    ``path`` is checked again before the rename, as ``check_output`` checked it before the block: an
    output that appeared while the block ran (another command's) is replaced only with ``overwrite``,
    and then only if sleepnet wrote it; a folder sleepnet did not write, put there meanwhile, never is.
    The finished work is then left where it is, and the error says where."""
    path = Path(path)
    check_output(path, overwrite)
    existed = path.exists() or path.is_symlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        check_output(path, overwrite or existed)
    except SleepnetError as exc:
        raise SleepnetError(f"{exc} (it appeared or changed while this command ran; the finished result "
                            f"is in {tmp})") from None  # fmt: skip
    try:
        install(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def install(folder: Path, path: Path) -> None:
    """Make the finished ``folder`` the output ``path``: the mark ``.sleepnet``, the umask's modes, then
    a rename, over an old ``path`` (moved aside first, put back if the rename fails, deleted after)."""
    from . import __version__

    (folder / MARK).write_text(json.dumps({"sleepnet": __version__}) + "\n")
    _follow_umask(folder)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(folder, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def umask() -> int:
    """The process's file-mode creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes the umask gives new folders and files.

    ``tempfile.mkdtemp`` makes 0700 folders and some writers (safetensors) 0600 files; a folder a
    lab shares must read as the user's umask says (0755 and 0644 under the common 022).
    """
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~mask)


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
