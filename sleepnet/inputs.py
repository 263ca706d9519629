"""Sleep input (``docs/algorithm.md`` §3 step 1 and §4): rates per step, then Poisson spikes.

Input unit ``i`` spikes at step ``t`` when ``u * (1 / (dt * max_rate)) / 2 <= x_t[i]``
with ``u ~ U[0, 1)``, i.e. with probability ``min(1, 2 * dt * max_rate * x_t[i])``;
a unit with ``x = 0`` never spikes.

Random draws come from ``numpy.random.Generator(PCG64)`` streams spawned from
the config's ``seed``: one for the spikes, one for the masked-mean windows.
Both consume their streams step by step, so the spikes do not depend on the
chunk size (``tests/test_inputs.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .config import SleepConfig
from .errors import SleepnetError
from .kernels.poisson import spikes_from_uniform

SILENT_PERIOD, SILENT_STEPS = 100, 10


def spike_probability(x: np.ndarray, dt: float, max_rate: float) -> np.ndarray:
    """``P(spike) = min(1, 2 * dt * max_rate * x)`` for rates ``x`` in [0, 1]."""
    return np.minimum(1.0, 2.0 * dt * max_rate * np.asarray(x, dtype=np.float64))


def poisson_spikes(x: np.ndarray, dt: float, max_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Bool spikes of the same shape as ``x``, the reference's comparison written out.

    ``SleepInput`` draws the same ``u`` and makes the same comparison in one
    compiled pass (``sleepnet.kernels.poisson``).
    """
    x = np.asarray(x, dtype=np.float64)
    u = rng.random(x.shape)
    return (u * (1.0 / (dt * max_rate)) / 2.0 <= x) & (x > 0)


def check_input(config: SleepConfig, rows: int, n_inputs: int) -> tuple[int, int] | None:
    """One clear error unless ``config``'s input mode can drive sleep from ``rows`` inputs of
    ``n_inputs`` values each; the image shape of ``masked-mean`` input (else None)."""
    if config.input_mode == "sequential" and config.T > rows and not config.cycle:
        raise SleepnetError(f"sequential input needs T <= {rows} images, got T = {config.T} "
                            "(set cycle = true to wrap around)")  # fmt: skip
    if config.input_mode != "masked-mean":
        return None
    h, w = config.image_shape or _square(n_inputs)
    if h * w != n_inputs or config.window > min(h, w):
        raise SleepnetError(f"masked-mean input: image {h}x{w} and window {config.window} do not fit "
                            f"{n_inputs} inputs")  # fmt: skip
    return h, w


class SleepInput:
    """The rates ``x_t`` of one sleep run and the spikes drawn from them, chunk by chunk."""

    def __init__(self, config: SleepConfig, data: np.ndarray) -> None:
        data = np.asarray(data)
        if data.ndim != 2 or len(data) == 0:
            raise SleepnetError(f"sleep data must be a non-empty (N, n_inputs) array, got {data.shape}")
        if data.min() < 0 or data.max() > 1:
            raise SleepnetError("sleep data must lie in [0, 1] (pixel / 255)")
        self.config = config
        self.n_inputs = data.shape[1]
        shape = check_input(config, len(data), self.n_inputs)
        if config.input_mode == "sequential":
            self.data = data  # rates are read from it as they are (float32 images stay float32)
        else:
            self.mean = data.astype(np.float64).mean(axis=0)
        if shape is not None:
            self.image_shape = shape
        spike_seq, window_seq = np.random.SeedSequence(config.seed).spawn(2)
        self.spike_rng = np.random.Generator(np.random.PCG64(spike_seq))
        self.window_rng = np.random.Generator(np.random.PCG64(window_seq))

    def rates(self, t0: int, t1: int) -> np.ndarray:
        """``x_t`` for steps ``t0 .. t1-1``, shape ``(t1 - t0, n_inputs)``; consumes window draws."""
        n = t1 - t0
        mode = self.config.input_mode
        if mode == "sequential":
            if t1 <= len(self.data):
                return self.data[t0:t1]
            return self.data[np.arange(t0, t1) % len(self.data)]
        if mode == "mean":
            return np.broadcast_to(self.mean, (n, self.n_inputs))
        h, w = self.image_shape
        k = self.config.window
        corner = np.floor(self.window_rng.random((n, 2)) * [h - k + 1, w - k + 1]).astype(np.int64)
        mask = np.zeros((n, h, w), dtype=bool)
        for r, (y, x) in enumerate(corner):
            mask[r, y : y + k, x : x + k] = True
        return np.where(mask.reshape(n, -1), self.mean[None, :], 0.0)

    def spikes(self, t0: int, t1: int) -> np.ndarray:
        """Input spikes for steps ``t0 .. t1-1`` (call with consecutive ranges)."""
        c = self.config
        x = self.rates(t0, t1)
        u = self.spike_rng.random(x.shape)
        s = spikes_from_uniform(u, x, c.dt, c.max_rate)
        if c.silent_gaps:
            s[(np.arange(t0, t1) % SILENT_PERIOD) < SILENT_STEPS] = False
        return s

    def chunks(self, chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(t0, spikes)`` for consecutive chunks covering ``0 .. T-1``."""
        chunk = chunk or self.config.chunk
        for t0 in range(0, self.config.T, chunk):
            t1 = min(self.config.T, t0 + chunk)
            yield t0, self.spikes(t0, t1)


def _square(n: int) -> tuple[int, int]:
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise SleepnetError(f"masked-mean input needs image_shape for {n} non-square inputs")
    return side, side


def input_spikes(config: SleepConfig, data: np.ndarray) -> np.ndarray:
    """All ``T`` steps of input spikes at once, bool ``(T, n_inputs)``, for ``run_sleep``."""
    return SleepInput(config, data).spikes(0, config.T)
