"""HopSkipJump (Chen, Jordan & Wainwright 2020), L2, untargeted, batched over images.

The same algorithm as ART's ``HopSkipJump`` (``art.attacks.evasion.hop_skip_jump``, ART 1.20,
which ``hopskipjump-art`` runs for cross-checks), step for step, but every image of a batch advances
together, so each model call carries the queries of many images at once; ART attacks one image at a
time. Two differences: every point is rounded to float32 when it is made (ART keeps its iterates in
float64 and rounds the result once, so the point it judged is not quite the point it returns), and a
gradient estimate that comes out zero or not finite (every probe clipped back onto the point) leaves
that image where it is for the iteration, where ART would return the clean image.

Per image, from the label's side (an image the model misclassifies clean is left alone):

1. a start: up to ``init_size`` uniform random images until one is misclassified, else (where
   none is; ART would leave the image unattacked) the nearest attacked image the model puts in
   another class (``decision.other_class_starts``; ``no_start`` in the result counts the images with
   neither), then a binary search towards the image down to 0.001 of the segment;
2. ``max_iter`` times: the probe size ``delta`` (0.1 at the first iteration, then
   ``sqrt(d) * theta * dist`` with ``theta = 0.01 / sqrt(d)``); a binary search to the boundary
   down to ``theta``; the gradient direction at the boundary from
   ``min(init_eval * sqrt(t + 1), max_eval)`` random unit probes (mean of the probes weighted by
   +-1 decisions, baseline-corrected); a geometric step of ``2 dist / sqrt(t + 1)`` halved until
   the point is adversarial.

Then ``push_across`` (``decision.py``) as for ART's. Every random draw of an image comes from its
own generator, seeded by the attack's seed and the image's bytes (CRC-32), so on a deterministic
model an image's attack does not depend on the batch it is in, its position there, or what ran
before (unless it needed a start from another image: then on which images share its batch):
batched equals alone (as far as the model's score of a row does not depend on how many rows
share its call: ``boundary.py``). So too on a stochastic model, whose expected prediction draws
one noise per pass for every row (``noise.expected_scores``).

A stochastic model is queried through its expected prediction (``Attack.predict``), as every
decision attack here; the geometric step gives up after 50 halvings (a point the expected
prediction judged adversarial in one batch may not be in another, ``docs/stochastic.md``) and then
stays where it is.
"""

from __future__ import annotations

import numpy as np

from ...errors import SleepnetError
from .base import register
from .decision import PROBE_FLOATS, BatchedDecisionAttack, check_counts

#: the most halvings of a geometric step before it stays put
MAX_HALVINGS = 50


@register
class HopSkipJump(BatchedDecisionAttack):
    """HopSkipJump, L2, batched over images (module docstring)."""

    name = "hopskipjump"

    def __init__(self, model, loss, max_iter: int = 50, max_eval: int = 10000, init_eval: int = 100,
                 init_size: int = 100, seed: int = 0, batch_size: int | None = None,
                 device=None):  # fmt: skip
        """``batch_size``: the most probe points in one model call (the images of a chunk times their
        probes); default ``PROBE_FLOATS`` over the input size."""
        check_counts("hopskipjump", (("max_iter", max_iter, 0), ("max_eval", max_eval, 1),
                                     ("init_eval", init_eval, 1), ("init_size", init_size, 1)))  # fmt: skip
        if init_eval > max_eval:
            raise SleepnetError(f"hopskipjump init_eval ({init_eval}) must not exceed max_eval ({max_eval})")
        params = dict(max_iter=max_iter, max_eval=max_eval, init_eval=init_eval, init_size=init_size)
        super().__init__(model, loss, params, seed, batch_size, device)

    def _fooled(self, points: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.predict(np.clip(points, 0.0, 1.0).astype(np.float32)) != y

    def _bisect(self, x, adv, y, threshold: float) -> np.ndarray:
        """Binary search on the segment from ``x`` to the adversarial ``adv`` to within ``threshold``
        of its length; the adversarial end."""
        lo, hi = np.zeros(len(x)), np.ones(len(x))
        while (hi - lo).max() > threshold:
            mid = (lo + hi) / 2
            ok = self._fooled(((1 - mid)[:, None] * x + mid[:, None] * adv).astype(np.float32), y)
            lo, hi = np.where(ok, lo, mid), np.where(ok, mid, hi)
        return ((1 - hi)[:, None] * x + hi[:, None] * adv).astype(np.float32)

    def _direction(self, cur, y, delta, n_eval: int, rngs) -> np.ndarray:
        """The estimated gradient direction at each boundary point ``cur`` (unit L2), from
        ``n_eval`` random probes of size ``delta`` each, chunked to ``batch_size`` points a call."""
        d = cur.shape[1]
        out = np.empty_like(cur)
        chunk = max(1, (self.batch_size or PROBE_FLOATS // d) // n_eval)
        for s in range(0, len(cur), chunk):
            part = range(s, min(s + chunk, len(cur)))
            probes = []
            for j in part:
                u = rngs[j].standard_normal((n_eval, d), dtype=np.float32)
                u /= np.sqrt(np.sum(u**2, axis=1, keepdims=True))
                probes.append(np.clip(cur[j] + np.float32(delta[j]) * u, 0.0, 1.0))
            points = np.concatenate(probes)
            sat = (self.predict(points) != np.repeat(y[s : s + len(part)], n_eval)).reshape(len(part), n_eval)
            for k, j in enumerate(part):
                u = (probes[k] - cur[j]) / np.float32(delta[j])  # the probes as clipped
                f = (2 * sat[k] - 1.0).astype(np.float32)
                if f.mean() in (1.0, -1.0):
                    grad = f.mean() * u.mean(axis=0)
                else:
                    grad = ((f - f.mean())[:, None] * u).mean(axis=0)
                size = np.linalg.norm(grad)
                out[j] = grad / size if size > 0 and np.isfinite(size) else 0.0  # 0: the step stays put
        return out

    def _attack(self, x, y, start, rngs) -> np.ndarray:
        """Steps 1 (binary search) and 2 of the module docstring for images with a start."""
        d = x.shape[1]
        theta = 0.01 / np.sqrt(d)
        cur = self._bisect(x, start, y, 0.001)
        p = self.params
        for t in range(p["max_iter"]):
            dist = np.linalg.norm(cur - x, axis=1)
            delta = np.full(len(x), 0.1) if t == 0 else np.sqrt(d) * theta * dist
            cur = self._bisect(x, cur, y, theta)
            n_eval = min(int(p["init_eval"] * np.sqrt(t + 1)), p["max_eval"])
            update = self._direction(cur, y, delta, n_eval, rngs)
            eps = 2.0 * np.linalg.norm(cur - x, axis=1) / np.sqrt(t + 1)
            pending = np.ones(len(x), dtype=bool)
            for _ in range(MAX_HALVINGS):
                eps[pending] /= 2.0
                idx = np.flatnonzero(pending)
                ok = self._fooled(cur[idx] + eps[idx, None].astype(np.float32) * update[idx], y[idx])
                pending[idx[ok]] = False
                if not pending.any():
                    break
            eps[pending] = 0.0  # no adversarial step found: stay
            cur = np.clip(cur + eps[:, None].astype(np.float32) * update, 0.0, 1.0).astype(np.float32)
        return cur
