"""sleepnet: sleep-like unsupervised plasticity for bias-free ReLU networks.

Reproduces Tadros, Krishnan, Ramyaa & Bazhenov (ICLR 2020). Heavy parts
(torch, numba) are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "run_sleep": "sleepnet.sleep_phase",
    "sleep": "sleepnet.sleep_phase",
    "SleepOutput": "sleepnet.sleep_phase",
    "SleepResult": "sleepnet.sleep_phase",
    "SleepConfig": "sleepnet.config",
    "load_config": "sleepnet.config",
    "load_preset": "sleepnet.config",
    "load_model": "sleepnet.models",
    "save_model": "sleepnet.models",
    "build_mlp": "sleepnet.models",
    "PaperDropout": "sleepnet.models",
    "load_dataset": "sleepnet.data",
    "train": "sleepnet.training",
    "evaluate": "sleepnet.evaluation",
    "poisson_spikes": "sleepnet.inputs",
    "SleepnetError": "sleepnet.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sleepnet' has no attribute {name!r}")


__all__ = sorted(_LAZY)
