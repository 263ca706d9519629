import numpy as np
import pytest

from sleepnet.config import load_preset
from sleepnet.errors import SleepnetError
from sleepnet.inputs import SleepInput, poisson_spikes, spike_probability


def test_empirical_spike_probability_matches_formula():
    x = np.array([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
    dt, rate = 0.001, 400.0  # 2 dt rate = 0.8: the last two saturate at 1
    rng = np.random.default_rng(0)
    n = 200_000
    spikes = poisson_spikes(np.broadcast_to(x, (n, len(x))), dt, rate, rng)
    p = spike_probability(x, dt, rate)
    np.testing.assert_allclose(p, [0.0, 0.04, 0.16, 0.4, 0.72, 0.8])
    emp = spikes.mean(axis=0)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(emp - p) <= 5 * se + 1e-12)
    assert spikes[:, 0].sum() == 0  # x = 0 never spikes


def test_saturated_probability_is_one():
    spikes = poisson_spikes(np.full((1000, 3), 0.9), 0.001, 1000.0, np.random.default_rng(1))
    assert spikes.all()


def _data(n=50, d=784, seed=0):
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


@pytest.mark.parametrize("mode", ["sequential", "mean", "masked-mean"])
def test_spikes_do_not_depend_on_chunk_size(mode):
    cfg = load_preset("mnist-deepfool").replace(T=45, input_mode=mode, seed=7)
    whole = SleepInput(cfg, _data()).spikes(0, 45)
    src = SleepInput(cfg, _data())
    parts = np.concatenate([s for _, s in src.chunks(chunk=8)])
    np.testing.assert_array_equal(whole, parts)


def test_sequential_uses_image_t_at_step_t():
    data = np.zeros((5, 4), dtype=np.float32)
    data[np.arange(5), np.arange(5) % 4] = 1.0
    cfg = load_preset("mnist-deepfool").replace(T=5, max_rate=1000.0)  # P = min(1, 2) = 1
    spikes = SleepInput(cfg, data).spikes(0, 5)
    np.testing.assert_array_equal(spikes, data.astype(bool))


def test_sequential_needs_enough_images_unless_cycling():
    cfg = load_preset("mnist-deepfool").replace(T=60)
    with pytest.raises(SleepnetError, match="T <= 50"):
        SleepInput(cfg, _data())
    src = SleepInput(cfg.replace(cycle=True, max_rate=1000.0), _data() > 0.5)
    s = src.spikes(0, 60)
    np.testing.assert_array_equal(s[50:], s[:10])


def test_silent_gaps_silence_first_ten_of_every_hundred():
    cfg = load_preset("mnist-deepfool").replace(T=250, input_mode="mean", silent_gaps=True)
    s = SleepInput(cfg, _data()).spikes(0, 250)
    per_step = s.sum(axis=1)
    gap = (np.arange(250) % 100) < 10
    assert per_step[gap].sum() == 0
    assert (per_step[~gap] > 0).mean() > 0.95


def test_masked_mean_keeps_one_square_window():
    cfg = load_preset("mnist-continual").replace(T=30, seed=3)
    src = SleepInput(cfg, np.ones((10, 784), dtype=np.float32))
    rates = src.rates(0, 30).reshape(30, 28, 28)
    for r in rates:
        ys, xs = np.nonzero(r)
        assert len(ys) == 121
        assert ys.max() - ys.min() == 10 and xs.max() - xs.min() == 10
    corners = {(np.nonzero(r)[0].min(), np.nonzero(r)[1].min()) for r in rates}
    assert len(corners) > 20  # positions vary from step to step


def test_same_seed_same_spikes_other_seed_other_spikes():
    cfg = load_preset("mnist-deepfool").replace(T=40)
    a = SleepInput(cfg, _data()).spikes(0, 40)
    b = SleepInput(cfg, _data()).spikes(0, 40)
    c = SleepInput(cfg.replace(seed=1), _data()).spikes(0, 40)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_fused_spikes_equal_the_reference_comparison():
    from sleepnet.kernels.poisson import spikes_from_uniform

    x = np.random.default_rng(0).random((300, 50)).astype(np.float32)
    x[x < 0.3] = 0.0
    for rate in (39.037119, 455.364521, 1e4):
        ref = poisson_spikes(x, 0.001, rate, np.random.default_rng(5))
        fused = spikes_from_uniform(np.random.default_rng(5).random(x.shape), x, 0.001, rate)
        np.testing.assert_array_equal(ref, fused)
    zero_u = spikes_from_uniform(np.zeros((1, 3)), np.array([[0.0, 0.5, 1.0]]), 0.001, 40.0)
    np.testing.assert_array_equal(zero_u, [[False, True, True]])  # x = 0 never spikes, even at u = 0
