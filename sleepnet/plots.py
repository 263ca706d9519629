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


def _layer_name(l: int, size: int) -> str:
    return f"input ({size})" if l == 0 else f"layer {l} ({size})"


def weight_histograms(before: list[np.ndarray], after: list[np.ndarray], path: Path) -> Path:
    """Per weight layer (a column): the weights before and after sleep as outlines, both visible (top), and
    the changes of the synapses that changed, with the fraction that did (bottom); log counts."""
    n = len(before)
    fig, axes = subplots(2, n, figsize=(4.4 * n, 6.4), squeeze=False)
    for l, (w0, w1) in enumerate(zip(before, after)):
        top, bottom = axes[0][l], axes[1][l]
        lo, hi = min(w0.min(), w1.min()), max(w0.max(), w1.max())
        bins = np.linspace(lo, hi, 80) if hi > lo else 10
        top.hist(w0.ravel(), bins=bins, histtype="step", lw=1.6, label="before", color="tab:blue")
        top.hist(w1.ravel(), bins=bins, histtype="step", lw=1.2, ls="--", label="after", color="tab:orange")
        top.set_yscale("log")
        top.set_title(f"W[{l}]: {w0.shape[1]} -> {w0.shape[0]} units")
        top.set_xlabel("weight (ANN units)")
        top.set_ylabel("synapses")
        top.legend(fontsize=8)
        d = (np.asarray(w1, dtype=np.float64) - w0).ravel()
        changed = d[d != 0]
        if changed.size:
            lo, hi = changed.min(), changed.max()
            pad = max(1e-6 * max(abs(lo), abs(hi)), 1e-12) if hi - lo < 1e-6 * max(abs(lo), abs(hi)) else 0
            bottom.hist(changed, bins=np.linspace(lo - pad, hi + pad, 81), color="tab:green")
            bottom.set_yscale("log")
        else:
            bottom.text(0.5, 0.5, "no synapse changed", ha="center", va="center", transform=bottom.transAxes)
        bottom.set_title(f"change of W[{l}]: {changed.size / d.size:.1%} of {d.size} changed", fontsize=10)
        bottom.set_xlabel("weight after - before (changed synapses only)")
        bottom.set_ylabel("synapses")
    fig.suptitle("weights before and after sleep")
    return save(fig, path)


def firing_rates(spike_counts: np.ndarray, sizes: list[int], dt: float, path: Path,
                 bins: int = 200) -> Path:  # fmt: skip
    """Mean firing rate (Hz) of each layer over the whole sleep, averaged in ``bins`` windows; the legend
    gives each layer's total spikes."""
    T = spike_counts.shape[0]
    width = max(1, T // bins)
    n = T // width
    fig, ax = subplots(figsize=(7, 3.8))
    for l, size in enumerate(sizes):
        per_bin = spike_counts[: n * width, l].reshape(n, width).sum(1)
        rate = per_bin / (size * width * dt)
        ax.plot((np.arange(n) + 0.5) * width, rate,
                label=f"{_layer_name(l, size)}: {int(spike_counts[:, l].sum())} spikes")  # fmt: skip
    ax.set_title(f"mean firing rate per layer over the whole sleep ({T} steps of {dt * 1000:g} ms)")
    ax.set_xlabel("sleep step")
    ax.set_ylabel("mean rate per unit (Hz)")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.legend(fontsize=8)
    return save(fig, path)


def raster(spikes: np.ndarray, sizes: list[int], start: int, path: Path,
           totals: list[int] | None = None) -> Path:  # fmt: skip
    """The recorded spike raster, one panel per layer (named, input at the bottom), each titled with its
    spikes in the window and, from ``totals``, in the whole run; a silent panel says so."""
    edges = np.concatenate([[0], np.cumsum(sizes)])
    n = len(sizes)
    fig, axes = subplots(n, 1, figsize=(8, 1.6 + 1.3 * n), sharex=True, squeeze=False)
    for l in range(n):
        ax = axes[n - 1 - l][0]  # input at the bottom
        block = spikes[:, edges[l] : edges[l + 1]]
        t, unit = np.nonzero(block)
        ax.scatter(t + start, unit, s=0.5, marker="|", color="k", linewidths=0.5)
        whole = f", {totals[l]} in the whole run" if totals is not None else ""
        window = f"steps {start}-{start + len(spikes)}"
        ax.set_title(f"{_layer_name(l, sizes[l])}: {len(t)} spikes in {window}{whole}", fontsize=9)
        if not len(t):
            ax.text(0.5, 0.5, "no spikes in this window", ha="center", va="center", transform=ax.transAxes,
                    color="tab:red")  # fmt: skip
        ax.set_ylim(0, sizes[l])
        ax.set_ylabel("unit")
    axes[-1][0].set_xlim(start, start + spikes.shape[0])
    axes[-1][0].set_xlabel("sleep step")
    fig.suptitle("spike raster of the recorded window (raster_start, raster_steps)")
    return save(fig, path)


def activity(spike_counts: np.ndarray, sizes: list[int], path: Path, bins: int = 400) -> Path:
    """The whole run binned: spikes per bin of each layer, one panel per layer (input at the bottom), so that
    one sees when, if ever, the hidden layers fire."""
    T = spike_counts.shape[0]
    width = max(1, T // bins)
    m = T // width
    n = len(sizes)
    fig, axes = subplots(n, 1, figsize=(8, 1.6 + 1.3 * n), sharex=True, squeeze=False)
    for l in range(n):
        ax = axes[n - 1 - l][0]
        per_bin = spike_counts[: m * width, l].reshape(m, width).sum(1)
        ax.bar(np.arange(m) * width, per_bin, width=width, align="edge", color="k")
        ax.set_title(f"{_layer_name(l, sizes[l])}: {int(spike_counts[:, l].sum())} spikes", fontsize=9)
        if not per_bin.any():
            ax.text(0.5, 0.5, "never fired", ha="center", va="center", transform=ax.transAxes,
                    color="tab:red")  # fmt: skip
        ax.set_ylabel(f"spikes / {width} steps")
    axes[-1][0].set_xlim(0, m * width)
    axes[-1][0].set_xlabel("sleep step")
    fig.suptitle(f"spikes per layer over the whole sleep ({T} steps, bins of {width})")
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
    """Accuracy vs each distortion level / attack epsilon, one figure each, every model on it; the control
    (a model named ``control``) in black beside the others; on the FGSM curve each model's median eps
    marked by a dashed line of its colour; a curve's ``label``, where it has one, names it instead of
    its model's name."""
    paths = []
    for key, (level, label) in CURVES.items():
        runs = {name: r[key] for name, r in results.items() if key in r}
        if not runs:
            continue
        fig, ax = subplots(figsize=(5.6, 4.0))
        order = sorted(runs, key=lambda name: name != "control")  # the control first, in black
        for name in order:
            curve = runs[name]
            style = {"color": "k", "lw": 2.0} if name == "control" else {}
            line, = ax.plot(curve[level], curve["accuracy"], marker="o" if len(curve[level]) < 20 else None,
                            ms=3, label=curve.get("label", name), **style)  # fmt: skip
            if "median_eps" in curve:
                ax.axvline(curve["median_eps"], color=line.get_color(), ls="--", lw=1,
                           label=f"{name}: median eps {curve['median_eps']:.3g}")  # fmt: skip
        ax.set_title(f"test accuracy under {label}")
        _accuracy_axes(ax, label, "test accuracy", legend=8)
        paths.append(save(fig, Path(folder) / f"accuracy_vs_{key}.png"))
    return paths


def _accuracy_axes(ax, xlabel: str, ylabel: str, legend: int) -> None:
    """An accuracy plot's axes: labels, accuracy from 0 to 1, a light grid, the legend at ``legend`` pt."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend)


#: the report's worst-case keys (``worst-NORM.robust@EPS``) and their axis labels
BUDGET_NORMS = {"linf": "L-inf budget", "l2": "L2 budget"}


def robust_at_budgets(agg: dict[str, dict], folder: Path, about: dict[str, str] | None = None) -> list[Path]:
    """Robust accuracy against the budget, one figure per norm (``robust_vs_NORM.png``): per model the
    mean over seeds of the worst case per image (``agg[model]["worst-NORM.robust@EPS"]``, as
    ``report.aggregate`` gives it) with its standard deviation as error bars; the control in black. A
    model without the norm's worst case is left out; a norm no model has, drawn not at all. ``about``:
    per norm, a line on the attacks and images, the figure's subtitle."""
    paths = []
    for norm, label in BUDGET_NORMS.items():
        prefix = f"worst-{norm}.robust@"
        runs = {m: sorted((float(k[len(prefix):]), c) for k, c in keys.items() if k.startswith(prefix))
                for m, keys in agg.items()}  # fmt: skip
        runs = {m: r for m, r in runs.items() if r}
        if not runs:
            continue
        fig, ax = subplots(figsize=(5.6, 4.0))
        for name in sorted(runs, key=lambda name: name != "control"):  # the control first, in black
            eps = [e for e, _ in runs[name]]
            mean = [c["mean"] for _, c in runs[name]]
            std = [c["std"] if np.isfinite(c["std"]) else 0.0 for _, c in runs[name]]
            style = {"color": "k", "lw": 2.0} if name == "control" else {}
            ax.errorbar(eps, mean, yerr=std, marker="o", ms=3, capsize=2, label=name, **style)
        seeds = max(len([v for v in c["values"] if np.isfinite(v)]) for r in runs.values() for _, c in r)
        ax.set_title(f"robust accuracy, worst case per image (mean ± std, {seeds} seed{'s' * (seeds > 1)})"
                     + (f"\n{about[norm]}" if about and norm in about else ""), fontsize=9)  # fmt: skip
        _accuracy_axes(ax, label, "robust accuracy", legend=7)
        paths.append(save(fig, Path(folder) / f"robust_vs_{norm}.png"))
    return paths
