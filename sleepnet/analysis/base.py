"""The interface of an analysis, its registry, and ``analyze`` / ``figures`` over several models."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..registry import Registry


class Analysis(ABC):
    """One analysis: ``compute`` a JSON-able result for one model, ``figure`` several side by side."""

    name: str = ""
    #: whether ``compute`` takes the whole test set with its labels (and picks its own images)
    needs_labels: bool = False
    #: whether ``analyze`` runs it when no names are given
    default: bool = True

    @abstractmethod
    def compute(self, model: nn.Sequential, x: np.ndarray) -> dict[str, Any]:
        """The result for ``model`` on the images ``x`` (evaluation mode; the model is left as it was)."""

    @abstractmethod
    def figure(self, results: dict[str, dict[str, Any]], path: Path) -> Path:
        """Draw ``results`` (model name -> ``compute``'s result) into ``path``; returns ``path``."""


ANALYSES: Registry[Analysis] = Registry("analysis")


def analyze(models: dict[str, nn.Sequential], x: np.ndarray, indices: np.ndarray,
            names: tuple[str, ...] | None = None, y: np.ndarray | None = None,
            instances: dict[str, Analysis] | None = None) -> dict[str, Any]:  # fmt: skip
    """Every analysis in ``names`` (default: every ``default`` one) on every model, on the images
    ``x[indices]``; one that ``needs_labels`` gets all of ``x`` with the labels ``y``.
    ``instances`` replaces the registered analysis of a name (one with other settings).

    Returns ``{"indices": [...], "models": {model: {analysis: result, ...}}, "seconds": {...}}``
    with the seconds each analysis took per model.
    """
    names = tuple(names or [n for n in ANALYSES.names() if ANALYSES[n].default])
    xs = np.asarray(x)[indices]
    out: dict[str, Any] = {"indices": [int(i) for i in indices], "models": {}, "seconds": {}}
    for label, model in models.items():
        out["models"][label], out["seconds"][label] = {}, {}
        for name in names:
            start = time.perf_counter()
            analysis = (instances or {}).get(name) or ANALYSES[name]
            out["models"][label][name] = (analysis.compute(model, np.asarray(x), y) if analysis.needs_labels
                                          else analysis.compute(model, xs))  # fmt: skip
            out["seconds"][label][name] = time.perf_counter() - start
    return out


def analyze_model(model: nn.Sequential, data, names: tuple[str, ...], n: int, unit=None,
                  seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Each analysis of ``names`` of one model on ``data``'s test set: on the first ``n`` images of the
    fixed permutation, the geometry on its own (``geometry_for``). ``unit(name, inputs, fn)``, where
    given, runs each (``Units.run``: an experiment keeps it as one of the model's measures, named
    ``analysis-<name>``, resumed like the others). A stochastic model's noise layers draw from
    ``seed`` for each analysis, so a result does not depend on what ran before it (the geometry
    from its own seed, as for every model: every model and seed is measured on the same exemplar
    noise, PGD starts and noise streams), and its inputs name the expected prediction's draws
    (``noise.JUDGE``), as the evaluation's measures do.
    Returns ``{name: result}``."""
    from ..evaluation import subsample_indices
    from ..noise import JUDGE, seeded, stochastic
    from .geometry import STEPS

    idx = subsample_indices(len(data.x_test), n)
    noisy = stochastic(model)
    out = {}
    for name in names:
        analysis = geometry_for(data) if name == "geometry" else ANALYSES[name]
        settings = dict(vars(analysis)) | {"images": "own" if analysis.needs_labels else len(idx)}
        if noisy:  # the geometry draws from its own seed (in its settings already): Geometry.compute;
            # its PGD's steps: not one kept when a stochastic model's took fewer (geometry.STEPS)
            settings |= {"judge": JUDGE} | ({"pgd_steps": STEPS} if name == "geometry" else {"seed": seed})

        def run(analysis=analysis):
            with seeded(model, seed):
                return analyze({"model": model}, data.x_test, idx, (analysis.name,), data.y_test,
                               {analysis.name: analysis})["models"]["model"][analysis.name]  # fmt: skip

        out[name] = run() if unit is None else unit(f"analysis-{name}", settings, run)
    return out


#: the exemplar-noise manifolds of a waveform: white noise of std 0.002 of the full-scale range
#: (about 22 dB below the median recording), where images take 0.1
AUDIO_SIGMA = 0.002


def geometry_for(data, draws: int | None = None):
    """The geometry analysis with the settings for ``data``: 50 test images a class and L-inf 0.1
    adversarial manifolds for images; for waveforms (a front end) 30 recordings a digit and
    audio-scale perturbations."""
    from .geometry import Geometry

    if data.frontend is None:
        return Geometry(draws=draws)
    from ..evaluation.suites import AUDIO_BUDGETS

    return Geometry(m=30, eps=AUDIO_BUDGETS["inf"][1], sigma=AUDIO_SIGMA, draws=draws)


def figures(result: dict[str, Any], folder: Path) -> list[Path]:
    """One figure per analysis of ``analyze``'s ``result`` in ``folder`` (``<analysis>.png``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    names = next(iter(result["models"].values()), {}).keys()
    for name in names:
        per_model = {label: res[name] for label, res in result["models"].items()}
        paths.append(ANALYSES[name].figure(per_model, folder / f"{name}.png"))
    return paths


def layer_modules(model: nn.Module, kinds: tuple[type, ...]) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the modules of ``model`` of one of ``kinds``, in order, named
    ``<Type> <index>`` after their place in the model."""
    return [(f"{type(m).__name__} {k}", m) for k, m in model.named_children() if isinstance(m, kinds)]
