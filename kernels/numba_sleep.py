"""The Numba backend: the whole time loop of a chunk in one compiled function.

Memory layout: the weights of all layers live in one flat float64 buffer,
each ``W[l]`` stored *transposed*, row ``j`` holding the ``n_{l+1}`` outgoing
weights of pre-synaptic unit ``j``. Both hot loops then walk memory in order:

- propagation is event-driven: for each pre-synaptic unit that spiked, its
  contiguous row is added to the impulse vector (a loop the compiler
  vectorises); units that did not spike cost nothing;
- the input layer's spikes are known in advance, so its propagation into
  layer 1 is computed for ``BLOCK`` steps at once, tile by tile of ``W[0]``,
  which is then read once per block instead of once per step. When a layer-1
  unit fires, its incoming weights change, and its precomputed impulses for
  the rest of the block are recomputed from the new weights, in the same
  summation order, so the result is the step-by-step one, bit for bit;
- plasticity walks the rows ``j`` once per layer and step and updates, in
  each, the entries of the post-synaptic units that fired.

Each post-synaptic sum is accumulated in ascending pre-synaptic order, as in
the NumPy reference, and every weight update reads its pre-update value.
``g(w) = 2 / (1 + exp(1000 w))`` (``rules.g``) skips the ``exp`` where
``g`` is exactly 2, which gives the same bits.

Parallelism: when a step's plasticity touches at least ``parallel_min``
synapses of a layer (propagation: ``PROPAGATION_FACTOR`` times more), the work
is split over Numba threads by rows (or by post-synaptic units). No sum is
split, so the results are identical for any number of threads
(``tests/test_backends.py``); below the threshold the serial path avoids the
per-step cost of waking threads.

Compiled once and cached on disk (``cache=True``) across processes.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .params import KernelParams
from .simulator import Simulator

#: synaptic updates in one layer and step from which plasticity runs on all threads
#: (about 20 ns each: the threads' wake-up cost is repaid from here on)
PARALLEL_MIN = 20_000
#: propagation adds about 50x more cheaply per synapse, so it needs that much more work;
#: a block of input propagation wakes the threads once for many steps, so it needs less
PROPAGATION_FACTOR = 50
BLOCK_FACTOR = 10
#: steps whose input-layer propagation is computed together (at most), and the tile width
BLOCK = 64
TILE = 256


@njit(inline="always")
def _g(w):
    x = w * 1000.0
    if x <= -40.0:  # exp(x) < 2^-54: 1 + exp(x) rounds to 1, so g is exactly 2
        return 2.0
    return 2.0 / (1.0 + np.exp(x))  # exp overflows to inf for x > 709.78: g = 0 exactly


@njit(inline="always")
def _plastic_row(wt, row, is_pre, post_idx, n_post, inc, dec):
    if is_pre:
        for k in range(n_post):
            p = row + post_idx[k]
            w = wt[p]
            wt[p] = w + inc * _g(w)
    else:
        for k in range(n_post):
            p = row + post_idx[k]
            w = wt[p]
            wt[p] = w - dec * _g(w)


@njit(cache=True, nogil=True)
def _plasticity_serial(wt, base, n_in, n_out, pre_mask, post_idx, n_post, inc, dec):
    for j in range(n_in):
        _plastic_row(wt, base + j * n_out, pre_mask[j], post_idx, n_post, inc, dec)


@njit(cache=True, nogil=True, parallel=True)
def _plasticity_parallel(wt, base, n_in, n_out, pre_mask, post_idx, n_post, inc, dec):
    for j in prange(n_in):
        _plastic_row(wt, base + j * n_out, pre_mask[j], post_idx, n_post, inc, dec)


@njit(inline="always")
def _propagate_block(wt, base, n_out, pre_idx, n_pre, a, impulse, lo, hi):
    # slices indexed by the loop counter: no negative-index wraparound, so the loops vectorise
    out = impulse[lo:hi]
    m = hi - lo
    for i in range(m):
        out[i] = 0.0
    for k in range(n_pre):
        row = base + pre_idx[k] * n_out
        seg = wt[row + lo : row + hi]
        for i in range(m):
            out[i] += seg[i]
    for i in range(m):
        out[i] = a * out[i]


@njit(cache=True, nogil=True)
def _propagate_serial(wt, base, n_out, pre_idx, n_pre, a, impulse):
    if n_pre == 0:
        impulse[:n_out] = 0.0
        return
    _propagate_block(wt, base, n_out, pre_idx, n_pre, a, impulse, 0, n_out)


@njit(cache=True, nogil=True, parallel=True)
def _propagate_parallel(wt, base, n_out, pre_idx, n_pre, a, impulse):
    for b in prange((n_out + TILE - 1) // TILE):
        lo = b * TILE
        _propagate_block(wt, base, n_out, pre_idx, n_pre, a, impulse, lo, min(n_out, lo + TILE))


@njit(inline="always")
def _input_tile(wt, n_out, in_idx, in_ptr, n_block, a, imp, lo, hi):
    for s in range(n_block):
        first = in_ptr[s]
        _propagate_block(wt, 0, n_out, in_idx[first:], in_ptr[s + 1] - first, a,
                         imp[s * n_out : (s + 1) * n_out], lo, hi)  # fmt: skip


@njit(cache=True, nogil=True)
def _input_block_serial(wt, n_out, in_idx, in_ptr, n_block, a, imp):
    for lo in range(0, n_out, TILE):
        _input_tile(wt, n_out, in_idx, in_ptr, n_block, a, imp, lo, min(n_out, lo + TILE))


@njit(cache=True, nogil=True, parallel=True)
def _input_block_parallel(wt, n_out, in_idx, in_ptr, n_block, a, imp):
    for b in prange((n_out + TILE - 1) // TILE):
        lo = b * TILE
        _input_tile(wt, n_out, in_idx, in_ptr, n_block, a, imp, lo, min(n_out, lo + TILE))


@njit(inline="always")
def _refresh_unit(wt, n_out, i, in_idx, in_ptr, s_from, n_block, a, imp):
    """Recompute unit i's precomputed impulses after its incoming weights changed."""
    for s in range(s_from, n_block):
        acc = 0.0
        for k in range(in_ptr[s], in_ptr[s + 1]):
            acc += wt[in_idx[k] * n_out + i]
        imp[s * n_out + i] = a * acc


@njit(cache=True, nogil=True)
def _simulate_chunk(
    wt, w_off, sizes, v, v_off, u_off, spikes_in, alpha, thresh,
    decay, inc, dec, w_inh, dc, counts, unit_counts, raster, raster_t0, parallel_min,
    block_max, adaptive,
):  # fmt: skip
    """Simulate one chunk of steps (see the module docstring for the layout and the blocking).

    Longer than this project's ~60-line limit on purpose: the whole time loop is
    one compiled function so that no step pays a call into Numba's dispatcher,
    and the per-layer state (index buffers, the block's precomputed impulses)
    stays in locals the compiler keeps in registers. The pieces that can be
    named are the inlined helpers above.
    """
    n_steps = spikes_in.shape[0]
    n_layers = sizes.shape[0] - 1
    n0 = sizes[0]
    n1 = sizes[1]
    n_max = 0
    for l in range(n_layers + 1):
        n_max = max(n_max, sizes[l])
    pre_idx = np.empty(n_max, np.int64)
    post_idx = np.empty(n_max, np.int64)
    pre_mask = np.zeros(n_max, np.bool_)
    impulse = np.empty(n_max, np.float64)
    in_idx = np.empty(block_max * n0, np.int64)
    in_ptr = np.zeros(block_max + 1, np.int64)
    imp1 = np.empty(block_max * n1, np.float64)
    n_raster = raster.shape[0]
    use_parallel = parallel_min > 0
    block = block_max

    b0 = 0
    while b0 < n_steps:
        n_block = min(block, n_steps - b0)
        fired1 = 0
        # the input spikes of the whole block are known: propagate them into layer 1 at once,
        # reading each tile of W[0] once per block instead of once per step
        p = 0
        for s in range(n_block):
            in_ptr[s] = p
            for j in range(n0):
                if spikes_in[b0 + s, j]:
                    in_idx[p] = j
                    p += 1
        in_ptr[n_block] = p
        if use_parallel and p * n1 >= parallel_min * BLOCK_FACTOR:
            _input_block_parallel(wt, n1, in_idx, in_ptr, n_block, alpha[0], imp1)
        else:
            _input_block_serial(wt, n1, in_idx, in_ptr, n_block, alpha[0], imp1)

        for s in range(n_block):
            t = b0 + s
            r = t - raster_t0
            rec = 0 <= r < n_raster
            n_pre = 0
            for k in range(in_ptr[s], in_ptr[s + 1]):
                j = in_idx[k]
                pre_mask[j] = True
                pre_idx[n_pre] = j
                n_pre += 1
                unit_counts[j] += 1
            if rec:
                for j in range(n0):
                    raster[r, j] = pre_mask[j]
            counts[t, 0] = n_pre

            for l in range(n_layers):
                n_in = sizes[l]
                n_out = sizes[l + 1]
                base = w_off[l]
                vb = v_off[l]
                if l == 0:
                    cur = imp1[s * n1 : (s + 1) * n1]  # precomputed; not read again after step s
                else:
                    cur = impulse[:n_out]
                    if use_parallel and n_pre * n_out >= parallel_min * PROPAGATION_FACTOR:
                        _propagate_parallel(wt, base, n_out, pre_idx, n_pre, alpha[l], impulse)
                    else:
                        _propagate_serial(wt, base, n_out, pre_idx, n_pre, alpha[l], impulse)
                if w_inh != 0.0:
                    total = 0.0
                    for i in range(n_out):
                        total += cur[i]
                    shift = (total / n_out) * w_inh
                    for i in range(n_out):
                        cur[i] -= shift
                v_l = v[vb : vb + n_out]
                for i in range(n_out):  # vectorised: no branch in this loop
                    v_l[i] = decay * v_l[i] + cur[i]
                if l == n_layers - 1 and dc != 0.0:
                    for i in range(n_out):
                        v_l[i] = v_l[i] + dc
                th = thresh[l]
                n_post = 0
                for i in range(n_out):
                    if v_l[i] >= th:
                        post_idx[n_post] = i
                        n_post += 1
                if n_post > 0:
                    if use_parallel and n_post * n_in >= parallel_min:
                        _plasticity_parallel(wt, base, n_in, n_out, pre_mask, post_idx, n_post, inc, dec)
                    else:
                        _plasticity_serial(wt, base, n_in, n_out, pre_mask, post_idx, n_post, inc, dec)
                    if l == 0:  # the rows that changed invalidate their precomputed impulses
                        fired1 += n_post
                        for k in range(n_post):
                            _refresh_unit(wt, n1, post_idx[k], in_idx, in_ptr, s + 1, n_block,
                                          alpha[0], imp1)  # fmt: skip
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
            for i in range(sizes[n_layers]):
                pre_mask[i] = False
        b0 += n_block
        if adaptive:  # every layer-1 spike costs a refresh of the rest of the block
            block = block_max if 2 * fired1 < n_block else 1


class NumbaSimulator(Simulator):
    """The compiled backend.

    ``parallel_min=0`` keeps every step serial. ``block`` is the number of steps
    whose input propagation is computed together; ``adaptive`` falls back to
    one step at a time while layer 1 fires more than once every two steps (each
    such spike costs a recomputation of the rest of the block). Neither setting
    changes the results.
    """

    name = "numba"

    def __init__(self, weights: list[np.ndarray], params: KernelParams,
                 parallel_min: int = PARALLEL_MIN, block: int = BLOCK,
                 adaptive: bool = True) -> None:  # fmt: skip
        super().__init__(weights, params)
        self._shapes = [w.shape for w in weights]
        self._wt = np.concatenate([np.asarray(w, dtype=np.float64).T.ravel() for w in weights])
        self._w_off = np.concatenate([[0], np.cumsum([w.size for w in weights])]).astype(np.int64)
        self._v = np.zeros(int(self.sizes[1:].sum()), dtype=np.float64)
        self._v_off = np.concatenate([[0], np.cumsum(self.sizes[1:])]).astype(np.int64)
        self._no_raster = np.zeros((0, self.n_units), dtype=np.bool_)
        self.parallel_min = int(parallel_min) if numba.get_num_threads() > 1 else 0
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.block, self.adaptive = int(block), bool(adaptive)

    def prepare(self):
        """See ``Simulator.prepare``; compiles (or loads) the kernel by running a chunk of zero steps."""
        n_layers = len(self.sizes)
        self.run(np.zeros((0, self.sizes[0]), dtype=np.bool_), np.zeros((0, n_layers), dtype=np.int64),
                 np.zeros(self.n_units, dtype=np.int64))  # fmt: skip

    def run(self, spikes, counts, unit_counts, raster=None, raster_t0=0):
        """See ``Simulator.run``; one call of the compiled ``_simulate_chunk`` over the whole chunk."""
        self.check_chunk(spikes, counts)
        p = self.params
        _simulate_chunk(
            self._wt, self._w_off, self.sizes, self._v, self._v_off, self.unit_offsets,
            np.ascontiguousarray(spikes), p.alphas, p.thresholds,
            float(p.decay), float(p.inc), float(p.dec), float(p.w_inh), float(p.dc),
            counts, unit_counts, self._no_raster if raster is None else raster, int(raster_t0),
            self.parallel_min, self.block, self.adaptive,
        )  # fmt: skip

    def weights(self):
        """See ``Simulator.weights``; unpacked from the kernel's flat transposed store."""
        return [
            self._wt[a:b].reshape(shape[1], shape[0]).T.copy()
            for a, b, shape in zip(self._w_off[:-1], self._w_off[1:], self._shapes)
        ]
