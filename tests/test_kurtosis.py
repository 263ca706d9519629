"""Linear classifiers with controlled weight kurtosis, and their exact boundary distances."""

import numpy as np
import torch
from scipy.optimize import minimize

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
    free = []  # the L2 distance without the box: a lower bound of the one within it
    for i in range(len(x)):
        z, others = zs(x[i]), [k for k in range(len(W)) if k != y[i]]
        free.append(0.0 if z.argmax() != y[i] else min((z[y[i]] - z[k]) / np.linalg.norm(W[y[i]] - W[k])
                                                       for k in others))  # fmt: skip
    assert np.all(d2 >= np.array(free) - 1e-12) and np.any(d2 > np.array(free) * 1.01)  # the box binds
    checked = 0
    for i in np.flatnonzero(np.isfinite(dinf) & (d2 > 0))[:10]:
        # L2 in the box: a general solver's smallest move to each other class (a convex problem),
        # started from the box corner that lowers c . x the most
        best = np.inf
        for k in (k for k in range(len(W)) if k != y[i]):
            c, m = W[y[i]] - W[k], zs(x[i])[y[i]] - zs(x[i])[k]
            start = np.where(c > 0, -x[i], 1 - x[i])
            if c @ start > -m:
                continue  # no move in the box reaches class k
            res = minimize(lambda d: d @ d, start, jac=lambda d: 2 * d, method="SLSQP",
                           bounds=list(zip(-x[i], 1 - x[i])), options={"ftol": 1e-14, "maxiter": 500},
                           constraints=[{"type": "ineq", "fun": lambda d, c=c, m=m: -m - c @ d,
                                         "jac": lambda d, c=c: -c}])  # fmt: skip
            assert res.success, res.message
            best = min(best, float(np.sqrt(res.fun)))
        assert abs(d2[i] - best) <= 1e-5 * best, (d2[i], best)
        # L-inf in the box: the best move against every class, at 0.999 and 1.001 of the distance
        for scale, flips in ((0.999, False), (1.001, True)):
            t = scale * dinf[i]
            moved = [x[i] - np.clip(t * np.sign(W[y[i]] - W[k]), x[i] - 1, x[i])
                     for k in range(len(W)) if k != y[i]]  # fmt: skip
            assert all(0 <= v.min() and v.max() <= 1 and np.abs(v - x[i]).max() <= t + 1e-12 for v in moved)
            assert any(zs(v).argmax() != y[i] for v in moved) == flips
        checked += 1
    assert checked >= 5
    for norm, dist, budgets in (("inf", dinf, (0.1, 0.2)), ("2", d2, (0.5, 1.0))):
        for eps in budgets:
            exact = float(np.mean(dist > eps))
            attacked = PGD(model, "cross-entropy", eps=eps, norm=norm, n_steps=40, seed=0).run(data.x_test, y)
            assert attacked["accuracy"] >= exact - 1e-12  # no attack can beat the exact distance


@np.errstate(divide="raise", invalid="raise")  # no 0/0 or x/0 on the way (a pixel with c_i = 0)
def test_linear_distances_by_hand():
    """z_0 = x_0, z_1 = b_1: only pixel 0 moves the margin (pixel 1's weights are equal: c_1 = 0)."""

    def model(b1):
        lin = torch.nn.Linear(2, 2)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
            lin.bias.copy_(torch.tensor([0.0, b1]))
        return torch.nn.Sequential(lin)

    # margin 0.25 for class 0, on pixel 0 alone (pixel 1 at the box's edge: no room, no help)
    x = np.array([[0.5, 0.5], [0.5, 1.0], [0.5, 0.0]])
    for norm in ("inf", "2"):
        assert np.allclose(linear_distances(model(0.25), x, np.zeros(3, int), norm), 0.25, atol=1e-12)
        # misclassified: 0; class 0 out of reach in the box (z_1 = -0.5 < 0 <= z_0): inf
        assert linear_distances(model(0.25), x[:1], np.array([1]), norm)[0] == 0.0
        assert linear_distances(model(-0.5), x, np.zeros(3, int), norm).tolist() == [np.inf] * 3
        # class 1 of image 0, margin 0.25 the other way: pixel 0 up by 0.25 (room 0.5)
        assert np.isclose(linear_distances(model(0.75), x[:1], np.array([1]), norm)[0], 0.25)
    # a tie counts as class 0 (the first maximum, as accuracy takes it) at distance 0
    assert linear_distances(model(0.5), x[:1], np.array([0]), "2")[0] == 0.0
    # L2 and L-inf differ once two pixels help: z_0 = x_0 + x_1, margin 0.5 -> t = 0.25, ||d|| = 0.25 sqrt 2
    both = model(0.5)
    with torch.no_grad():
        both[0].weight[0, 1] = 1.0
    assert np.isclose(linear_distances(both, x[:1], np.array([0]), "inf")[0], 0.25)
    assert np.isclose(linear_distances(both, x[:1], np.array([0]), "2")[0], 0.25 * np.sqrt(2))
    # the box binds in L2: pixel 0 at 0.1 can give 0.1, so pixel 1 gives 0.4: sqrt(0.1^2 + 0.4^2)
    box = linear_distances(both, np.array([[0.1, 0.9]]), np.array([0]), "2")[0]
    assert np.isclose(box, np.hypot(0.1, 0.4))
