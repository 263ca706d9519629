"""Linear classifiers with controlled weight kurtosis, and their exact boundary distances."""

import numpy as np
import torch

from sleepnet.data import make_patches
from sleepnet.kurtosis import kurtosis, linear_distances, train_linear
from sleepnet.stats import excess_kurtosis
from sleepnet.training import accuracy


def test_differentiable_kurtosis_matches_the_statistic():
    w = torch.as_tensor(np.random.default_rng(0).laplace(size=(30, 40)))
    assert np.isclose(float(kurtosis(w)), excess_kurtosis(w.numpy()))


def test_the_penalty_sets_the_weight_kurtosis_and_keeps_the_task():
    data = make_patches(n_train=500, n_test=100, seed=0)
    plain = float(kurtosis(train_linear(data, None, epochs=10, lr=1e-2, seed=0)[0].weight.detach()))
    assert plain < -0.5  # measured -0.63: near the uniform initial weights' -1.2
    for target in (0.0, 10.0):
        model = train_linear(data, target, epochs=10, lr=1e-2, seed=0)
        k = float(kurtosis(model[0].weight.detach()))
        assert abs(k - target) < 0.05 * (1 + target), (target, k)  # measured 0.0007 and 9.86
        assert accuracy(model, data.x_test, data.y_test) > 0.98


def test_linear_distances_are_exact_and_bound_any_attack():
    from sleepnet.evaluation.attacks import PGD

    data = make_patches(n_train=300, n_test=50, seed=0)
    model = train_linear(data, None, epochs=3, seed=0)
    x, y = data.x_test.astype(np.float64), data.y_test
    W, b = model[0].weight.detach().double().numpy(), model[0].bias.detach().double().numpy()
    zs = lambda v: v @ W.T + b  # noqa: E731
    d2 = linear_distances(model, x, y, "2")
    dinf = linear_distances(model, x, y, "inf")
    checked = 0
    for i in np.flatnonzero(np.isfinite(dinf) & (d2 > 0))[:10]:
        z = zs(x[i])
        # L2 without the box: along w_y - w_j for the nearest j
        j = min((k for k in range(len(W)) if k != y[i]),
                key=lambda k: (z[y[i]] - z[k]) / np.linalg.norm(W[y[i]] - W[k]))  # fmt: skip
        u = (W[y[i]] - W[j]) / np.linalg.norm(W[y[i]] - W[j])
        assert zs(x[i] - 0.999 * d2[i] * u).argmax() == y[i]  # just short: still right
        assert zs(x[i] - 1.001 * d2[i] * u).argmax() != y[i]  # just past: wrong
        # L-inf in the box: the best move against every class, at 0.999 and 1.001 of the distance
        for scale, flips in ((0.999, False), (1.001, True)):
            t = scale * dinf[i]
            moved = [x[i] - np.clip(t * np.sign(W[y[i]] - W[k]), x[i] - 1, x[i])
                     for k in range(len(W)) if k != y[i]]  # fmt: skip
            assert all(0 <= v.min() and v.max() <= 1 and np.abs(v - x[i]).max() <= t + 1e-12 for v in moved)
            assert any(zs(v).argmax() != y[i] for v in moved) == flips
        checked += 1
    assert checked >= 5
    for eps in (0.1, 0.2):
        exact = float(np.mean(dinf > eps))
        attacked = PGD(model, "cross-entropy", eps=eps, n_steps=40, seed=0).run(data.x_test, y)["accuracy"]
        assert attacked >= exact - 1e-12  # no attack can beat the exact distance
