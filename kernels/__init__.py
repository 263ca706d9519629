"""sleepnet.kernels: the numerical core of sleep. NumPy in, NumPy out; never imports torch.

- ``reference.py``: the plain NumPy loop every backend is tested against;
- ``numba_sleep.py``: the compiled, event-driven kernel (the default backend);
- ``rules.py``: the plasticity rule ``g`` and ``normW``; ``params.py``: ``KernelParams``;
- ``simulator.py``: the ``Simulator`` interface every backend implements.

The list of backends (these two, Brian2 and torch) is ``sleepnet.backends.BACKENDS``.
"""

from __future__ import annotations

from .params import KernelParams
from .reference import NumpySimulator
from .rules import G_SCALE, g, g_logistic, normalize_columns
from .simulator import Simulator

__all__ = [
    "G_SCALE",
    "KernelParams",
    "NumpySimulator",
    "Simulator",
    "g",
    "g_logistic",
    "normalize_columns",
]
