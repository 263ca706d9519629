"""The high-level sleep on a real (small) trained model."""

import numpy as np
import pytest
import torch

from sleepnet.config import load_preset
from sleepnet.data import make_patches
from sleepnet.errors import SleepnetError
from sleepnet.inputs import input_spikes
from sleepnet.models import load_model
from sleepnet.sleep_phase import run_sleep, sleep


@pytest.fixture(scope="module")
def hidden(patches_hidden_model):
    model, meta = load_model(patches_hidden_model)
    return model, make_patches(seed=0)


def _cfg(**kw):
    base = dict(T=3000, beta=(1.0, 1.5), alpha_scale=2.0, max_rate=64.0, seed=11, raster_steps=200)
    base.update(kw)
    return load_preset("patches").replace(**base)


def test_same_seed_same_slept_weights(hidden):
    model, data = hidden
    a = sleep(model, _cfg(), data.x_train)
    b = sleep(model, _cfg(), data.x_train)
    c = sleep(model, _cfg(seed=12), data.x_train)
    for wa, wb in zip(a.weights_after, b.weights_after):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.output.spike_counts, b.output.spike_counts)
    assert any((wa != wc).any() for wa, wc in zip(a.weights_after, c.weights_after))


def test_sleep_changes_weights_where_units_fired_and_records_it(hidden):
    model, data = hidden
    r = sleep(model, _cfg(), data.x_train)
    counts = r.output.spike_counts
    assert counts.shape == (3000, 3)
    assert (counts.sum(axis=0) > 0).all()  # activity in every layer
    fired = r.output.unit_counts_by_layer()[1] > 0
    changed_rows = (np.abs(r.weights_after[0] - r.weights_before[0]).max(axis=1) > 0)
    np.testing.assert_array_equal(changed_rows, fired)  # only rows of units that fired move
    s = r.summary()
    assert s["spikes"]["layers"][1]["total_spikes"] == counts[:, 1].sum()
    # a fired row moves wherever g(w) is not negligible: large positive weights barely move
    assert 0.5 * fired.mean() < s["weight_change"][0]["fraction_changed"] <= fired.mean()
    assert r.output.raster.shape == (200, 100 + 32 + 4)
    # the slept ANN carries the slept weights, rounded once to float32
    np.testing.assert_array_equal(r.model[0].weight.detach().numpy(), r.weights_after[0].astype(np.float32))
    assert not torch.equal(r.model[0].weight, model[0].weight)


def test_high_level_sleep_equals_run_sleep_on_the_same_spikes(hidden):
    model, data = hidden
    cfg = _cfg(T=800, chunk=128)
    r = sleep(model, cfg, data.x_train)
    low = run_sleep(r.weights_before, input_spikes(cfg, data.x_train),
                    alpha=r.conversion["alpha"], beta=cfg.beta, inc=cfg.inc, dec=cfg.dec)
    np.testing.assert_array_equal(low.spike_counts, r.output.spike_counts)
    for a, b in zip(low.weights, r.weights_after):
        np.testing.assert_array_equal(a, b)


def test_norm_w_restores_column_ranges(hidden):
    model, data = hidden
    r = sleep(model, _cfg(norm_w=True, T=1500), data.x_train)
    for w0, w1 in zip(r.weights_before, r.weights_after):
        cols = np.ptp(w1, axis=0) > 0
        np.testing.assert_allclose(np.ptp(w1, axis=0)[cols], np.ptp(w0, axis=0)[cols], rtol=1e-9)


def test_snapshots_every_k_steps(hidden):
    model, data = hidden
    r = sleep(model, _cfg(T=1000, snapshot_every=250), data.x_train)
    assert [t for t, _ in r.output.snapshots] == [0, 250, 500, 750]
    np.testing.assert_array_equal(r.output.snapshots[0][1][0], r.weights_before[0].astype(np.float32))


def test_beta_must_match_the_number_of_layers(hidden):
    model, data = hidden
    with pytest.raises(SleepnetError, match="2 weight layers"):
        sleep(model, _cfg(beta=(1.0, 1.0, 1.0)), data.x_train)


def test_patches_preset_on_the_paper_toy_network(patches_model):
    model, meta = load_model(patches_model)
    data = make_patches(seed=0)
    r = sleep(model, load_preset("patches").replace(T=5000), data.x_train)
    layers = r.summary()["spikes"]["layers"]
    assert layers[1]["total_spikes"] > 0
    assert r.summary()["weight_change"][0]["mean_abs_change"] > 0


def test_recorded_activation_maxima_give_the_same_sleep(patches_hidden_model):
    from sleepnet.workflow import cached_maxima

    model, meta = load_model(patches_hidden_model)
    data = make_patches(seed=0)
    cached = cached_maxima(meta, data, _cfg())
    assert cached is not None and len(cached) == 2
    a = sleep(model, _cfg(T=600), data.x_train)
    b = sleep(model, _cfg(T=600), data.x_train, max_activation=cached)
    for wa, wb in zip(a.weights_after, b.weights_after):
        np.testing.assert_array_equal(wa, wb)
    assert cached_maxima(meta, data, _cfg(percentile=99.0)) is None  # another statistic: recomputed


def test_sleep_leaves_torch_on_its_thread_count(hidden):
    # Numba's OpenMP threads share torch's libgomp: sleep used to put torch back on Numba's
    # thread count, so a process pinned to 1 thread trained on 2 after sleeping
    model, data = hidden
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = sleep(model, _cfg(T=200), data.x_train)
        assert torch.get_num_threads() == 1
        cfg = _cfg(T=200)
        run_sleep(r.weights_before, input_spikes(cfg, data.x_train), alpha=r.conversion["alpha"],
                  beta=cfg.beta, inc=cfg.inc, dec=cfg.dec)  # the low-level entry point too
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
