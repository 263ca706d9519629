"""Torch ``nn.Sequential`` <-> spiking network, with the paper's data-based scale factors.

Supported layers: bias-free ``Linear``, ``ReLU`` after every ``Linear`` (the
output included), ``Dropout`` of either convention (``torch.nn.Dropout`` or
``sleepnet.PaperDropout``), ``Flatten``, ``Identity``, and as the first layer the audio
front-end (``sleepnet.audio.frontend.LogMel``), which stays an ANN: its features are the
spiking network's input. Anything else is refused with a ``ConversionError`` that names
the layer and the reason.

Scale factors (``docs/algorithm.md`` §2), from the ANN in evaluation mode::

    previous = 1
    for l in 0 .. L-1:
        m_l      = max(max(0, max W[l]), max activation a_{l+1})
        applied  = m_l / previous
        factor_l = 1 / applied
        previous = applied        # the chained ratio of the reference code

``a_{l+1}`` is what the next ``Linear`` receives (ReLU output after the
evaluation-mode dropout), and the network output for the last layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sleepnet.audio.frontend import LogMel
from sleepnet.devices import model_device
from sleepnet.errors import ConversionError
from sleepnet.models import PaperDropout
from sleepnet.state import eval_mode

_PASSIVE = (nn.Dropout, PaperDropout, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class SpikingNetwork:
    """A network ready to sleep.

    Attributes
    ----------
    weights : float64 ``W[l]``, shape ``(n_{l+1}, n_l)`` (torch layout).
    factors : per-layer scale factors ``factor_l`` (the input gain is ``alpha_scale * factor_l``).
    max_weight, max_activation : the two maxima behind ``m_l`` (or the percentile).
    linear_index : positions of the ``Linear`` modules in the Sequential, for ``to_torch``.
    """

    weights: list[np.ndarray]
    factors: np.ndarray
    max_weight: np.ndarray
    max_activation: np.ndarray
    linear_index: list[int] = field(default_factory=list)
    percentile: float | None = None

    @property
    def sizes(self) -> list[int]:
        """Layer sizes ``n_0 .. n_L``, input first."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def summary(self) -> dict:
        """The conversion record: sizes, factors, both maxima, activation statistic (``max`` or ``pNN``)."""
        return {
            "sizes": self.sizes,
            "factors": self.factors.tolist(),
            "max_weight": self.max_weight.tolist(),
            "max_activation": self.max_activation.tolist(),
            "activation_statistic": "max" if self.percentile is None else f"p{self.percentile}",
        }


def check_sequential(model: nn.Module) -> list[int]:
    """Validate ``model`` for sleep; returns the indices of its ``Linear`` layers."""
    if not isinstance(model, nn.Sequential):
        raise ConversionError(
            f"the model is a {type(model).__name__}; sleep converts an nn.Sequential of "
            "bias-free Linear, ReLU, Dropout and Flatten layers"
        )
    mods = list(model)
    for k, m in enumerate(mods):  # before any other complaint: a CNN's first layers are not Linear
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise ConversionError(f"layer {k} ({type(m).__name__}): convolution layers, so a CNN; sleep "
                                  "converts MLPs only (bias-free Linear + ReLU layers)")  # fmt: skip
        if getattr(m, "stochastic", False):
            raise ConversionError(f"layer {k} ({type(m).__name__}): a noise layer; sleep converts "
                                  "deterministic MLPs (sleep the network without it, "
                                  "then add the noise)")  # fmt: skip
    linear: list[int] = []
    expect_relu: int | None = None
    for k, m in enumerate(mods):
        name = f"layer {k} ({type(m).__name__})"
        if isinstance(m, nn.Linear):
            if expect_relu is not None:
                raise ConversionError(f"layer {expect_relu} (Linear) is not followed by a ReLU")
            if m.bias is not None:
                raise ConversionError(f"{name} has a bias; sleep needs bias-free layers (bias=False)")
            linear.append(k)
            expect_relu = k
        elif isinstance(m, nn.ReLU):
            if expect_relu is None:
                raise ConversionError(f"{name} does not follow a Linear layer")
            expect_relu = None
        elif isinstance(m, LogMel):
            if k != 0:
                raise ConversionError(f"{name}: the audio front-end must be the first layer")
        elif isinstance(m, _PASSIVE):
            if isinstance(m, nn.Flatten) and linear:
                raise ConversionError(f"{name} after a Linear layer is not supported")
        else:
            raise ConversionError(
                f"{name}: unsupported layer; sleep needs ReLU on every layer and no other "
                "activation, normalisation or pooling"
            )
    if not linear:
        raise ConversionError("the model has no Linear layer")
    if expect_relu is not None:
        raise ConversionError(
            f"layer {expect_relu} (Linear) is not followed by a ReLU; the output layer needs one too"
        )
    return linear


@torch.no_grad()
def activation_maxima(model: nn.Sequential, inputs: torch.Tensor | np.ndarray, linear: list[int],
                      percentile: float | None = None, batch_size: int = 2000) -> np.ndarray:  # fmt: skip
    """Per weight layer, the max (or percentile of the positive values) of ``a_{l+1}``."""
    taps = linear[1:] + [len(model)]  # a_{l+1}: the input of the next Linear, or the output
    maxima = np.zeros(len(linear))
    kept: list[list[torch.Tensor]] = [[] for _ in linear]
    x_all = inputs.float() if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs),
                                                                                     dtype=torch.float32)
    device = model_device(model)
    with eval_mode(model):
        for start in range(0, len(x_all), batch_size):
            h = x_all[start : start + batch_size].to(device)  # on the model's device
            layer = 0
            for k, m in enumerate(model):
                if k == taps[layer]:
                    _tap(h, layer, maxima, kept, percentile)
                    layer += 1
                h = m(h)
            _tap(h, layer, maxima, kept, percentile)
    if percentile is not None:
        for l, parts in enumerate(kept):
            vals = torch.cat(parts).cpu().numpy() if parts else np.zeros(1)
            maxima[l] = float(np.percentile(vals, percentile)) if vals.size else 0.0
    return maxima


def _tap(h, layer, maxima, kept, percentile):
    if percentile is None:
        maxima[layer] = max(maxima[layer], float(h.max()))
    else:
        kept[layer].append(h[h > 0].flatten())


def scale_factors(weights: list[np.ndarray], max_activation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chained factors of ``docs/algorithm.md`` §2; returns ``(factors, max_weight)``."""
    previous = 1.0
    factors = np.zeros(len(weights))
    max_weight = np.array([max(0.0, float(w.max())) for w in weights])
    for l in range(len(weights)):
        m = max(max_weight[l], float(max_activation[l]))
        if m <= 0:
            raise ConversionError(
                f"weight layer {l} has no positive weight and no positive activation; "
                "it can never drive a spike"
            )
        applied = m / previous
        factors[l] = 1.0 / applied
        previous = applied
    return factors, max_weight


def from_torch(model: nn.Module, norm_inputs: torch.Tensor | np.ndarray | None,
               percentile: float | None = None,
               max_activation: np.ndarray | None = None) -> SpikingNetwork:  # fmt: skip
    """Convert a trained bias-free ReLU ``nn.Sequential`` into a ``SpikingNetwork``.

    Parameters
    ----------
    model : the trained ANN (not modified).
    norm_inputs : inputs for data-based normalisation, ``(N, n_0)`` in [0, 1]
        (the paper uses the whole training set).
    percentile : if given (e.g. 99.9), use this percentile of the positive
        activations instead of their maximum.
    max_activation : the per-layer activation statistic, if already known (a
        model folder records it at training time); ``norm_inputs`` is then unused.
    """
    linear = check_sequential(model)
    if percentile is not None and not 0.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must be in (0, 100], got {percentile}")
    weights = [model[k].weight.detach().cpu().double().numpy().copy() for k in linear]
    if max_activation is None:
        if norm_inputs is None:
            raise ConversionError("from_torch needs norm_inputs or max_activation")
        max_act = activation_maxima(model, norm_inputs, linear, percentile)
    else:
        max_act = np.asarray(max_activation, dtype=np.float64)
        if max_act.shape != (len(linear),):
            raise ConversionError(f"max_activation needs {len(linear)} values, got {max_act.shape}")
    factors, max_w = scale_factors(weights, max_act)
    return SpikingNetwork(weights, factors, max_w, max_act, linear, percentile)


def to_torch(model: nn.Sequential, weights: list[np.ndarray]) -> nn.Sequential:
    """A copy of ``model`` with its ``Linear`` weights replaced (float64 rounded once to the model dtype).

    The copy stays on the device of ``model``.
    """
    linear = check_sequential(model)
    if len(weights) != len(linear):
        raise ConversionError(f"got {len(weights)} weight matrices for {len(linear)} Linear layers")
    out = copy.deepcopy(model)
    with torch.no_grad():
        for k, w in zip(linear, weights):
            target = out[k].weight
            if tuple(w.shape) != tuple(target.shape):
                raise ConversionError(f"layer {k}: weight shape {w.shape} != {tuple(target.shape)}")
            target.copy_(torch.from_numpy(np.asarray(w, dtype=np.float64)).to(target.dtype))
    return out
