"""JSMA, the Jacobian saliency map attack (Papernot et al. 2016), through ART.

Targeted at each image's second most likely class (as the sleep paper does),
``theta = 0.1`` per perturbed feature, at most ``max_iter`` iterations: ART
changes two features per iteration, so ``gamma = min(1, 2 max_iter / n)``.
A stochastic model is attacked through its expected scores (``ExpectedScores``:
its target their second class, its saliency their gradients, as FAB's), not
through single noisy passes.
"""

from __future__ import annotations

import numpy as np
import torch

from ...losses import logit_body
from .base import PerturbationAttack, evaluating, register


@register
class JSMA(PerturbationAttack):
    """JSMA through ART, targeted at each image's second most likely class (module docstring)."""

    name = "jsma"

    def __init__(self, model, loss, theta: float = 0.1, max_iter: int = 500, batch_size: int = 256,
                 device=None):  # fmt: skip
        super().__init__(model, loss, batch_size, device)
        self.theta, self.max_iter = float(theta), int(max_iter)

    @evaluating
    def second_class(self, x: np.ndarray) -> np.ndarray:
        """The class of second highest score (pre-ReLU output; a stochastic model's expected scores) of
        each image: int64 ``(N,)``."""
        net = self.queried if self.queried is not self.model else logit_body(self.model)
        with torch.no_grad():
            z = net(self.tensor(x)).cpu().numpy()
        return np.argsort(z, axis=1)[:, -2]

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; ART's ``SaliencyMapMethod`` (module docstring)."""
        from art.attacks.evasion import SaliencyMapMethod

        clf = self.art(queried=True)  # the model itself where it is deterministic
        gamma = min(1.0, 2 * self.max_iter / x.shape[1])
        attack = SaliencyMapMethod(clf, theta=self.theta, gamma=gamma, batch_size=self.batch_size,
                                   verbose=False)  # fmt: skip
        target = np.eye(clf.nb_classes, dtype=np.float32)[self.second_class(x)]
        return attack.generate(x, y=target)
