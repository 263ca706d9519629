"""L-BFGS (Szegedy et al. 2014), the second-order attack: box-constrained quasi-Newton search.

Nayebi & Ganguli (2017) report that saturated networks resist "second-order methods"; which one
their full text used is not readable here (``docs/saturation.md``), and this is the classic one,
the attack that found the first adversarial examples. Per image, with a target class ``t`` (the
most likely wrong class of the clean image), minimise

    c * ||r||_2^2 + CE(z(x + r), t)     subject to  x + r in [0, 1]

over ``r`` with L-BFGS-B (``scipy.optimize.minimize``, at most ``max_iter`` iterations, starting at
``r = 0``), the distance weight ``c`` found by search as Szegedy et al. did: from ``initial_const``,
x10 while the minimiser is adversarial (a larger ``c`` asks for a smaller ``r``) or /10 while it is
not, until the two are bracketed, then bisection (in log space), ``search_steps`` solves in all.
The smallest adversarial ``x + r`` of the search is kept (any class but the label counts, as for
every minimal attack here); an image never fooled keeps ``x``. The images of a batch
(``batch_size``, default 100) are solved together, as one L-BFGS-B problem whose objective is the
sum of theirs (each with its own ``c`` and scale, below): it is separable, so its minimiser is each
image's own, and the network's weights are read once per evaluation rather than once per image
(one image at a time, the MNIST MLP in float64 cost some 10 s an image, memory-bound). The line
search and the curvature pairs are then shared by the batch.

The objective and its gradient are computed in float64 on a float64 copy of the model
(``masking.float64_model``; ``precision="float64"``, the default): L-BFGS-B works in float64, and a
float32 gradient is the numerics that hides a saturated unit's slope (Brendel & Bethge 2017).
``precision="float32"`` computes them on the model as it is (float32, cast for scipy), as a 2017
attack would have. Each candidate is judged by the model itself. A stochastic model has no fixed
objective for a line search: it is refused.

Numerics, so that a tiny gradient is followed rather than taken for a minimum: a saturated
network's float64 gradient can be 1e-10. The objective is divided by the norm of the
cross-entropy's gradient at the clean image (the same minimiser; under bounds L-BFGS-B's first step
is the gradient itself, so unscaled it would move the image by 1e-10 and stop), and scipy's stopping
tolerances are off (``gtol = ftol = 0``: a solve ends at ``max_iter`` or when its line search can
make no progress). A gradient that is exactly 0, as float32's is past a sigmoid's ``|h| ~ 17``,
still stops it where it starts.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ...errors import SleepnetError
from ...losses import logit_body
from ...noise import stochastic
from .base import PerturbationAttack, register


@register
class LBFGS(PerturbationAttack):
    """L-BFGS-B, minimal L2 (module docstring)."""

    name = "lbfgs"
    minimal = True

    def __init__(self, model, loss=None, search_steps: int = 10, max_iter: int = 100,
                 initial_const: float = 0.01, precision: str = "float64", batch_size: int = 100,
                 device=None) -> None:  # fmt: skip
        if stochastic(model):
            raise SleepnetError("attack 'lbfgs' needs a fixed objective for its line search: a "
                                "stochastic model draws noise on every pass (use an EOT attack)")  # fmt: skip
        super().__init__(model, loss, batch_size, device)
        for key, value in (("search_steps", search_steps), ("max_iter", max_iter)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SleepnetError(f"lbfgs {key} must be an integer >= 1, got {value!r}")
        c0 = initial_const
        if isinstance(c0, bool) or not isinstance(c0, (int, float)) or not math.isfinite(c0) or c0 <= 0:
            raise SleepnetError(f"lbfgs initial_const must be a finite positive number, got {c0!r}")
        self.search_steps, self.max_iter, self.initial_const = search_steps, max_iter, float(c0)
        if precision not in ("float64", "float32"):
            raise SleepnetError(f"lbfgs precision must be float64 or float32, got {precision!r}")
        self.precision = precision
        self.loss = "cross-entropy (targeted) + c * L2^2"

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; per image the smallest adversarial example found, else
        ``x``."""
        from ..masking import float64_model

        body = logit_body(self.model)
        body = float64_model(body) if self.precision == "float64" else copy.deepcopy(body)
        body = body.to(self.device).eval()
        for q in body.parameters():
            q.requires_grad_(False)
        x, y = np.asarray(x, np.float32), np.asarray(y)
        out = [self._batch(body, x[s : s + self.batch_size], y[s : s + self.batch_size])
               for s in range(0, len(x), self.batch_size)]  # fmt: skip
        return np.concatenate(out) if out else x.copy()

    def _batch(self, body, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The search over ``c`` for a batch of images, solved together (module docstring)."""
        from scipy.optimize import minimize

        dtype = torch.float64 if self.precision == "float64" else torch.float32
        b, shape = len(x), x.shape[1:]
        x0 = x.astype(np.float64)
        xt = torch.as_tensor(x0, dtype=dtype, device=self.device)
        with torch.no_grad():
            logits = body(xt)
        goal = logits.scatter(1, self.tensor(y, dtype=torch.int64)[:, None], float("-inf")).argmax(1)
        bounds = np.stack([-x0.ravel(), 1.0 - x0.ravel()], axis=1)  # x + r in [0, 1]

        def terms(r: np.ndarray, c: np.ndarray):
            """Each image's objective and the gradient of each in its own variables."""
            rt = torch.as_tensor(r.reshape(x.shape), dtype=dtype, device=self.device).requires_grad_(True)
            ct = torch.as_tensor(c, dtype=dtype, device=self.device)
            sq = (rt**2).reshape(b, -1).sum(1)
            f = ct * sq + torch.nn.functional.cross_entropy(body(xt + rt), goal, reduction="none")
            (g,) = torch.autograd.grad(f.sum(), rt)  # separable: row i's gradient is image i's
            as_host = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
            return as_host(f), as_host(g.reshape(b, -1))

        g0 = np.linalg.norm(terms(np.zeros(x0.size), np.zeros(b))[1], axis=1)
        scale = np.where(g0 > 0, 1.0 / np.where(g0 > 0, g0, 1.0), 1.0)

        def objective(r: np.ndarray, c: np.ndarray):
            f, g = terms(r, c)
            return float((f * scale).sum()), (g * scale[:, None]).ravel()

        best, best_norm = x.copy(), np.full(b, np.inf)
        c = np.full(b, self.initial_const)
        # the largest c that fooled, the smallest that did not
        low, high = np.full(b, np.nan), np.full(b, np.nan)
        for _ in range(self.search_steps):
            res = minimize(objective, np.zeros(x0.size), args=(c,), jac=True, method="L-BFGS-B",
                           bounds=bounds, options={"maxiter": self.max_iter, "gtol": 0.0,
                                                   "ftol": 0.0})  # fmt: skip
            cand = np.clip(x0 + res.x.reshape(x0.shape), 0.0, 1.0).astype(np.float32)
            fooled = self.predict(cand) != y
            norm = np.linalg.norm((cand.astype(np.float64) - x0).reshape(b, -1), axis=1)
            better = fooled & (norm < best_norm)
            best[better], best_norm[better] = cand[better], norm[better]
            low = np.where(fooled, np.fmax(low, c), low)
            high = np.where(fooled, high, np.fmin(high, c))
            bracketed = np.isfinite(low) & np.isfinite(high)
            c = np.where(bracketed, np.sqrt(low * high), np.where(fooled, c * 10, c / 10))
        return best.reshape(b, *shape)
