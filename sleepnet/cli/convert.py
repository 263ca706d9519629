"""``sleepnet convert MODEL``: the scale factors and a summary of the spiking network."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_common, add_device, device


def add_parser(subparsers):
    """Add ``convert MODEL``; returns its parser."""
    p = add_command(subparsers, "convert", "scale factors and summary of the spiking network")
    p.add_argument("model", type=Path, help="a model folder, or a model file (.pt, .pth, .ts, .safetensors, "
                   ".onnx, as `sleepnet import` reads them; give --dataset)")  # fmt: skip
    p.add_argument("--percentile", type=float, help="use this activation percentile, not the max")
    p.add_argument("--json", type=Path, help="also write the conversion record to this file")
    add_device(p, "the activation pass behind the scale factors")
    add_common(p, out=False)
    return p


def run(args) -> int:
    """Print max weight, max activation and scale factor per layer (and write ``--json``); returns 0."""
    from ..converters import check_sequential, from_torch
    from ..fsio import check_output, write_json
    from ..interop import load_any
    from ..workflow import check_classes, dataset_for

    if args.json:  # no --force here: a file is replaced, a folder or the model never
        check_output(args.json, overwrite=True, inputs=[args.model], file=True)
    model, meta = load_any(args.model, device=device(args))
    check_sequential(model)
    data = dataset_for(meta, args.data_dir, args.dataset)
    check_classes(model, data, str(args.model))
    net = from_torch(model, data.x_train, args.percentile)
    summary = net.summary()
    print(f"spiking network {'-'.join(map(str, net.sizes))}, activation statistic "
          f"{summary['activation_statistic']}")  # fmt: skip
    print(f"{'layer':>6}{'max weight':>14}{'max activation':>16}{'factor':>12}")
    for l in range(len(net.weights)):
        print(f"{l:>6}{net.max_weight[l]:>14.6f}{net.max_activation[l]:>16.6f}{net.factors[l]:>12.6f}")
    if args.json:
        write_json(args.json, summary)
    return 0
