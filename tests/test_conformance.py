"""Every registered sleep backend against the NumPy reference: same spikes, weights, records, errors.

The suite is parametrised over ``sleepnet.backends.BACKENDS``: a new backend
joins it by registering, and must state here the options it runs with and how
far its weights may drift from the reference's (float64 rounding: the same
operations summed in another order).
"""

import numpy as np
import pytest

from sleepnet.backends import BACKENDS, make_backend
from sleepnet.kernels import KernelParams
from sleepnet.sleep_phase import run_sleep
from tests.conftest import active_params, random_network, random_spikes

#: per backend: constructor options for these tests, and the largest weight difference allowed
#: against the reference after a few hundred active steps
SETUP = {
    "numpy": ({}, 0.0),
    "numba": ({}, 1e-12),
    "torch": ({"device": "cpu"}, 1e-12),
    "brian2": ({"target": "numpy"}, 1e-9),
}
NAMES = BACKENDS.names()
CASES = {
    "plain": {},
    "w_inh": {"w_inh": 0.3},
    "dc": {"dc": 0.05},
    "w_inh+dc+decay": {"w_inh": 0.2, "dc": 0.02, "decay": 0.99},
}


def _run(backend, weights, spikes, params, **kw):
    args = dict(alpha=params.alpha, beta=params.beta, inc=params.inc, dec=params.dec,
                threshold=params.threshold, decay=params.decay, w_inh=params.w_inh, dc=params.dc)
    return run_sleep(weights, spikes, backend=backend, backend_options=SETUP[backend][0], **args, **kw)


def test_every_registered_backend_is_in_this_suite():
    assert set(NAMES) == set(SETUP)
    assert {"numpy", "numba", "brian2", "torch"} <= set(NAMES)


@pytest.mark.parametrize("backend", NAMES)
@pytest.mark.parametrize("case", CASES)
def test_same_spikes_and_weights_as_reference(backend, case):
    weights = random_network(0)
    spikes = random_spikes(0, 300, 60)
    params = active_params(**CASES[case])
    ref = _run("numpy", weights, spikes, params)
    out = _run(backend, weights, spikes, params)
    assert (ref.spike_counts.sum(axis=0) > 50).all(), ref.spike_counts.sum(axis=0)  # every layer fired
    np.testing.assert_array_equal(out.spike_counts, ref.spike_counts)
    np.testing.assert_array_equal(out.unit_counts, ref.unit_counts)
    assert max(np.abs(a - b).max() for a, b in zip(out.weights, ref.weights)) <= SETUP[backend][1]
    assert max(np.abs(a - w).max() for a, w in zip(out.weights, weights)) > 0.01  # plasticity happened


@pytest.mark.parametrize("seed", [1, 2])
def test_torch_equals_numba_to_1e_12(seed):
    weights = random_network(seed)
    spikes = random_spikes(seed, 500, 60)
    params = active_params(w_inh=0.1)
    a, b = _run("numba", weights, spikes, params), _run("torch", weights, spikes, params)
    np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
    assert max(np.abs(x - y).max() for x, y in zip(a.weights, b.weights)) <= 1e-12


def test_torch_dense_and_sparse_plasticity_give_the_same_bits():
    weights = random_network(3)
    spikes = random_spikes(3, 200, 60)
    params = active_params(dc=0.01)
    kw = dict(alpha=params.alpha, beta=params.beta, inc=params.inc, dec=params.dec, dc=params.dc)
    sparse, dense = (run_sleep(weights, spikes, backend="torch", backend_options={"dense": d}, **kw)
                     for d in (False, True))  # fmt: skip
    assert (sparse.spike_counts.sum(axis=0) > 50).all()
    np.testing.assert_array_equal(dense.spike_counts, sparse.spike_counts)
    for a, b in zip(dense.weights, sparse.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", NAMES)
def test_same_record(backend):
    weights = random_network(4)
    spikes = random_spikes(4, 250, 60)
    ref = _run("numpy", weights, spikes, active_params(), raster_start=40, raster_steps=120, chunk=64)
    out = _run(backend, weights, spikes, active_params(), raster_start=40, raster_steps=120, chunk=64)
    assert out.backend == backend and out.sizes == ref.sizes == [60, 40, 30, 8]
    assert out.steps == 250 and out.spike_counts.dtype == np.int64 and out.unit_counts.dtype == np.int64
    assert out.raster.shape == (120, 138)
    np.testing.assert_array_equal(out.raster, ref.raster)
    np.testing.assert_array_equal(out.raster[:, :60], spikes[40:160])
    edges = np.cumsum([0] + out.sizes)
    for l in range(len(out.sizes)):
        per_step = out.raster[:, edges[l] : edges[l + 1]].sum(axis=1)
        np.testing.assert_array_equal(per_step, out.spike_counts[40:160, l])
    assert all(w.dtype == np.float64 and w.shape == r.shape for w, r in zip(out.weights, ref.weights))


@pytest.mark.parametrize("backend", NAMES)
def test_chunked_run_equals_one_piece(backend):
    weights = random_network(3)
    spikes = random_spikes(3, 200, 60)
    params = active_params(w_inh=0.1)
    one = _run(backend, weights, spikes, params, chunk=10_000)
    many = _run(backend, weights, spikes, params, chunk=37)
    np.testing.assert_array_equal(one.spike_counts, many.spike_counts)
    for a, b in zip(one.weights, many.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", NAMES)
def test_hand_worked_single_step(backend):
    """2 inputs -> 1 unit: v = 2.0 * 0.6 = 1.2 >= 1 fires; w0 += 0.1 g(0.6), w1 -= 0.05 g(0)."""
    spikes = np.array([[True, False]])
    kw = dict(alpha=[2.0], beta=[1.0], inc=0.1, dec=0.05, threshold=1.0)
    out = run_sleep([np.array([[0.6, 0.0]])], spikes, backend=backend,
                    backend_options=SETUP[backend][0], **kw)  # fmt: skip
    g06 = 2 / (1 + np.exp(600.0))
    np.testing.assert_allclose(out.weights[0], [[0.6 + 0.1 * g06, -0.05]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out.spike_counts, [[1, 1]])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # g(2.0) = 0 exactly
@pytest.mark.parametrize("backend", NAMES)
def test_same_step_propagation_and_decay(backend):
    """A spike crosses every layer in the step it enters; a sub-threshold input integrates with decay."""
    opts = SETUP[backend][0]
    w = [np.array([[2.0]])] * 3
    out = run_sleep(w, np.array([[True], [False]]), alpha=[1, 1, 1], beta=[1, 1, 1], inc=0.0, dec=0.0,
                    backend=backend, backend_options=opts)  # fmt: skip
    np.testing.assert_array_equal(out.spike_counts, [[1, 1, 1, 1], [0, 0, 0, 0]])
    out = run_sleep([np.array([[0.6]])], np.ones((5, 1), dtype=bool), alpha=[1.0], beta=[1.0], inc=0.0,
                    dec=0.0, decay=0.5, backend=backend, backend_options=opts)  # fmt: skip
    np.testing.assert_array_equal(out.spike_counts[:, 1], [0, 0, 1, 0, 0])  # 0.6, 0.9, 1.05: fire, reset


@pytest.mark.parametrize("backend", NAMES)
def test_same_errors_for_the_same_bad_input(backend):
    opts = SETUP[backend][0]
    weights = random_network(0)
    with pytest.raises(ValueError, match="beta has 2 entries"):
        make_backend(backend, weights, KernelParams(alpha=(1, 1), beta=(1, 1), inc=0, dec=0), **opts)
    with pytest.raises(ValueError, match="expected \\(n_out, 40\\)"):
        make_backend(backend, [weights[0], weights[2]], active_params(2), **opts)
    sim = make_backend(backend, weights, active_params(), **opts)
    counts = np.zeros((5, 4), dtype=np.int64)
    units = np.zeros(sim.n_units, dtype=np.int64)
    with pytest.raises(ValueError, match="expected \\(T, 60\\)"):
        sim.run(np.zeros((5, 59), dtype=bool), counts, units)
    with pytest.raises(ValueError, match="must be a bool array"):
        sim.run(np.zeros((5, 60)), counts, units)
    with pytest.raises(ValueError, match="counts has shape"):
        sim.run(np.zeros((5, 60), dtype=bool), np.zeros((4, 4), dtype=np.int64), units)
    with pytest.raises(ValueError, match="input_spikes must be a 2-d bool array"):
        run_sleep(weights, np.zeros((5, 60), dtype=np.uint8), alpha=(1,) * 3, beta=(1,) * 3, inc=0,
                  dec=0, backend=backend, backend_options=opts)  # fmt: skip


def test_unknown_backend_names_the_known_ones():
    known = "\\(known: numba, numpy, brian2, torch"
    with pytest.raises(ValueError, match="unknown sleep backend 'cuda' " + known):
        make_backend("cuda", random_network(0), active_params())
