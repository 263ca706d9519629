"""``sleepnet sleep MODEL --preset NAME -o OUT``: a sleep phase on a model folder.

Its ``--help`` ends with every sleep-config key (``keys_table``); the sleep phase
itself is described in ``docs/algorithm.md``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..backends import BACKENDS, DEFAULT
from ..errors import SleepnetError
from .common import add_command, add_common, add_device, device, keys_table, progress

EPILOG = """\
sleep-config keys, for --set KEY=VALUE or a --config TOML file (also `sleepnet presets
--keys`); default "preset": the preset or the config file gives the value.

"""


def add_parser(subparsers):
    """Add ``sleep MODEL``, its help ending with the sleep-config keys table; returns its parser."""
    p = add_command(subparsers, "sleep", "run a sleep phase on a model folder",
                    epilog=EPILOG + textwrap.indent(keys_table(), "  "))  # fmt: skip
    p.add_argument("model", type=Path, help="a model folder, or a model file (.pt, .pth, .ts, .safetensors, "
                   ".onnx, as `sleepnet import` reads them; give --dataset)")  # fmt: skip
    p.add_argument("--preset", help="a published preset (see `sleepnet presets`)")
    p.add_argument("--config", type=Path, help="a TOML config (over the preset, if both)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set inc=0.05 --set 'beta=[1,2,3]'")  # fmt: skip
    p.add_argument("--backend", default=DEFAULT, choices=BACKENDS.names(), help="the sleep simulator")
    add_device(p, "the scale factors, the accuracies and the torch backend")
    add_common(p)
    return p


def sleep_config(args):
    """The config of ``--preset``, then ``--config`` over it, then the ``--set`` items."""
    from ..config import apply_overrides, load_config, load_preset

    if args.preset is None and args.config is None:
        raise SleepnetError("sleep needs --preset or --config")
    config = load_preset(args.preset) if args.preset else None
    if args.config:
        config = load_config(args.config, base=config)
    return apply_overrides(config, args.set)


def run(args) -> int:
    """Sleep ``args.model`` into ``args.output`` and print speed, mean rates and accuracies; returns 0."""
    from ..workflow import sleep_to_folder

    rec = sleep_to_folder(args.model, sleep_config(args), args.output, backend=args.backend,
                          data_dir=args.data_dir, overwrite=args.force, progress=progress(args),
                          dataset=args.dataset, device=device(args))  # fmt: skip
    s = rec["sleep"]
    rates = ", ".join(f"{layer['mean_rate_hz']:.3g}" for layer in s["spikes"]["layers"])
    print(f"slept {s['spikes']['steps']} steps in {s['wall_time_s']:.2f} s "
          f"({s['steps_per_second']:.0f} steps/s, backend {s['backend']}; "
          f"{s['compile_time_s']:.2f} s compiling or loading the kernel)")  # fmt: skip
    print(f"mean rates per layer (Hz, input first): {rates}")
    print(f"test accuracy {rec['metrics']['parent_test_accuracy']:.4f} -> "
          f"{rec['metrics']['test_accuracy']:.4f}; -> {args.output}")  # fmt: skip
    return 0
