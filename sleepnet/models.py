"""Bias-free ReLU networks, the paper's dropout, and the model folder on disk.

A model on disk is a folder::

    model.safetensors   the weights (no pickle anywhere)
    model.json          architecture, recipe, dataset and its hash, seed,
                        versions, metrics, and for a slept model its parent,
                        the sleep config and the spike statistics
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SleepnetError
from .fsio import atomic_dir, read_json, write_json

FORMAT = "sleepnet-model/1"


class PaperDropout(nn.Module):
    """Non-inverted dropout of the paper (DeepLearnToolbox convention).

    Training: ``x * mask`` with ``mask ~ Bernoulli(1 - p)``, no rescaling.
    Evaluation: ``x * (1 - p)``. Compare ``torch.nn.Dropout``, which rescales
    by ``1 / (1 - p)`` in training and is the identity in evaluation.
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * mask`` (mask ~ Bernoulli(1 - p)) in training, ``x * (1 - p)`` in evaluation."""
        if self.training:
            return x * torch.bernoulli(torch.full_like(x, 1.0 - self.p))
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        """``p=...`` for the module's repr."""
        return f"p={self.p}"


def build_mlp(sizes: list[int], dropout: float = 0.2, dropout_convention: str = "paper") -> nn.Sequential:
    """``Linear(bias=False) -> ReLU [-> Dropout]`` per hidden layer, ReLU on the output too."""
    if len(sizes) < 2:
        raise SleepnetError(f"an MLP needs at least two layer sizes, got {sizes}")
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(n_in, n_out, bias=False), nn.ReLU()]
        if dropout > 0 and k < len(sizes) - 2:
            layers.append(_dropout(dropout, dropout_convention))
    return nn.Sequential(*layers)


def _dropout(p: float, convention: str) -> nn.Module:
    if convention == "paper":
        return PaperDropout(p)
    if convention == "inverted":
        return nn.Dropout(p)
    raise SleepnetError(f"unknown dropout convention {convention!r} (paper or inverted)")


def describe(model: nn.Sequential) -> list[dict[str, Any]]:
    """The architecture of a Sequential as JSON-able records (inverse of ``build``)."""
    spec = []
    for k, m in enumerate(model):
        if isinstance(m, nn.Linear):
            spec.append({"type": "linear", "in": m.in_features, "out": m.out_features,
                         "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, nn.ReLU):
            spec.append({"type": "relu"})
        elif isinstance(m, PaperDropout):
            spec.append({"type": "dropout", "p": m.p, "convention": "paper"})
        elif isinstance(m, nn.Dropout):
            spec.append({"type": "dropout", "p": m.p, "convention": "inverted"})
        elif isinstance(m, nn.Flatten):
            spec.append({"type": "flatten"})
        else:
            raise SleepnetError(f"layer {k} ({type(m).__name__}) cannot be saved as a sleepnet model")
    return spec


def build(spec: list[dict[str, Any]]) -> nn.Sequential:
    """A Sequential from ``describe`` records."""
    layers: list[nn.Module] = []
    try:
        for rec in spec:
            kind = rec["type"]
            if kind == "linear":
                layers.append(nn.Linear(int(rec["in"]), int(rec["out"]), bias=bool(rec["bias"])))
            elif kind == "relu":
                layers.append(nn.ReLU())
            elif kind == "dropout":
                layers.append(_dropout(float(rec["p"]), rec["convention"]))
            elif kind == "flatten":
                layers.append(nn.Flatten())
            else:
                raise SleepnetError(f"unknown layer type {kind!r} in the architecture")
    except (KeyError, TypeError, ValueError) as exc:
        raise SleepnetError(f"malformed architecture record ({exc})") from None
    return nn.Sequential(*layers)


def versions() -> dict[str, str]:
    """Versions of sleepnet, Python, torch, numpy and numba, recorded in ``model.json``."""
    import numba
    import numpy

    from . import __version__

    return {"sleepnet": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "numba": numba.__version__}  # fmt: skip


def save_model(model: nn.Sequential, path: str | os.PathLike, meta: dict[str, Any] | None = None,
               overwrite: bool = False, extra: Callable[[Path], None] | None = None) -> Path:  # fmt: skip
    """Write ``model`` and ``meta`` as a model folder, atomically.

    ``extra(folder)``, if given, writes further files into the folder before it
    is renamed into place.
    """
    from safetensors.torch import save_file

    record = {"format": FORMAT, "architecture": describe(model), "versions": versions()}
    record.update(meta or {})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_dir(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        write_json(tmp / "model.json", record)
        if extra is not None:
            extra(tmp)
    return Path(path)


def load_model(path: str | os.PathLike, device=None) -> tuple[nn.Sequential, dict[str, Any]]:
    """Read a model folder; returns the model (evaluation mode, on ``device``, default cpu) and its record."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise SleepnetError(f"model folder {path} does not exist")
    meta = read_json(path / "model.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SleepnetError(f"{path / 'model.json'} is not a sleepnet model record ({FORMAT})")
    model = build(meta.get("architecture", []))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise SleepnetError(f"{weights} does not exist")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SleepnetError(f"{weights} is not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SleepnetError(f"{weights} does not match its architecture ({first})") from None
    model.eval()
    if device is not None:
        from .devices import resolve_device

        model.to(resolve_device(device))
    return model, meta
