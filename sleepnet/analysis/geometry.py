"""Representation geometry per layer (Dapello et al. 2021; Cohen et al. 2020): MFTMA capacity,
radius, dimension and centre correlation, and the participation ratio, of class and exemplar
manifolds, clean and adversarial, at the input, after each hidden layer and at the logits.

Manifolds (``docs/geometry.md``), from the test set in the fixed permutation (seed 0):

- ``class``: the first ``m`` images of each class; ``class-adv``: each of them moved by PGD
  (L-inf ``eps``, cross-entropy, EOT for a stochastic model);
- ``exemplar-noise``: the first image of each class, ``m`` times with Gaussian pixel noise
  (std ``sigma``, clipped to [0, 1]);
- ``exemplar-adv``: the same images, ``m`` PGD examples each from ``m`` random starts;
- for a stochastic model, ``exemplar-draws``: ``draws`` (default ``m``) noise draws of the
  network on each clean image; ``exemplar-draws-adv``: as many draws on one PGD example of each.

``separation`` per layer measures how far the clean and the adversarial exemplar manifolds
overlap: the cross-validated d' between them along the line joining their centres (below
about 1 they overlap, Dapello et al.'s signature of stochastic networks), between the clean
and one adversarial image of each exemplar, each under the same ``m`` pixel-noise draws; for a
stochastic model also ``separation_draws``, between its noise draws on the clean image and on
the adversarial one. (Linear separability itself says nothing here: any two sets of 100
points in more than 100 dimensions are separable.)
A layer's representation is the input to the next weight layer (after the activation, and
after noise and dropout where the model has them: dropout as in evaluation, which for the
paper's dropout is a scaling, to which capacity and d' are blind); the last is the logits. A
stochastic model's representations take noise from the seed + 3, which none of its three
attacks (seed, + 1, + 2) drew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import model_device
from ..errors import SleepnetError
from ..evaluation.attacks import ATTACKS, stochastic
from ..geometry.mftma import manifold_analysis
from ..losses import logit_body
from ..noise import seeded
from ..state import eval_mode
from .base import ANALYSES, Analysis

MEASURES = ("capacity", "radius", "dimension", "center_correlation", "participation_ratio")
#: EOT draws behind the adversarial manifolds of a stochastic model, and PGD's steps for every model (a
#: stochastic model's took 20 until 2026-12-03: a weaker attack than the control's moves its adversarial
#: manifolds less, which reads as "closer")
EOT, STEPS = 8, 40


def representations(model: nn.Sequential, x: torch.Tensor) -> list[tuple[str, np.ndarray]]:
    """``(layer name, (n, features))`` for the input, after each hidden layer and the logits."""
    weights = [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d))]
    out = [("input", x.reshape(len(x), -1))]
    h = x
    with torch.no_grad(), eval_mode(model):
        body = logit_body(model)
        for i, m in enumerate(body):
            if i in weights[1:]:
                out.append((f"{type(model[i - 1]).__name__} {i - 1}", h.reshape(len(h), -1)))
            h = m(h)
        out.append(("logits", h.reshape(len(h), -1)))
    return [(name, r.double().cpu().numpy()) for name, r in out]


def first_per_class(y: np.ndarray, m: int) -> np.ndarray:
    """Indices ``(classes, m)``: the first ``m`` of each class in the fixed permutation (seed 0)."""
    order = np.random.default_rng(0).permutation(len(y))
    classes = np.unique(y)
    rows = []
    for c in classes:
        idx = order[y[order] == c][:m]
        if len(idx) < m:
            raise SleepnetError(f"class {c} has {len(idx)} test images, the geometry needs {m}")
        rows.append(idx)
    return np.stack(rows)


def separation(clean: np.ndarray, adv: np.ndarray) -> float | None:
    """Cross-validated d' of two manifolds ``(k, features)`` along the line joining their centres.

    The direction comes from one half of each manifold's points, d' (difference of the mean
    projections over their pooled standard deviation) from the other half, and the halves swap;
    the mean of the two. Estimated so, noise in the centres does not pass for a separation. None
    where the points do not spread along the direction (a deterministic network's draws).
    """
    h = len(clean) // 2
    values = []
    for fit, test in ((slice(0, h), slice(h, 2 * h)), (slice(h, 2 * h), slice(0, h))):
        u = adv[fit].mean(axis=0) - clean[fit].mean(axis=0)
        norm = np.linalg.norm(u)
        if norm == 0:
            return None
        pc, pa = clean[test] @ (u / norm), adv[test] @ (u / norm)
        spread = np.sqrt((pc.var(ddof=1) + pa.var(ddof=1)) / 2)
        if spread <= 1e-12 * max(1.0, float(np.abs(pc).max())):
            return None
        values.append((pa.mean() - pc.mean()) / spread)
    return float(np.mean(values))


def mean_or_none(values: list[float | None]) -> float | None:
    """The mean of ``values``, None if any is None."""
    return None if any(v is None for v in values) else float(np.mean(values))


def check_draws(model: nn.Module, draws: int | None, label: str = "the model") -> None:
    """One clear error for noise draws asked of a deterministic model or a count below 2."""
    if draws is None:
        return
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 2:
        raise SleepnetError(f"draws must be an integer >= 2, got {draws!r}")
    if not stochastic(model):
        raise SleepnetError(f"noise draws were asked of {label}, which is deterministic (no noise layers)")


class Geometry(Analysis):
    """MFTMA of class and exemplar manifolds per layer (module docstring)."""

    name = "geometry"
    needs_labels = True
    default = False

    def __init__(self, m: int = 50, eps: float = 0.1, sigma: float = 0.1, kappa: float = 0.0, n_t: int = 200,
                 draws: int | None = None, seed: int = 0) -> None:  # fmt: skip
        self.m, self.eps, self.sigma, self.kappa, self.n_t, self.seed = m, eps, sigma, kappa, n_t, seed
        self.draws = draws

    def check_data(self, y: np.ndarray) -> None:
        """One clear error, before any work, if a class has fewer than ``m`` test images."""
        first_per_class(np.asarray(y), self.m)

    def _adversarial(self, model, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        kw = {"eot_samples": EOT} if stochastic(model) else {}
        attack = ATTACKS["pgd"](model, "cross-entropy", eps=self.eps, norm="inf", seed=seed, n_steps=STEPS,
                                **kw)  # fmt: skip
        return attack(x.astype(np.float32), y)

    def compute(self, model: nn.Sequential, x: np.ndarray, y: np.ndarray | None = None) -> dict[str, Any]:
        """The measures per layer of each kind of manifold, and ``separation``; ``x``, ``y``: the test set."""
        if y is None:
            raise SleepnetError("the geometry analysis needs the test labels")
        noisy = stochastic(model)
        check_draws(model, self.draws)
        with seeded(model, self.seed):  # every noise draw, the attacks' included, from the seed
            return self._compute(model, x, y, noisy)

    def _compute(self, model, x, y, noisy: bool) -> dict[str, Any]:
        m, rng = self.m, np.random.default_rng(self.seed)
        idx = first_per_class(np.asarray(y), m)
        p = len(idx)
        xc, yc = np.asarray(x)[idx.ravel()], np.asarray(y)[idx.ravel()]
        ex, ey = xc[::m], yc[::m]  # the first image of each class
        tile = np.repeat(ex, m, axis=0)
        noise = rng.normal(0.0, self.sigma, tile.shape)
        sets = {
            "class": xc,
            "class-adv": self._adversarial(model, xc, yc, self.seed),
            "exemplar-noise": np.clip(tile + noise, 0, 1),
            "exemplar-adv": self._adversarial(model, tile, np.repeat(ey, m), self.seed + 1),
        }
        adv_one = self._adversarial(model, ex, ey, self.seed + 2)
        sets["exemplar-noise-adv"] = np.clip(np.repeat(adv_one, m, axis=0) + noise, 0, 1)
        size = dict.fromkeys(sets, m)
        if noisy:
            k = self.draws or m
            sets["exemplar-draws"] = np.repeat(ex, k, axis=0)
            sets["exemplar-draws-adv"] = np.repeat(adv_one, k, axis=0)
            size |= {"exemplar-draws": k, "exemplar-draws-adv": k}
        dev = model_device(model)
        reps = {}
        with seeded(model, self.seed + 3):  # noise of its own, none of the three attacks' (seed, +1, +2)
            for kind, images in sets.items():
                reps[kind] = representations(model, torch.as_tensor(images, dtype=torch.float32, device=dev))
        layers = [name for name, _ in reps["class"]]
        out: dict[str, Any] = {"layers": layers, "manifolds": {}, "points": size, "classes": p}
        for kind in [k for k in sets if k != "exemplar-noise-adv"]:
            res = {key: [] for key in MEASURES}
            for _, r in reps[kind]:
                a = manifold_analysis(r.reshape(p, size[kind], -1).transpose(0, 2, 1), self.kappa, self.n_t,
                                      self.seed)  # fmt: skip
                for key in MEASURES:
                    res[key].append(a[key])
            out["manifolds"][kind] = res
        pairs = {"separation": ("exemplar-noise", "exemplar-noise-adv")}
        if noisy:
            pairs["separation_draws"] = ("exemplar-draws", "exemplar-draws-adv")
        for key, (clean, adv) in pairs.items():
            k = size[clean]
            out[key] = [
                mean_or_none([separation(rc[j * k:(j + 1) * k], ra[j * k:(j + 1) * k]) for j in range(p)])
                for (_, rc), (_, ra) in zip(reps[clean], reps[adv])
            ]  # fmt: skip
        out["settings"] = {"m": m, "classes": p, "eps": self.eps, "norm": "inf", "sigma": self.sigma,
                           "kappa": self.kappa, "n_t": self.n_t, "seed": self.seed,
                           "pgd": {"loss": "cross-entropy", "n_steps": STEPS,
                                   "eot_samples": EOT if noisy else 1}}  # fmt: skip
        return out

    def figure(self, results: dict[str, dict[str, Any]], path: Path) -> Path:
        """Capacity, radius and dimension (rows) against layer for each kind of manifold (columns),
        the models overlaid; the clean/adversarial separation in a last row."""
        from ..plots import save, subplots

        kinds = list(dict.fromkeys(k for r in results.values() for k in r["manifolds"]))
        rows = ("capacity", "radius", "dimension")
        fig, axes = subplots(len(rows) + 1, len(kinds), figsize=(3.2 * len(kinds), 2.4 * (len(rows) + 1)),
                             squeeze=False)  # fmt: skip
        for index, (label, r) in enumerate(results.items()):
            color = f"C{index % 10}"  # one colour per model in every panel
            xs = np.arange(len(r["layers"]))
            for col, kind in enumerate(kinds):
                if kind not in r["manifolds"]:
                    continue
                for row, key in enumerate(rows):
                    axes[row][col].plot(xs, r["manifolds"][kind][key], marker="o", color=color, label=label)
                    axes[row][col].set_title(f"{kind}: {key}", fontsize=9)
            for key, style in (("separation", "-"), ("separation_draws", "--")):
                if key in r:
                    sep = [np.nan if v is None else v for v in r[key]]
                    axes[len(rows)][0].plot(xs, sep, style, marker="o", color=color,
                                            label=label + (" (noise draws)" if key != "separation" else ""))
        axes[len(rows)][0].set_title("clean/adversarial separation (d')", fontsize=9)
        for col in range(1, len(kinds)):
            axes[len(rows)][col].axis("off")
        for ax in axes[len(rows) - 1]:
            ax.set_xlabel("layer (0 = input, last = logits)")
        axes[0][0].legend(fontsize=7)
        handles, labels = axes[len(rows)][0].get_legend_handles_labels()
        if len(kinds) > 1:  # beside the panel, in the empty one: dashed lines are noise draws
            axes[len(rows)][1].legend(handles, labels, fontsize=7, loc="center left")
        else:
            axes[len(rows)][0].legend(fontsize=7)
        return save(fig, path)


ANALYSES.register("geometry", Geometry())
