"""Activation statistics per layer on test images: the fraction of silent and of saturated units.

For each activation module (every layer's, the readout's included) and each (image, unit):

- ReLU: *silent* and *saturated* alike when the pre-activation is <= 0 (the flat part);
- sigmoid: *silent* when the output is below ``FLAT`` = 0.01, *saturated* when it is below
  0.01 or above 0.99 (there the slope ``sigma (1 - sigma)`` is below 0.0099).

``dead`` is the fraction of units silent on every image; ``slope`` the mean local slope of
the nonlinearity relative to its steepest (ReLU: 1 where ``h > 0``, else 0; sigmoid:
``4 sigma(h) (1 - sigma(h))``), a continuous measure that falls as units saturate. The
readout's activation is applied to the logits here, as in the model's forward pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..devices import model_device
from ..saturation import tapped
from ..state import eval_mode
from .base import ANALYSES, Analysis

FLAT = 0.01
BATCH = 1000


def flat_parts(module: torch.nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boolean ``(silent, saturated)`` and the relative slope of the units ``module`` receives ``h`` for."""
    if isinstance(module, torch.nn.ReLU):
        silent = h <= 0
        return silent, silent, (~silent).double()
    out = torch.sigmoid(h.double())
    silent = out < FLAT
    return silent, silent | (out > 1 - FLAT), 4 * out * (1 - out)


class Activations(Analysis):
    """Per layer: fractions of silent, saturated and dead units (module docstring)."""

    name = "activations"

    @torch.no_grad()
    def compute(self, model, x):
        """``{"layers": [{"layer", "units", "silent", "saturated", "slope", "dead"}]}`` over ``x``."""
        silent_sum, saturated_sum, slope_sum, ever_active, names, units = [], [], [], [], [], []
        with eval_mode(model):
            for s in range(0, len(x), BATCH):
                xb = torch.as_tensor(x[s : s + BATCH], dtype=torch.float32, device=model_device(model))
                with tapped(model) as taps:
                    model(xb)
                for k, (m, h) in enumerate(taps):
                    silent, saturated, slope = (t.reshape(len(h), -1) for t in flat_parts(m, h))
                    if s == 0:
                        names.append(f"layer {k + 1} ({type(m).__name__})")
                        units.append(silent.shape[1])
                        silent_sum.append(0.0)
                        saturated_sum.append(0.0)
                        slope_sum.append(0.0)
                        ever_active.append(torch.zeros(silent.shape[1], dtype=torch.bool))
                    silent_sum[k] += float(silent.double().sum())
                    saturated_sum[k] += float(saturated.double().sum())
                    slope_sum[k] += float(slope.sum())
                    ever_active[k] |= ~silent.all(dim=0).cpu()
        n = len(x)
        return {"layers": [{"layer": names[k], "units": units[k], "silent": silent_sum[k] / (n * units[k]),
                            "saturated": saturated_sum[k] / (n * units[k]),
                            "slope": slope_sum[k] / (n * units[k]),
                            "dead": float(1 - ever_active[k].double().mean())}
                           for k in range(len(names))]}  # fmt: skip

    def figure(self, results, path):
        """Bars per layer: fraction saturated (and silent, hatched) for each model."""
        from ..plots import save, subplots

        fig, ax = subplots(figsize=(7, 3.4))
        width = 0.8 / max(len(results), 1)
        for j, (label, res) in enumerate(results.items()):
            pos = np.arange(len(res["layers"])) + j * width
            ax.bar(pos, [l["saturated"] for l in res["layers"]], width, label=f"{label} saturated")
            ax.bar(pos, [l["silent"] for l in res["layers"]], width, fill=False, hatch="//",
                   label=f"{label} silent")  # fmt: skip
        first = next(iter(results.values()))["layers"]
        ax.set_xticks(np.arange(len(first)) + 0.4 - width / 2, [f"layer {k + 1}" for k in range(len(first))])
        ax.set_ylabel("fraction of units x images")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        return save(fig, Path(path))


ANALYSES.register("activations", Activations())
