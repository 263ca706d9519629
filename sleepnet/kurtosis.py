"""Linear classifiers with controlled weight kurtosis, and their exact distances to the boundary.

Nayebi & Ganguli (2017) argue that kurtotic weights protect even a linear classifier.
To test that at equal clean accuracy, ``train_linear`` fits a softmax-regression model
``z = W x + b`` (Adam, cross-entropy) with a penalty that pulls the excess kurtosis of
``W`` (all entries together) to a ``target``:

    loss = cross-entropy + mu * (kurtosis(W) - target)^2 / (1 + |target|)^2

Kurtosis does not depend on the scale of ``W``, so the penalty changes only the shape of
the weight distribution (a few large weights and many near zero at high kurtosis), and the
task loss sets the scale. The clean accuracies reached are reported beside the kurtosis,
so "equal accuracy" is measured, not assumed. (Docs: ``docs/saturation.md``.)

For a linear model the smallest perturbation within the [0, 1] box that changes the class
is known exactly, for L-inf and L2 (``linear_distances``). Against class ``j``, with
``c = w_y - w_j``, margin ``m = z_y - z_j`` and ``room_i`` how far pixel ``i`` can move the
helpful way (``x_i`` if ``c_i > 0`` else ``1 - x_i``), the move must lower ``c . x`` by ``m``:

- L-inf: a budget ``t`` lowers it by at most ``g(t) = sum_i |c_i| min(t, room_i)``;
- L2: the nearest point of the half-space ``c . d <= -m`` within the box is
  ``d_i = -sign(c_i) min(lam |c_i|, room_i)`` for the smallest ``lam`` that reaches it (the KKT
  conditions of this convex problem: a step along ``-c`` clipped to the box, ``lam`` raised
  until the clipped step lowers ``c . x`` by ``m``), which lowers it by
  ``g(lam) = sum_i c_i^2 min(lam, room_i / |c_i|)``; the distance is ``||d||_2``.

Both ``g`` are ``sum_i w_i min(s, b_i)``: piecewise linear and non-decreasing, so the
smallest level with ``g >= m`` is found exactly (``_smallest_level``). The distance is the
minimum over ``j`` (the class changes once any ``z_j`` reaches ``z_y``), infinite if no move
in the box reaches any class. An image counts as misclassified when ``argmax z`` (the first
maximum, as ``accuracy`` takes it) is not ``y``; one whose ``z_y`` ties another class's is at
distance 0 (no move needed). Robust accuracy from these is exact: no attack may undercut it,
and a good attack matches it. (Before 2026-12-03 the L2 distance ignored the box,
``min_j m_j / ||w_y - w_j||_2``: a lower bound.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset
from .training import deterministic


def kurtosis(w: torch.Tensor) -> torch.Tensor:
    """Fisher's excess kurtosis of all entries of ``w``, differentiable."""
    d = w.flatten() - w.mean()
    var = (d**2).mean()
    return (d**4).mean() / var**2 - 3.0


def train_linear(data: Dataset, target: float | None, mu: float = 1.0, epochs: int = 5, lr: float = 1e-3,
                 batch_size: int = 100, seed: int = 0) -> nn.Sequential:  # fmt: skip
    """A linear classifier ``Sequential(Linear)`` on ``data``; ``target``: the weight kurtosis the penalty
    pulls to (None: no penalty). The seed fixes the initial weights and the shuffling."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(data.x_train.shape[1], data.n_classes))
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    with deterministic():
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for s in range(0, len(x), batch_size):
                idx = order[s : s + batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                if target is not None:
                    loss = loss + mu * (kurtosis(model[0].weight) - target) ** 2 / (1 + abs(target)) ** 2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


def linear_distances(model: nn.Sequential, x: np.ndarray, y: np.ndarray, norm: str) -> np.ndarray:
    """Per image the smallest ``norm`` ("inf" or "2") perturbation within the [0, 1] box that changes
    the class of the linear ``model``, exactly (module docstring); 0 where ``x`` is misclassified, inf
    where no perturbation in the box changes the class."""
    if norm not in ("inf", "2"):
        raise ValueError(f"linear_distances: norm must be 'inf' or '2', not {norm!r}")
    lin = model[0]
    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    z = x @ W.T + b
    y = np.asarray(y)
    out = np.zeros(len(x))
    for i in range(len(x)):
        if np.argmax(z[i]) != y[i]:
            continue
        gap = z[i, y[i]] - z[i]
        out[i] = min(_box_distance(W[y[i]] - W[j], gap[j], x[i], norm) for j in range(len(W)) if j != y[i])
    return out


def _box_distance(c: np.ndarray, margin: float, x: np.ndarray, norm: str) -> float:
    """The smallest ``norm`` move of ``x`` within the box that lowers ``c . x`` by ``margin``
    (module docstring), inf if none."""
    room = np.where(c > 0, x, 1.0 - x)
    a = np.abs(c)
    if norm == "inf":
        return _smallest_level(a, room, margin)
    moves = a > 0  # a pixel with c_i = 0 does not help and does not move
    a, room = a[moves], room[moves]
    lam = _smallest_level(a * a, room / a, margin)
    return float(np.linalg.norm(np.minimum(lam * a, room))) if np.isfinite(lam) else lam


def _smallest_level(w: np.ndarray, b: np.ndarray, margin: float) -> float:
    """The smallest ``s >= 0`` with ``sum_i w_i min(s, b_i) >= margin`` (``w, b >= 0``), inf if none."""
    if margin <= 0:  # a tie with another class: no move needed
        return 0.0
    order = np.argsort(b)
    b, w = b[order], w[order]
    # the sum at each breakpoint b_k: sum_{i <= k} w_i b_i + b_k sum_{i > k} w_i
    below = np.cumsum(w * b)
    above = w.sum() - np.cumsum(w)
    g = below + b * above
    k = int(np.searchsorted(g, margin))  # g is non-decreasing in k
    if k >= len(b):
        return float("inf")
    done = below[k - 1] if k > 0 else 0.0
    return float((margin - done) / w[k:].sum())
