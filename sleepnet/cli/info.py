"""``sleepnet info FOLDER [--json]``: what a model, evaluation, experiment or study folder holds."""

from __future__ import annotations

import json
from pathlib import Path

from .common import add_command


def add_parser(subparsers):
    """Add ``info FOLDER [--json]``; returns its parser."""
    p = add_command(subparsers, "info", "what a folder holds: architecture, parameters, dataset and hash, "
                    "lineage, sleep settings and spikes, metrics")  # fmt: skip
    p.add_argument("folder", type=Path, help="a model, evaluation, experiment or study folder")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    return p


def run(args) -> int:
    """Print what ``args.folder`` holds, as text or JSON; returns 0."""
    from ..info import info, render

    d = info(args.folder)
    print(json.dumps(d, indent=2) if args.json else render(d))
    return 0
