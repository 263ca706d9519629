"""Global or shared state changed for a block only: each context manager puts back what it found.

sleepnet is a library: calling it must not change a setting its caller relies
on (a model's training flag, numpy's random generator, Brian2's code
generation target, Optuna's log level). Where a step needs such a setting,
it sets it here, for the duration of the step, and restores it on the way
out, on error as well. (Thread counts: ``threads.py``.)

- ``modes_kept(model)``: every module's training flag put back after the block;
  ``eval_mode(model)``: the model, and every submodule, in evaluation mode.
- ``on_device(model, device)``: the model on a torch device, then back where it was.
- ``grads_kept(model)``: the parameters' ``.grad`` put back after the block.
- ``weights_frozen(model)``: no gradient into the parameters during the block (an attack
  needs the input's only), their ``requires_grad`` flags put back after it.
- ``numpy_seeded(seed)``: numpy's global generator seeded, and an unseeded
  ``np.random.RandomState()`` drawing its seed from it (for ART's attacks).
- ``brian2_kept()``: Brian2's code generation target, the standalone OpenMP
  thread count and the default clock's ``dt`` put back after the block.
- ``optuna_quiet()``: Optuna's log level at ERROR and its experimental-feature
  warnings silenced.
- ``interrupts_deferred()``: SIGINT/SIGTERM held until the block ends (Numba's compilation).

Each is a ``contextlib.contextmanager``, so ``@optuna_quiet()`` also works as a decorator.
``snapshot()`` lists those settings (and the thread counts) for the test suite's leak check.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def modes_kept(model) -> Iterator:
    """Every module's own training flag put back after the block (yields ``model``).

    The flags are kept module by module (not just the top one's ``training``), so a model
    with some submodules in training mode and some not comes back exactly as it was.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, was in flags:
            m.training = was


@contextmanager
def eval_mode(model) -> Iterator:
    """``model`` in evaluation mode for the block; then every module's own flag as before (``modes_kept``)."""
    with modes_kept(model):
        model.eval()
        yield model


@contextmanager
def on_device(model, device) -> Iterator:
    """``model`` on ``device`` (a name or a ``torch.device``) for the block, then back where it was.

    Yields the resolved ``torch.device``; ``None`` means where the model already is. A model
    already there is not touched.
    """
    from .devices import model_device, resolve_device

    home = model_device(model)
    device = home if device is None else resolve_device(device)
    if home == device:
        yield device
        return
    try:
        model.to(device)
        yield device
    finally:
        model.to(home)


@contextmanager
def grads_kept(model) -> Iterator:
    """Every parameter's ``.grad`` as it was before the block (``None`` stays ``None``).

    Some of ART's attacks call ``backward()`` on the model's loss, which leaves gradients in the
    weights' ``.grad``; a caller that then steps an optimizer without zeroing them first would
    step along them. Yields ``model``.
    """
    kept = [(q, None if q.grad is None else q.grad.detach().clone()) for q in model.parameters()]
    try:
        yield model
    finally:
        for q, g in kept:
            q.grad = g


@contextmanager
def weights_frozen(model) -> Iterator:
    """Every parameter's ``requires_grad`` off for the block, then as it was. Yields ``model``.

    An attack differentiates with respect to the input only; with the weights frozen a
    ``backward()`` (torchattacks' FAB, ART's attacks) no longer also computes the weights'
    gradients: the same input gradient, bit for bit, for less work (FAB-T 1.35x faster on the
    paper network). ``torch.autograd.grad`` with the input as its only target skips that work
    anyway.
    """
    kept = [(q, q.requires_grad) for q in model.parameters()]
    try:
        for q, _ in kept:
            q.requires_grad_(False)
        yield model
    finally:
        for q, flag in kept:
            q.requires_grad_(flag)


class _SeededRandomState(np.random.RandomState):
    """``RandomState()`` seeded from numpy's global generator (itself seeded) when given no seed."""

    def __init__(self, seed=None):
        super().__init__(np.random.randint(2**31) if seed is None else seed)


#: every seed sleepnet takes lies in ``0 .. SEED_LIMIT - 1``: numpy's legacy ``np.random.seed``
#: (``numpy_seeded``) takes no larger one
SEED_LIMIT = 2**32


def is_seed(value) -> bool:
    """Whether ``value`` is a seed sleepnet takes: an integer (not a bool) in ``0 .. SEED_LIMIT - 1``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT


@contextmanager
def numpy_seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded with ``seed``, and ``np.random.RandomState`` patched, for the block.

    Why: ART's decision-based attacks draw from numpy's global generator, and their starting
    points from a fresh, unseeded ``np.random.RandomState()`` that no seed of ours reaches.
    Inside the block that class is replaced by one that takes its seed from the (seeded) global
    generator, so a seed fixes every draw. On the way out, error or not, ``np.random.RandomState``
    is the original class again and the global generator is in the state the block found it in:
    the caller's own draws do not depend on whether an attack ran.
    """
    original = np.random.RandomState
    state = np.random.get_state()
    np.random.seed(seed)
    np.random.RandomState = _SeededRandomState
    try:
        yield
    finally:
        np.random.RandomState = original
        np.random.set_state(state)


@contextmanager
def torch_rng_kept() -> Iterator[None]:
    """torch's CPU generator, and that of every CUDA device already in use, as they were afterwards
    (libraries such as torchattacks reseed them; ``torch.manual_seed`` reseeds them all)."""
    import torch

    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        yield


@contextmanager
def brian2_kept() -> Iterator[None]:
    """Brian2's ``prefs.codegen.target``, ``prefs.devices.cpp_standalone.openmp_threads`` and
    ``defaultclock.dt`` (of the device active at the end) as they were before the block.

    A block that switches Brian2's device must switch it back itself (``reset_device``),
    before this restores the default clock.
    """
    import brian2 as b2

    prefs = b2.prefs
    target = prefs.codegen.target
    threads = prefs.devices.cpp_standalone.openmp_threads
    dt = b2.defaultclock.dt
    try:
        yield
    finally:
        prefs.codegen.target = target
        prefs.devices.cpp_standalone.openmp_threads = threads
        b2.defaultclock.dt = dt


@contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna's verbosity at ERROR and its ``ExperimentalWarning`` ignored, for the block only.

    The tuner prints its own line per trial; Optuna's INFO line per trial and its warnings about
    the (experimental) heartbeat options would repeat it.
    """
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def snapshot() -> dict[str, object]:
    """The process-wide settings sleepnet promises to leave alone, of the libraries already imported.

    Imports nothing: a library not yet imported has no entry. The test suite compares this
    before and after every test (``tests/conftest.py``).
    """
    out: dict[str, object] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch threads"] = torch.get_num_threads()
        out["torch deterministic algorithms"] = torch.are_deterministic_algorithms_enabled()
        out["torch default dtype"] = torch.get_default_dtype()
    numba = sys.modules.get("numba")
    if numba is not None:
        parallel = sys.modules.get("numba.np.ufunc.parallel")
        # before Numba's threading layer starts, asking for the count would start it: then its
        # count is NUMBA_NUM_THREADS, which is what it starts with
        started = parallel is not None and getattr(parallel, "_is_initialized", False)
        out["numba threads"] = numba.get_num_threads() if started else numba.config.NUMBA_NUM_THREADS
    mpl = sys.modules.get("matplotlib")
    if mpl is not None:
        # the raw value: matplotlib.get_backend() would resolve (and so change) an unset backend
        backend = dict.__getitem__(mpl.rcParams, "backend")
        out["matplotlib backend"] = backend if isinstance(backend, str) else "(not chosen yet)"
    out["numpy RandomState is the original class"] = np.random.RandomState is np.random.mtrand.RandomState
    b2 = sys.modules.get("brian2")
    if b2 is not None and hasattr(b2, "prefs"):
        out["brian2 prefs.codegen.target"] = b2.prefs.codegen.target
        out["brian2 device"] = type(b2.get_device()).__name__
        out["brian2 defaultclock.dt"] = float(b2.defaultclock.dt_)
    optuna = sys.modules.get("optuna")
    if optuna is not None and hasattr(optuna, "logging"):
        out["optuna verbosity"] = optuna.logging.get_verbosity()
    return out


def changed(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """``"NAME: BEFORE -> AFTER"`` for each setting of ``before`` that ``after`` differs in."""
    return [f"{k}: {before[k]!r} -> {after[k]!r}" for k in before if k in after and before[k] != after[k]]


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block take effect when it ends, not inside it.

    Why: Numba compiles its kernels through ctypes callbacks, and an exception raised inside
    one (Ctrl-C, or the CLI's SIGTERM handler) is printed and swallowed there: the run then
    went on as if never interrupted. Inside the block the signals are only recorded; on the
    way out the previous handlers are back and the first signal is raised again, so it acts
    as it would have (``KeyboardInterrupt``, or the CLI's unwinding). Outside the main thread,
    where handlers cannot be set, the block does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in kept:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in kept.items():
            signal.signal(s, handler)
    if pending:
        signal.raise_signal(pending[0])
