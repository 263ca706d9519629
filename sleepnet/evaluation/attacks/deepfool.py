"""DeepFool (Moosavi-Dezfooli et al. 2016), L2, as the sleep paper runs it: ours (batched) and ART's.

Each iteration linearises the class scores (the pre-ReLU outputs ``z``)
around the current point and steps to the nearest linearised boundary
between the originally predicted class ``k0`` and any other class ``k``::

    l = argmin_k |z_k - z_k0| / ||grad z_k - grad z_k0||
    r = (|z_l - z_k0| + 1e-4) / ||grad z_l - grad z_k0||^2 * (grad z_l - grad z_k0)

The steps accumulate in ``r_tot`` and the candidate is
``clip(x + overshoot * r_tot, 0, 1)`` with overshoot 1.05 (ART's
``epsilon = 0.05``); an image stops once its prediction changes, after at
most 100 iterations. ``deepfool`` is ours, on the whole batch at once;
``deepfool-art`` runs ART's, for cross-checks.
"""

from __future__ import annotations

import numpy as np
import torch

from ...losses import logit_body
from .base import PerturbationAttack, one_draw, register


@register
class DeepFool(PerturbationAttack):
    """DeepFool L2, ours: the whole batch at once (module docstring)."""

    name = "deepfool"
    minimal = True

    def __init__(self, model, loss, max_iter: int = 100, overshoot: float = 1.05, batch_size: int = 1000,
                 device=None, eot_samples: int | None = None):  # fmt: skip
        super().__init__(model, loss, batch_size, device, eot_samples)
        self.max_iter, self.overshoot = int(max_iter), float(overshoot)
        self.loss = "none (DeepFool: linearised class scores)"

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; runs in batches of ``batch_size``, float32 ``(N, n)``."""
        return np.concatenate([self._batch(x[s : s + self.batch_size])
                               for s in range(0, len(x), self.batch_size)])  # fmt: skip

    def _class_gradients(self, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(B, K)`` and their input gradients ``(B, K, n)``, averaged over ``eot_samples``
        forward passes."""
        xb = xb.clone().requires_grad_(True)
        z_sum, g_sum = 0, 0
        for _ in range(self.eot_samples):
            z = logit_body(self.model)(xb)
            grads = [torch.autograd.grad(z[:, k].sum(), xb, retain_graph=k < z.shape[1] - 1)[0]
                     for k in range(z.shape[1])]  # fmt: skip
            z_sum, g_sum = z_sum + z.detach(), g_sum + torch.stack(grads, dim=1)
        return z_sum / self.eot_samples, g_sum / self.eot_samples

    def _class_of(self, x: torch.Tensor) -> torch.Tensor:
        """The class DeepFool starts from and stops at: a stochastic model's expected prediction
        (``classify``; a single pass would stop it short of the judged boundary), else the logits'."""
        if self.draws > 1:
            return self.classify(x)
        with torch.no_grad():
            return logit_body(self.model)(x).argmax(dim=1)

    def _batch(self, x: np.ndarray) -> np.ndarray:
        x0 = self.tensor(x)
        k0 = self._class_of(x0)
        r_tot = torch.zeros_like(x0)
        adv = x0.clone()
        active = torch.ones(len(x0), dtype=torch.bool, device=x0.device)
        rows = torch.arange(len(x0), device=x0.device)
        for _ in range(self.max_iter):
            idx = rows[active]
            if len(idx) == 0:
                break
            z, g = self._class_gradients(adv[idx])
            own = k0[idx]
            pick = torch.arange(len(idx), device=x0.device)
            f = z - z[pick, own][:, None]
            w = g - g[pick, own][:, None, :]
            norm = w.flatten(2).norm(dim=2)
            dist = f.abs() / (norm + 1e-12)
            dist[pick, own] = float("inf")
            best = dist.argmin(dim=1)
            step = ((f[pick, best].abs() + 1e-4) / (norm[pick, best] ** 2 + 1e-12))[:, None] * w[pick, best]
            r_tot[idx] += step
            adv[idx] = torch.clamp(x0[idx] + self.overshoot * r_tot[idx], 0.0, 1.0)
            done = self._class_of(adv[idx]) != own
            active[idx[done]] = False
        return adv.cpu().numpy()


@register
class DeepFoolArt(DeepFool):
    """DeepFool L2 through ART's implementation (``epsilon = overshoot - 1``), for cross-checks."""

    name = "deepfool-art"

    def __init__(self, model, loss, **kwargs) -> None:
        super().__init__(model, loss, **one_draw(self.name, kwargs))  # ART takes one draw a gradient

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; ART's ``DeepFool`` over all classes."""
        from art.attacks.evasion import DeepFool as ArtDeepFool

        clf = self.art()
        attack = ArtDeepFool(clf, max_iter=self.max_iter, epsilon=self.overshoot - 1.0,
                             nb_grads=clf.nb_classes, batch_size=self.batch_size, verbose=False)  # fmt: skip
        return attack.generate(x)
