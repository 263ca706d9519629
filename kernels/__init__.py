"""sleepnet.kernels: the numerical core of sleep. NumPy in, NumPy out; never imports torch.

Backends (``make_simulator(name, ...)``):

- ``"numba"``: the compiled, event-driven kernel (``numba_sleep.py``), the default;
- ``"numpy"``: the plain reference (``reference.py``) every backend is tested against.
"""

from __future__ import annotations

import numpy as np

from .params import KernelParams
from .reference import NumpySimulator
from .rules import g, g_logistic, normalize_columns
from .simulator import Simulator


def _numba():
    from .numba_sleep import NumbaSimulator  # imported lazily: compiling costs a second

    return NumbaSimulator


_BACKENDS = {"numpy": lambda: NumpySimulator, "numba": _numba}
BACKENDS = tuple(_BACKENDS)


def make_simulator(backend: str, weights: list[np.ndarray], params: KernelParams) -> Simulator:
    """A fresh simulator of ``backend`` over copies of ``weights`` (float64)."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return _BACKENDS[backend]()(weights, params)


__all__ = [
    "BACKENDS",
    "KernelParams",
    "Simulator",
    "g",
    "g_logistic",
    "make_simulator",
    "normalize_columns",
]
