"""Projected gradient descent (Madry et al. 2018), batched, L-inf and L2.

Untargeted: ascend the model's own training loss, ``n_steps`` steps of size
``step`` (default ``2.5 eps / n_steps``), each followed by projection onto the
``eps`` ball around ``x`` and onto the box [0, 1]. L-inf steps along the sign
of the gradient, L2 along the gradient divided by its norm. Each restart
starts from a uniformly random point of the ball (the first restart from
``x`` itself if ``random_start`` is off); an image keeps the first restart
that fools the model, else the last. Seeded.

Example::

    PGD(model, "squared", eps=0.1, norm="inf").run(x, y)["accuracy"]
"""

from __future__ import annotations

import numpy as np
import torch

from ..robust import check_budgets, check_norm
from .base import PerturbationAttack, register


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Onto the ``eps`` ball of ``norm`` (per image, rows of ``delta``)."""
    if norm == "inf":
        return torch.clamp(delta, -eps, eps)
    length = torch.linalg.vector_norm(delta, dim=1, keepdim=True)
    return delta * torch.clamp(eps / torch.clamp(length, min=1e-12), max=1.0)


def random_in_ball(shape, eps: float, norm: str, rng: np.random.Generator) -> np.ndarray:
    """Uniform random points of the ``eps`` ball of ``norm`` (``inf`` or ``2``), one per row: ``shape``."""
    if norm == "inf":
        return rng.uniform(-eps, eps, shape)
    direction = rng.standard_normal(shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = eps * rng.random((shape[0], 1)) ** (1.0 / shape[1])
    return direction * radius


@register
class PGD(PerturbationAttack):
    """Projected gradient descent, L-inf or L2, with restarts (module docstring)."""

    name = "pgd"

    def __init__(self, model, loss, eps: float = 0.1, norm: str = "inf", n_steps: int = 40,
                 step: float | None = None, restarts: int = 1, random_start: bool = True,
                 seed: int = 0, batch_size: int = 2500, device=None,
                 eot_samples: int | None = None):  # fmt: skip
        super().__init__(model, loss, batch_size, device, eot_samples)
        check_norm(norm)
        check_budgets([eps])
        self.eps, self.norm, self.n_steps = float(eps), norm, int(n_steps)
        self.step = float(step) if step is not None else 2.5 * self.eps / self.n_steps
        self.restarts, self.random_start, self.seed = int(restarts), random_start, seed

    def _ascend(self, x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``n_steps`` steps from ``x0``, each projected onto the ball and the box (float64 arithmetic,
        float32 iterates, as the host version did)."""
        x64, x_adv = x.double(), x0
        for _ in range(self.n_steps):
            g = self.gradient(x_adv, y).double()
            if self.norm == "inf":
                g = torch.sign(g)
            else:
                g = g / torch.clamp(torch.linalg.vector_norm(g, dim=1, keepdim=True), min=1e-12)
            delta = project(x_adv.double() + self.step * g - x64, self.eps, self.norm)
            x_adv = torch.clamp(x64 + delta, 0.0, 1.0).float()
        return x_adv

    def generate_tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per image the first fooling restart, else the last; tensors on the attack's device.

        The random starts are drawn on the host from ``seed`` (the same points on every device).
        """
        rng = np.random.default_rng(self.seed)
        best = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for r in range(max(1, self.restarts)):
            start = x.double()
            if self.random_start or r > 0:
                start = start + torch.from_numpy(random_in_ball(tuple(x.shape), self.eps, self.norm,
                                                                rng)).to(x.device)  # fmt: skip
            cand = self._ascend(x, y, torch.clamp(start, 0.0, 1.0).float())
            now = self.classify(cand) != y
            take = ~fooled
            best[take] = cand[take]
            fooled |= now
            if bool(fooled.all()):
                break
        return best

    def generate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """See ``PerturbationAttack.generate``: ``generate_tensor`` on the attack's device."""
        return self.generate_tensor(self.tensor(x), self.tensor(y, dtype=torch.int64)).cpu().numpy()
