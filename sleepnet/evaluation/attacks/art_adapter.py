"""A sleepnet model as an Adversarial Robustness Toolbox (ART) classifier.

ART's attacks see the pre-ReLU output of the last ``Linear`` as the class
scores (logits), and its loss gradients are those of the model's own
training loss (``sleepnet.losses``), so ART's gradient attacks and ours attack
the same function. Success is always judged by the model's own prediction.

``predict`` is ART's without its per-call ``DataLoader`` and the identity
standardisation: the decision-based attacks call it some 2000 times an image
on 25 images at a time, and ART's own version builds a ``DataLoader`` each
time (Boundary on 2 MNIST images, one thread, two runs each: 10.9 and 13.1 s
against 12.8 and 13.8 s).
It runs the same forward passes on the same batches, so the numbers are
those ART's ``predict`` gives.

No mode is set here when the classifier is built: ART sets the network's mode
itself on every call (evaluation mode unless asked for ``training_mode``),
the lean ``predict`` holds ``state.eval_mode`` for its forward pass, and the
attacks hold ``eval_mode`` around their whole work, which puts every
module's own training flag back afterwards.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...devices import model_device
from ...losses import logit_body, loss_from_scores
from ...state import eval_mode


class Scores(nn.Module):
    """``model`` without its final ReLU: the class scores."""

    def __init__(self, model: nn.Sequential) -> None:
        super().__init__()
        self.body = logit_body(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The class scores of ``x`` (cast to the weights' dtype)."""
        return self.body(x.to(next(self.body.parameters()).dtype))  # some ART attacks send float64


class ModelLoss(nn.Module):
    """The attack's loss on the class scores, summed over the batch (``reduction``, which ART sets to
    ``"none"`` for per-image losses, as torch's losses have it)."""

    def __init__(self, name: str, reduction: str = "sum") -> None:
        super().__init__()
        self.name = name
        self.reduction = reduction

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of scores ``z`` for labels ``y`` (class indices or one-hot), reduced by ``reduction``."""
        if y.ndim == 2:  # ART passes one-hot labels to losses it does not know
            y = y.argmax(dim=1)
        return loss_from_scores(self.name, z, y.long(), reduction=self.reduction)


def identity(classifier) -> bool:
    """Whether ART's preprocessing and postprocessing leave inputs and outputs as they are."""
    ops = classifier.preprocessing_operations or []
    return not classifier.postprocessing_defences and all(
        hasattr(op, "mean") and np.all(np.asarray(op.mean) == 0) and np.all(np.asarray(op.std) == 1)
        for op in ops)  # fmt: skip


def art_classifier(model: nn.Sequential, loss: str, n_inputs: int, n_classes: int):
    """An ART ``PyTorchClassifier`` over ``model``'s class scores, inputs clipped to [0, 1]."""
    from art.estimators.classification import PyTorchClassifier

    class Classifier(PyTorchClassifier):
        """ART's ``PyTorchClassifier`` with a lean ``predict`` (module docstring)."""

        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs):
            """Class scores, float32 ``(N, K)``; ART's own in training mode or with processing."""
            if training_mode or not identity(self):
                return super().predict(x, batch_size, training_mode, **kwargs)
            xt = torch.from_numpy(np.asarray(x))
            with torch.no_grad(), eval_mode(scores):
                out = [scores(xt[s : s + batch_size].to(self._device)).cpu().numpy()
                       for s in range(0, len(xt), batch_size)]  # fmt: skip
            return np.vstack(out).astype(np.float32)

    scores = Scores(model)
    device = model_device(model)
    if device.type != "cuda":
        return Classifier(model=scores, loss=ModelLoss(loss), input_shape=(n_inputs,), nb_classes=n_classes,
                          clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip
    with torch.cuda.device(device):  # ART puts a "gpu" classifier on the current CUDA device
        return Classifier(model=scores, loss=ModelLoss(loss), input_shape=(n_inputs,), nb_classes=n_classes,
                          clip_values=(0.0, 1.0), device_type="gpu")  # fmt: skip
