"""Summaries of weights and spikes (JSON-able dicts of plain numbers)."""

from __future__ import annotations

import numpy as np


def excess_kurtosis(x: np.ndarray) -> float:
    """Fisher's excess kurtosis, ``E[(x - mu)^4] / sigma^4 - 3`` (0 for a Gaussian)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    d = x - x.mean()
    var = np.mean(d**2)
    return float(np.mean(d**4) / var**2 - 3.0) if var > 0 else 0.0


def weight_stats(w: np.ndarray) -> dict:
    """Mean, std, min, max and excess kurtosis of all entries of ``w``, as floats."""
    w = np.asarray(w, dtype=np.float64)
    return {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()),
            "max": float(w.max()), "kurtosis": excess_kurtosis(w)}  # fmt: skip


def weight_change_summary(before: list[np.ndarray], after: list[np.ndarray]) -> list[dict]:
    """Per layer: mean |dW|, fraction of synapses changed, statistics before and after."""
    rows = []
    for w0, w1 in zip(before, after):
        d = np.abs(np.asarray(w1, dtype=np.float64) - w0)
        rows.append({
            "mean_abs_change": float(d.mean()),
            "fraction_changed": float(np.count_nonzero(d) / d.size),
            "before": weight_stats(w0),
            "after": weight_stats(w1),
        })  # fmt: skip
    return rows


def spike_summary(spike_counts: np.ndarray, unit_counts: list[np.ndarray], dt: float) -> dict:
    """Per layer (input first): total spikes, mean rate in Hz, fraction of units that ever fired."""
    T = spike_counts.shape[0]
    layers = []
    for l, units in enumerate(unit_counts):
        total = int(spike_counts[:, l].sum())
        layers.append({
            "units": int(units.size),
            "total_spikes": total,
            "mean_rate_hz": total / (units.size * T * dt) if T else 0.0,
            "fraction_active": float(np.count_nonzero(units) / units.size),
            "spikes_per_step": total / T if T else 0.0,
        })  # fmt: skip
    return {"steps": int(T), "layers": layers}


def firing_warnings(spikes: dict) -> list[str]:
    """One line per hidden or output layer in which sleep left most units silent, with what to try.

    ``spikes`` is ``spike_summary``'s record. Most units silent: fewer than half of the layer's units
    fired even once. The rule changes only the weights into neurons that fire (``docs/algorithm.md``
    §3), so the rule leaves a silent unit's incoming weights as they were (``norm_w`` may still rescale
    them after the loop): the most common way a preset fails on a new network. A layer where most
    units fired is not flagged, however few its spikes (each spike moves the unit's whole row). Layer
    ``l``'s threshold is ``threshold * beta[l-1]``, its input gain ``alpha_scale`` times its scale
    factor.
    """
    out = []
    steps = spikes["steps"]
    for l, layer in enumerate(spikes["layers"][1:], 1):
        n, units, active = layer["total_spikes"], layer["units"], layer["fraction_active"]
        if active >= 0.5:
            continue
        fired = round(active * units)
        rule = "so the plasticity rule left the incoming weights of"
        what = (f"never fired in {steps} steps, {rule} all its units unchanged" if n == 0 else
                f"fired {n} times in {steps} steps, {fired} of its units ever, {rule} the other "
                f"{units - fired} unchanged")  # fmt: skip
        out.append(f"sleep left layer {l} ({units} units) mostly silent: it {what}; try `sleepnet tune`, a "
                   f"larger alpha_scale or a smaller beta[{l - 1}]")  # fmt: skip
    return out
