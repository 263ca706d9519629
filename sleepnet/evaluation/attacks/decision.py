"""Decision-based (gradient-free) attacks through ART, as ``boundary-art`` and ``hopskipjump-art``: the
cross-checks of ours, batched over images (``boundary.py``, ``hopskipjump.py``), and what both share
(``BatchedDecisionAttack``, ``check_counts``, ``image_rngs``, ``random_starts``, ``other_class_starts``,
``push_across``).

They query only the model's predicted class, so gradient masking cannot fool
them. Boundary (Brendel et al. 2018) with the sleep paper's 25 trial
directions and step sizes 0.5; HopSkipJump (Chen et al. 2020), L2. Both
start from a random misclassified point and shrink the perturbation; ours,
where no uniform random image is misclassified, from the nearest attacked
image of another class (``other_class_starts``; ART's leave such an image
unattacked, which reads as robust). ART
draws from numpy's global generator, and for the starting point from a fresh,
unseeded ``np.random.RandomState()``; ``state.numpy_seeded`` seeds both, so a
seed fixes every draw (before, two runs of the same attack found different
examples). It patches ``np.random.RandomState`` and reseeds numpy's global
generator, process-wide state, so it holds only around ART's ``generate``
call and puts both back as it found them, on error too.

They converge to within about 1e-5 of the decision boundary, and ART hands
the result back in float32, which can round it to the clean side. Such an
example is pushed outward along its own perturbation, by 0.01% at a time
(at most 1%), until the model misclassifies it.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...errors import SleepnetError
from ...progress import LOG
from ...state import numpy_seeded
from .base import PerturbationAttack, register

#: the most floats of probe points in one model call (about 200 MB), whatever the input size
PROBE_FLOATS = 50_000_000


def push_across(attack: PerturbationAttack, x: np.ndarray, adv: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Scale ``adv - x`` up by 1e-4 steps (up to 1%) where the model still gets ``y`` right."""
    adv = np.asarray(adv, dtype=np.float32).copy()
    left = (attack.predict(adv) == y) & (np.abs(adv - x).max(axis=1) > 0)
    for k in range(1, 101):
        if not left.any():
            break
        cand = np.clip(x[left] + (1 + 1e-4 * k) * (adv[left] - x[left]), 0, 1).astype(np.float32)
        merged = adv.copy()  # judged in the full batch, as ``run`` judges
        merged[left] = cand
        ok = attack.predict(merged)[left] != y[left]
        idx = np.flatnonzero(left)[ok]
        adv[idx] = cand[ok]
        left[idx] = False
    return adv


def image_rngs(seed: int, x: np.ndarray, rows) -> dict:
    """A generator per row of ``rows``, seeded by ``seed`` and the image's bytes (CRC-32): an image's
    draws do not depend on its batch, its position there, or what ran before (our batched attacks)."""
    return {i: np.random.default_rng([seed, zlib.crc32(x[i].tobytes())]) for i in rows}


def random_starts(attack: PerturbationAttack, x, y, rows, rngs, tries: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``rows``, the first of up to ``tries`` uniform random images (drawn from its
    ``rngs``) that the model misclassifies, and whether one was: the start of ART's Boundary and
    HopSkipJump, batched over images."""
    start = np.zeros((len(rows), x.shape[1]), dtype=np.float32)
    found = np.zeros(len(rows), dtype=bool)
    for _ in range(tries):
        todo = np.flatnonzero(~found)
        if not len(todo):
            break
        cand = np.stack([rngs[rows[j]].uniform(0.0, 1.0, x.shape[1]).astype(np.float32) for j in todo])
        ok = attack.predict(cand) != y[rows[todo]]
        start[todo[ok]] = cand[ok]
        found[todo[ok]] = True
    return start, found


def other_class_starts(x, y, rows, start, found, pred) -> None:
    """Where ``random_starts`` found none (``found`` False), the start of row ``j`` becomes the image of
    ``x`` nearest to ``x[rows[j]]`` (L2; the first of equals) that the model puts in another class than
    ``y[rows[j]]`` (``pred``: its predictions on ``x``, the ones ``rows`` was chosen by), and ``found[j]``
    True; in place. Uniform noise can fall in one class for every draw (a saturated ReLU net whose
    units all go silent on it answers with its readout's bias), and then no image of that class was
    attacked at all: its robustness was the start's failure. The attacked set is the pool, so this
    start, unlike the random ones, depends on which images are attacked together, and an image
    attacked alone (or with images of its own predicted class only) can still have none."""
    todo = np.flatnonzero(~found)
    for j in todo:
        i = rows[j]
        other = np.flatnonzero(pred != y[i])
        other = other[other != i]
        if len(other):
            dist = np.sum((x[other].astype(np.float64) - x[i]) ** 2, axis=1)
            start[j] = x[other[np.argmin(dist)]]
            found[j] = True


def check_counts(attack: str, counts) -> None:
    """``counts``: ``(name, value, least)`` triples; each value must be an integer >= its least."""
    for key, value, low in counts:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SleepnetError(f"{attack} {key} must be an integer >= {low}, got {value!r}")


class BatchedDecisionAttack(PerturbationAttack):
    """What our batched decision attacks (``boundary.py``, ``hopskipjump.py``) share: images the model
    gets right clean are attacked, each with its own generator (``image_rngs``), from the first of
    ``params["init_size"]`` uniform random images it misclassifies (``random_starts``), else from the
    nearest attacked image it puts in another class (``other_class_starts``), in chunks of
    ``images_per_call`` images (``_attack``); then ``push_across``. An image with no start (none of
    the attacked images in another class: attacked alone, or a model that puts all in one class;
    counted in ``no_start`` and warned of), or misclassified clean, is left as it is."""

    minimal = True
    #: after ``generate``: how many of the images it attacked had no start (left as they are)
    no_start = 0
    #: kept evaluation results name it (``evaluate_model``): ART's ran under these names before
    implementation = "sleepnet-batched-2"  # 1: no start from another image (other_class_starts)

    def __init__(self, model, loss, params: dict, seed: int, batch_size=None, device=None):
        super().__init__(model, loss, batch_size, device)
        self.params = params
        self.loss = "none (decision-based)"
        self.seed = seed

    def run(self, x, y) -> dict:
        """``PerturbationAttack.run``, with ``no_start``: the images attacked that had no start."""
        return super().run(x, y) | {"no_start": self.no_start}

    def images_per_call(self, d: int) -> int:
        """How many images ``_attack`` takes at once, for inputs of size ``d`` (default: all)."""
        return np.iinfo(np.int64).max

    def _attack(self, x, y, start, rngs) -> np.ndarray:
        """The adversarial points of images ``x`` (labels ``y``) from their starts, with their ``rngs``."""
        raise NotImplementedError

    def generate(self, x, y):
        """See ``PerturbationAttack.generate`` (class docstring)."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        adv = x.copy()
        pred = self.predict(x)
        rows = np.flatnonzero(pred == y)
        rngs = image_rngs(self.seed, x, rows)
        start, found = random_starts(self, x, y, rows, rngs, self.params["init_size"])
        other_class_starts(x, y, rows, start, found, pred)
        self.no_start = int(np.sum(~found))
        if self.no_start:
            LOG.warning("%s: %d of %d images had no start (no image the model misclassifies, random or "
                        "attacked beside them): counted as not fooled", self.name, self.no_start, len(rows))
        rows, start = rows[found], start[found]
        chunk = self.images_per_call(x.shape[1])
        for s in range(0, len(rows), chunk):
            part = rows[s : s + chunk]
            adv[part] = self._attack(x[part], y[part], start[s : s + chunk], [rngs[i] for i in part])
        return push_across(self, x, adv, y)


@register
class BoundaryArt(PerturbationAttack):
    """Boundary attack through ART, untargeted, seeded, one image at a time (module docstring)."""

    name = "boundary-art"
    minimal = True

    def __init__(self, model, loss, max_iter: int = 1000, num_trial: int = 25, delta: float = 0.5,
                 epsilon: float = 0.5, seed: int = 0, batch_size: int = 64, device=None):  # fmt: skip
        super().__init__(model, loss, batch_size, device)
        self.params = dict(max_iter=max_iter, num_trial=num_trial, delta=delta, epsilon=epsilon)
        self.loss = "none (decision-based)"
        self.seed = seed

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; ART's ``BoundaryAttack``, then ``push_across``."""
        from art.attacks.evasion import BoundaryAttack

        attack = BoundaryAttack(self.art(queried=True), targeted=False, batch_size=self.batch_size,
                                verbose=False, **self.params)  # fmt: skip
        with numpy_seeded(self.seed):  # ART's call only: module docstring
            adv = attack.generate(x)
        return push_across(self, x, adv, y)


@register
class HopSkipJumpArt(PerturbationAttack):
    """HopSkipJump (L2) through ART, untargeted, seeded, one image at a time (module docstring)."""

    name = "hopskipjump-art"
    minimal = True

    def __init__(self, model, loss, max_iter: int = 50, max_eval: int = 10000, init_eval: int = 100,
                 seed: int = 0, batch_size: int = 64, device=None):  # fmt: skip
        super().__init__(model, loss, batch_size, device)
        self.params = dict(max_iter=max_iter, max_eval=max_eval, init_eval=init_eval)
        self.loss = "none (decision-based)"
        self.seed = seed

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``; ART's ``HopSkipJump``, then ``push_across``."""
        from art.attacks.evasion import HopSkipJump as ArtHopSkipJump

        attack = ArtHopSkipJump(self.art(queried=True), targeted=False, norm=2, batch_size=self.batch_size,
                                verbose=False, **self.params)  # fmt: skip
        with numpy_seeded(self.seed):  # ART's call only: module docstring
            adv = attack.generate(x)
        return push_across(self, x, adv, y)
