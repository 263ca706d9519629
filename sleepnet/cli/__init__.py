"""The ``sleepnet`` command line (``sleepnet --help``): one module per command.

Each command module has ``add_parser(subparsers)``, which adds and returns its
parser, and ``run(args) -> int``; it may also have ``rewrite_argv(argv)``, applied
before parsing (``sleepnet tune MODEL`` is ``sleepnet tune run MODEL``). A new
command is a new module in ``COMMANDS``.

Bad input gets one line on stderr (``sleepnet: error: ...``), never a traceback:
exit status 2 for a usage error (the command line), 1 for the rest (``sleepnet.errors``);
set ``SLEEPNET_DEBUG=1`` to see the traceback of an
unexpected failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

from ..errors import SleepnetError
from . import (
    analyze,
    convert,
    data,
    demo,
    evaluate,
    export,
    geometry,
    info,
    plot,
    presets,
    sleep,
    train,
    tune,
)
from . import run as run_command
from .common import Parser, add_quiet

import_command = importlib.import_module(".import", __name__)  # `import` is a keyword, not a name

#: the commands, in the order ``sleepnet --help`` lists them
COMMANDS = (data, import_command, export, train, convert, sleep, evaluate, analyze, geometry, plot, info,
            presets, run_command, tune, demo)  # fmt: skip


class _Sleepnet(Parser):
    """The top-level parser: each command's ``rewrite_argv`` goes over the arguments first."""

    def parse_known_args(self, args=None, namespace=None):
        """``argparse``'s, after each command's ``rewrite_argv`` (default: ``sys.argv[1:]``)."""
        args = list(sys.argv[1:] if args is None else args)
        for module in COMMANDS:
            args = getattr(module, "rewrite_argv", list)(args)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The ``sleepnet`` parser with every command of ``COMMANDS``, each with its ``run`` as ``handler``."""
    from .. import __version__

    parser = _Sleepnet(prog="sleepnet", description="Sleep-like plasticity for bias-free ReLU networks.")
    parser.add_argument("--version", action="version", version=f"sleepnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        p = module.add_parser(sub)
        p.set_defaults(handler=module.run)
        add_logging(p)
    return parser


def add_logging(p: argparse.ArgumentParser) -> None:
    """``-q``, ``-v`` and ``--log FILE`` on ``p`` and, where it has subcommands, on each of them."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for child in {id(c): c for a in subs for c in a.choices.values()}.values():
            add_logging(child)
        return
    if not any("-q" in a.option_strings for a in p._actions):
        add_quiet(p)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also say what was loaded and reused (data and model hashes, kept units, timings)")
    p.add_argument("--log", metavar="FILE", help="also append every message, with times, to FILE")


def _configure_logging(args) -> None:
    """The ``sleepnet`` logger from ``-q``/``-v``/``--log``: one clear error for a log file it cannot open."""
    from ..progress import configure

    verbosity = -1 if getattr(args, "quiet", False) else int(bool(getattr(args, "verbose", False)))
    log = getattr(args, "log", None)
    if log is not None:
        check_log(Path(log))
    configure(verbosity, log)


def check_log(path: Path) -> None:
    """``SleepnetError`` unless ``--log`` can append to ``path``: a file (or none yet) in a writable folder,
    and not inside a folder sleepnet writes (a model, run or study folder, replaced whole by its next run)."""
    from ..fsio import check_output, marked

    if path.is_dir():
        raise SleepnetError(f"--log {path} is a folder, not a file")
    check_output(path, overwrite=True, file=True)
    for folder in path.resolve().parents:
        if marked(folder):
            raise SleepnetError(f"--log {path}: {folder} is a folder sleepnet writes; log elsewhere")


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _fail(message: str, status: int) -> int:
    """Say ``message`` on stderr (and in the ``--log`` file) as sleepnet's one line; returns ``status``."""
    from ..progress import to_file

    line = "sleepnet: interrupted" if status == 130 else f"sleepnet: error: {message}"
    print(line, file=sys.stderr)
    to_file(line)
    return status


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (a library's multi-line text joined with " / ")."""
    return " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success; for a ``SleepnetError``, one line on stderr and its ``exit_code`` (2 for a usage
    error, 1 for the rest); 130 if interrupted (Ctrl-C or SIGTERM); 1 for any other failure (one
    line; the traceback with ``SLEEPNET_DEBUG=1``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)  # `kill`: unwind like Ctrl-C, so temporary folders go
    try:
        args = build_parser().parse_args(argv)
        _configure_logging(args)
        return args.handler(args)
    except SleepnetError as exc:
        return _fail(_one_line(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # an unexpected failure: still one line, unless debugging
        if os.environ.get("SLEEPNET_DEBUG"):
            raise
        return _fail(f"{type(exc).__name__}: {_one_line(exc)} (SLEEPNET_DEBUG=1 shows the traceback)", 1)


__all__ = ["COMMANDS", "build_parser", "main"]
