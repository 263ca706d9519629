"""The ``sleepnet`` command line (``sleepnet --help``): one module per command.

Each command module has ``add_parser(subparsers)``, which adds and returns its
parser, and ``run(args) -> int``; it may also have ``rewrite_argv(argv)``, applied
before parsing (``sleepnet tune MODEL`` is ``sleepnet tune run MODEL``). A new
command is a new module in ``COMMANDS``.

Bad input gets one line on stderr (``sleepnet: error: ...``), never a traceback:
exit status 2 for a usage error (the command line), 1 for the rest (``sleepnet.errors``); set ``SLEEPNET_DEBUG=1`` to see the traceback of an
unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..errors import SleepnetError
from . import analyze, convert, data, demo, evaluate, geometry, plot, presets, sleep, train, tune
from . import run as run_command
from .common import Parser

#: the commands, in the order ``sleepnet --help`` lists them
COMMANDS = (data, train, convert, sleep, evaluate, analyze, geometry, plot, presets, run_command, tune, demo)


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
        module.add_parser(sub).set_defaults(handler=module.run)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt


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
        return args.handler(args)
    except SleepnetError as exc:
        print(f"sleepnet: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sleepnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: still one line, unless debugging
        if os.environ.get("SLEEPNET_DEBUG"):
            raise
        print(f"sleepnet: error: {type(exc).__name__}: {_one_line(exc)} (SLEEPNET_DEBUG=1 shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1


__all__ = ["COMMANDS", "build_parser", "main"]
