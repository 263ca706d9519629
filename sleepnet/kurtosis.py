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

For a linear model the smallest perturbation that changes the class is known
(``linear_distances``):

- L-inf, exactly, within the [0, 1] box: against class ``j`` with ``c = w_y - w_j`` and
  margin ``m = z_y - z_j``, a budget ``t`` lowers the margin by at most
  ``g(t) = sum_i |c_i| min(t, room_i)`` (``room_i``: how far pixel ``i`` can move the
  helpful way, ``x_i`` if ``c_i > 0`` else ``1 - x_i``); ``g`` is piecewise linear and
  increasing, so the smallest ``t`` with ``g(t) >= m`` is found exactly; the distance is
  the minimum over ``j`` (infinite if no budget up to 1 reaches any class).
- L2, ignoring the box: ``min_j m_j / ||w_y - w_j||_2``. The box can only make it larger:
  a lower bound.

Robust accuracy from these is exact (L-inf) or a lower bound (L2): no attack may undercut
it, and a good attack matches the exact one.
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
    """Per image the smallest ``norm`` perturbation that changes the class of the linear ``model``
    (module docstring: exact within the box for L-inf, a box-free lower bound for L2); 0 where ``x``
    is misclassified, inf where no L-inf perturbation in the box changes the class."""
    lin = model[0]
    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    z = x @ W.T + b
    y = np.asarray(y)
    out = np.zeros(len(x))
    for i in range(len(x)):
        if np.argmax(z[i]) != y[i]:
            continue
        gap = z[i, y[i]] - z[i]
        others = [j for j in range(len(W)) if j != y[i]]
        if norm == "inf":
            out[i] = min(_linf_box(W[y[i]] - W[j], gap[j], x[i]) for j in others)
        else:
            out[i] = min(gap[j] / np.linalg.norm(W[y[i]] - W[j]) for j in others)
    return out


def _linf_box(c: np.ndarray, margin: float, x: np.ndarray) -> float:
    """The smallest ``t`` with ``sum_i |c_i| min(t, room_i) >= margin`` (module docstring), inf if none."""
    room = np.where(c > 0, x, 1.0 - x)
    a = np.abs(c)
    order = np.argsort(room)
    r, a = room[order], a[order]
    # g at each breakpoint r_k: sum_{i <= k} a_i r_i + r_k sum_{i > k} a_i
    below = np.cumsum(a * r)
    above = a.sum() - np.cumsum(a)
    g = below + r * above
    k = int(np.searchsorted(g, margin))  # g is non-decreasing in k
    if k >= len(r):
        return float("inf")
    done = below[k - 1] if k > 0 else 0.0
    slope = a[k:].sum()
    return float((margin - done) / slope)
