"""The sleep network written in Brian2's own language, and a backend that runs it.

Per non-input layer ``l + 1`` (a ``NeuronGroup``) and weight layer ``l`` (a
``Synapses`` object), within one time step and in this order (all objects sit
in the ``synapses`` slot of the schedule, sequenced by ``order``, so that each
layer sees the spikes the layer below emitted in the *same* step)::

    pre pathway   I_post += w ; lastpre = t_in_timesteps      (spiking pre units only)
    collect       imp = alpha * I ; I = 0
    [inhibition]  total = sum(imp) over the layer (summed variable into a 1-unit group)
    integrate     imp = imp - (total / n) * w_inh ; v = decay * v ; v = v + imp ; v = v + dc
    threshold     v >= threshold * beta
    post pathway  g = 2 / (1 + exp(1000 w))
                  w = w + [pre spiked now] * inc * g - [pre silent now] * dec * g
    reset         v = 0

The input layer is a ``SpikeGeneratorGroup`` fed with the given spikes. Every
statement is a two-operand operation, as in the Numba kernel, so the floating
point results agree to rounding (``tests/test_brian2_backend.py``).

``to_brian2`` hands a ready ``Network`` to users for their own experiments;
it sets Brian2's ``defaultclock.dt`` to the network's ``dt``, which its
``network.run`` needs. The backend (``Brian2Simulator``) changes Brian2's
settings only while it builds and runs a chunk: its code generation target,
device, standalone thread count and ``defaultclock.dt`` are as they were
after every chunk (``sleepnet.state.brian2_kept``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from sleepnet.kernels.params import KernelParams
from sleepnet.kernels.simulator import Simulator
from sleepnet.state import brian2_kept

TARGETS = ("numpy", "cython", "cpp_standalone")

_NEURON_EQS = """
v : 1
I : 1
imp : 1
"""

_COLLECT = "imp = alpha * I\nI = 0"
_INTEGRATE = """
v = decay * v
v = v + imp
v = v + dc
"""
_INHIBIT = """
shift = total_in / n_units
shift = shift * w_inh
imp = imp - shift
"""
_ON_PRE = "I_post += w\nlastpre = t_in_timesteps"
_ON_POST = """
gw = 2 / (1 + exp(w * 1000))
hit = int(lastpre == t_in_timesteps)
w = w + hit * inc * gw - (1 - hit) * dec * gw
"""


@dataclass
class Brian2Sleep:
    """A built Brian2 sleep network and handles to its parts."""

    network: object
    inputs: object  # SpikeGeneratorGroup
    layers: list = field(default_factory=list)  # NeuronGroup per non-input layer
    synapses: list = field(default_factory=list)  # Synapses per weight layer
    monitors: list = field(default_factory=list)  # SpikeMonitor per layer, input first
    sizes: list = field(default_factory=list)
    dt: float = 0.001

    def weights(self) -> list[np.ndarray]:
        """The current weights as ``W[l]`` of shape ``(n_{l+1}, n_l)`` (float64)."""
        out = []
        for S, (n_in, n_out) in zip(self.synapses, zip(self.sizes[:-1], self.sizes[1:])):
            w = np.empty((n_out, n_in))
            w[np.asarray(S.j[:]), np.asarray(S.i[:])] = np.asarray(S.w[:])
            out.append(w)
        return out


def _spike_arrays(spikes: np.ndarray, t0: int, dt: float):
    steps, units = np.nonzero(spikes)
    return units.astype(np.int64), (steps + t0).astype(np.float64) * dt


def build(weights: list[np.ndarray], params: KernelParams, input_spikes: np.ndarray | None = None,
          dt: float = 0.001, record: bool = True) -> Brian2Sleep:  # fmt: skip
    """Build the Brian2 network (not run). ``input_spikes`` is bool ``(T, n_0)``.

    Sets ``defaultclock.dt`` to ``dt``: the network runs on Brian2's default clock."""
    import brian2 as b2

    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    L = len(weights)
    alphas, thresholds = params.alphas, params.thresholds
    b2.defaultclock.dt = dt * b2.second
    indices, times = (np.zeros(0, int), np.zeros(0)) if input_spikes is None else _spike_arrays(
        input_spikes, 0, dt)  # fmt: skip
    inputs = b2.SpikeGeneratorGroup(sizes[0], indices, times * b2.second, when="start", name="input")
    objects = [inputs]
    layers, synapses = [], []
    order = 0
    source = inputs
    for l in range(L):
        n = sizes[l + 1]
        last = l == L - 1
        eqs = _NEURON_EQS + ("total_in : 1 (linked)\n" if params.w_inh != 0 else "")
        ns = {"alpha": alphas[l], "decay": params.decay, "dc": params.dc if last else 0.0,
              "w_inh": params.w_inh, "n_units": float(n), "thr": thresholds[l]}  # fmt: skip
        G = b2.NeuronGroup(n, eqs, threshold="v >= thr", reset="v = 0", namespace=ns,
                           name=f"layer{l + 1}")  # fmt: skip
        S = b2.Synapses(source, G, model="w : 1\nlastpre : integer", on_pre=_ON_PRE, on_post=_ON_POST,
                        namespace={"inc": params.inc, "dec": params.dec}, name=f"W{l}")  # fmt: skip
        n_in = sizes[l]
        S.connect(i=np.repeat(np.arange(n_in), n), j=np.tile(np.arange(n), n_in))  # pre-major
        S.lastpre = -1
        S.w[:] = np.asarray(weights[l], dtype=np.float64).T.ravel()
        S.pre.when, S.pre.order = "synapses", order
        collect = G.run_regularly(_COLLECT, when="synapses", order=order + 1)
        objects += [G, S, collect]
        if params.w_inh != 0:
            agg = b2.NeuronGroup(1, "total : 1", name=f"total{l + 1}")
            A = b2.Synapses(G, agg, model="total_post = imp_pre : 1 (summed)", name=f"sum{l + 1}")
            A.connect()
            A.summed_updaters["total_post"].when = "synapses"
            A.summed_updaters["total_post"].order = order + 2
            G.total_in = b2.linked_var(agg, "total", index=np.zeros(n, dtype=int))
            inhibit = G.run_regularly(_INHIBIT, when="synapses", order=order + 3)
            objects += [agg, A, inhibit]
        integrate = G.run_regularly(_INTEGRATE, when="synapses", order=order + 4)
        G.thresholder["spike"].when, G.thresholder["spike"].order = "synapses", order + 5
        S.post.when, S.post.order = "synapses", order + 6
        G.resetter["spike"].when, G.resetter["spike"].order = "synapses", order + 7
        objects.append(integrate)
        layers.append(G)
        synapses.append(S)
        source = G
        order += 10
    groups = [inputs, *layers]
    monitors = [b2.SpikeMonitor(g, name=f"spikes{k}") for k, g in enumerate(groups)] if record else []
    net = b2.Network(objects + monitors)
    return Brian2Sleep(net, inputs, layers, synapses, monitors, sizes, dt)


def to_brian2(net, params: KernelParams, input_spikes: np.ndarray | None = None, dt: float = 0.001):
    """A ready Brian2 ``Network`` for a ``SpikingNetwork`` (or a list of weight matrices).

    Returns a ``Brian2Sleep`` whose ``.network`` runs with ``network.run(T * dt * second)``;
    ``.layers``, ``.synapses`` (variable ``w``), ``.monitors`` give access to its parts.
    """
    weights = getattr(net, "weights", net)
    return build(list(weights), params, input_spikes, dt)


class Brian2Simulator(Simulator):
    """``run_sleep(..., backend="brian2")``; ``target`` is a Brian2 code generation target."""

    name = "brian2"

    def __init__(self, weights, params, target: str = "cython", dt: float = 0.001) -> None:
        super().__init__(weights, params)
        if target not in TARGETS:
            raise ValueError(f"unknown Brian2 target {target!r}; choose one of {', '.join(TARGETS)}")
        self.target = target
        self.dt = dt
        self._weights0 = [np.array(w, dtype=np.float64) for w in weights]
        self._model: Brian2Sleep | None = None
        self._final: list[np.ndarray] | None = None
        self._t = 0
        self._seen = [0] * len(self.sizes)
        self.wall_time = 0.0  # build, code generation and run, all chunks
        self.run_time = 0.0  # cpp_standalone: the compiled binary's own run time

    def run(self, spikes, counts, unit_counts, raster=None, raster_t0=0):
        """See ``Simulator.run``; builds the Brian2 network on the first chunk, then runs it on.

        Brian2's settings are the caller's again after each chunk; ``cpp_standalone`` takes the whole
        input in one chunk (``ValueError`` on a second one).
        """
        import brian2 as b2
        from brian2.devices.device import reset_device

        self.check_chunk(spikes, counts)
        n_steps = spikes.shape[0]
        start = time.perf_counter()
        if self.target == "cpp_standalone" and self._t:
            raise ValueError("the cpp_standalone target simulates the whole input in one run")
        with brian2_kept():  # target, threads, dt: the caller's again after this chunk
            if self.target == "cpp_standalone":
                build_dir = tempfile.mkdtemp(prefix="sleepnet-brian2-")
                b2.set_device("cpp_standalone", directory=build_dir, build_on_run=True)
                b2.prefs.devices.cpp_standalone.openmp_threads = 0
            else:
                b2.prefs.codegen.target = self.target
            try:
                if self._model is None:
                    b2.start_scope()
                    self._model = build(self._weights0, self.params, None, self.dt)
                b2.defaultclock.dt = self.dt * b2.second  # a later chunk: brian2_kept put it back
                indices, times = _spike_arrays(spikes, self._t, self.dt)
                self._model.inputs.set_spikes(indices, times * b2.second)
                self._model.network.run(n_steps * self.dt * b2.second, namespace={})
                self._record(n_steps, counts, unit_counts, raster, raster_t0)
                self._final = self._model.weights()
                if self.target == "cpp_standalone":
                    self.run_time += float(b2.device._last_run_time)
            finally:
                if self.target == "cpp_standalone":
                    b2.device.reinit()
                    b2.device.activate()
                    reset_device()  # the device active before set_device, with its options
        self.wall_time += time.perf_counter() - start
        self._t += n_steps

    def _record(self, n_steps, counts, unit_counts, raster, raster_t0):
        offsets = self.unit_offsets
        for l, mon in enumerate(self._model.monitors):
            idx = np.asarray(mon.i[:])[self._seen[l] :]
            steps = np.rint(np.asarray(mon.t_[:])[self._seen[l] :] / self.dt).astype(np.int64)
            self._seen[l] += len(idx)
            steps -= self._t
            counts[:, l] = np.bincount(steps, minlength=n_steps)[:n_steps]
            np.add.at(unit_counts, offsets[l] + idx, 1)
            if raster is not None:
                r = steps - raster_t0
                keep = (r >= 0) & (r < raster.shape[0])
                raster[r[keep], offsets[l] + idx[keep]] = True

    def weights(self):
        """See ``Simulator.weights``; the initial weights until a chunk has run."""
        return [w.copy() for w in (self._final if self._final is not None else self._weights0)]
