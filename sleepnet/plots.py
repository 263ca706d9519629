"""Figures from what runs recorded: weights before/after sleep, spikes, robustness curves.

Every function writes one PNG and returns its path; nothing is shown on screen.
Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas
directly, without ``pyplot``: importing or using this module never chooses or
changes matplotlib's backend, and leaves no figure open in ``pyplot``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .fsio import atomic_write


def figure(**kwargs) -> Figure:
    """A new figure on its own Agg canvas (``kwargs`` go to ``Figure``, e.g. ``figsize``)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(*args, figsize=None, **kwargs):
    """``(figure, axes)`` as ``pyplot.subplots`` returns them, on a figure of our own."""
    fig = figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write(path, buf.getvalue())


def weight_histograms(before: list[np.ndarray], after: list[np.ndarray], path: Path) -> Path:
    """One panel per weight layer: histogram of weights before and after sleep (log counts)."""
    fig, axes = subplots(1, len(before), figsize=(4.2 * len(before), 3.4), squeeze=False)
    for l, (ax, w0, w1) in enumerate(zip(axes[0], before, after)):
        lo = min(w0.min(), w1.min())
        hi = max(w0.max(), w1.max())
        bins = np.linspace(lo, hi, 80) if hi > lo else 10
        ax.hist(w0.ravel(), bins=bins, alpha=0.6, label="before", color="tab:blue")
        ax.hist(w1.ravel(), bins=bins, alpha=0.6, label="after", color="tab:orange")
        ax.set_yscale("log")
        ax.set_title(f"W[{l}] {w0.shape[1]}->{w0.shape[0]}")
        ax.set_xlabel("weight")
    axes[0][0].set_ylabel("synapses")
    axes[0][0].legend()
    return save(fig, path)


def firing_rates(spike_counts: np.ndarray, sizes: list[int], dt: float, path: Path,
                 bins: int = 200) -> Path:  # fmt: skip
    """Mean firing rate (Hz) of each layer over sleep time, averaged in ``bins`` windows."""
    T = spike_counts.shape[0]
    width = max(1, T // bins)
    n = T // width
    fig, ax = subplots(figsize=(7, 3.6))
    for l, size in enumerate(sizes):
        per_bin = spike_counts[: n * width, l].reshape(n, width).sum(1)
        rate = per_bin / (size * width * dt)
        label = "input" if l == 0 else f"layer {l}"
        ax.plot((np.arange(n) + 0.5) * width, rate, label=label)
    ax.set_xlabel("sleep step")
    ax.set_ylabel("mean rate (Hz)")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.legend()
    return save(fig, path)


def raster(spikes: np.ndarray, sizes: list[int], start: int, path: Path) -> Path:
    """Spike raster of a window of steps, layers stacked (input at the bottom)."""
    fig, ax = subplots(figsize=(8, 5))
    t, unit = np.nonzero(spikes)
    ax.scatter(t + start, unit, s=0.5, marker="|", color="k", linewidths=0.5)
    edges = np.cumsum(sizes)
    for e in edges[:-1]:
        ax.axhline(e, color="tab:red", lw=0.5)
    ax.set_xlim(start, start + spikes.shape[0])
    ax.set_ylim(0, edges[-1])
    ax.set_xlabel("sleep step")
    ax.set_ylabel("unit (layers stacked, input at the bottom)")
    return save(fig, path)


CURVES = {
    "gaussian-noise": ("variance", "Gaussian noise variance"),
    "gaussian-blur": ("sigma", "Gaussian blur sigma"),
    "salt-and-pepper": ("fraction", "salt-and-pepper fraction"),
    "white-noise": ("snr_db", "white noise SNR (dB)"),
    "babble": ("snr_db", "babble SNR (dB)"),
    "time-shift": ("ms", "time shift (ms)"),
    "fgsm": ("eps", "FGSM epsilon"),
}


def robustness_curves(results: dict[str, dict], folder: Path) -> list[Path]:
    """Accuracy vs each distortion level / attack epsilon, one figure each, all models on it."""
    paths = []
    for key, (level, label) in CURVES.items():
        runs = {name: r[key] for name, r in results.items() if key in r}
        if not runs:
            continue
        fig, ax = subplots(figsize=(5.2, 3.8))
        for name, curve in runs.items():
            ax.plot(curve[level], curve["accuracy"], marker="o" if len(curve[level]) < 20 else None,
                    ms=3, label=name)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(save(fig, Path(folder) / f"accuracy_vs_{key}.png"))
    return paths
