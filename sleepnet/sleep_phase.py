"""Run sleep: the low-level ``run_sleep`` on given input spikes, and the high-level ``sleep``.

``run_sleep`` is the entry point every backend implements (``docs/design.md``):
weights and input spikes in, new weights and spike counts out. ``sleep`` takes
a trained torch model, a ``SleepConfig`` and the sleep data, converts the
model, draws the Poisson input in chunks (so a long sleep never holds a
``(T, n_0)`` array), runs a backend, applies ``norm_w`` and returns the slept
model with everything the run recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .backends import DEFAULT, make_backend
from .config import SleepConfig
from .errors import SleepnetError
from .kernels import KernelParams, normalize_columns
from .kernels.simulator import Simulator
from .state import interrupts_deferred
from .stats import firing_warnings, spike_summary, weight_change_summary
from .threads import torch_threads_kept


@dataclass
class SleepOutput:
    """What a sleep run produced.

    Attributes
    ----------
    weights : new float64 weights, ``W[l]`` of shape ``(n_{l+1}, n_l)``.
    spike_counts : int64 ``(T, L + 1)``, spikes per step per layer (column 0 = input).
    unit_counts : int64 ``(sum n_l,)``, total spikes of every unit, layers concatenated.
    sizes : layer sizes ``n_0 .. n_L``.
    raster : bool ``(R, sum n_l)`` spikes of steps ``raster_start ..`` (``None`` if not kept).
    snapshots : ``(step, weights)`` pairs taken every ``snapshot_every`` steps (float32).
    wall_time : seconds spent simulating (input generation included).
    compile_time : seconds spent compiling or loading compiled code before that.
    """

    weights: list[np.ndarray]
    spike_counts: np.ndarray
    unit_counts: np.ndarray
    sizes: list[int]
    backend: str
    raster: np.ndarray | None = None
    raster_start: int = 0
    snapshots: list[tuple[int, list[np.ndarray]]] = field(default_factory=list)
    wall_time: float = 0.0
    compile_time: float = 0.0

    @property
    def steps(self) -> int:
        """Number of simulated steps ``T`` (rows of ``spike_counts``)."""
        return int(self.spike_counts.shape[0])

    @property
    def steps_per_second(self) -> float:
        """Simulation speed, steps per second of ``wall_time`` (``inf`` if no time was measured)."""
        return self.steps / self.wall_time if self.wall_time > 0 else float("inf")

    def unit_counts_by_layer(self) -> list[np.ndarray]:
        """``unit_counts`` split per layer (input first): int64 arrays of shapes ``(n_0,) .. (n_L,)``."""
        edges = np.cumsum([0] + list(self.sizes))
        return [self.unit_counts[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _boundaries(T: int, chunk: int, snapshot_every: int) -> list[int]:
    cuts = set(range(0, T, chunk)) | {T}
    if snapshot_every:
        cuts |= set(range(0, T, snapshot_every))
    return sorted(cuts)


def _drive(sim: Simulator, spikes_for: Callable[[int, int], np.ndarray], T: int, *,
           chunk: int, raster_start: int = 0, raster_steps: int = 0, snapshot_every: int = 0,
           progress: bool = False) -> SleepOutput:  # fmt: skip
    """Advance ``sim`` over ``T`` steps, chunk by chunk, recording as asked.

    Torch keeps its thread count: Numba's kernels reset the OpenMP runtime they share.
    """
    with torch_threads_kept():
        return _drive_steps(sim, spikes_for, T, chunk=chunk, raster_start=raster_start,
                            raster_steps=raster_steps, snapshot_every=snapshot_every,
                            progress=progress)  # fmt: skip


def _drive_steps(sim: Simulator, spikes_for: Callable[[int, int], np.ndarray], T: int, *,
                 chunk: int, raster_start: int, raster_steps: int, snapshot_every: int,
                 progress: bool) -> SleepOutput:  # fmt: skip
    n_layers = len(sim.sizes)
    counts = np.zeros((T, n_layers), dtype=np.int64)
    unit_counts = np.zeros(sim.n_units, dtype=np.int64)
    raster_steps = max(0, min(raster_steps, T - raster_start))
    raster = np.zeros((raster_steps, sim.n_units), dtype=bool) if raster_steps else None
    snapshots = []
    start = time.perf_counter()
    with interrupts_deferred():  # a signal inside Numba's compiler would be swallowed there
        sim.prepare()
        _compile_input_kernel()
    compile_time = time.perf_counter() - start
    bar = _progress(T, progress, sim.name)
    start = time.perf_counter()
    cuts = _boundaries(T, chunk, snapshot_every)
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        if snapshot_every and t0 % snapshot_every == 0:
            snapshots.append((t0, [w.astype(np.float32) for w in sim.weights()]))
        sub_raster, offset = None, 0
        if raster is not None and t0 < raster_start + raster_steps and t1 > raster_start:
            lo = max(t0, raster_start)
            sub_raster = raster[lo - raster_start :]
            offset = lo - t0
        sim.run(spikes_for(t0, t1), counts[t0:t1], unit_counts, sub_raster, offset)
        bar.update(t1 - t0)
    wall = time.perf_counter() - start
    bar.close()
    return SleepOutput(
        weights=sim.weights(), spike_counts=counts, unit_counts=unit_counts,
        sizes=[int(n) for n in sim.sizes], backend=sim.name, raster=raster,
        raster_start=raster_start, snapshots=snapshots, wall_time=wall, compile_time=compile_time,
    )  # fmt: skip


def _compile_input_kernel() -> None:
    """Compile (or load) the Poisson input kernel now, rather than at the first chunk."""
    from .kernels.poisson import spikes_from_uniform

    spikes_from_uniform(np.zeros((1, 1)), np.zeros((1, 1)), 0.001, 1.0)


def _progress(total: int, enabled: bool, name: str):
    from .progress import bar

    return bar(f"sleep ({name})", total=total, enabled=enabled, unit="steps")


def run_sleep(weights: list[np.ndarray], input_spikes: np.ndarray, *, alpha, beta, inc: float,
              dec: float, threshold: float = 1.0, decay: float = 0.999, w_inh: float = 0.0,
              dc: float = 0.0, backend: str = DEFAULT, chunk: int = 4096,
              raster_start: int = 0, raster_steps: int = 0, brian2_target: str = "cython",
              backend_options: dict | None = None) -> SleepOutput:  # fmt: skip
    """Simulate sleep on given input spikes (``docs/design.md``); ``weights`` are not modified.

    Parameters
    ----------
    weights : float64 ``W[l]``, shape ``(n_{l+1}, n_l)``.
    input_spikes : bool ``(T, n_0)``, the input layer's spikes step by step.
    alpha, beta : per-layer input gain and threshold scale, length ``L`` each.
    inc, dec, threshold, decay, w_inh, dc : see ``docs/algorithm.md`` §3.
    backend : a name in ``sleepnet.backends.BACKENDS``: ``"numba"`` (default), ``"numpy"``
        (the reference), ``"brian2"`` (code generation target ``brian2_target``: ``"cython"``,
        ``"numpy"`` or ``"cpp_standalone"``, which runs in one piece) or ``"torch"``.
    backend_options : keyword arguments of the backend's simulator, e.g.
        ``{"device": "cuda"}`` for ``torch``.
    """
    input_spikes = np.asarray(input_spikes)
    if input_spikes.dtype != np.bool_ or input_spikes.ndim != 2:
        raise ValueError("input_spikes must be a 2-d bool array (T, n_0)")
    params = KernelParams(alpha=alpha, beta=beta, inc=inc, dec=dec, threshold=threshold,
                          decay=decay, w_inh=w_inh, dc=dc)  # fmt: skip
    options = dict(backend_options or {})
    if backend == "brian2":
        options.setdefault("target", brian2_target)
        if options["target"] == "cpp_standalone":
            chunk = max(1, input_spikes.shape[0])
    sim = make_backend(backend, weights, params, **options)
    return _drive(sim, lambda a, b: input_spikes[a:b], input_spikes.shape[0], chunk=chunk,
                  raster_start=raster_start, raster_steps=raster_steps)  # fmt: skip


@dataclass
class SleepResult:
    """A slept model and the record of its sleep."""

    model: object  # torch.nn.Sequential, the slept ANN (weights rounded once to float32)
    output: SleepOutput
    config: SleepConfig
    conversion: dict
    weights_before: list[np.ndarray]
    weights_after: list[np.ndarray]

    def summary(self) -> dict:
        """JSON-able record: config, conversion, spike and weight statistics, timing."""
        out = self.output
        spikes = spike_summary(out.spike_counts, out.unit_counts_by_layer(), self.config.dt)
        return {
            "config": self.config.to_dict(),
            "backend": out.backend,
            "conversion": self.conversion,
            "spikes": spikes,
            "warnings": firing_warnings(spikes),
            "weight_change": weight_change_summary(self.weights_before, self.weights_after),
            "wall_time_s": out.wall_time,
            "compile_time_s": out.compile_time,
            "steps_per_second": out.steps_per_second,
        }


def sleep(model, config: SleepConfig, data: np.ndarray, *, backend: str = DEFAULT,
          norm_inputs: np.ndarray | None = None, max_activation: np.ndarray | None = None,
          progress: bool = False, backend_options: dict | None = None) -> SleepResult:  # fmt: skip
    """Put a trained bias-free ReLU ``nn.Sequential`` to sleep.

    Parameters
    ----------
    model : the trained ANN (not modified).
    config : a ``SleepConfig`` (``load_preset("mnist-fgsm")``, ``load_config(...)``).
    data : ``(N, n_inputs)`` inputs in [0, 1] that drive sleep (the training set in the paper); for a
        model with an audio front-end, waveforms, whose features (clipped to [0, 1]) are the rates.
    norm_inputs : inputs for the scale factors; ``data`` if not given.
    max_activation : the activation statistic of each layer over ``norm_inputs``,
        if already known (``activation_max`` in a model record); skips that pass.
    backend, backend_options : the sleep backend (``sleepnet.backends``) and its options;
        ``torch`` sleeps on the model's device unless ``{"device": ...}`` says otherwise.

    The scale factors are computed on the model's device; the slept model stays there.
    """
    from .converters import from_torch, to_torch

    net = from_torch(model, data if norm_inputs is None else norm_inputs, config.percentile,
                     max_activation)  # fmt: skip
    if len(config.beta) != len(net.weights):
        raise SleepnetError(
            f"config {config.name!r} has {len(config.beta)} beta values but the network has "
            f"{len(net.weights)} weight layers"
        )
    from .audio.frontend import features
    from .inputs import SleepInput

    data = features(model, data)
    if np.asarray(data).shape[1] != net.sizes[0]:
        raise SleepnetError(f"sleep data has {np.asarray(data).shape[1]} inputs, the network {net.sizes[0]}")

    source = SleepInput(config, data)
    params = KernelParams(
        alpha=config.alpha(net.factors), beta=config.beta, inc=config.inc, dec=config.dec,
        threshold=config.threshold, decay=config.decay, w_inh=config.w_inh, dc=config.dc,
    )  # fmt: skip
    options = dict(backend_options or {})
    if backend == "torch":  # sleep where the model lives unless told otherwise
        from .devices import model_device

        options.setdefault("device", model_device(model))
    sim = make_backend(backend, net.weights, params, **options)
    out = _drive(sim, source.spikes, config.T, chunk=config.chunk,
                 raster_start=config.raster_start, raster_steps=config.raster_steps,
                 snapshot_every=config.snapshot_every, progress=progress)  # fmt: skip
    after = out.weights
    if config.norm_w:
        after = [normalize_columns(w, w0, config.gamma) for w, w0 in zip(after, net.weights)]
        out.weights = after
    conversion = net.summary() | {"alpha": list(params.alpha)}
    from .progress import LOG

    for line in firing_warnings(spike_summary(out.spike_counts, out.unit_counts_by_layer(), config.dt)):
        LOG.warning(line)
    return SleepResult(to_torch(model, after), out, config, conversion, net.weights, after)
