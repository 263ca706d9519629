"""A sleepnet model as an Adversarial Robustness Toolbox (ART) classifier.

ART's attacks see the pre-ReLU output of the last ``Linear`` as the class
scores (logits), and its loss gradients are those of the model's own
training loss (``sleepnet.losses``), so ART's gradient attacks and ours attack
the same function. Success is always judged by the model's own prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from ...losses import loss_from_scores


class Scores(nn.Module):
    """``model`` without its final ReLU: the class scores."""

    def __init__(self, model: nn.Sequential) -> None:
        super().__init__()
        self.body = model[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.to(self.body[0].weight.dtype))  # some ART attacks send float64


class ModelLoss(nn.Module):
    """The model's training loss on the class scores, summed over the batch."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 2:  # ART passes one-hot labels to losses it does not know
            y = y.argmax(dim=1)
        return loss_from_scores(self.name, z, y.long(), reduction="sum")


def art_classifier(model: nn.Sequential, loss: str, n_inputs: int, n_classes: int):
    """An ART ``PyTorchClassifier`` over ``model`` (evaluation mode), inputs clipped to [0, 1]."""
    from art.estimators.classification import PyTorchClassifier

    model.eval()
    return PyTorchClassifier(model=Scores(model).eval(), loss=ModelLoss(loss), input_shape=(n_inputs,),
                             nb_classes=n_classes, clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip
