"""``sleepnet presets``: the published sleep presets; ``--keys``: every sleep-config key."""

from __future__ import annotations

from .common import add_command, keys_table


def add_parser(subparsers):
    """Add ``presets [--keys]``; returns its parser."""
    p = add_command(subparsers, "presets", "list the sleep presets")
    p.add_argument("--keys", action="store_true",
                   help="list every sleep-config key instead: type, default, allowed range")  # fmt: skip
    return p


def run(args) -> int:
    """Print each preset (name, ``T``, input mode, description), or with ``--keys`` the keys table; 0."""
    if args.keys:
        print(keys_table())
        return 0
    from ..config import load_preset, preset_names

    for name in preset_names():
        c = load_preset(name)
        print(f"{name:20} T={c.T:<6} input={c.input_mode:12} {c.description}")
    return 0
