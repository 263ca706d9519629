"""The Numba kernel and the NumPy reference agree on the same input spikes."""

import numpy as np
import pytest

from sleepnet.backends import make_backend as make_simulator
from sleepnet.kernels import KernelParams, normalize_columns
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


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_chunked_run_equals_one_piece(backend):
    weights = random_network(3)
    spikes = random_spikes(3, 350, 60)
    p = active_params(w_inh=0.1)
    one = run_sleep(weights, spikes, alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec,
                    w_inh=p.w_inh, backend=backend, chunk=10_000)
    many = run_sleep(weights, spikes, alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec,
                     w_inh=p.w_inh, backend=backend, chunk=37)
    np.testing.assert_array_equal(one.spike_counts, many.spike_counts)
    for a, b in zip(one.weights, many.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_raster_matches_counts_and_input(backend):
    weights = random_network(4)
    spikes = random_spikes(4, 300, 60)
    p = active_params()
    out = run_sleep(weights, spikes, alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec,
                    backend=backend, chunk=64, raster_start=50, raster_steps=120)
    assert out.raster.shape == (120, sum(out.sizes))
    np.testing.assert_array_equal(out.raster[:, :60], spikes[50:170])
    edges = np.cumsum([0] + out.sizes)
    for l in range(len(out.sizes)):
        per_step = out.raster[:, edges[l] : edges[l + 1]].sum(axis=1)
        np.testing.assert_array_equal(per_step, out.spike_counts[50:170, l])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_hand_worked_single_step(backend):
    """2 inputs -> 1 unit: one step worked out by hand."""
    w = [np.array([[0.6, 0.0]])]
    spikes = np.array([[True, False]])
    out = run_sleep(w, spikes, alpha=[2.0], beta=[1.0], inc=0.1, dec=0.05, threshold=1.0,
                    backend=backend)
    # v = 0.999 * 0 + 2.0 * 0.6 = 1.2 >= 1 -> spike; w0 += 0.1 g(0.6), w1 -= 0.05 g(0)
    g06 = 2 / (1 + np.exp(600.0))
    np.testing.assert_allclose(out.weights[0], [[0.6 + 0.1 * g06, 0.0 - 0.05 * 1.0]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out.spike_counts, [[1, 1]])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_same_step_propagation_without_delay(backend):
    """A spike crosses every layer in the step it enters: no synaptic delay."""
    w = [np.array([[2.0]]), np.array([[2.0]]), np.array([[2.0]])]
    spikes = np.array([[True], [False]])
    out = run_sleep(w, spikes, alpha=[1, 1, 1], beta=[1, 1, 1], inc=0.0, dec=0.0, backend=backend)
    np.testing.assert_array_equal(out.spike_counts, [[1, 1, 1, 1], [0, 0, 0, 0]])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_membrane_decays_and_resets(backend):
    """Sub-threshold input integrates with decay 0.5: 0.6, 0.9, 1.05 -> spike at step 3, reset."""
    w = [np.array([[0.6]])]
    spikes = np.ones((5, 1), dtype=bool)
    out = run_sleep(w, spikes, alpha=[1.0], beta=[1.0], inc=0.0, dec=0.0, decay=0.5, backend=backend)
    np.testing.assert_array_equal(out.spike_counts[:, 1], [0, 0, 1, 0, 0])


def test_kernel_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="beta"):
        make_simulator("numpy", random_network(0), KernelParams(alpha=(1, 1), beta=(1, 1), inc=0, dec=0))
    with pytest.raises(ValueError, match="unknown sleep backend"):
        make_simulator("cuda", random_network(0), active_params())


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
