"""``sleepnet export FOLDER --format nir|torch|onnx -o FILE``: a model folder in a format other tools read."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_dir, add_force


def add_parser(subparsers):
    """Add ``export FOLDER --format F -o FILE [--preset P] [--config F] [--set K=V]``; returns its parser."""
    from ..interop import EXPORT_FORMATS

    p = add_command(subparsers, "export", "a model folder as NIR (the spiking network), a Brian2 script (the "
                    "sleep network with its plasticity), a torch state_dict or ONNX (the ANN)")  # fmt: skip
    p.add_argument("folder", type=Path, help="a model folder")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="nir: the converted spiking "
                   "network; brian2: it as a Brian2 script, plasticity included; torch, onnx: the "
                   "ANN")  # fmt: skip
    p.add_argument("--preset", help="nir, brian2: the spiking network's settings (a slept model's own "
                   "otherwise)")  # fmt: skip
    p.add_argument("--config", help="nir, brian2: a TOML config (over the preset, if both)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="nir, brian2: override one setting")
    p.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
    p.add_argument("--dataset", help="nir, brian2: the data for the scale factors, if the record names none")
    add_data_dir(p)
    add_force(p, help="replace the file if it exists")
    return p


def run(args) -> int:
    """Write ``args.folder`` as ``args.format`` to ``args.output``; returns 0."""
    from ..config import apply_overrides, load_config, load_preset
    from ..interop import export_model

    config = None
    if args.preset or args.config or args.set:
        if not (args.preset or args.config):
            from ..errors import UsageError

            raise UsageError("--set needs --preset or --config to start from")
        config = load_preset(args.preset) if args.preset else None
        if args.config:
            config = load_config(args.config, config)
        config = apply_overrides(config, args.set)
    path = export_model(args.folder, args.format, args.output, overwrite=args.force, config=config,
                        data_dir=args.data_dir, dataset=args.dataset)  # fmt: skip
    print(f"{args.folder} -> {path} ({args.format})")
    return 0
