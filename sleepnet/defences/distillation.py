"""Defensive distillation (Papernot et al. 2016) at temperature T = 50, done properly.

The teacher (the control's architecture, trained afresh) learns with
``cross_entropy(z / T, y)``; the student learns the teacher's soft labels
``softmax(z_teacher / T)`` with ``cross_entropy(z / T, soft)``; both use Adam
(``lr`` 1e-3) for ``epochs`` (default: the recipe's). Adam is indifferent to
the 1 / T scale of these gradients, which would stall plain SGD. The student is evaluated at T = 1,
i.e. as it is. (The sleep paper's public code has a typo that disables the
temperature; here it is applied.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import model_device
from ..losses import pre_activation
from ..training import fit, init_model
from .base import Defence, register


@torch.no_grad()
def soft_labels(model, x: np.ndarray, temperature: float, device=None) -> np.ndarray:
    """``softmax(z / temperature)`` of ``model`` on ``x``, computed on ``device`` (default: where
    ``model`` is; the model is not moved), as numpy."""
    device = model_device(model) if device is None else device
    model.eval()
    out = [F.softmax(pre_activation(model, torch.as_tensor(x[s : s + 5000], device=device)) / temperature,
                     dim=1).cpu() for s in range(0, len(x), 5000)]  # fmt: skip
    return torch.cat(out).numpy()


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of probabilities ``p`` ``(N, K)``: float ``(N,)``."""
    return -(p * np.log(np.clip(p, 1e-30, 1.0))).sum(axis=1)


@register("distillation", temperature=50.0, epochs=None, lr=1e-3)
class Distillation(Defence):
    """Defensive distillation at ``temperature`` (default 50) with Adam at ``lr`` (module docstring)."""

    def train(self, control, recipe, data, seed, device):
        """See ``Defence.train``; trains a teacher and a student afresh (``control`` is not used).

        The teacher and its soft labels are kept as ``self.teacher`` and ``self.teacher_targets``; the
        student is returned with the loss ``cross-entropy``.
        """
        T = float(self.params["temperature"])
        epochs = int(self.params["epochs"] or recipe.epochs)
        adam = replace(recipe, optimizer="adam", lr=float(self.params["lr"]), epochs=epochs)

        def hard(m, xb, yb):
            """The teacher's loss: ``cross_entropy(z / T, y)`` on hard labels ``yb``."""
            return F.cross_entropy(pre_activation(m, xb) / T, yb)

        def soft(m, xb, pb):
            """The student's loss: cross-entropy of ``softmax(z / T)`` against soft labels ``pb``."""
            return -(pb * F.log_softmax(pre_activation(m, xb) / T, dim=1)).sum(dim=1).mean()

        teacher = init_model(recipe, seed, data.image_shape, data.frontend).to(device)
        fit(teacher, adam, data.x_train, data.y_train, seed, loss=hard, device=device)
        self.teacher = teacher
        self.teacher_targets = soft_labels(teacher, data.x_train, T, device)
        student = init_model(recipe, seed + 1, data.image_shape, data.frontend).to(device)
        fit(student, adam, data.x_train, data.y_train, seed + 1, targets=self.teacher_targets, loss=soft,
            device=device)  # fmt: skip
        return student, "cross-entropy"
