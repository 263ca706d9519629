"""Fine-tuning of the sleep paper (``docs/paper-protocol.md`` §4).

From the control network: the first 5000 training images are replaced by
perturbed versions, then 2 more epochs at learning rate 0.05 on the whole
training set, with the control's recipe otherwise.

- ``fgsm``: ``clip(x + U(0, 0.1) * sign(grad_x loss), 0, 1)``, a fresh U per pixel;
- ``noise``: Gaussian noise with a variance drawn per image from the paper's
  levels 0.1 ... 0.9, then clip;
- ``blur``: Gaussian blur with a sigma drawn per image from 0.5 ... 4.0.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..devices import model_device
from ..errors import SleepnetError
from ..evaluation.attacks import FGSM
from ..evaluation.distortions import DISTORTIONS
from ..training import fit
from .base import Defence, register


def perturbed_images(kind: str, model, loss: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                     image_shape) -> np.ndarray:  # fmt: skip
    """``x`` perturbed by ``kind`` (numpy in and out), computed on ``model``'s device."""
    device = model_device(model)
    if kind == "fgsm":
        sign = np.sign(FGSM(model, loss, device=device).input_gradient(x, y))
        return np.clip(x + rng.uniform(0.0, 0.1, x.shape).astype(np.float32) * sign, 0, 1)
    dist = DISTORTIONS.get("gaussian-noise" if kind == "noise" else "gaussian-blur")
    levels = [lv for lv in dist.levels if lv >= 0.1]
    pick = rng.integers(0, len(levels), len(x))
    xt = torch.as_tensor(x, device=device)
    out = xt.clone()
    for k, level in enumerate(levels):
        rows = torch.as_tensor(pick == k, device=device)
        if rows.any():
            out[rows] = dist.fn(xt[rows], level, rng, image_shape).to(out.dtype)
    return out.cpu().numpy().astype(np.float32)


@register("finetune-fgsm", kind="fgsm")
@register("finetune-noise", kind="noise")
@register("finetune-blur", kind="blur")
class FineTune(Defence):
    """The paper's fine-tuning on ``fgsm``, ``noise`` or ``blur`` perturbed images (module docstring)."""

    def train(self, control, recipe, data, seed, device):
        """See ``Defence.train``; a copy of ``control``, 5000 images perturbed, 2 more epochs at lr 0.05."""
        if data.frontend is not None:
            raise SleepnetError(f"{self.name}: the paper's fine-tuning perturbs images (FGSM at up to 0.1, "
                                "noise, blur); it is not defined for waveforms")  # fmt: skip
        rng = np.random.default_rng(seed)
        n = min(5000, len(data.x_train))
        x = data.x_train.copy()
        model = self.copy_of(control, device).eval()  # the control's weights, on ``device``
        x[:n] = perturbed_images(self.params["kind"], model, recipe.loss, x[:n],
                                 data.y_train[:n], rng, data.image_shape or (28, 28))  # fmt: skip
        model.train()
        fit(model, replace(recipe, epochs=2, lr=0.05), x, data.y_train, seed, device=device)
        return model, recipe.loss
