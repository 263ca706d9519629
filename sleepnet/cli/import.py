"""``sleepnet import FILE -o DIR``: a model trained elsewhere (PyTorch, TorchScript, safetensors, ONNX) as a
model folder. (The module's name is the command's; it is loaded with importlib.)"""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_dir, add_force, add_output


def add_parser(subparsers):
    """Add ``import FILE -o DIR [--format F] [--arch SIZES] [--dataset NAME]``; returns its parser."""
    from ..interop import IMPORT_FORMATS

    p = add_command(subparsers, "import", "a model trained elsewhere (PyTorch state_dict or nn.Sequential, "
                    "TorchScript, safetensors, ONNX) as a model folder")  # fmt: skip
    p.add_argument("file", type=Path, help="the model file (.pt/.pth/.bin, .ts, .safetensors, .onnx)")
    p.add_argument("--format", choices=IMPORT_FORMATS, help="the file's format, if its suffix does not say")
    p.add_argument("--arch", help="layer sizes of the bias-free ReLU MLP, e.g. 784-1200-1200-10: needed "
                   "where the file does not say, checked where it does")  # fmt: skip
    p.add_argument("--dataset", help="record this dataset (its hash), after checking the model fits it")
    add_data_dir(p)
    add_output(p, help="the model folder to write")
    add_force(p)
    return p


def run(args) -> int:
    """Import ``args.file`` into ``args.output``; prints where it went; returns 0."""
    from ..interop import import_model

    meta = import_model(args.file, args.output, fmt=args.format, arch=args.arch, dataset=args.dataset,
                        data_dir=args.data_dir, overwrite=args.force)  # fmt: skip
    src = meta["source"]
    print(f"{src['format']} {args.file} (SHA-256 {src['sha256'][:12]}...) -> {args.output}")
    return 0
