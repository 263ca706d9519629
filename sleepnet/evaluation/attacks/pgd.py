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

from .base import PerturbationAttack, register


def project(delta: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Onto the ``eps`` ball of ``norm`` (per image, rows of ``delta``)."""
    if norm == "inf":
        return np.clip(delta, -eps, eps)
    length = np.linalg.norm(delta, axis=1, keepdims=True)
    return delta * np.minimum(1.0, eps / np.maximum(length, 1e-12))


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
                 seed: int = 0, batch_size: int = 2500, device=None):  # fmt: skip
        super().__init__(model, loss, batch_size, device)
        if norm not in ("inf", "2"):
            raise ValueError(f"norm must be 'inf' or '2', got {norm!r}")
        self.eps, self.norm, self.n_steps = float(eps), norm, int(n_steps)
        self.step = float(step) if step is not None else 2.5 * self.eps / self.n_steps
        self.restarts, self.random_start, self.seed = int(restarts), random_start, seed

    def _ascend(self, x: np.ndarray, y: np.ndarray, x0: np.ndarray) -> np.ndarray:
        x_adv = x0
        for _ in range(self.n_steps):
            g = self.input_gradient(x_adv, y).astype(np.float64)
            if self.norm == "inf":
                g = np.sign(g)
            else:
                g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
            delta = project(x_adv + self.step * g - x, self.eps, self.norm)
            x_adv = np.clip(x + delta, 0.0, 1.0).astype(np.float32)
        return x_adv

    def generate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """See ``PerturbationAttack.generate``; per image the first fooling restart, else the last."""
        rng = np.random.default_rng(self.seed)
        best = x.copy()
        fooled = np.zeros(len(x), dtype=bool)
        for r in range(max(1, self.restarts)):
            start = x.astype(np.float64)
            if self.random_start or r > 0:
                start = start + random_in_ball(x.shape, self.eps, self.norm, rng)
            x0 = np.clip(start, 0.0, 1.0).astype(np.float32)
            cand = self._ascend(x, y, x0)
            now = self.predict(cand) != y
            take = ~fooled
            best[take] = cand[take]
            fooled |= now
            if fooled.all():
                break
        return best
