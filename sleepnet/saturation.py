"""The saturation penalty of Nayebi & Ganguli (2017), its annealing schedule, and activation taps.

Training with ``Recipe.saturation = lambda > 0`` minimises::

    loss = task_loss + lambda(t) * mean over the batch of  sum_l sum_i psi(h_i^l)

with ``h`` the input of every activation module (every layer's pre-activation, the
readout's included) and ``psi`` the distance to the flat part of the nonlinearity:

- ReLU: ``psi(h) = relu(h)`` (pushes pre-activations below zero);
- sigmoid: ``psi(h) = sigmoid(h) * (1 - sigmoid(h))`` (pushes ``|h|`` up).

The paper anneals lambda upwards but its values and schedule are not in the text we could
read; the schedule here is documented and exposed (``docs/saturation.md``):

- ``constant``: ``lambda(t) = lambda`` from the first step;
- ``linear:F``: ``lambda(t) = lambda * min(1, (t + 1) / (F * T))`` at step ``t = 0 .. T-1``, a
  linear ramp over the first fraction ``F`` (0 < F <= 1) of the ``T`` training steps, then
  constant.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .errors import SleepnetError

PSI = {
    nn.ReLU: torch.relu,
    nn.Sigmoid: lambda h: torch.sigmoid(h) * (1 - torch.sigmoid(h)),
}


def psi(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The penalty ``psi`` of ``module``'s nonlinearity applied to its input ``h`` (elementwise)."""
    return PSI[type(module)](h)


def activations(model: nn.Module) -> list[nn.Module]:
    """The activation modules of ``model`` (ReLU and sigmoid) in forward order: one per layer."""
    return [m for m in model.modules() if type(m) in PSI]


@contextlib.contextmanager
def tapped(model: nn.Module):
    """Record the input of every activation of ``model`` while the block runs.

    Yields a list that each forward pass fills with ``(module, input)`` pairs, in order;
    the tensors keep their graph, so a penalty on them trains the model. The readout's
    activation (the last module of a Sequential) is tapped at the output of the layer before
    it, so a forward pass through ``losses.logit_body`` records it too.
    """
    taps: list[tuple[nn.Module, torch.Tensor]] = []
    acts = activations(model)
    handles = [m.register_forward_hook(lambda mod, inp, out: taps.append((mod, inp[0]))) for m in acts]
    if isinstance(model, nn.Sequential) and len(model) > 1 and acts and model[-1] is acts[-1]:
        # the losses read the logits before the readout's activation, which then never runs:
        # its input is the output of the layer before it
        handles[-1].remove()
        readout = acts[-1]
        handles[-1] = model[-2].register_forward_hook(lambda mod, inp, out: taps.append((readout, out)))
    try:
        yield taps
    finally:
        for h in handles:
            h.remove()


def penalty(taps: list[tuple[nn.Module, torch.Tensor]]) -> torch.Tensor:
    """``sum_l sum_i psi(h_i^l)`` averaged over the batch, from ``tapped``'s records."""
    total = sum(psi(m, h).reshape(len(h), -1).sum(dim=1).mean() for m, h in taps)
    return torch.as_tensor(total)


class Schedule:
    """``lambda(t)`` for step ``t`` of ``total`` (module docstring); parse with ``Schedule.parse``."""

    def __init__(self, kind: str, fraction: float = 1.0) -> None:
        self.kind, self.fraction = kind, fraction

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``constant`` or ``linear:F``; ``SleepnetError`` for anything else."""
        if text == "constant":
            return cls("constant")
        kind, _, arg = str(text).partition(":")
        if kind == "linear":
            try:
                fraction = float(arg)
            except ValueError:
                fraction = math.nan
            if 0 < fraction <= 1:
                return cls("linear", fraction)
        raise SleepnetError(f"schedule {text!r} does not parse (constant, or linear:F with 0 < F <= 1)")

    def factor(self, step: int, total: int) -> float:
        """The multiplier of lambda at ``step`` (0-based) of ``total`` steps, in [0, 1]."""
        if self.kind == "constant":
            return 1.0
        return min(1.0, (step + 1) / max(1.0, self.fraction * total))

    def __str__(self) -> str:
        return "constant" if self.kind == "constant" else f"linear:{self.fraction:g}"


def check_lambda(value: float) -> float:
    """``value`` as a float; ``SleepnetError`` unless it is a finite number >= 0 (not a bool or a string)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise SleepnetError(f"the saturation lambda must be a finite number >= 0, got {value!r}")
    return float(value)
