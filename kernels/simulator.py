"""The interface every sleep backend implements over a chunk of input spikes.

A simulator owns the float64 weights and membranes of one sleep run and
advances them, chunk after chunk, over given input spikes. Between chunks the
state carries over exactly, so a run split into chunks equals the run in one
piece (``tests/test_backends.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .params import KernelParams


class Simulator(ABC):
    """Base class: validates shapes, holds parameters; subclasses hold the state."""

    name = "abstract"

    def __init__(self, weights: list[np.ndarray], params: KernelParams) -> None:
        if len(weights) == 0:
            raise ValueError("a network needs at least one weight matrix")
        if len(weights) != len(params.beta):
            raise ValueError(
                f"the network has {len(weights)} weight layers but beta has "
                f"{len(params.beta)} entries"
            )
        sizes = [weights[0].shape[1]]
        for k, w in enumerate(weights):
            if w.ndim != 2 or w.shape[1] != sizes[-1]:
                raise ValueError(
                    f"weight {k} has shape {w.shape}; expected (n_out, {sizes[-1]})"
                )
            sizes.append(w.shape[0])
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.params = params
        self.unit_offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def n_units(self) -> int:
        """Units in all layers, input layer included."""
        return int(self.unit_offsets[-1])

    def check_chunk(self, spikes: np.ndarray, counts: np.ndarray) -> None:
        """``ValueError`` unless ``spikes`` is bool ``(t, n_0)`` and ``counts`` has shape ``(t, L+1)``."""
        if spikes.ndim != 2 or spikes.shape[1] != self.sizes[0]:
            raise ValueError(
                f"input spikes have shape {spikes.shape}; expected (T, {self.sizes[0]})"
            )
        if spikes.dtype != np.bool_:
            raise ValueError(f"input spikes must be a bool array, got {spikes.dtype}")
        if counts.shape != (spikes.shape[0], len(self.sizes)):
            expected = (spikes.shape[0], len(self.sizes))
            raise ValueError(f"counts has shape {counts.shape}, expected {expected}")

    def prepare(self) -> None:  # noqa: B027 (a hook: most backends have nothing to prepare)
        """Compile (or load from the cache) whatever ``run`` needs, without simulating."""

    @abstractmethod
    def run(
        self,
        spikes: np.ndarray,
        counts: np.ndarray,
        unit_counts: np.ndarray,
        raster: np.ndarray | None = None,
        raster_t0: int = 0,
    ) -> None:
        """Advance the state over ``spikes`` (bool, ``(t, n_0)``).

        Writes the spikes per step per layer into ``counts`` (int64, ``(t, L+1)``,
        column 0 the input layer), adds each unit's spikes to ``unit_counts``
        (int64, ``(n_units,)``, layers concatenated), and, where given, writes
        the spikes of chunk step ``raster_t0 + r`` into ``raster[r]`` (bool,
        ``(R, n_units)``) for the steps that fall inside the chunk.
        """

    @abstractmethod
    def weights(self) -> list[np.ndarray]:
        """Copies of the current float64 weights, ``W[l]`` of shape ``(n_{l+1}, n_l)``."""
