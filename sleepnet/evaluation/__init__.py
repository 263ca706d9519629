"""Robustness evaluation: clean accuracy, distortions and attacks, suite by suite.

``quick`` suite: clean accuracy, Gaussian noise and blur at the paper's levels,
and the FGSM curve over ``eps = 0 : 0.005 : 0.4`` with the median epsilon.

``paper`` suite: the above plus salt-and-pepper, and the iterative attacks
with the paper's settings, each on its own documented number of test images
(``SAMPLE_SIZES``, capped by ``subsample``): the first of a permutation seeded
with 0, so every model, and every attack, sees nested subsets of the same
images. PGD L-inf (eps 0.1), PGD L2 (eps 1.5) and DeepFool on 1000 images;
JSMA on 50; Carlini-Wagner L2 on 12; HopSkipJump on 10; Boundary on 5. The
sizes are what fits the full MNIST experiment (9 models x 3 seeds) into an
hour on 2 cores. Per image, on one core, on the MNIST paper network: Boundary
(1000 iterations) about 5.5 s, HopSkipJump (50 iterations) about 2.6 s, CW
about 1.4 s in a batch, JSMA 0.14 s; the full-test-set part of the suite
(FGSM curve, noise, blur, salt-and-pepper) costs about 50 s per model and
PGD and DeepFool on 1000 images 11 s. CW runs 9 x 1000 Adam steps, not the
paper's 20 x 1000: on the MNIST control (50 images) 9 binary-search steps
give the same median perturbation as 20 to four digits, at 45% of the time.
Then the gradient-masking checks (``masking.py``) on the first
``masking_subsample`` images, the gradient-free check reusing the HopSkipJump
result. ``quick=True`` shrinks the iterative attacks to CI size (fewer
iterations, ``QUICK``).

Distortions are drawn with the same seed for every model, so the models are
compared on the very same noisy images.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..data import Dataset
from ..errors import SleepnetError
from ..training import accuracy
from .attacks import ATTACKS
from .distortions import DISTORTIONS

SUITES = {
    "quick": {"distortions": ("gaussian-noise", "gaussian-blur"), "attacks": ("fgsm",)},
    "paper": {"distortions": ("gaussian-noise", "gaussian-blur", "salt-and-pepper"), "attacks": ("fgsm",),
              "subsample_attacks": {
                  "pgd-linf": ("pgd", {"eps": 0.1, "norm": "inf", "n_steps": 40}),
                  "pgd-l2": ("pgd", {"eps": 1.5, "norm": "2", "n_steps": 40}),
                  "deepfool": ("deepfool", {}),
                  "jsma": ("jsma", {}),
                  "cw-l2": ("cw-l2", {"binary_search_steps": 9}),
                  "boundary": ("boundary", {"max_iter": 1000}),
                  "hopskipjump": ("hopskipjump", {"max_iter": 50}),
              }},
}  # fmt: skip
#: test images per iterative attack of the paper suite (the most; ``subsample`` caps them)
SAMPLE_SIZES = {"pgd-linf": 1000, "pgd-l2": 1000, "deepfool": 1000, "jsma": 50, "cw-l2": 12,
                "boundary": 5, "hopskipjump": 10}  # fmt: skip
#: attack settings for CI-sized runs of the paper suite
QUICK = {"pgd-linf": {"n_steps": 10}, "pgd-l2": {"n_steps": 10}, "jsma": {"max_iter": 30},
         "cw-l2": {"binary_search_steps": 3, "max_iter": 50}, "boundary": {"max_iter": 50},
         "hopskipjump": {"max_iter": 5, "max_eval": 500}}  # fmt: skip


def subsample_indices(n_total: int, n: int) -> np.ndarray:
    """The first ``n`` of a permutation seeded with 0, sorted: the same test images for every model,
    and for a smaller ``n`` a subset of those for a larger one."""
    return np.sort(np.random.default_rng(0).permutation(n_total)[: min(n, n_total)])


def distortion_curve(model: nn.Module, data: Dataset, name: str, seed: int = 0) -> dict:
    d = DISTORTIONS[name]
    acc = []
    for k, level in enumerate(d.levels):
        rng = np.random.default_rng([seed, k])
        x = d.fn(data.x_test, level, rng, data.image_shape or (28, 28))
        acc.append(accuracy(model, x, data.y_test))
    return {d.level_name: list(d.levels), "accuracy": acc}


def evaluate_model(model: nn.Module, data: Dataset, loss: str, suite: str = "quick",
                   seed: int = 0, subsample: int = 1000, masking_subsample: int = 200,
                   quick: bool = False) -> dict:  # fmt: skip
    """Every measure of ``suite`` for one model, on ``data``'s test set."""
    if suite not in SUITES:
        raise SleepnetError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
    spec = SUITES[suite]
    out = {"clean_accuracy": accuracy(model, data.x_test, data.y_test)}
    for name in spec["distortions"]:
        out[name] = distortion_curve(model, data, name, seed)
    for name in spec["attacks"]:
        out[name] = ATTACKS[name](model, loss).run(data.x_test, data.y_test)
    if "subsample_attacks" in spec:
        n_test = len(data.x_test)
        sizes = {label: min(SAMPLE_SIZES.get(label, subsample), subsample, n_test)
                 for label in spec["subsample_attacks"]}  # fmt: skip
        out["subsample"] = {"n": min(subsample, n_test), "seed": 0, "sizes": sizes}
        for label, (name, params) in spec["subsample_attacks"].items():
            params = params | (QUICK.get(label, {}) if quick else {})
            idx = subsample_indices(n_test, sizes[label])
            res = ATTACKS[name](model, loss, **params).run(data.x_test[idx], data.y_test[idx])
            out[label] = res | {"params": params, "n": len(idx)}
        from .masking import masking_checks

        idx = subsample_indices(n_test, min(masking_subsample, subsample))
        free = None
        if "hopskipjump" in out:
            hsj = subsample_indices(n_test, sizes["hopskipjump"])
            free = (data.x_test[hsj], data.y_test[hsj], out["hopskipjump"])
        out["masking"] = masking_checks(model, loss, data.x_test[idx], data.y_test[idx], seed, free=free)
    return out


def evaluate(models: dict[str, nn.Module], data: Dataset, losses: dict[str, str],
             suite: str = "quick", seed: int = 0, progress: bool = False, **options) -> dict:  # fmt: skip
    """Evaluate several models on the same test set; ``{name: results}``."""
    results = {}
    items = list(models.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"evaluate ({suite})", leave=False)
    for name, model in items:
        results[name] = evaluate_model(model, data, losses[name], suite, seed, **options)
    return results


def headline(results: dict) -> dict:
    """The numbers of the demo table: clean, mean over noise levels, blur levels, FGSM median eps."""
    return {
        "clean": results["clean_accuracy"],
        "noise": float(np.mean(results["gaussian-noise"]["accuracy"])),
        "blur": float(np.mean(results["gaussian-blur"]["accuracy"])),
        "fgsm_median_eps": results["fgsm"]["median_eps"],
    }
