"""The plain NumPy reference of the sleep loop: slow, short and obviously correct.

Every other backend is tested against this file. It follows
``docs/algorithm.md`` §3 line by line; see ``Simulator.run`` for the outputs.
"""

from __future__ import annotations

import numpy as np

from .params import KernelParams
from .rules import g
from .simulator import Simulator


class NumpySimulator(Simulator):
    """The NumPy reference backend: ``docs/algorithm.md`` §3 step by step, float64 (module docstring)."""

    name = "numpy"

    def __init__(self, weights: list[np.ndarray], params: KernelParams) -> None:
        super().__init__(weights, params)
        self.w = [np.array(w, dtype=np.float64, copy=True) for w in weights]
        self.v = [np.zeros(w.shape[0], dtype=np.float64) for w in self.w]

    def run(self, spikes, counts, unit_counts, raster=None, raster_t0=0):
        """See ``Simulator.run``; one step at a time, each layer in turn within the step."""
        self.check_chunk(spikes, counts)
        p = self.params
        alpha, thresh = p.alphas, p.thresholds
        last = len(self.w) - 1
        offs = self.unit_offsets
        for t in range(spikes.shape[0]):
            s = spikes[t]
            layer_spikes = [s]
            for l, w in enumerate(self.w):
                impulse = alpha[l] * (w @ s.astype(np.float64))
                if p.w_inh != 0.0:
                    impulse = impulse - impulse.mean() * p.w_inh
                v = p.decay * self.v[l] + impulse
                if l == last:
                    v = v + p.dc
                fired = v >= thresh[l]
                if fired.any():
                    rows = w[fired]
                    gw = g(rows)
                    w[fired] = np.where(s[None, :], rows + p.inc * gw, rows - p.dec * gw)
                v[fired] = 0.0
                self.v[l] = v
                s = fired
                layer_spikes.append(s)
            for l, sl in enumerate(layer_spikes):
                counts[t, l] = np.count_nonzero(sl)
                unit_counts[offs[l] : offs[l + 1]] += sl
            r = t - raster_t0
            if raster is not None and 0 <= r < raster.shape[0]:
                raster[r] = np.concatenate(layer_spikes)

    def weights(self):
        """See ``Simulator.weights``."""
        return [w.copy() for w in self.w]
