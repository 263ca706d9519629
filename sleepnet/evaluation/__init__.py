"""Robustness evaluation: clean accuracy, distortions and attacks, suite by suite.

``quick`` suite: clean accuracy, Gaussian noise and blur at the paper's levels,
and the FGSM curve over ``eps = 0 : 0.005 : 0.4`` with the median epsilon.
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

SUITES = {"quick": {"distortions": ("gaussian-noise", "gaussian-blur"), "attacks": ("fgsm",)}}


def distortion_curve(model: nn.Module, data: Dataset, name: str, seed: int = 0) -> dict:
    d = DISTORTIONS[name]
    acc = []
    for k, level in enumerate(d.levels):
        rng = np.random.default_rng([seed, k])
        x = d.fn(data.x_test, level, rng, data.image_shape or (28, 28))
        acc.append(accuracy(model, x, data.y_test))
    return {d.level_name: list(d.levels), "accuracy": acc}


def evaluate_model(model: nn.Module, data: Dataset, loss: str, suite: str = "quick",
                   seed: int = 0) -> dict:  # fmt: skip
    """Every measure of ``suite`` for one model, on ``data``'s test set."""
    if suite not in SUITES:
        raise SleepnetError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
    spec = SUITES[suite]
    out = {"clean_accuracy": accuracy(model, data.x_test, data.y_test)}
    for name in spec["distortions"]:
        out[name] = distortion_curve(model, data, name, seed)
    for name in spec["attacks"]:
        out[name] = ATTACKS[name](model, loss).run(data.x_test, data.y_test)
    return out


def evaluate(models: dict[str, nn.Module], data: Dataset, losses: dict[str, str],
             suite: str = "quick", seed: int = 0, progress: bool = False) -> dict:  # fmt: skip
    """Evaluate several models on the same test set; ``{name: results}``."""
    results = {}
    items = list(models.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"evaluate ({suite})", leave=False)
    for name, model in items:
        results[name] = evaluate_model(model, data, losses[name], suite, seed)
    return results


def headline(results: dict) -> dict:
    """The numbers of the demo table: clean, mean over noise levels, blur levels, FGSM median eps."""
    return {
        "clean": results["clean_accuracy"],
        "noise": float(np.mean(results["gaussian-noise"]["accuracy"])),
        "blur": float(np.mean(results["gaussian-blur"]["accuracy"])),
        "fgsm_median_eps": results["fgsm"]["median_eps"],
    }
