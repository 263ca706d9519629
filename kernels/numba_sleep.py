"""The Numba backend: the whole time loop of a chunk in one compiled function.

Layout: the weights of all layers live in one flat float64 buffer, each
``W[l]`` row-major with shape ``(n_{l+1}, n_l)`` (torch's layout), so the
plasticity update of a post-synaptic row, the expensive part, streams through
contiguous memory. Propagation is event-driven: for each post-synaptic unit it
sums only the weights of the pre-synaptic units that spiked in this step.

The loop is serial, so results do not depend on the number of Numba threads.
Compiled once and cached on disk (``cache=True``) across processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .params import KernelParams
from .simulator import Simulator


@njit(cache=True, nogil=True)
def _simulate_chunk(
    w, w_off, sizes, v, v_off, u_off, spikes_in, alpha, thresh,
    decay, inc, dec, w_inh, dc, counts, unit_counts, raster, raster_t0,
):  # fmt: skip
    n_steps = spikes_in.shape[0]
    n_layers = sizes.shape[0] - 1
    n_max = 0
    for l in range(n_layers + 1):
        n_max = max(n_max, sizes[l])
    pre_idx = np.empty(n_max, np.int64)
    post_idx = np.empty(n_max, np.int64)
    pre_mask = np.zeros(n_max, np.bool_)
    impulse = np.empty(n_max, np.float64)
    n_raster = raster.shape[0]
    half_scale = 500.0  # 1 / (2 * 0.001), see rules.g

    for t in range(n_steps):
        rec = 0 <= t - raster_t0 < n_raster
        r = t - raster_t0
        n0 = sizes[0]
        n_pre = 0
        for j in range(n0):
            s = spikes_in[t, j]
            pre_mask[j] = s
            if s:
                pre_idx[n_pre] = j
                n_pre += 1
                unit_counts[j] += 1
            if rec:
                raster[r, j] = s
        counts[t, 0] = n_pre

        for l in range(n_layers):
            n_in = sizes[l]
            n_out = sizes[l + 1]
            wb = w_off[l]
            vb = v_off[l]
            a = alpha[l]
            for i in range(n_out):
                acc = 0.0
                row = wb + i * n_in
                for k in range(n_pre):
                    acc += w[row + pre_idx[k]]
                impulse[i] = a * acc
            if w_inh != 0.0:
                total = 0.0
                for i in range(n_out):
                    total += impulse[i]
                shift = (total / n_out) * w_inh
                for i in range(n_out):
                    impulse[i] -= shift
            extra = dc if l == n_layers - 1 else 0.0
            th = thresh[l]
            n_post = 0
            for i in range(n_out):
                vi = decay * v[vb + i] + impulse[i]
                if l == n_layers - 1:
                    vi = vi + extra
                v[vb + i] = vi
                if vi >= th:
                    post_idx[n_post] = i
                    n_post += 1
            # plasticity on the rows of the units that fired; reads pre-update weights
            for k in range(n_post):
                row = wb + post_idx[k] * n_in
                for j in range(n_in):
                    wij = w[row + j]
                    gw = 1.0 - np.tanh(wij * half_scale)
                    if pre_mask[j]:
                        w[row + j] = wij + inc * gw
                    else:
                        w[row + j] = wij - dec * gw
            # reset, record, and hand the spikes to the next layer
            for j in range(n_in):
                pre_mask[j] = False
            ub = u_off[l + 1]
            for k in range(n_post):
                i = post_idx[k]
                v[vb + i] = 0.0
                pre_mask[i] = True
                pre_idx[k] = i
                unit_counts[ub + i] += 1
            if rec:
                for i in range(n_out):
                    raster[r, ub + i] = pre_mask[i]
            n_pre = n_post
            counts[t, l + 1] = n_post


class NumbaSimulator(Simulator):
    name = "numba"

    def __init__(self, weights: list[np.ndarray], params: KernelParams) -> None:
        super().__init__(weights, params)
        self._shapes = [w.shape for w in weights]
        self._w = np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])
        self._w_off = np.concatenate([[0], np.cumsum([w.size for w in weights])]).astype(np.int64)
        self._v = np.zeros(int(self.sizes[1:].sum()), dtype=np.float64)
        self._v_off = np.concatenate([[0], np.cumsum(self.sizes[1:])]).astype(np.int64)
        self._no_raster = np.zeros((0, self.n_units), dtype=np.bool_)

    def run(self, spikes, counts, unit_counts, raster=None, raster_t0=0):
        self.check_chunk(spikes, counts)
        p = self.params
        _simulate_chunk(
            self._w, self._w_off, self.sizes, self._v, self._v_off, self.unit_offsets,
            np.ascontiguousarray(spikes), p.alphas, p.thresholds,
            float(p.decay), float(p.inc), float(p.dec), float(p.w_inh), float(p.dc),
            counts, unit_counts, self._no_raster if raster is None else raster, int(raster_t0),
        )  # fmt: skip

    def weights(self):
        return [
            self._w[a:b].reshape(shape).copy()
            for a, b, shape in zip(self._w_off[:-1], self._w_off[1:], self._shapes)
        ]
