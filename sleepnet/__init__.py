"""sleepnet: sleep-like unsupervised plasticity for bias-free ReLU networks.

Reproduces Tadros, Krishnan, Ramyaa & Bazhenov (ICLR 2020). Heavy parts
(torch, numba) are imported on first use.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

#: ``SLEEPNET_PORTABLE=1``: the CPU kernels an AVX2 machine uses, on every x86-64 machine with AVX2, meant to
#: give a seed the same bits on AVX2 and AVX-512 machines alike; on an AMD and an Intel machine it did not
#: (README, "Determinism": they agree in the last digits, not to the bit). Libraries read these when they
#: load: effective when sleepnet is imported before numpy and torch (always, for the command line).
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
                "ONEDNN_MAX_CPU_ISA": "AVX2"}
if _os.environ.get("SLEEPNET_PORTABLE") == "1":
    for _key, _value in PORTABLE_ENV.items():
        _os.environ.setdefault(_key, _value)

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
