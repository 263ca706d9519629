"""Shared fixtures: random networks with activity in every layer, tiny trained models, the CLI,
and a check that no test leaves process-wide state changed (``no_leaked_state``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sleepnet.kernels import KernelParams
from sleepnet.state import changed, snapshot


@pytest.fixture(autouse=True)
def no_leaked_state():
    """Fail a test that leaves a process-wide setting changed (``sleepnet.state.snapshot``).

    Compared before and after each test (its fixtures' teardown included): torch and Numba
    thread counts, torch's deterministic-algorithms flag and default dtype, matplotlib's
    backend, whether ``np.random.RandomState`` is numpy's own class, Brian2's code generation
    target, device and default ``dt``, and Optuna's log level, of the libraries already
    imported (the check imports none). The message names each setting, before -> after.
    A leak is reported, not repaired: the next test starts from the changed state.
    """
    before = snapshot()
    yield
    leaked = changed(before, snapshot())
    if leaked:
        pytest.fail("the test left process-wide state changed: " + "; ".join(leaked), pytrace=False)


def random_network(seed: int, sizes=(60, 40, 30, 8), low=-0.05, high=0.25):
    """Weights biased positive so that every layer fires under 10% input activity."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, (sizes[k + 1], sizes[k])) for k in range(len(sizes) - 1)]


def random_spikes(seed: int, steps: int, n: int, p: float = 0.1) -> np.ndarray:
    return np.random.default_rng(seed + 1000).random((steps, n)) < p


def active_params(n_layers: int = 3, **kw) -> KernelParams:
    base = dict(alpha=(1.0,) * n_layers, beta=(1.0, 1.5, 1.2)[:n_layers], inc=0.01, dec=0.005)
    base.update(kw)
    return KernelParams(**base)


@pytest.fixture(scope="session")
def patches_model(tmp_path_factory) -> Path:
    """A trained 100-4 network (the paper's Patches net) saved as a model folder."""
    from sleepnet.workflow import train_to_folder

    out = tmp_path_factory.mktemp("models") / "patches"
    train_to_folder("patches", "paper", 0, out, hidden=(), epochs=3, progress=False)
    return out


@pytest.fixture(scope="session")
def patches_hidden_model(tmp_path_factory) -> Path:
    """A trained 100-32-4 network on Patches, for multi-layer end-to-end tests."""
    from sleepnet.workflow import train_to_folder

    out = tmp_path_factory.mktemp("models") / "patches-hidden"
    train_to_folder("patches", "paper", 0, out, hidden=(32,), epochs=3, progress=False)
    return out


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``sleepnet ARGS`` in a fresh process (this one's environment without ``SLEEPNET_DEBUG``, plus
    ``env``)."""
    env = {k: v for k, v in os.environ.items() if k != "SLEEPNET_DEBUG"} | (env or {})
    return subprocess.run([sys.executable, "-m", "sleepnet", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)  # fmt: skip
