"""FGSM (Goodfellow et al. 2015) as the sleep paper evaluates it (``docs/paper-protocol.md`` §3).

``x_adv = clip(x + eps * sign(grad_x loss(x, y)), 0, 1)`` with the model's own
training loss, over ``eps = 0 : 0.005 : 0.4``. Summary: the median epsilon,
the smallest ``eps`` at which each image is first misclassified, median over
the images; an image never misclassified counts as the largest ``eps`` tried
(their share is reported as ``never_fooled``).

Example::

    FGSM(model, loss="squared").run(data.x_test, data.y_test)["median_eps"]
"""

from __future__ import annotations

import numpy as np
import torch

from ..robust import key
from .base import Attack, as_numpy, evaluating, register

PAPER_EPS = tuple(round(0.005 * k, 3) for k in range(81))


@register
class FGSM(Attack):
    """FGSM over a sweep of ``eps``, summarised by the median epsilon (module docstring)."""

    name = "fgsm"

    def __init__(self, model, loss, eps: tuple[float, ...] = PAPER_EPS, batch_size: int = 2500,
                 device=None, eot_samples: int | None = None):  # fmt: skip
        super().__init__(model, loss, batch_size, device, eot_samples)
        self.eps = tuple(float(e) for e in eps)

    @evaluating
    def perturb(self, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
        """FGSM examples at one ``eps``: ``clip(x + eps * sign(grad_x loss), 0, 1)``, float32 ``(N, n)``."""
        x, y = as_numpy(x, np.float32), as_numpy(y)
        return np.clip(x + np.float32(eps) * np.sign(self.input_gradient(x, y)), 0.0, 1.0)

    def run(self, x: np.ndarray, y: np.ndarray) -> dict:
        """See ``Attack.run``; FGSM at every ``eps`` of the sweep.

        Returns
        -------
        dict
            ``eps`` (the sweep), ``accuracy`` (one per ``eps``: the share classified correctly after
            the step, the paper's curve), ``robust_accuracy`` (``{str(eps): share}``: correct clean
            and not fooled at that or any smaller ``eps`` of the sweep), ``median_eps`` (median over images
            of the first ``eps`` that fools each, the largest ``eps`` if none), ``never_fooled``
            (their share), ``loss`` and ``eot_samples``.
        """
        x, y = self.tensor(x), self.tensor(y, dtype=torch.int64)  # on the attack's device from here
        direction = torch.sign(self.gradient(x, y))
        first = torch.full((len(x),), float("inf"), dtype=torch.float64, device=self.device)
        acc = []
        for e in self.eps:
            wrong = self.classify(torch.clamp(x + float(np.float32(e)) * direction, 0.0, 1.0)) != y
            acc.append(int((~wrong).sum()) / len(x))
            first[torch.isinf(first) & wrong] = e
        first = first.cpu().numpy()
        never = np.isinf(first)
        clean = (self.classify(x) == y).cpu().numpy()
        return {
            "eps": list(self.eps),
            "accuracy": acc,
            "robust_accuracy": {key(e): float(np.mean(clean & (first > e))) for e in self.eps},
            "median_eps": float(np.median(np.where(never, self.eps[-1], first))),
            "never_fooled": float(never.mean()),
            "loss": self.loss,
            "eot_samples": self.eot_samples,
        }
