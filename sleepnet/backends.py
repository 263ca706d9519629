"""The one list of sleep backends, and the factory that builds a simulator from a name.

Every backend implements ``sleepnet.kernels.Simulator`` and gives the same
spikes and, to rounding, the same weights on the same input spikes
(``tests/test_conformance.py``):

- ``numba``: the compiled event-driven kernel (``kernels/numba_sleep.py``), the default;
- ``numpy``: the plain reference every backend is tested against (``kernels/reference.py``);
- ``brian2``: the same model in Brian2's language (``converters/brian2_backend.py``),
  option ``target`` (``cython``, ``numpy``, ``cpp_standalone``);
- ``torch``: float64 tensors on any torch device (``converters/torch_sleep.py``),
  option ``device``.

Backends other than ``numpy`` are imported on first use (compiling Numba's
kernel, or importing Brian2, costs a second or more).
"""

from __future__ import annotations

import numpy as np

from .kernels import KernelParams, Simulator
from .registry import Registry

BACKENDS: Registry[type[Simulator]] = Registry("sleep backend")
BACKENDS.register_lazy("numba", "sleepnet.kernels.numba_sleep:NumbaSimulator")
BACKENDS.register_lazy("numpy", "sleepnet.kernels.reference:NumpySimulator")
BACKENDS.register_lazy("brian2", "sleepnet.converters.brian2_backend:Brian2Simulator")
BACKENDS.register_lazy("torch", "sleepnet.converters.torch_sleep:TorchSimulator")

#: the backend used where none is named
DEFAULT = "numba"


def make_backend(name: str, weights: list[np.ndarray], params: KernelParams, **options) -> Simulator:
    """A fresh simulator of backend ``name`` over copies of ``weights`` (float64).

    ``options`` go to the backend's constructor (``target`` for brian2, ``device`` for torch). Torch
    keeps its thread count: a constructor that runs a Numba kernel resets the OpenMP runtime they
    share (``threads.py``).
    """
    from .threads import torch_threads_kept

    cls = BACKENDS.get(name)
    with torch_threads_kept():
        return cls([np.asarray(w, dtype=np.float64) for w in weights], params, **options)
