"""Thread counts of torch and Numba, which share one OpenMP runtime (torch's libgomp).

A Numba parallel kernel sets the OpenMP thread count to Numba's, and with it
torch's: without ``torch_threads_kept`` around the sleep kernel, a process
pinned to 1 torch thread ran torch on 2 after each sleep.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def cores() -> int:
    """The CPU cores this process may run on: its affinity (``taskset``, a cgroup's cpuset) where the
    system reports one, else ``os.cpu_count()``; what "one per core" defaults count. A CPU quota (a
    container's ``--cpus``, a cgroup's ``cpu.max``) is not an affinity and is not seen: there, give
    ``--workers``."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def pin(n: int) -> tuple[int, int]:
    """Torch and Numba on ``n`` threads (Numba at most its ``NUMBA_NUM_THREADS``); the previous counts."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return before


@contextmanager
def pinned(n: int):
    """``pin(n)`` for the block, then the previous counts back."""
    import numba
    import torch

    before = pin(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


@contextmanager
def torch_threads_kept():
    """Torch's thread count as it was before the block (if torch is loaded at all)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(n)
