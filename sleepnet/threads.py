"""Thread counts of torch and Numba, which share one OpenMP runtime (torch's libgomp).

A Numba parallel kernel sets the OpenMP thread count to Numba's, and with it
torch's: without ``torch_threads_kept`` around the sleep kernel, a process
pinned to 1 torch thread ran torch on 2 after each sleep.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path


def cores() -> int:
    """The CPU cores this process may run on: its affinity (``taskset``, a cgroup's cpuset) where the
    system reports one, else ``os.cpu_count()``, and at most its CPU quota rounded up (a container's
    ``--cpus``: ``cpu_quota``); what "one per core" defaults count."""
    try:
        n = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        n = os.cpu_count() or 1
    quota = cpu_quota()
    return n if quota is None else max(1, min(n, math.ceil(quota)))


def cpu_quota(root: Path = Path("/sys/fs/cgroup"), cgroups: Path = Path("/proc/self/cgroup")) -> float | None:
    """This process's CPU quota in cores, or None where it has none or none can be read: the smallest
    over its cgroup and those of the cgroup's ancestors visible under ``root`` (in a container, from
    its own root down) of cgroup v2's ``cpu.max`` (``QUOTA PERIOD``, ``max`` for none) and cgroup v1's
    ``cpu.cfs_quota_us / cpu.cfs_period_us`` (-1 for none). A v1 cpu controller mounted elsewhere is
    not seen."""
    try:
        lines = cgroups.read_text().splitlines()
    except (OSError, ValueError):  # none, or a cgroup name that is not UTF-8
        return None
    found = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2: one hierarchy, mounted at root (or root/unified in a hybrid)
            files = [(d, "cpu.max", None) for d in (root, root / "unified")]
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own hierarchy
            files = [(root / d, "cpu.cfs_quota_us", "cpu.cfs_period_us") for d in ("cpu", controllers)]
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base, quota_file, period_file in files:
            for depth in range(len(parts), -1, -1):  # the cgroup, then each ancestor up to the root
                folder = base.joinpath(*parts[:depth])
                found.append(_read_quota(folder / quota_file, period_file and folder / period_file))
    quotas = [q for q in found if q is not None]
    return min(quotas) if quotas else None


def _read_quota(quota_file: Path, period_file: Path | None) -> float | None:
    """One cgroup's quota in cores (``cpu_quota``); None where it has none or it does not parse."""
    try:
        if period_file is None:  # v2: "QUOTA PERIOD" in one file
            quota, period = quota_file.read_text().split()
        else:
            quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


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
