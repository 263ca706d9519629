"""Training losses, shared by training and by gradient attacks (an attack uses the model's own loss).

- ``squared``: the paper's ``0.5 * sum((out - onehot)^2) / batch`` on the ReLU
  output, with the output ReLU treated as the identity in the backward pass
  (``docs/paper-protocol.md`` §2: the gradient at the output pre-activation is
  ``(out - onehot) / batch`` everywhere).
- ``cross-entropy``: softmax cross-entropy on the pre-ReLU output of the last
  ``Linear`` (the logits).
- ``margin``: for attacks only, ``max_{j != y} z_j - z_y`` on the pre-ReLU
  outputs (Carlini-Wagner's logit margin), which does not saturate where the
  training loss does; comparing the two is one of the gradient-masking checks.
- ``dlr``: for attacks only, AutoAttack's difference-of-logits ratio (Croce &
  Hein 2020), ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)`` with the
  logits sorted descending: the margin divided by a logit spread, so scaling
  the logits up or down does not change it.

``reduction``: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` (one value
per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SleepnetError

LOSSES = ("squared", "cross-entropy")  # training losses
ATTACK_LOSSES = LOSSES + ("margin", "dlr")  # what a gradient attack may ascend


def logit_body(model: nn.Sequential) -> nn.Module:
    """The part of ``model`` that computes its logits: all but a final ReLU or sigmoid.

    Every sleepnet network ends in an activation (the readout's); a model that ends in a
    ``Linear`` is its own logit body. Both activations are monotonic, so the argmax of the
    logits is the argmax of the output wherever the output has no ties.
    """
    return model[:-1] if isinstance(model[-1], (nn.ReLU, nn.Sigmoid)) else model


def pre_activation(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The logits: the output of the last layer before the readout's activation (``logit_body``)."""
    return logit_body(model)(x)


def straight_through_relu(z: torch.Tensor) -> torch.Tensor:
    """``relu(z)`` forward, identity backward."""
    return z + (torch.relu(z) - z).detach()


def loss_fn(name: str, model: nn.Sequential, x: torch.Tensor, y: torch.Tensor,
            reduction: str = "mean") -> torch.Tensor:  # fmt: skip
    """The loss ``name`` of ``model`` on ``(x, y)``; ``reduction="sum"`` sums over the batch."""
    return loss_from_scores(name, pre_activation(model, x), y, reduction)


def loss_from_scores(name: str, z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The loss ``name`` on the pre-ReLU outputs ``z`` of the last ``Linear``, labels ``y``."""
    if name == "cross-entropy":
        return F.cross_entropy(z, y, reduction=reduction)
    if name == "squared":
        out = straight_through_relu(z)
        onehot = F.one_hot(y, out.shape[1]).to(out.dtype)
        per = 0.5 * ((out - onehot) ** 2).sum(dim=1)
    elif name in ("margin", "dlr"):
        own = z.gather(1, y[:, None])[:, 0]
        others = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).max(dim=1).values
        per = others - own
        if name == "dlr":
            if z.shape[1] < 3:
                raise SleepnetError(f"the dlr loss needs at least 3 classes, the scores have {z.shape[1]}")
            top = z.sort(dim=1, descending=True).values
            per = per / (top[:, 0] - top[:, 2] + 1e-12)
    else:
        raise SleepnetError(f"unknown loss {name!r} (known: {', '.join(ATTACK_LOSSES)})")
    if reduction == "none":
        return per
    return per.mean() if reduction == "mean" else per.sum()
