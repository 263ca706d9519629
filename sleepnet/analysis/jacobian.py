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
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch.func import jacrev, vmap

from ..losses import logit_body
from .base import ANALYSES, Analysis

BATCH = 100


def jacobians(model: torch.nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The float64 Jacobians of the logits, ``(n, classes, inputs)``, of ``model`` (evaluation mode)."""
    body = copy.deepcopy(logit_body(model)).double().eval().cpu()
    for p in body.parameters():
        p.requires_grad_(False)
    single = lambda v: body(v[None])[0]  # noqa: E731
    out = [vmap(jacrev(single))(torch.as_tensor(x[s : s + BATCH], dtype=torch.float64))
           for s in range(0, len(x), BATCH)]  # fmt: skip
    return torch.cat(out).numpy()


class Jacobian(Analysis):
    """Singular values of the logits' Jacobian (module docstring)."""

    name = "jacobian"

    def compute(self, model, x):
        """``{"singular_values", "top", "frobenius", "participation_ratio", "participation_ratio_std",
        "zero_jacobian"}``."""
        s = np.linalg.svd(jacobians(model, x), compute_uv=False)  # (n, classes), descending
        s2 = s**2
        zero = s[:, 0] == 0  # every path silent: no direction at all, no ratio
        with np.errstate(invalid="ignore", divide="ignore"):
            pr = np.where(zero, np.nan, s2.sum(axis=1) ** 2 / (s2**2).sum(axis=1))
        some = not zero.all()
        return {"singular_values": s.mean(axis=0).tolist(), "top": float(s[:, 0].mean()),
                "frobenius": float(np.sqrt(s2.sum(axis=1)).mean()),
                "participation_ratio": float(np.nanmean(pr)) if some else float("nan"),
                "participation_ratio_std": float(np.nanstd(pr)) if some else float("nan"),
                "zero_jacobian": float(zero.mean())}  # fmt: skip

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


ANALYSES.register("jacobian", Jacobian())
