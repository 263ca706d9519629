"""Numba-specific checks: more seeds against the NumPy reference, normW, blocking and threads.

What every backend must satisfy (same spikes, weights, records, errors) is `test_conformance.py`.
"""

import numpy as np
import pytest

from sleepnet.kernels import normalize_columns
from sleepnet.sleep_phase import run_sleep
from tests.conftest import active_params, random_network, random_spikes

CASES = {
    "plain": {},
    "w_inh": {"w_inh": 0.3},
    "dc": {"dc": 0.05},
    "w_inh+dc+decay": {"w_inh": 0.2, "dc": 0.02, "decay": 0.99},
}


def _run_both(weights, spikes, params, **kw):
    args = dict(alpha=params.alpha, beta=params.beta, inc=params.inc, dec=params.dec,
                threshold=params.threshold, decay=params.decay, w_inh=params.w_inh, dc=params.dc)
    return [run_sleep(weights, spikes, backend=b, **args, **kw) for b in ("numpy", "numba")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_equals_numpy_reference(case, seed):
    weights = random_network(seed)
    spikes = random_spikes(seed, 400, 60)
    ref, fast = _run_both(weights, spikes, active_params(**CASES[case]))
    # every layer was active, so the comparison means something
    assert (ref.spike_counts.sum(axis=0) > 50).all(), ref.spike_counts.sum(axis=0)
    np.testing.assert_array_equal(ref.spike_counts, fast.spike_counts)
    np.testing.assert_array_equal(ref.unit_counts, fast.unit_counts)
    max_dw = max(np.abs(a - b).max() for a, b in zip(ref.weights, fast.weights))
    assert max_dw <= 1e-12
    moved = max(np.abs(a - w).max() for a, w in zip(ref.weights, weights))
    assert moved > 0.01  # plasticity really happened


def test_normw_after_both_backends_agrees():
    weights = random_network(5)
    ref, fast = _run_both(weights, random_spikes(5, 300, 60), active_params())
    for a, b, w0 in zip(ref.weights, fast.weights, weights):
        na, nb = normalize_columns(a, w0), normalize_columns(b, w0)
        assert np.abs(na - nb).max() <= 1e-12
        np.testing.assert_allclose(np.ptp(na, axis=0), np.ptp(w0, axis=0), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 7])
def test_numba_blocking_and_threads_do_not_change_results(seed):
    """Blocked input propagation (with its refreshes) and the parallel paths give the same bits."""
    import numba

    from sleepnet.kernels.numba_sleep import NumbaSimulator

    weights = random_network(seed)
    spikes = random_spikes(seed, 300, 60)
    params = active_params(w_inh=0.1)
    ref = run_sleep(weights, spikes, backend="numpy", alpha=params.alpha, beta=params.beta,
                    inc=params.inc, dec=params.dec, w_inh=params.w_inh)
    assert ref.spike_counts[:, 1].sum() > 100  # layer 1 fires: blocks need refreshing
    results = []
    previous = numba.get_num_threads()
    for threads, kw in [(1, dict(block=1, adaptive=False)), (1, dict(block=64, adaptive=False)),
                        (1, dict(block=13, adaptive=True)),
                        (2, dict(block=64, adaptive=False, parallel_min=1))]:
        numba.set_num_threads(threads)
        try:
            sim = NumbaSimulator(weights, params, **kw)
            counts = np.zeros((300, 4), dtype=np.int64)
            sim.run(spikes, counts, np.zeros(sim.n_units, dtype=np.int64))
        finally:
            numba.set_num_threads(previous)  # the count this test found
        results.append((counts, sim.weights()))
    for counts, w in results:
        np.testing.assert_array_equal(counts, ref.spike_counts)
        assert max(np.abs(a - b).max() for a, b in zip(w, ref.weights)) <= 1e-12
        for a, b in zip(w, results[0][1]):
            np.testing.assert_array_equal(a, b)
