"""Linear separability of manifolds, checked directly: the simulated capacity.

A dichotomy labels each of the P manifolds +1 or -1; it is separable when one hyperplane
puts every point of every +1 manifold on one side and every point of every -1 manifold on the
other, a linear program (the largest margin, ``separable``; ``scipy.optimize.linprog``, HiGHS). MFTMA's
capacity ``a_M`` predicts that random dichotomies of P manifolds are separable in ``N``
dimensions with probability 1/2 at ``N = P / a_M``; ``simulated_capacity`` finds that ``N`` by
bisection over random projections of the points to ``n`` dimensions, as Chung et al. (PRX 2018;
Cohen et al. 2020) check their theory. As MFTMA, it measures the points from their global mean
and takes hyperplanes through that origin (no bias: a bias is one more free parameter, and
would put ``n*`` one dimension low, the capacity ``n / (n - 1)`` high).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..errors import SleepnetError
from .mftma import check_manifolds, significant


def separable(points: np.ndarray, labels: np.ndarray, bias: bool = True) -> bool:
    """Whether a hyperplane separates ``points`` ``(n_points, n)`` strictly by ``labels`` (+-1),
    ``y_i (w . x_i + b) > 0`` for all ``i`` (``b = 0`` without ``bias``: a hyperplane through the
    origin).

    Solved as the largest margin ``t`` with ``y_i (w . x_i + b) >= t``, ``|w_j| <= 1`` and
    ``t <= 1``: a bounded LP that ``w = 0`` always satisfies, so HiGHS always ends optimal (the
    feasibility form ``y_i (w . x_i + b) >= 1`` ends "numerical trouble" on some data with no
    strict separator, where t is 0). Separable when ``t`` is above 1e-9 of the largest
    ``sum_j |x_ij|`` (what ``|w_j| <= 1`` lets a point's side be at most)."""
    y = labels.astype(np.float64)[:, None]
    n = points.shape[1]
    cols = np.hstack([points, np.ones((len(points), 1))]) if bias else points
    a = np.hstack([-y * cols, np.ones((len(points), 1))])  # -y_i (w . x_i + b) + t <= 0
    cost = np.zeros(a.shape[1])
    cost[-1] = -1.0
    bounds = [(-1.0, 1.0)] * n + [(None, None)] * bias + [(None, 1.0)]
    res = linprog(cost, A_ub=a, b_ub=np.zeros(len(points)), bounds=bounds, method="highs")
    if res.status != 0:
        raise SleepnetError(f"the separability LP did not finish: {res.message}")
    scale = float(np.max(np.sum(np.abs(points), axis=1))) if points.size else 0.0
    return bool(-res.fun > 1e-9 * max(scale, 1e-300))


def _span_coordinates(x: np.ndarray) -> np.ndarray:
    """The points of ``x`` ``(P, N, M)``, from their global mean, as rows ``(P M, r)`` in an
    orthonormal basis of their span (a hyperplane's normal outside the span changes no side)."""
    pts = np.concatenate(list(x), axis=1).T
    pts = pts - pts.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(pts, full_matrices=False)
    keep = significant(s)
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
    are separable through their global mean (module docstring), in the full space or, with
    ``dim``, after a random Gaussian projection to ``dim`` dimensions."""
    x = check_manifolds(x)
    p, _, m = x.shape
    rng = np.random.default_rng(seed)
    pts = _span_coordinates(x)
    if dim is not None:
        pts = pts @ rng.standard_normal((pts.shape[1], int(dim)))
    ok = [separable(pts, np.repeat(labels, m), bias=False) for labels in dichotomies(p, n_dichotomies, rng)]
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
