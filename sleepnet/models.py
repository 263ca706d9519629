"""The networks (MLPs and a small CNN), the paper's dropout, and the model folder on disk.

- ``build_mlp``: ``Linear -> activation [-> Dropout]`` per layer, the activation on the
  readout too (ReLU or sigmoid; bias-free by default, as sleep needs).
- ``build_cnn``: the small MNIST CNN of ``docs/saturation.md`` (two 5x5 convolutions with
  2x2 max pooling, then two dense layers), activation everywhere, readout included.

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

from . import noise
from .errors import SleepnetError
from .fsio import atomic_dir, read_json, write_json

FORMAT = "sleepnet-model/4"
# /1 knew linear, relu, dropout and flatten; /2 adds sigmoid, conv2d, maxpool2d and unflatten;
# /3 the noise layers (``sleepnet.noise``); /4 the audio front-end (``sleepnet.audio.frontend``).
# Older folders read unchanged.
READABLE = ("sleepnet-model/1", "sleepnet-model/2", "sleepnet-model/3", FORMAT)
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


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


def activation(name: str) -> nn.Module:
    """A fresh ``nn.ReLU`` or ``nn.Sigmoid`` for ``name``; ``SleepnetError`` for any other name."""
    if name not in ACTIVATIONS:
        raise SleepnetError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def build_mlp(sizes: list[int], dropout: float = 0.2, dropout_convention: str = "paper",
              act: str = "relu", bias: bool = False) -> nn.Sequential:  # fmt: skip
    """``Linear -> act [-> Dropout]`` per hidden layer, ``act`` on the output too."""
    if len(sizes) < 2:
        raise SleepnetError(f"an MLP needs at least two layer sizes, got {sizes}")
    activation(act)
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(n_in, n_out, bias=bias), activation(act)]
        if dropout > 0 and k < len(sizes) - 2:
            layers.append(_dropout(dropout, dropout_convention))
    return nn.Sequential(*layers)


def build_cnn(image_shape: tuple[int, int], n_classes: int, channels: tuple[int, int] = (16, 32),
              hidden: int = 128, act: str = "relu", dropout: float = 0.0,
              dropout_convention: str = "inverted") -> nn.Sequential:  # fmt: skip
    """The small CNN: ``conv5x5(c1) -> act -> pool2 -> conv5x5(c2) -> act -> pool2 -> dense(hidden)
    -> act [-> Dropout] -> dense(n_classes) -> act``, on flat inputs of ``image_shape`` (with biases).

    Padding 2 keeps each convolution's size and pooling floors, so an ``h x w`` image leaves
    ``c2 * (h // 4) * (w // 4)`` features (``c2 * 7 * 7`` for 28x28).
    """
    h, w = (int(v) for v in image_shape)
    if h < 4 or w < 4:
        raise SleepnetError(f"the CNN pools twice by 2: image sides must be at least 4, got {h}x{w}")
    activation(act)
    c1, c2 = (int(c) for c in channels)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (1, h, w)),
        nn.Conv2d(1, c1, 5, padding=2), activation(act), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2), activation(act), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (h // 4) * (w // 4), hidden), activation(act),
    ]  # fmt: skip
    if dropout > 0:
        layers.append(_dropout(dropout, dropout_convention))
    layers += [nn.Linear(hidden, n_classes), activation(act)]
    return nn.Sequential(*layers)


def _dropout(p: float, convention: str) -> nn.Module:
    if convention == "paper":
        return PaperDropout(p)
    if convention == "inverted":
        return nn.Dropout(p)
    raise SleepnetError(f"unknown dropout convention {convention!r} (paper or inverted)")


def describe(model: nn.Sequential) -> list[dict[str, Any]]:
    """The architecture of a Sequential as JSON-able records (inverse of ``build``)."""
    from .audio.frontend import LogMel

    spec = []
    for k, m in enumerate(model):
        if isinstance(m, LogMel):
            spec.append(m.record())
        elif isinstance(m, nn.Linear):
            spec.append({"type": "linear", "in": m.in_features, "out": m.out_features,
                         "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, nn.ReLU):
            spec.append({"type": "relu"})
        elif isinstance(m, nn.Sigmoid):
            spec.append({"type": "sigmoid"})
        elif isinstance(m, nn.Conv2d) and m.groups == 1 and m.dilation == (1, 1):
            spec.append({"type": "conv2d", "in": m.in_channels, "out": m.out_channels,
                         "kernel": list(m.kernel_size), "stride": list(m.stride),
                         "padding": list(m.padding), "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, nn.MaxPool2d) and m.padding == 0 and m.dilation == 1 and not m.ceil_mode:
            spec.append({"type": "maxpool2d", "kernel": m.kernel_size, "stride": m.stride})
        elif isinstance(m, nn.Unflatten):
            spec.append({"type": "unflatten", "dim": m.dim, "shape": list(m.unflattened_size)})
        elif isinstance(m, PaperDropout):
            spec.append({"type": "dropout", "p": m.p, "convention": "paper"})
        elif isinstance(m, nn.Dropout):
            spec.append({"type": "dropout", "p": m.p, "convention": "inverted"})
        elif isinstance(m, nn.Flatten):
            spec.append({"type": "flatten"})
        elif isinstance(m, noise.PoissonNoise):
            spec.append({"type": "poisson_noise", "gain": m.gain, "k": m.k, "b": m.b, "seed": m.seed})
        elif isinstance(m, noise.GaussianNoise):
            spec.append({"type": "gaussian_noise", "sigma": m.sigma, "seed": m.seed})
        else:
            raise SleepnetError(f"layer {k} ({type(m).__name__}) cannot be saved as a sleepnet model")
    return spec


#: the ``describe`` records of the noise layers (``sleepnet.noise``): a model holding one is stochastic
NOISE_LAYERS = ("poisson_noise", "gaussian_noise")


def build(spec: list[dict[str, Any]]) -> nn.Sequential:
    """A Sequential from ``describe`` records."""
    from .audio.frontend import LogMel

    layers: list[nn.Module] = []
    try:
        for rec in spec:
            kind = rec["type"]
            if kind == "linear":
                layers.append(nn.Linear(int(rec["in"]), int(rec["out"]), bias=bool(rec["bias"])))
            elif kind in ACTIVATIONS:
                layers.append(activation(kind))
            elif kind == "conv2d":
                layers.append(nn.Conv2d(int(rec["in"]), int(rec["out"]), tuple(rec["kernel"]),
                                        stride=tuple(rec["stride"]), padding=tuple(rec["padding"]),
                                        bias=bool(rec["bias"])))  # fmt: skip
            elif kind == "maxpool2d":
                layers.append(nn.MaxPool2d(rec["kernel"], stride=rec["stride"]))
            elif kind == "unflatten":
                layers.append(nn.Unflatten(int(rec["dim"]), tuple(int(v) for v in rec["shape"])))
            elif kind == "dropout":
                layers.append(_dropout(float(rec["p"]), rec["convention"]))
            elif kind == "flatten":
                layers.append(nn.Flatten())
            elif kind == "poisson_noise":
                layers.append(noise.PoissonNoise(float(rec["gain"]), float(rec["k"]), float(rec["b"]),
                                                 int(rec["seed"])))  # fmt: skip
            elif kind == "gaussian_noise":
                layers.append(noise.GaussianNoise(float(rec["sigma"]), int(rec["seed"])))
            elif kind == "logmel":
                layers.append(LogMel.from_record(rec))
            else:
                raise SleepnetError(f"unknown layer type {kind!r} in the architecture")
    except (KeyError, TypeError, ValueError) as exc:
        raise SleepnetError(f"malformed architecture record ({exc})") from None
    return nn.Sequential(*layers)


def versions() -> dict[str, str]:
    """Versions of sleepnet, Python, torch, numpy and numba, recorded in ``model.json``, with the CPU kernels
    torch chose (``cpu_capability``: AVX512, AVX2, ...; the last bits of a result can depend on it) and
    whether the kernels were pinned as ``SLEEPNET_PORTABLE`` pins them (``portable``)."""
    import numba
    import numpy

    from . import __version__

    return {"sleepnet": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "numba": numba.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "portable": _portable()}  # fmt: skip


def _portable() -> bool:
    """Whether every variable of ``SLEEPNET_PORTABLE`` holds its pinned value (set by it or by hand)."""
    from . import PORTABLE_ENV

    return all(os.environ.get(k, "").lower() == v.lower() for k, v in PORTABLE_ENV.items())


def save_model(model: nn.Sequential, path: str | os.PathLike, meta: dict[str, Any] | None = None,
               overwrite: bool = False, extra: Callable[[Path], None] | None = None) -> Path:  # fmt: skip
    """Write ``model`` and ``meta`` as a model folder, atomically.

    ``extra(folder)``, if given, writes further files into the folder before it
    is renamed into place. The record's ``format``, ``architecture`` and ``versions`` are the
    model's own, whatever ``meta`` says: a record loaded with another model can be passed on.
    """
    from safetensors.torch import save_file

    record = {"format": FORMAT, "architecture": describe(model), "versions": versions()}
    record.update({k: v for k, v in (meta or {}).items() if k not in record})
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
    if not isinstance(meta, dict) or meta.get("format") not in READABLE:
        raise SleepnetError(f"{path / 'model.json'} is not a sleepnet model record ({' or '.join(READABLE)})")
    model = build(meta.get("architecture", []))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise SleepnetError(f"{weights} does not exist")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SleepnetError(f"{weights} is not a valid safetensors file ({exc})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise SleepnetError(f"{weights}: {name} holds NaN or infinite values")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SleepnetError(f"{weights} does not match its architecture ({first})") from None
    model.eval()
    from .progress import LOG

    LOG.debug("model %s: %s, %d parameters", path, meta["format"], sum(p.numel() for p in model.parameters()))
    if device is not None:
        from .devices import resolve_device

        model.to(resolve_device(device))
    return model, meta
