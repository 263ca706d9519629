"""Linear separability of manifolds, checked directly: the simulated capacity.

A dichotomy labels each of the P manifolds +1 or -1; it is separable when one hyperplane
(with bias) puts every point of every +1 manifold on one side and every point of every -1
manifold on the other, a linear-programming feasibility problem (``scipy.optimize.linprog``,
HiGHS). MFTMA's capacity ``a_M`` predicts that random dichotomies of P manifolds are
separable in ``N`` dimensions with probability 1/2 at ``N = P / a_M``; ``simulated_capacity``
finds that ``N`` by bisection over random projections of the points to ``n`` dimensions, as
Chung et al. (PRX 2018; Cohen et al. 2020) check their theory.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .mftma import check_manifolds


def separable(points: np.ndarray, labels: np.ndarray) -> bool:
    """Whether a hyperplane with bias separates ``points`` ``(n_points, n)`` by ``labels`` (+-1):
    ``y_i (w . x_i + b) >= 1`` for all ``i`` is feasible."""
    y = labels.astype(np.float64)[:, None]
    a = -y * np.hstack([points, np.ones((len(points), 1))])
    res = linprog(np.zeros(a.shape[1]), A_ub=a, b_ub=-np.ones(len(points)), bounds=(None, None),
                  method="highs")  # fmt: skip
    return res.status == 0


def _span_coordinates(x: np.ndarray) -> np.ndarray:
    """The points of ``x`` ``(P, N, M)`` as rows ``(P M, r)`` in an orthonormal basis of their span
    (a hyperplane's normal outside the span changes no side)."""
    pts = np.concatenate(list(x), axis=1).T
    u, s, _ = np.linalg.svd(pts, full_matrices=False)
    keep = s > s[0] * 1e-10 if len(s) and s[0] > 0 else np.zeros(len(s), bool)
    return u[:, keep] * s[keep]


def dichotomies(p: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random labellings ``(n, p)`` of ``p`` manifolds by +-1, each with both labels."""
    out = rng.choice([-1, 1], size=(n, p))
    for row in out:
        if abs(row.sum()) == p:
            row[rng.integers(p)] *= -1
    return out


def separable_fraction(x, n_dichotomies: int = 20, seed: int = 0, dim: int | None = None) -> float:
    """The share of ``n_dichotomies`` random dichotomies of the manifolds of ``x`` ``(P, N, M)`` that
    are separable, in the full space or, with ``dim``, after a random Gaussian projection to
    ``dim`` dimensions."""
    x = check_manifolds(x)
    p, _, m = x.shape
    rng = np.random.default_rng(seed)
    pts = _span_coordinates(x)
    if dim is not None:
        pts = pts @ rng.standard_normal((pts.shape[1], int(dim)))
    ok = [separable(pts, np.repeat(labels, m)) for labels in dichotomies(p, n_dichotomies, rng)]
    return float(np.mean(ok))


def simulated_capacity(x, n_dichotomies: int = 20, seed: int = 0) -> dict:
    """``P / n*``, ``n*`` the smallest projection dimension at which at least half of the random
    dichotomies are separable (bisection over ``n`` in ``[1, rank]``, each ``n`` with its own
    projection and dichotomies). ``capacity`` is None when even the full span separates fewer
    than half."""
    x = check_manifolds(x)
    p = x.shape[0]
    rank = _span_coordinates(x).shape[1]
    if separable_fraction(x, n_dichotomies, seed) < 0.5:
        return {"capacity": None, "dimension": None, "n_dichotomies": n_dichotomies}
    lo, hi = 0, rank  # fraction(lo) < 1/2 <= fraction(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if separable_fraction(x, n_dichotomies, seed + mid, dim=mid) >= 0.5:
            hi = mid
        else:
            lo = mid
    return {"capacity": p / hi, "dimension": hi, "n_dichotomies": n_dichotomies}
