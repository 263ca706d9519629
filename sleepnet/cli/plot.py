"""``sleepnet plot FOLDER``: figures of a slept model or of an evaluation folder."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_output


def add_parser(subparsers):
    """Add ``plot FOLDER [-o OUT]``; returns its parser."""
    p = add_command(subparsers, "plot", "figures of a slept model or an evaluation folder")
    p.add_argument("folder", type=Path, help="a slept model folder or an evaluation folder")
    add_output(p, help="figure folder (default: FOLDER/figures)", required=False)
    return p


def run(args) -> int:
    """Write the figures of ``args.folder`` and print their paths; returns 0."""
    from ..workflow import plot_folder

    for path in plot_folder(args.folder, args.output):
        print(path)
    return 0
