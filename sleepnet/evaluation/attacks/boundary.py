"""The Boundary attack (Brendel, Rauber & Bethge 2018), L2, untargeted, batched over images.

The same algorithm as ART's ``BoundaryAttack`` (``art.attacks.evasion.boundary``, ART 1.20, which
``boundary-art`` runs for cross-checks), step for step, but every image of a batch advances together,
so each model call carries the candidates of many images at once; ART attacks one image at a time,
one call per round of 20 candidates. One difference: every point here is float32, the precision the
model judges it in; ART's orthogonal step makes float64 points under NumPy 2 (``np.sqrt`` of a
Python float is a float64 scalar, which a float32 array no longer absorbs), which it rounds to
float32 for the model and once more when it returns them: differences below an ulp a step.

Per image, from the label's side (an image the model misclassifies clean is left alone):

1. a start: the first of up to ``init_size`` uniform random images that is misclassified, else
   the nearest attacked image the model puts in another class (``decision.other_class_starts``; ART
   would leave the image unattacked); no binary search: the walk starts there, as ART's does;
2. ``max_iter`` times, with the step sizes ``delta`` and ``epsilon`` the image carries from one
   iteration to the next (the sleep paper's 0.5 and 0.5 to begin with):

   a. the orthogonal step: up to ``num_trial`` rounds of ``sample_size`` candidates, each the current
      point moved by a random direction of length ``delta * dist`` (``dist``: its L2 distance to the
      image) orthogonal to the line to the image, then back towards the sphere of radius ``dist``
      around the image (ART's ``_orthogonal_perturb``), clipped to [0, 1];
   b. the step towards the image: up to ``num_trial`` rounds in which every adversarial candidate
      of (a) moves the fraction ``epsilon`` of its way to the image, clipped; the closest
      adversarial result is the new point.

   In each round, a step size is multiplied by ``step_adapt`` when under 20% of the round's
   candidates are adversarial and divided by it when over 50%, and the first round with any
   adversarial candidate ends the step. An image whose (a) rounds all fail stops where it is; one
   whose (b) rounds all fail stops at the closest of its candidates from (a) (ART's "adversarial
   example found but not optimal").

Then ``push_across`` (``decision.py``) as for ART's. Every random draw of an image comes from its
own generator (``image_rngs``: the attack's seed and the image's bytes), so on a deterministic
model an image's attack does not depend on the batch it is in (unless it needed a start from
another image): batched equals alone, as far as the
model's score of a row does not depend on how many rows share its call (on a CPU, a large layer's
matrix product can round the last bit differently for a call of 1 or 2 rows than for one of 20,
some 6e-8 on the paper network's scores, and a walk along the boundary can turn that into another
path; the tests hold on a small net). A stochastic
model is queried through its expected prediction (``Attack.predict``), as every decision attack
here; its passes draw one noise for every row of a call (``noise.expected_scores``), so there too an
image's queries do not depend on its row.
"""

from __future__ import annotations

import numpy as np

from ...errors import SleepnetError
from .base import register
from .decision import PROBE_FLOATS, BatchedDecisionAttack, check_counts


def _adapt(size: np.ndarray, ratio: np.ndarray, factor: float) -> np.ndarray:
    """ART's trust region: ``size * factor`` where ``ratio`` < 0.2, ``size / factor`` where > 0.5."""
    return np.where(ratio < 0.2, size * factor, np.where(ratio > 0.5, size / factor, size))


def orthogonal_candidates(noise: np.ndarray, cur: np.ndarray, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """ART's ``_orthogonal_perturb`` for every image at once: ``noise`` ``(r, s, d)`` standard normal
    draws, ``cur`` the current points ``(r, d)``, ``x`` the images, ``delta`` ``(r,)``; the ``s``
    candidates of each image (not yet clipped), float32."""
    diff = x - cur
    dist = np.linalg.norm(diff, axis=1)
    step = noise / np.linalg.norm(noise, axis=2, keepdims=True)
    step *= (delta * dist).astype(np.float32)[:, None, None]
    direction = diff / dist[:, None]
    step -= np.einsum("rsd,rd->rs", step, direction)[:, :, None] * direction[:, None, :]
    hyp = np.sqrt(1 + delta**2).astype(np.float32)[:, None, None]
    return (cur[:, None, :] + ((1 - hyp) * (cur - x)[:, None, :] + step) / hyp).astype(np.float32)


@register
class Boundary(BatchedDecisionAttack):
    """The Boundary attack, L2, batched over images (module docstring)."""

    name = "boundary"

    def __init__(self, model, loss, max_iter: int = 1000, num_trial: int = 25, sample_size: int = 20,
                 delta: float = 0.5, epsilon: float = 0.5, step_adapt: float = 0.667, init_size: int = 100,
                 seed: int = 0, batch_size: int | None = None, device=None):  # fmt: skip
        """``batch_size``: the most candidate points in one model call (the images of a chunk times
        ``sample_size``); default ``PROBE_FLOATS`` over the input size."""
        check_counts("boundary", (("max_iter", max_iter, 0), ("num_trial", num_trial, 1),
                                  ("sample_size", sample_size, 1), ("init_size", init_size, 1)))  # fmt: skip
        for key, value in (("delta", delta), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < np.inf:
                raise SleepnetError(f"boundary {key} must be a positive number, got {value!r}")
        if isinstance(step_adapt, bool) or not isinstance(step_adapt, (int, float)) or not 0 < step_adapt < 1:
            raise SleepnetError(f"boundary step_adapt must be in (0, 1), got {step_adapt!r}")
        params = dict(max_iter=max_iter, num_trial=num_trial, sample_size=sample_size, delta=delta,
                      epsilon=epsilon, step_adapt=step_adapt, init_size=init_size)  # fmt: skip
        super().__init__(model, loss, params, seed, batch_size, device)

    def images_per_call(self, d: int) -> int:
        """``batch_size`` (default ``PROBE_FLOATS`` over ``d``) over ``sample_size``, at least 1."""
        return max(1, (self.batch_size or PROBE_FLOATS // d) // self.params["sample_size"])

    def _fooled(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.predict(points) != labels

    def _attack(self, x, y, cur, rngs) -> np.ndarray:
        """Step 2 of the module docstring for images ``x`` with labels ``y`` from their starts ``cur``
        (changed in place)."""
        p = self.params
        delta, eps = np.full(len(x), float(p["delta"])), np.full(len(x), float(p["epsilon"]))
        live = np.arange(len(x))
        for _ in range(p["max_iter"]):
            if not len(live):
                break
            cands, ok = self._orthogonal_step(x, y, cur, delta, rngs, live)
            moved = ok.any(axis=1)
            live, cands, ok = live[moved], cands[moved], ok[moved]  # the others stay where they are
            new, done = self._step_towards(x, y, cands, ok, eps, live)
            cur[live] = new
            live = live[~done]
        return cur

    def _orthogonal_step(self, x, y, cur, delta, rngs, idx) -> tuple[np.ndarray, np.ndarray]:
        """Step 2a for the images ``idx``: the candidates ``(len(idx), s, d)`` of the round that ended
        each image's step, and which of them are adversarial (all False where no round did);
        ``delta`` adapted in place."""
        p = self.params
        s, d = p["sample_size"], x.shape[1]
        cands = np.empty((len(idx), s, d), dtype=np.float32)
        ok = np.zeros((len(idx), s), dtype=bool)
        pending = np.arange(len(idx))
        for _ in range(p["num_trial"]):
            if not len(pending):
                break
            rows = idx[pending]
            noise = np.stack([rngs[i].standard_normal((s, d), dtype=np.float32) for i in rows])
            trial = np.clip(orthogonal_candidates(noise, cur[rows], x[rows], delta[rows]), 0.0, 1.0)
            sat = self._fooled(trial.reshape(-1, d), np.repeat(y[rows], s)).reshape(len(rows), s)
            delta[rows] = _adapt(delta[rows], sat.mean(axis=1), p["step_adapt"])
            hit = sat.any(axis=1)
            cands[pending[hit]], ok[pending[hit]] = trial[hit], sat[hit]
            pending = pending[~hit]
        return cands, ok

    def _step_towards(self, x, y, cands, ok, eps, idx) -> tuple[np.ndarray, np.ndarray]:
        """Step 2b for the images ``idx`` from their adversarial candidates (``cands`` where ``ok``):
        each image's new point, and whether it stops there (no round succeeded); ``eps`` adapted in
        place."""
        p = self.params
        new = np.empty((len(idx), x.shape[1]), dtype=np.float32)
        pending = np.arange(len(idx))
        for _ in range(p["num_trial"]):
            if not len(pending):
                break
            rows, c, m = idx[pending], cands[pending], ok[pending]
            step = (x[rows][:, None, :] - c) * eps[rows].astype(np.float32)[:, None, None]
            trial = np.clip(c + step, 0.0, 1.0)
            sat = np.zeros_like(m)
            sat[m] = self._fooled(trial[m], np.broadcast_to(y[rows][:, None], m.shape)[m])
            eps[rows] = _adapt(eps[rows], sat.sum(axis=1) / m.sum(axis=1), p["step_adapt"])
            hit = np.flatnonzero(sat.any(axis=1))
            new[pending[hit]] = _closest(trial[hit], sat[hit], x[rows[hit]])
            pending = np.delete(pending, hit)
        done = np.zeros(len(idx), dtype=bool)
        done[pending] = True
        new[pending] = _closest(cands[pending], ok[pending], x[idx[pending]])
        return new, done


def _closest(points: np.ndarray, valid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per image, the one of its ``points`` ``(r, s, d)`` where ``valid`` closest to its image in L2."""
    dist = np.where(valid, np.linalg.norm(points - x[:, None, :], axis=2), np.inf)
    return points[np.arange(len(points)), dist.argmin(axis=1)]
