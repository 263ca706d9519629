"""What a tuning trial measures, on a validation split carved from the training set.

Every objective is maximised. The test set is never touched while tuning:
the chosen configs are evaluated on it afterwards (``sleepnet tune report
--test``), by the evaluation suite.

- ``clean``: accuracy on the validation images.
- ``fgsm``: FGSM median epsilon (``eps = 0 : 0.005 : 0.4``).
- ``noise``: mean accuracy over the paper's Gaussian-noise variances.
- ``blur``: mean accuracy over the paper's blur sigmas.
- ``pgd``: robust accuracy under PGD L-inf, eps 0.1, 40 steps, the model's
  training loss, on the first 1000.
- ``apgd``: robust accuracy under APGD-CE (AutoAttack's first part, 100
  iterations, cross-entropy) at L-inf 0.1 on the first 1000: the field's
  measure, for sleep's robust-vs-clean trade-off (``experiments/tradeoff_mnist.py``).
- ``white-noise``, ``babble``: mean accuracy over the SNRs of the waveform distortions
  (``sleepnet.evaluation.waveform``), for spoken digits.
- ``boundary``: median relative L2 distance of the Boundary attack (paper
  settings, 1000 iterations) on the first 8 validation images: slow, about
  50 s a trial on MNIST.

The validation split is ``n`` images of the training set drawn with a seeded
permutation (``validation_indices``). Sleep itself runs on the whole
training set, as ``sleepnet sleep`` does, so that an exported trial
reproduces bit for bit; the model being tuned was trained on those images
too, so the split is held out from the test set, not from training.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from ..data import Dataset
from ..errors import SleepnetError
from ..evaluation import distortion_curve
from ..evaluation.attacks import ATTACKS
from ..registry import Registry
from ..training import accuracy

PGD_IMAGES = 1000
BOUNDARY_IMAGES = 8


def validation_indices(n_train: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` training-set indices, the first of a permutation seeded with ``seed``, sorted."""
    if not 0 < n <= n_train:
        raise SleepnetError(f"validation size must be in 1..{n_train}, got {n}")
    return np.sort(np.random.default_rng([seed, 7]).permutation(n_train)[:n])


def validation_set(data: Dataset, n: int, seed: int = 0) -> Dataset:
    """A Dataset whose *test* split is the validation images (so the evaluation code applies)."""
    idx = validation_indices(len(data.x_train), n, seed)
    return replace(data, name=f"{data.name}-validation", x_test=data.x_train[idx], y_test=data.y_train[idx])


def _curve_mean(model, val: Dataset, name: str) -> float:
    return float(np.mean(distortion_curve(model, val, name, seed=0)["accuracy"]))


def _fgsm(model, loss, val: Dataset) -> float:
    return float(ATTACKS["fgsm"](model, loss).run(val.x_test, val.y_test)["median_eps"])


def _pgd(model, loss, val: Dataset) -> float:
    x, y = val.x_test[:PGD_IMAGES], val.y_test[:PGD_IMAGES]
    return float(ATTACKS["pgd"](model, loss, eps=0.1, norm="inf", n_steps=40).run(x, y)["accuracy"])


def _apgd(model, loss, val: Dataset) -> float:
    from ..evaluation.curve import attack_curve

    x, y = val.x_test[:PGD_IMAGES], val.y_test[:PGD_IMAGES]
    shape = (1, *val.image_shape) if val.image_shape else None
    res = attack_curve(model, x, y, "apgd-ce", "inf", [0.1], image_shape=shape)
    return float(res["robust_accuracy"]["0.1"])


def _boundary(model, loss, val: Dataset) -> float:
    x, y = val.x_test[:BOUNDARY_IMAGES], val.y_test[:BOUNDARY_IMAGES]
    res = ATTACKS["boundary"](model, loss, max_iter=1000).run(x, y)
    # no success at all (never seen on MNIST): counts as a relative distance of 10
    return float(res["median_rel_l2"]) if np.isfinite(res["median_rel_l2"]) else 10.0


def _distortion(name: str, model, loss, val: Dataset) -> float:
    """The mean accuracy over distortion ``name``'s levels (the ``noise``, ``blur``, ``white-noise`` and
    ``babble`` objectives)."""
    return _curve_mean(model, val, name)


#: the robustness measures a study can maximise: name -> ``fn(model, loss, validation set)``
OBJECTIVES: Registry = Registry("objective")
for _name, _fn in (("fgsm", _fgsm), ("noise", partial(_distortion, "gaussian-noise")),
                   ("blur", partial(_distortion, "gaussian-blur")), ("pgd", _pgd), ("apgd", _apgd),
                   ("boundary", _boundary), ("white-noise", partial(_distortion, "white-noise")),
                   ("babble", partial(_distortion, "babble"))):  # fmt: skip
    OBJECTIVES.register(_name, _fn)


#: the attack behind each attack objective (the distortions run none)
ATTACK_OF = {"fgsm": "fgsm", "pgd": "pgd", "apgd": "apgd-ce", "boundary": "boundary"}


def implementation(objective: str) -> str | None:
    """The version of the attack behind ``objective``, where that attack names one
    (``implementation``: ours replaced ART's under the same name), else None."""
    attack = ATTACK_OF.get(objective)
    return getattr(ATTACKS[attack], "implementation", None) if attack in ATTACKS else None


def measure(model, loss: str, val: Dataset, objective: str) -> dict:
    """``{"clean": ..., objective: ...}`` of one model on the validation split."""
    fn = OBJECTIVES.get(objective)
    clean = accuracy(model, val.x_test, val.y_test)
    return {"clean": clean, objective: fn(model, loss, val)}
