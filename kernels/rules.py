"""The plasticity rule and the post-sleep weight normalisation (numpy in, numpy out).

Equations (``docs/algorithm.md`` §3)::

    g(w) = 2 * (1 - 1 / (1 + exp(-w / 0.001)))  ==  2 / (1 + exp(w / 0.001))  ==  1 - tanh(500 w)

    post unit i fired, pre unit j fired:   W[i, j] += inc * g(W[i, j])
    post unit i fired, pre unit j silent:  W[i, j] -= dec * g(W[i, j])

All backends compute the middle form: one ``exp`` and one division, about 4x
cheaper than ``tanh`` in a compiled loop, and without the cancellation of
``1 - tanh`` or ``1 - 1 / (...)`` where ``g`` is small. The three forms are the
same function (``tests/test_rules.py``). ``exp`` overflows to ``inf`` for
``w > 0.709``, which gives the correct limit ``g = 0``.
"""

from __future__ import annotations

import numpy as np

#: the weight scale of the rule's sigmoid, ``0.001`` in the reference code
G_SCALE = 0.001


def g(w: np.ndarray | float) -> np.ndarray | float:
    """Weight dependence of the plasticity rule, ``2 / (1 + exp(w / 0.001))``."""
    w = np.asarray(w, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        return 2.0 / (1.0 + np.exp(w * (1.0 / G_SCALE)))


def g_logistic(w: np.ndarray | float) -> np.ndarray:
    """The rule exactly as the reference writes it, ``2 * (1 - 1 / (1 + exp(-w / 0.001)))``."""
    w = np.asarray(w, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 2.0 * (1.0 - 1.0 / (1.0 + np.exp(-w / G_SCALE)))


def normalize_columns(w_new: np.ndarray, w_old: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``normW``: rescale each pre-synaptic column of ``w_new`` to the range it had before sleep.

    ``W[:, j] = gamma * W[:, j] / (max_i W[i, j] - min_i W[i, j]) * (max_i W_old[i, j] - min_i W_old[i, j])``

    The reference writes this with MATLAB's right-division, which computes a
    least-squares rank-1 product instead; this is the per-column scaling it
    intends. A column whose slept range is zero is left unchanged.
    """
    rng_new = w_new.max(axis=0) - w_new.min(axis=0)
    rng_old = w_old.max(axis=0) - w_old.min(axis=0)
    scale = np.ones_like(rng_new)
    ok = rng_new > 0
    scale[ok] = gamma * rng_old[ok] / rng_new[ok]
    return w_new * scale[None, :]
