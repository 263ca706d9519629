"""Bring your own model in, take the result out (``sleepnet import``, ``sleepnet export``).

Import (``import_model``): a PyTorch ``state_dict`` or full module (``torch.load`` with
``weights_only=True``; the architecture from ``--arch`` where the file does not hold it), TorchScript,
safetensors, or ONNX (``onnx_io``) becomes a sleepnet model folder whose record says where it came from
(the file, its SHA-256, its format). Whatever sleep cannot convert (a bias, a convolution, an operator
with no counterpart) is refused in one line naming the layer, and nothing is written.

Export (``export_model``): ``torch`` (the ANN's ``state_dict``, loadable with ``weights_only=True``),
``onnx`` (the ANN; ``onnx_io``), ``nir`` (the converted spiking network; ``nir_io``, mapping in
``docs/design.md``, "Interchange") and ``brian2`` (the sleep network with its plasticity, as a Python
script that needs only brian2 and numpy; ``brian2_io``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SleepnetError, UsageError

#: what ``sleepnet import`` reads, by file suffix
IMPORT_SUFFIXES = {".pt": "torch", ".pth": "torch", ".bin": "torch", ".ts": "torchscript",
                   ".safetensors": "safetensors", ".onnx": "onnx"}  # fmt: skip
IMPORT_FORMATS = ("torch", "torchscript", "safetensors", "onnx")
EXPORT_FORMATS = ("torch", "onnx", "nir", "brian2")


def import_format(path: Path, given: str | None = None) -> str:
    """The format of ``path``: ``given`` (``--format``), else its suffix's; ``UsageError`` if neither says."""
    if given is not None:
        if given not in IMPORT_FORMATS:
            raise UsageError(f"unknown import format {given!r} (known: {', '.join(IMPORT_FORMATS)})")
        return given
    fmt = IMPORT_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the format of {path} from its suffix: give --format "
                         f"({', '.join(IMPORT_FORMATS)})")  # fmt: skip
    return fmt


def read_model_file(path: Path, fmt: str, arch: str | None = None):
    """``(model, record)`` of the model file ``path`` in format ``fmt``: the model sleep will convert
    (anything else refused in one line naming the layer as the file names it) and where it came from."""
    from ..converters import check_sequential
    from ..errors import ConversionError
    from ..hashing import sha256_file

    if fmt == "onnx":
        from .onnx_io import read_onnx

        model, names = read_onnx(path)
    else:
        from .torch_io import read_torch

        model, names = read_torch(path, fmt, arch)
    if arch is not None:
        from .torch_io import check_arch

        check_arch(model, arch)
    try:
        check_sequential(model)
    except ConversionError as exc:
        raise ConversionError(f"{path}: {names.rename(str(exc))}") from None
    model.eval()
    source = {"file": str(path.resolve()), "sha256": sha256_file(path), "format": fmt}
    return model, {"kind": "imported", "source": source}


def import_model(path: str | os.PathLike, out: str | os.PathLike, *, fmt: str | None = None,
                 arch: str | None = None, dataset: str | None = None, data_dir: str | None = None,
                 overwrite: bool = False) -> dict:  # fmt: skip
    """Read a model file into the model folder ``out``; returns its record.

    ``arch`` (``784-1200-1200-10``: a bias-free ReLU MLP) gives the architecture of a bare ``state_dict`` or
    safetensors file and is checked against the shapes of any file. ``dataset``: record it (name and hash)
    after checking the model takes its inputs and has its number of classes.
    """
    from ..fsio import check_output
    from ..models import save_model

    path = Path(path)
    fmt = import_format(path, fmt)
    check_output(out, overwrite, inputs=[path])
    if not path.is_file():
        raise SleepnetError(f"{path} does not exist")
    model, meta = read_model_file(path, fmt, arch)
    if dataset is not None:
        from ..data import load_dataset
        from ..workflow import check_classes

        data = load_dataset(dataset, data_dir)
        check_classes(model, data, str(path))
        meta["dataset"] = data.record()
    save_model(model, out, meta, overwrite=overwrite)
    return meta


def load_any(path: str | os.PathLike, device=None):
    """``(model, record)`` of a model folder, or of a model file of an ``IMPORT_FORMATS`` format (its record:
    ``kind: imported`` and its ``source``), so that ``sleep`` and ``convert`` take either."""
    from ..models import load_model

    path = Path(path)
    if path.is_dir() or not path.exists():
        return load_model(path, device=device)
    fmt = IMPORT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SleepnetError(f"{path} is neither a model folder nor a model file (.pt, .pth, .bin, .ts, "
                            ".safetensors, .onnx)")  # fmt: skip
    model, meta = read_model_file(path, fmt)
    if device is not None:
        from ..devices import resolve_device

        model.to(resolve_device(device))
    return model, meta


def weights_hash(path: str | os.PathLike) -> str:
    """What a child records of its parent: the SHA-256 of a folder's ``model.safetensors``, or of a file."""
    from ..hashing import sha256_file

    path = Path(path)
    return sha256_file(path / "model.safetensors" if path.is_dir() else path)


def export_model(folder: str | os.PathLike, fmt: str, out: str | os.PathLike, *, overwrite: bool = False,
                 config=None, data_dir: str | None = None, dataset: str | None = None) -> Path:  # fmt: skip
    """Write the model folder ``folder`` as ``fmt`` (``EXPORT_FORMATS``) to the file ``out``; returns it.

    ``config`` (a ``SleepConfig``): the sleep settings of the spiking network for ``nir``; a slept model's
    own by default.
    """
    from ..fsio import check_output
    from ..models import load_model

    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
    check_output(out, overwrite, inputs=[folder], file=True)
    model, meta = load_model(folder)
    if fmt == "torch":
        from .torch_io import write_state_dict

        return write_state_dict(model, Path(out))
    if fmt == "onnx":
        from .onnx_io import write_onnx

        return write_onnx(model, Path(out))
    if fmt == "brian2":
        from .brian2_io import write_brian2

        return write_brian2(model, meta, Path(out), config=config, data_dir=data_dir, source=str(folder),
                            dataset=dataset)  # fmt: skip
    from .nir_io import write_nir

    return write_nir(model, meta, Path(out), config=config, data_dir=data_dir, dataset=dataset)
