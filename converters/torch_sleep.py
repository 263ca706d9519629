"""The torch backend: the sleep loop on float64 tensors, on any torch device.

The same algorithm as the NumPy reference (``kernels/reference.py``,
``docs/algorithm.md`` §3), step by step, each layer in turn within the step::

    impulse = alpha_l * (W_l @ s_l)                 s_l: the layer below's spikes (0/1)
    [inhibition] impulse = impulse - (sum(impulse) / n) * w_inh
    v = decay * v + impulse ; v = v + dc            (dc on the last layer only)
    fired = v >= threshold * beta_l
    W_l[fired, pre fired]  += inc * g(W)  ;  W_l[fired, pre silent] -= dec * g(W)
    v[fired] = 0 ; s_{l+1} = fired

with ``g(w) = 2 / (1 + exp(1000 w))`` (``kernels/rules.py``). Everything is
float64, so on the CPU the weights equal the Numba kernel's to rounding
(<= 1e-12 after hundreds of steps) and the spikes are identical
(``tests/test_conformance.py``): the impulse is a matrix-vector product,
summed in BLAS's order rather than the kernel's ascending one, and ``exp`` may
differ by an ulp.

Two ways to apply plasticity, with the same results bit for bit:

- ``dense=False`` (the default on the CPU): gather the rows of the units that
  fired, update them, scatter them back; cheap when few units fire, but
  asking which units fired waits for the device;
- ``dense=True`` (the default on a GPU): update every row through a mask,
  which keeps the whole step on the device without a host round trip.

Spike counts, per-unit counts and the raster are accumulated on the device and
copied to the host once per chunk.
"""

from __future__ import annotations

import numpy as np
import torch

from sleepnet.errors import SleepnetError
from sleepnet.kernels.params import KernelParams
from sleepnet.kernels.rules import G_SCALE
from sleepnet.kernels.simulator import Simulator


def _g(w: torch.Tensor) -> torch.Tensor:
    return 2.0 / (1.0 + torch.exp(w * (1.0 / G_SCALE)))


class TorchSimulator(Simulator):
    """``run_sleep(..., backend="torch", backend_options={"device": "cuda"})``.

    Parameters
    ----------
    weights, params : as every backend.
    device : a torch device or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``);
        MPS has no float64 and is refused.
    dense : plasticity through a mask over all rows (see the module docstring);
        ``None`` chooses ``True`` on a GPU and ``False`` on the CPU.
    """

    name = "torch"

    def __init__(self, weights: list[np.ndarray], params: KernelParams, device="cpu",
                 dense: bool | None = None) -> None:  # fmt: skip
        super().__init__(weights, params)
        from sleepnet.devices import resolve_device

        self.device = resolve_device(device)
        if self.device.type == "mps":
            raise SleepnetError("the torch sleep backend needs float64, which MPS does not have")
        self.dense = self.device.type != "cpu" if dense is None else bool(dense)
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device)  # noqa: E731
        self.w = [as_t(w).clone() for w in weights]
        self.v = [torch.zeros(w.shape[0], dtype=torch.float64, device=self.device) for w in self.w]
        self._alpha = [float(a) for a in params.alphas]
        self._thresh = [float(t) for t in params.thresholds]

    def run(self, spikes, counts, unit_counts, raster=None, raster_t0=0):
        """See ``Simulator.run``; counts and raster are gathered on the device, copied once per chunk."""
        self.check_chunk(spikes, counts)
        n_steps = spikes.shape[0]
        if n_steps == 0:
            return
        dev = self.device
        s_in = torch.from_numpy(np.ascontiguousarray(spikes)).to(dev)
        x_in = s_in.to(torch.float64)
        n_layers = len(self.w)
        counts_d = torch.zeros((n_steps, n_layers + 1), dtype=torch.int64, device=dev)
        counts_d[:, 0] = s_in.sum(dim=1)
        units_d = torch.zeros(self.n_units, dtype=torch.int64, device=dev)
        offs = [int(o) for o in self.unit_offsets]
        units_d[offs[0] : offs[1]] = s_in.sum(dim=0)
        lo, hi = max(0, raster_t0), min(n_steps, raster_t0 + (raster.shape[0] if raster is not None else 0))
        raster_d = torch.zeros((max(0, hi - lo), self.n_units), dtype=torch.bool, device=dev)
        if hi > lo:
            raster_d[:, offs[0] : offs[1]] = s_in[lo:hi]
        for t in range(n_steps):
            s_bool, s = s_in[t], x_in[t]
            for l in range(n_layers):
                fired = self._layer_step(l, s_bool, s)
                counts_d[t, l + 1] = fired.sum()
                units_d[offs[l + 1] : offs[l + 2]] += fired
                if lo <= t < hi:
                    raster_d[t - lo, offs[l + 1] : offs[l + 2]] = fired
                s_bool, s = fired, fired.to(torch.float64)
        counts[:] = counts_d.cpu().numpy()
        unit_counts += units_d.cpu().numpy()
        if hi > lo:
            raster[lo - raster_t0 : hi - raster_t0] = raster_d.cpu().numpy()

    def _layer_step(self, l: int, pre: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One layer's update within a step; returns the bool spikes of its units."""
        p = self.params
        w = self.w[l]
        impulse = self._alpha[l] * torch.mv(w, x)
        if p.w_inh != 0.0:
            impulse = impulse - (impulse.sum() / impulse.shape[0]) * p.w_inh
        v = p.decay * self.v[l] + impulse
        if l == len(self.w) - 1 and p.dc != 0.0:
            v = v + p.dc
        fired = v >= self._thresh[l]
        if self.dense:
            gw = _g(w)
            new = torch.where(pre[None, :], w + p.inc * gw, w - p.dec * gw)
            self.w[l] = torch.where(fired[:, None], new, w)
        else:
            rows = torch.nonzero(fired).flatten()
            if rows.numel():
                sub = w.index_select(0, rows)
                gw = _g(sub)
                w.index_copy_(0, rows, torch.where(pre[None, :], sub + p.inc * gw, sub - p.dec * gw))
        self.v[l] = torch.where(fired, torch.zeros_like(v), v)
        return fired

    def weights(self):
        """See ``Simulator.weights``; copied to the host as numpy."""
        return [w.detach().cpu().numpy().copy() for w in self.w]
