"""Poisson input spikes from uniform draws, fused into one compiled pass (numpy in, numpy out).

Unit ``i`` spikes at step ``t`` when ``u * (1 / (dt * max_rate)) / 2 <= x`` and
``x > 0`` (``docs/algorithm.md`` §3 step 1). Halving is exact in floating
point, so ``u * half_scale <= x`` with ``half_scale = (1 / (dt * max_rate)) / 2``
is the same comparison bit for bit (``tests/test_inputs.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _threshold(u, x, half_scale, out):
    for t in range(u.shape[0]):
        for j in range(u.shape[1]):
            xv = x[t, j]
            out[t, j] = (u[t, j] * half_scale <= xv) and (xv > 0)


def spikes_from_uniform(u: np.ndarray, x: np.ndarray, dt: float, max_rate: float,
                        out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Bool spikes for uniform draws ``u`` and rates ``x`` of the same 2-d shape."""
    if u.shape != x.shape or u.ndim != 2:
        raise ValueError(f"u {u.shape} and x {x.shape} must be 2-d arrays of one shape")
    if out is None:
        out = np.empty(u.shape, dtype=np.bool_)
    _threshold(u, x, (1.0 / (dt * max_rate)) / 2.0, out)
    return out
