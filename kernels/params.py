"""Kernel-level parameters of one sleep run: plain numbers, already per layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelParams:
    """What every backend needs to simulate sleep on given input spikes.

    Attributes
    ----------
    alpha : per-layer input gain ``alpha_l = alpha_scale * factor_l``, shape ``(L,)``.
    beta : per-layer threshold scale, shape ``(L,)``; a unit of layer ``l+1`` fires
        when its membrane reaches ``threshold * beta_l``.
    inc, dec : potentiation and depression rates of the plasticity rule.
    threshold : base firing threshold (1.0 in the paper).
    decay : per-step membrane decay factor (0.999 in the paper).
    w_inh : lateral inhibition, ``I <- I - mean(I) * w_inh``.
    dc : constant current added to the last layer's membrane every step.
    """

    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    inc: float
    dec: float
    threshold: float = 1.0
    decay: float = 0.999
    w_inh: float = 0.0
    dc: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", tuple(float(a) for a in np.atleast_1d(self.alpha)))
        object.__setattr__(self, "beta", tuple(float(b) for b in np.atleast_1d(self.beta)))
        if len(self.alpha) != len(self.beta):
            raise ValueError(
                f"alpha has {len(self.alpha)} entries but beta has {len(self.beta)}; "
                "both need one per weight layer"
            )

    @property
    def thresholds(self) -> np.ndarray:
        """Firing threshold of each non-input layer, ``threshold * beta_l``."""
        return self.threshold * np.asarray(self.beta, dtype=np.float64)

    @property
    def alphas(self) -> np.ndarray:
        """The per-layer input gains ``alpha_l`` as a float64 array, shape ``(L,)``."""
        return np.asarray(self.alpha, dtype=np.float64)
