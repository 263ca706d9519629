"""Mean-field theoretic manifold analysis (MFTMA; Chung, Lee & Sompolinsky, PRX 2018), with the
low-rank centre-correlation removal of Cohen et al. (Nat. Commun. 2020).

A port of the reference code, github schung039/neural_manifolds_replicaMFT at commit
d56eda1 (``mftma/manifold_analysis_correlation.py``; ``docs/geometry.md`` gives the
derivations), step for step, with two solvers replaced:

- The anchor points. For each Gaussian vector ``t`` the reference solves the quadratic program
  ``min ||v - t||^2  s.t.  s_j . v <= -kappa`` with cvxopt. Its dual is
  ``min_{alpha >= 0} ||S alpha - t||^2 / 2 - kappa 1.alpha``, and since the last row of ``S``
  (the centre dimension) is all ones, ``1.alpha = (S alpha)_last``: the dual is the
  non-negative least-squares problem ``NNLS(S, t + kappa e_last)``, solved exactly by
  Lawson-Hanson (``scipy.optimize.nnls``); then ``v = t - S alpha`` and the anchor point is
  ``S alpha / 1.alpha``.
- The shared centre directions. The reference minimises the squared correlations of the
  centres left after removing ``K`` orthonormal directions on the Stiefel manifold with
  pymanopt's conjugate gradient; here L-BFGS on an unconstrained matrix whose QR basis is the
  directions (``stiefel_minimise``), on the same cost and its exact gradient, all restarts at
  once. Random restarts and the choice among them (the most "stable") are the reference's.

``K`` runs from 1 to ``min(maxK, r - 1)``, ``r`` the rank of the centres relative to their mean
(``P - 1`` unless ``N < P - 1`` or the centres are degenerate): at ``K = r`` nothing of the centres
is left and the reference divides 0 by 0 (for ``P`` below 7 it cannot stop before that and fails;
with ``N < P - 1`` it goes on past the rank and picks K from rounding noise); with ``P = 2``, or
centres on one line, no direction is removed (``K = 0``). Every draw comes from
``np.random.default_rng(seed)``: the restarts, then each manifold's ``t`` vectors.

Threads: ``manifold_analysis`` runs its linear algebra on one BLAS thread
(``threadpoolctl``). Every matrix it factors or multiplies has at most ``M`` or ``P``
columns (``N x M`` points, ``N x P`` centres), where a second thread only adds overhead
(``benchmarks/results/geometry_cpu.txt``), and the result then does not depend on the
machine's thread count.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import qr
from scipy.optimize import minimize, nnls
from threadpoolctl import threadpool_limits

from ..errors import SleepnetError
from ..state import is_seed


def check_manifolds(x, kappa: float = 0.0, n_t: int = 200, seed: int = 0, n_reps: int = 10) -> np.ndarray:
    """``x`` as float64 ``(P, N, M)`` (P manifolds of M points in N dimensions; or a sequence of P
    ``(N, M)`` arrays, as the reference takes them); one clear error for manifolds of mismatched
    shapes, fewer than 2 manifolds or points, NaN or inf, or settings ``check_settings`` refuses."""
    if isinstance(x, (list, tuple)):
        shapes = [np.shape(a) for a in x]
        for i, shape in enumerate(shapes):
            if shape != shapes[0]:
                raise SleepnetError(f"manifold {i} has shape {shape}, manifold 0 {shapes[0]}: every manifold "
                                    "needs the same N dimensions and M points")  # fmt: skip
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise SleepnetError(f"manifolds must be an array of shape (P, N, M), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise SleepnetError(f"manifolds must be real numbers, got dtype {arr.dtype}")
    p, n, m = arr.shape
    if p < 2 or m < 2 or n < 1:
        raise SleepnetError(f"MFTMA needs at least 2 manifolds of at least 2 points, got P={p}, M={m}, N={n}")
    if not np.isfinite(arr).all():
        raise SleepnetError("manifolds contain NaN or inf")
    check_settings(kappa, n_t, seed, n_reps)
    return arr.astype(np.float64)


def check_settings(kappa: float = 0.0, n_t: int = 200, seed: int = 0, n_reps: int = 10) -> None:
    """One clear error for a negative or non-finite kappa, n_t or n_reps below 1, or a seed outside
    ``0 .. 2**32 - 1``."""
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float, np.number)) or not np.isfinite(kappa) \
            or kappa < 0:  # fmt: skip
        raise SleepnetError(f"kappa must be a finite number >= 0, got {kappa!r}")
    if isinstance(n_t, bool) or not isinstance(n_t, (int, np.integer)) or n_t < 1:
        raise SleepnetError(f"n_t must be an integer >= 1, got {n_t!r}")
    if isinstance(n_reps, bool) or not isinstance(n_reps, (int, np.integer)) or n_reps < 1:
        raise SleepnetError(f"n_reps must be an integer >= 1, got {n_reps!r}")
    if not is_seed(seed):
        raise SleepnetError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")


def anchor_analysis(sd1: np.ndarray, kappa: float, t_vec: np.ndarray) -> tuple[float, float, float]:
    """Capacity, radius and dimension of one manifold (PRX 2018 eqs. 16-17, 28, 29).

    sd1 : ``(D + 1, m)``, the manifold's points (relative to its centre, in units of the centre's
    norm) with a last row of ones; t_vec : ``(D + 1, n_t)`` Gaussian vectors. The reference's
    ``each_manifold_analysis_D1`` with the QP solved as NNLS (module docstring), and its
    estimators: the radius is the RMS of the anchors' offsets from their mean over ``t``, the
    dimension ``D`` times the squared mean cosine of ``t`` and its anchor (``docs/geometry.md``
    §2 gives the paper's forms beside them).
    """
    d1, n_t = t_vec.shape
    d = d1 - 1
    best = np.argmax(t_vec[:d].T @ sd1[:d], axis=1)  # the point of largest projection, per t
    ss = np.vstack([sd1[:d, best], np.ones((1, n_t))])
    gg = np.sum(t_vec * ss, axis=0)
    s_all = ss.copy()
    shift = np.zeros(d1)
    shift[-1] = kappa
    for i in np.flatnonzero(gg + kappa >= 0):
        t = t_vec[:, i]
        try:
            alpha, _ = nnls(sd1, t + shift)
        except RuntimeError as err:  # scipy's iteration limit (3 x the columns): no anchor point
            raise SleepnetError(f"MFTMA: the anchor point's NNLS did not converge ({err})") from None
        v = t - sd1 @ alpha
        if np.linalg.norm(v - t) >= 1e-8:  # else t is its own solution: the anchor is the max point
            s_all[:, i] = (t - v) / alpha.sum()
    max_ts = np.maximum(np.sum(t_vec * s_all, axis=0) + kappa, 0.0)
    s_sum = np.sum(s_all**2, axis=0)
    lam = np.where(s_sum > 0, max_ts / np.where(s_sum > 0, s_sum, 1.0), 0.0)
    capacity = 1.0 / np.mean(lam**2 * s_sum)
    ds = (s_all - s_all.mean(axis=1, keepdims=True))[:-1] / s_all[-1]
    radius = np.sqrt(np.mean(np.sum(ds**2, axis=0)))
    t_hat = t_vec[:d] / np.sqrt(np.sum(t_vec[:d] ** 2, axis=0, keepdims=True))
    s_hat = s_all[:d] / np.sqrt(np.sum(s_all[:d] ** 2, axis=0, keepdims=True) + 1e-12)
    dimension = d * np.mean(np.sum(t_hat * s_hat, axis=0)) ** 2
    return float(capacity), float(radius), float(dimension)


def correlation_cost(v: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``square_corrcoeff_full_cost`` and its gradient in ``v``, for a stack of ``v``.

    x : ``(P, n)`` centres in an orthonormal basis; v : ``(..., n, K)`` orthonormal directions. With
    ``C = x x^T``, ``c = x v``, ``c0_m = C_mm - |c_m|^2`` and ``E = C - c c^T``, the cost is
    ``sum_mn E_mn^2 / (c0_m c0_n) / 2``: the squared correlations of what is left of the centres.
    Returns the costs ``(...)`` and the gradients ``(..., n, K)``.
    """
    gram = x @ x.T
    c = x @ v
    c0 = np.diag(gram) - np.sum(c**2, axis=-1)
    w = 1.0 / (c0[..., :, None] * c0[..., None, :])
    e = gram - c @ np.swapaxes(c, -1, -2)
    ew = e * w
    rows = np.sum(e * ew, axis=-1)
    cost = np.sum(rows, axis=-1) / 2
    grad_c = -2 * ew @ c + 2 * (rows / c0)[..., None] * c
    return cost, x.T @ grad_c


def subspace_cost(u: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``correlation_cost`` of the orthonormal basis of each ``u`` ``(..., n, K)`` (full rank), and its
    gradient in ``u``, without forming the basis.

    The cost depends on the projector ``u (u^T u)^-1 u^T`` only. With ``B = x u``, ``G = u^T u`` and
    ``S = B G^-1 B^T`` (what the directions hold of ``x x^T``), ``dF/dS = H = -E W + diag(r / c0)``
    (``E``, ``W``, ``c0`` as in ``correlation_cost``, ``r`` the row sums of ``E^2 W``), and
    ``dF/du = 2 x^T H B G^-1 - 2 u G^-1 B^T H B G^-1``.
    """
    gram = x @ x.T
    b = x @ u
    ginv = np.linalg.inv(np.swapaxes(u, -1, -2) @ u)
    bg = b @ ginv
    s = bg @ np.swapaxes(b, -1, -2)
    c0 = np.diag(gram) - np.diagonal(s, axis1=-2, axis2=-1)
    w = 1.0 / (c0[..., :, None] * c0[..., None, :])
    e = gram - s
    ew = e * w
    rows = np.sum(e * ew, axis=-1)
    cost = np.sum(rows, axis=-1) / 2
    hbg = -ew @ bg + (rows / c0)[..., None] * bg
    grad = 2 * x.T @ hbg - 2 * u @ (np.swapaxes(bg, -1, -2) @ hbg)
    return cost, grad


def stiefel_minimise(v: np.ndarray, x: np.ndarray, max_iter: int = 2000) -> np.ndarray:
    """``correlation_cost`` minimised over orthonormal ``v`` ``(r, n, K)``, ``r`` starts at once.

    The cost depends on ``V V^T`` only, so it is minimised over unconstrained full-rank ``U``
    (``subspace_cost``) by L-BFGS, the sum of the ``r`` independent costs over all ``U``
    together, and the result is the orthonormal basis of each ``U``.
    """
    shape = v.shape

    def cost(flat):
        # where classes share a centre (a layer that maps them to the same point), a line search
        # can land on a direction holding that centre whole: c0 = 0, the cost 0/0; step back
        with np.errstate(divide="ignore", invalid="ignore"):
            f, g = subspace_cost(flat.reshape(shape), x)
        if not np.all(np.isfinite(f)):
            return 1e300, np.zeros_like(flat)
        return float(np.sum(f)), g.ravel()

    res = minimize(cost, v.ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": 1e-10, "gtol": 1e-5})  # fmt: skip
    return np.linalg.qr(res.x.reshape(shape))[0]


def _mean_abs_correlation(x: np.ndarray) -> float:
    norms = np.sqrt(np.sum(x**2, axis=1, keepdims=True))
    corr = (x @ x.T) / (norms @ norms.T)
    p = len(x)
    return float((np.sum(np.abs(corr)) - p) / (p * (p - 1)))


def shared_directions(centers: np.ndarray, max_k: int, n_reps: int, rng: np.random.Generator):
    """The reference's ``fun_FA``: the centres' low-rank structure.

    centers : ``(N, P)``. Returns ``(basis, directions, residual, correlation0)``: ``basis``
    ``(N, P - 1)``, the orthonormal basis of the centres relative to their mean; ``directions[K - 1]``
    ``(P - 1, K)``, the K shared directions in that basis; ``residual[K - 1]`` the mean absolute
    correlation of the centres left after removing them; ``correlation0`` that before.
    """
    _, p = centers.shape
    xb = centers.T - centers.T.mean(axis=0, keepdims=True)
    q, _ = qr(xb.T, mode="economic")
    basis = q[:, : p - 1]
    x = xb @ basis
    correlation0 = _mean_abs_correlation(x)
    directions, residual = [], []
    v1 = None
    for k in range(1, min(max_k, centre_rank(xb) - 1) + 1):
        starts = []
        for _ in range(n_reps):
            sx = rng.standard_normal((p, 1)).T @ x
            v0 = sx if v1 is None else np.vstack([sx, v1.T])
            starts.append(np.linalg.qr(v0.T)[0])
        found = stiefel_minimise(np.stack(starts), x)
        left = x - (x @ found) @ np.swapaxes(found, -1, -2)
        stability = np.min(np.sqrt(np.sum(left**2, axis=-1)) / np.sqrt(np.sum(x**2, axis=-1)), axis=-1)
        # the most stable: the first of equals, as the reference (whose strict > also skips NaN: a
        # centre at the centres' mean has no norm to keep)
        v1 = found[int(np.argmax(np.nan_to_num(stability, nan=-np.inf)))]
        directions.append(v1)
        residual.append(_mean_abs_correlation(x - (x @ v1) @ v1.T))
        r = residual
        if k > 4 and r[k - 1] > r[k - 2] > r[k - 3] > r[k - 4]:
            break
    return basis, directions, residual, correlation0


def significant(sv: np.ndarray) -> np.ndarray:
    """Which singular values ``sv`` (descending) count for a numerical rank: above 1e-10 of the largest;
    none of a zero matrix."""
    return sv > sv[0] * 1e-10 if len(sv) and sv[0] > 0 else np.zeros(len(sv), bool)


def centre_rank(xb: np.ndarray) -> int:
    """The numerical rank of the centres relative to their mean, ``xb`` ``(P, N)``: at most
    ``min(P - 1, N)``. The shared directions stop one short of it (with K = rank nothing of the
    centres is left, and the residual correlation is 0 / 0)."""
    return int(np.sum(significant(np.linalg.svd(xb, compute_uv=False))))


def participation_ratio(points: np.ndarray) -> float:
    """``(sum lambda)^2 / sum lambda^2`` of the covariance of ``points`` ``(N, M)`` (M points)."""
    centred = points - points.mean(axis=1, keepdims=True)
    gram = centred.T @ centred if centred.shape[1] <= centred.shape[0] else centred @ centred.T
    lam = np.linalg.eigvalsh(gram)  # the covariance's nonzero eigenvalues, times M
    # eigenvalues at the rounding of the points' own scale are no spread: identical points whose
    # mean is inexact in float64 (M not a power of two) leave ~1e-32 of them, and a ratio of noise
    scale = float(np.max(np.abs(points))) if points.size else 0.0
    lam = np.where(lam > (1e-12 * scale) ** 2 * points.size, lam, 0.0)
    total = float(np.sum(lam**2))
    return float(np.sum(lam) ** 2 / total) if total > 0 else 0.0


@threadpool_limits.wrap(limits=1, user_api="blas")
def manifold_analysis(x, kappa: float = 0.0, n_t: int = 200, seed: int = 0, n_reps: int = 10) -> dict:
    """MFTMA of ``x`` ``(P, N, M)``: P manifolds of M points in N dimensions (module docstring).

    Returns
    -------
    dict
        ``capacity`` (``1 / mean(1 / a_M)``), ``radius``, ``dimension`` and ``participation_ratio``
        (means over manifolds), ``center_correlation`` (mean absolute correlation of the centres
        relative to their mean, before the removal), ``K`` (shared directions removed), the
        per-manifold arrays under ``per_manifold``, and ``settings``.
    """
    x = check_manifolds(x, kappa, n_t, seed, n_reps)
    p, n, m = x.shape
    rng = np.random.default_rng(seed)
    manifolds = list(x)  # P arrays (N, M), as the reference takes them
    origin = np.mean(np.concatenate(manifolds, axis=1), axis=1, keepdims=True)
    centers = np.stack([mf.mean(axis=1) for mf in manifolds], axis=1)
    sv = np.linalg.svd(centers - centers.mean(axis=1, keepdims=True), compute_uv=False)
    total = np.cumsum(sv**2) / max(np.sum(sv**2), 1e-300)
    max_k = int(np.argmax([t if t < 0.95 else 0 for t in total])) + 11
    basis, directions, residual, correlation0 = shared_directions(centers, max_k, n_reps, rng)
    k = int(np.argmin(np.nan_to_num(residual, nan=np.inf))) + 1 if residual else 0
    proj = basis @ directions[k - 1] if k else np.zeros((n, 0))
    caps, radii, dims = np.zeros(p), np.zeros(p), np.zeros(p)
    for i, mf in enumerate(manifolds):
        xr = mf - origin
        xr = xr - proj @ (proj.T @ xr)
        centre = xr.mean(axis=1)
        norm = np.linalg.norm(centre)
        if norm <= 1e-12 * max(1.0, float(np.abs(xr).max())):
            raise SleepnetError(f"manifold {i}'s centre is at the origin once the shared directions are "
                                "removed: its points cannot be expressed relative to it")  # fmt: skip
        s = (xr - centre[:, None]) / norm
        if s.shape[0] > s.shape[1]:  # to M dimensions: Q^T S of S = QR is R itself
            s = np.linalg.qr(s, mode="r")
        sd1 = np.vstack([s, np.ones((1, m))])
        t_vec = rng.standard_normal((sd1.shape[0], n_t))
        caps[i], radii[i], dims[i] = anchor_analysis(sd1, kappa, t_vec)
    prs = np.array([participation_ratio(mf) for mf in manifolds])
    return {
        "capacity": float(1.0 / np.mean(1.0 / caps)),
        "radius": float(np.mean(radii)),
        "dimension": float(np.mean(dims)),
        "center_correlation": correlation0,
        "participation_ratio": float(np.mean(prs)),
        "K": k,
        "per_manifold": {"capacity": caps.tolist(), "radius": radii.tolist(), "dimension": dims.tolist(),
                         "participation_ratio": prs.tolist()},  # fmt: skip
        "settings": {"P": p, "N": n, "M": m, "kappa": float(kappa), "n_t": int(n_t), "seed": int(seed),
                     "n_reps": int(n_reps)},  # fmt: skip
    }
