"""Torch devices from what a user types: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.

Every part of sleepnet that runs torch (training, scale factors, distortions,
attacks, defences, evaluation, the torch sleep backend) takes a ``device``;
``resolve_device`` turns the CLI's ``--device`` into a ``torch.device`` and
says in one line why a device cannot be used, before any work is done.
"""

from __future__ import annotations

import re

from .errors import SleepnetError

#: what ``--device`` accepts
DEVICE_HELP = "cpu, cuda, cuda:N, mps or auto (the first GPU if there is one, else cpu)"


def resolve_device(spec=None):
    """A ``torch.device`` for ``spec`` (a string, a ``torch.device`` or ``None`` for cpu).

    ``auto`` picks ``cuda`` if available, else ``mps``, else ``cpu``. A device
    that this machine does not have raises ``SleepnetError``. ``cuda`` comes back with
    its index (``cuda:0``), as a model's parameters report it.
    """
    import torch

    if spec is None:
        return torch.device("cpu")
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return resolve_device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps(:\d+)?|cuda(:\d+)?", text):
        raise SleepnetError(f"unknown device {spec!r} (choose {DEVICE_HELP})")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SleepnetError(f"device {spec!r}: this torch build or machine has no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SleepnetError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise SleepnetError(f"device {spec!r}: MPS is not available on this machine")
    if device.type == "cuda":
        cuda_deterministic_env()  # before any cuBLAS handle of ours exists
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    return device


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def model_device(model):
    """The device of ``model``'s first parameter (cpu for a model without parameters)."""
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cuda_deterministic_env() -> None:
    """Let ``torch.use_deterministic_algorithms`` run cuBLAS (it refuses without this variable).

    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when it creates its handle; a value
    the user set is kept. This is the one environment variable sleepnet sets.
    """
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
