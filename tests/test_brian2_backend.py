"""The Brian2 model agrees with the Numba kernel on the same input spikes."""

import numpy as np
import pytest

from sleepnet.converters.brian2_backend import to_brian2
from sleepnet.sleep_phase import run_sleep
from sleepnet.state import brian2_kept, snapshot
from tests.conftest import active_params, random_network, random_spikes

CASES = {"plain": {}, "w_inh": {"w_inh": 0.3}, "dc+decay": {"dc": 0.05, "decay": 0.99}}


def _compare(target, case, steps=300, chunk=4096, seed=0):
    weights = random_network(seed)
    spikes = random_spikes(seed, steps, 60)
    p = active_params(**CASES[case])
    kw = dict(alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec, decay=p.decay, w_inh=p.w_inh, dc=p.dc)
    fast = run_sleep(weights, spikes, backend="numba", **kw)
    b2 = run_sleep(weights, spikes, backend="brian2", brian2_target=target, chunk=chunk, **kw)
    assert (fast.spike_counts.sum(axis=0) > 50).all()
    np.testing.assert_array_equal(fast.spike_counts, b2.spike_counts)
    np.testing.assert_array_equal(fast.unit_counts, b2.unit_counts)
    assert max(np.abs(a - b).max() for a, b in zip(fast.weights, b2.weights)) <= 1e-9
    return fast, b2


@pytest.mark.parametrize("case", ["plain", "w_inh"])
def test_brian2_cython_target_agrees_with_numba(case):
    _compare("cython", case)


@pytest.mark.long
def test_brian2_cpp_standalone_agrees_with_numba():
    _compare("cpp_standalone", "w_inh", steps=200)


def test_to_brian2_hands_over_a_runnable_network():
    import brian2 as b2

    weights = random_network(3)
    spikes = random_spikes(3, 150, 60)
    p = active_params()
    with brian2_kept():  # this test's target, and the dt to_brian2 sets, for this test only
        b2.prefs.codegen.target = "numpy"
        b2.start_scope()
        model = to_brian2(weights, p, spikes)
        model.network.run(150 * model.dt * b2.second)
    counts = [len(m.i) for m in model.monitors]
    ref = run_sleep(weights, spikes, backend="numba", alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec)
    assert counts == ref.spike_counts.sum(axis=0).tolist()
    for a, b in zip(model.weights(), ref.weights):
        assert np.abs(a - b).max() <= 1e-9


def test_the_brian2_backend_leaves_brian2_settings_as_it_found_them():
    import brian2 as b2

    with brian2_kept():
        b2.prefs.codegen.target = "cython"
        b2.defaultclock.dt = 0.5 * b2.ms
        before = snapshot()
        weights = random_network(4)
        spikes = random_spikes(4, 120, 60)
        p = active_params()
        kw = dict(alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec)
        res = run_sleep(weights, spikes, backend="brian2", brian2_target="numpy", chunk=50, **kw)  # 3 chunks
        ref = run_sleep(weights, spikes, backend="numba", **kw)
        after = snapshot()
        assert b2.prefs.codegen.target == "cython"
        assert float(b2.defaultclock.dt_) == 0.0005
    # every chunk ran at the sleep dt (1 ms), not at the caller's 0.5 ms put back between chunks
    assert res.spike_counts.sum() > 50
    np.testing.assert_array_equal(res.spike_counts, ref.spike_counts)
    assert after["brian2 prefs.codegen.target"] == before["brian2 prefs.codegen.target"] == "cython"
    assert after["brian2 defaultclock.dt"] == before["brian2 defaultclock.dt"] == 0.0005
    assert after["brian2 device"] == before["brian2 device"] == "RuntimeDevice"
