"""Weight statistics per layer: mean, std, excess kurtosis (Fisher) and a histogram.

Nayebi & Ganguli (2017) report highly kurtotic weights in saturated networks. Each
``Linear`` or ``Conv2d`` layer's weights (biases not included) give ``mean``, ``std``,
``min``, ``max``, ``kurtosis`` (``E[(w - mu)^4] / sigma^4 - 3``, 0 for a Gaussian) and a
histogram of ``BINS`` bins over the layer's range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from ..stats import weight_stats
from .base import ANALYSES, Analysis, layer_modules

BINS = 60


class Weights(Analysis):
    """Per layer: weight statistics and histogram (module docstring)."""

    name = "weights"

    def compute(self, model, x):
        """``{"layers": [{"layer", "shape", "mean", "std", "min", "max", "kurtosis", "histogram"}]}``."""
        layers = []
        for name, m in layer_modules(model, (nn.Linear, nn.Conv2d)):
            w = m.weight.detach().double().cpu().numpy()
            counts, edges = np.histogram(w, bins=BINS)
            layers.append({"layer": name, "shape": list(w.shape), **weight_stats(w),
                           "histogram": {"counts": counts.tolist(), "edges": edges.tolist()}})  # fmt: skip
        return {"layers": layers}

    def figure(self, results, path):
        """One panel per layer: each model's weight histogram (as a density), kurtosis in the legend."""
        from ..plots import save, subplots

        n = max(len(r["layers"]) for r in results.values())
        fig, axes = subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
        for label, res in results.items():
            for ax, layer in zip(axes[0], res["layers"]):
                h = layer["histogram"]
                edges, counts = np.asarray(h["edges"]), np.asarray(h["counts"], dtype=float)
                density = counts / max(counts.sum(), 1) / np.diff(edges)
                ax.stairs(density, edges, label=f"{label} (kurtosis {layer['kurtosis']:.1f})")
                ax.set_title(layer["layer"])
                ax.set_yscale("log")
        for ax in axes[0]:
            ax.set_xlabel("weight")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("density (log)")
        return save(fig, Path(path))


ANALYSES.register("weights", Weights())
