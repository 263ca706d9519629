"""What a long command says while it works: a bar on a terminal, one line per finished unit elsewhere.

- ``configure(verbosity, log_file)``: the ``sleepnet`` logger, set once by the CLI from ``-q``
  (warnings only, no bars), the default (one line per unit) and ``-v`` (also details: data and
  model loaded, thread counts); ``--log FILE`` appends the same lines, with times, to ``FILE``.
- ``bar(desc, ...)``: the one progress helper. On a terminal (stderr is a tty) it is a tqdm
  bar; elsewhere (CI, Slurm, a pipe) a bar would write thousands of carriage-return frames into
  the log, so it writes one line per finished item (``evaluate (quick): 1/2 control 3.2 s``) or,
  for a count of steps, one line when the task ends (``sleep (patches): 200 steps in 0.4 s``).
  With ``enabled=False`` (``-q``, or a library call that asks for none) it says nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

LOG = logging.getLogger("sleepnet")
_FORMAT = "sleepnet: %(message)s"
#: what ``configure`` was last given, for worker processes to set themselves up alike (``settings``)
_SETTINGS: dict = {"verbosity": 0, "log_file": None}


def configure(verbosity: int = 0, log_file: str | None = None) -> None:
    """Set up the ``sleepnet`` logger: ``verbosity`` -1 (``-q``), 0, or 1 (``-v``); ``log_file`` too.

    Called once per command by ``sleepnet.cli.main``; handlers a previous call added are replaced.
    """
    _SETTINGS.update(verbosity=verbosity, log_file=log_file)
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    for h in list(LOG.handlers):
        LOG.removeHandler(h)
        h.close()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(_FORMAT))
    LOG.addHandler(stream)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)  # created at the first line
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOG.addHandler(handler)
    LOG.setLevel(level)
    LOG.propagate = False


def settings() -> tuple[int, str | None]:
    """``(verbosity, log_file)`` as last configured: a worker process calls ``configure(*settings())``."""
    return _SETTINGS["verbosity"], _SETTINGS["log_file"]


def unit_done(message: str, *args) -> None:
    """One finished unit of work: a line off a terminal, a detail (``-v``) on one, where a bar is showing."""
    LOG.log(logging.DEBUG if on_terminal() else logging.INFO, message, *args)


def to_file(message: str) -> None:
    """Append ``message`` to the ``--log`` file only (the CLI's final error line, already on stderr)."""
    record = LOG.makeRecord(LOG.name, logging.ERROR, __file__, 0, message, None, None)
    for h in LOG.handlers:
        if isinstance(h, logging.FileHandler):
            h.handle(record)


def on_terminal() -> bool:
    """Whether stderr is a terminal (bars) rather than a file or pipe (lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Lines:
    """The off-terminal stand-in for a tqdm bar: the same ``update``/``close``/iteration, as log lines."""

    def __init__(self, desc: str, total: int | None, items: Iterable | None, unit: str,
                 each: bool = False, label=None) -> None:  # fmt: skip
        self.desc, self.total, self.items, self.unit, self.each = desc, total, items, unit, each
        self.label = label or _name
        self.n, self.t0, self.closed = 0, time.perf_counter(), False
        self.last = self.t0

    def __iter__(self) -> Iterator[Any]:
        items = list(self.items)
        self.total = len(items)
        for k, item in enumerate(items, 1):
            t = time.perf_counter()
            yield item
            took = time.perf_counter() - t
            LOG.info("%s: %d/%d %s %.1f s", self.desc, k, self.total, self.label(item), took)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.each:
            now = time.perf_counter()
            LOG.info("%s: %d/%s %s %.1f s", self.desc, self.n, self.total, self.unit, now - self.last)
            self.last = now

    def set_postfix_str(self, text: str) -> None:
        """Ignored off a terminal (a bar's live detail)."""

    def close(self) -> None:
        if not self.closed and self.items is None and not self.each:
            LOG.info("%s: %d %s in %.1f s", self.desc, self.n, self.unit, time.perf_counter() - self.t0)
        self.closed = True


class _Silent(_Lines):
    def __iter__(self) -> Iterator[Any]:
        yield from self.items

    def close(self) -> None:
        self.closed = True


def _name(item: Any) -> str:
    """A short label for a finished item: the first element of a pair, else the item itself."""
    if isinstance(item, tuple) and item:
        item = item[0]
    return str(item)[:60]


def bar(desc: str, *, total: int | None = None, items: Iterable | None = None, enabled: bool = True,
        unit: str = "it", each: bool = False, label=None):  # fmt: skip
    """A progress display for ``items`` (iterate over the result) or for ``total`` units (``update``).

    A tqdm bar on a terminal, log lines elsewhere (one per item; for ``total``, one at the end, or
    one per ``update`` if ``each``: units that take minutes), nothing if not ``enabled``. ``label(item)``
    names a finished item in its line (default: the item, or a pair's first element).
    """
    if not enabled:
        return _Silent(desc, total, items, unit)
    if on_terminal():
        from tqdm.auto import tqdm

        return tqdm(items, total=total, desc=desc, leave=False, unit=unit, unit_scale=unit == "steps")
    return _Lines(desc, total, items, unit, each, label)
