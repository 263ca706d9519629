"""The input-output Jacobian's singular values over test images (Nayebi & Ganguli's flatness).

For each image, ``J = d logits / d x`` (classes x inputs; the logits are the readout's
pre-activation, ``losses.logit_body``), computed in float64 on a float64 copy of the
model, so a saturated unit's tiny slope is not rounded to the float32 zero that hides
gradients from an attack. Reported over the images:

- ``singular_values``: the mean spectrum (descending, one value per class);
- ``top``: the mean largest singular value; ``frobenius``: the mean ``||J||_F``;
- ``participation_ratio``: the mean over images of ``(sum s^2)^2 / sum s^4``, between 1
  (one direction dominates: a low-dimensional map) and the number of classes, over the
  images whose Jacobian is not exactly 0; ``zero_jacobian``: the share of those that are
  (NaN ratio if all are).

A stochastic model (noise layers, ``sleepnet.noise``) has one Jacobian per noise draw. Its
``J`` is their mean over ``noise.DRAWS`` (20) draws, ``d E[logits] / d x``, the Jacobian of its
mean logits, with the draws held fixed (``noise.through``). The draws are those the model's
expected prediction makes (``noise.judging``: its float32 layers restarted at their own seeds plus
``noise.JUDGE_OFFSET``, one noise per pass shared by every image; each draw cast to float64), so the
figure is reproducible and an image's Jacobian does not depend on its batch. ``draws`` says
how many; ``single_draw`` gives ``top`` and ``participation_ratio`` of the draws' own Jacobians
(mean over images and draws), the map that one pass of the network applies. The Jacobians are
made one draw at a time (an FSDD batch of all 20 at once would hold 1.3 GB).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch.func import jacrev, vmap

from .. import noise
from ..errors import SleepnetError
from ..losses import logit_body
from .base import ANALYSES, Analysis

BATCH = 100


def draw_jacobians(model: torch.nn.Sequential, x: np.ndarray, draws: int = noise.DRAWS):
    """Per batch of ``BATCH`` images, a generator of the float64 Jacobians of the logits of ``model``
    (evaluation mode), ``(batch, classes, inputs)`` each: one per noise draw for a stochastic model
    (module docstring), one for a deterministic one. Made lazily, one draw at a time."""
    if len(x) == 0:
        raise SleepnetError("the Jacobian analysis needs at least one image")
    own = logit_body(model)
    body = copy.deepcopy(own).double().eval().cpu()
    for p in body.parameters():
        p.requires_grad_(False)
    noisy = noise.stochastic(body)
    if noisy:
        noise.check_flat(body)
        judge = copy.deepcopy(own).float().eval().cpu()  # draws as the model makes them, in float32
    single = lambda v, e: noise.through(body, v[None], [d[None] for d in e])[0]  # noqa: E731
    for s in range(0, len(x), BATCH):
        xb = torch.as_tensor(x[s : s + BATCH], dtype=torch.float64)
        if not noisy:
            yield iter([vmap(jacrev(single))(xb, []).numpy()])
            continue
        with torch.no_grad(), noise.judging(judge, draws):  # the expected prediction's draws
            fixed = [[e.double() for e in noise.draw(judge, xb.float())] for _ in range(int(draws))]
        yield (vmap(jacrev(single))(xb, e).numpy() for e in fixed)


def jacobians(model: torch.nn.Sequential, x: np.ndarray, draws: int = noise.DRAWS) -> np.ndarray:
    """The float64 Jacobians of the logits, ``(n, classes, inputs)``, of ``model`` (evaluation mode);
    for a stochastic model their mean over ``draws`` noise draws (``draw_jacobians``)."""
    return np.concatenate([_mean(batch)[0] for batch in draw_jacobians(model, x, draws)])


def _mean(batch, each=None) -> tuple[np.ndarray, int]:
    """The mean of one batch's draws' Jacobians (``draw_jacobians``) and their number; ``each(J)`` is
    called on every draw's first, if given."""
    total, k = 0, 0
    for J in batch:
        if each is not None:
            each(J)
        total, k = total + J, k + 1
    return total / k, k


def spectrum(J: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular values ``(..., classes)`` (descending) of the Jacobians ``J``, their participation
    ratios (NaN where ``J`` is 0) and the mask of zero Jacobians."""
    s = np.linalg.svd(J, compute_uv=False)
    s2 = s**2
    zero = s[..., 0] == 0  # every path silent: no direction at all, no ratio
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = np.where(zero, np.nan, s2.sum(axis=-1) ** 2 / (s2**2).sum(axis=-1))
    return s, pr, zero


class Jacobian(Analysis):
    """Singular values of the logits' Jacobian (module docstring)."""

    name = "jacobian"

    def compute(self, model, x):
        """``{"singular_values", "top", "frobenius", "participation_ratio", "participation_ratio_std",
        "zero_jacobian"}``."""
        means, tops, ratios, k = [], [], [], 0

        def own_map(J):  # each draw's own map, for a stochastic model
            s, pr, _ = spectrum(J)
            tops.append(s[:, 0])
            ratios.append(pr)

        each = own_map if noise.stochastic(model) else None
        for batch in draw_jacobians(model, x):
            mean, k = _mean(batch, each)
            means.append(mean)
        s, pr, zero = spectrum(np.concatenate(means))  # (n, classes), descending
        out = {"singular_values": s.mean(axis=0).tolist(), "top": float(s[:, 0].mean()),
               "frobenius": float(np.sqrt((s**2).sum(axis=1)).mean()),
               "participation_ratio": _nanmean(pr), "participation_ratio_std": _nanmean(pr, np.nanstd),
               "zero_jacobian": float(zero.mean()), "draws": k}  # fmt: skip
        if tops:
            out["single_draw"] = {"top": float(np.concatenate(tops).mean()),
                                  "participation_ratio": _nanmean(np.concatenate(ratios))}  # fmt: skip
        return out

    def figure(self, results, path):
        """The mean singular value spectrum of each model (log scale), participation ratio in the legend."""
        from ..plots import save, subplots

        fig, ax = subplots(figsize=(5.5, 3.6))
        for label, res in results.items():
            sv = np.asarray(res["singular_values"])
            ax.plot(np.arange(1, len(sv) + 1), sv, marker="o",
                    label=f"{label} (PR {res['participation_ratio']:.2f})")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel("mean singular value of d logits / d x")
        ax.legend(fontsize=7)
        return save(fig, Path(path))


def _nanmean(values: np.ndarray, fn=np.nanmean) -> float:
    """``fn`` over the non-NaN ``values``; NaN when there are none."""
    return float(fn(values)) if not np.isnan(values).all() else float("nan")


ANALYSES.register("jacobian", Jacobian())
