"""Linear classifiers with controlled weight kurtosis, and their exact distances to the boundary.

Nayebi & Ganguli (2017) argue that kurtotic weights protect even a linear classifier.
To test that at equal clean accuracy, ``train_linear`` fits a softmax-regression model
``z = W x + b`` (Adam, cross-entropy) with a penalty that pulls the excess kurtosis of
``W`` (all entries together) to a ``target``:

    loss = cross-entropy + mu * (kurtosis(W) - target)^2 / (1 + target)^2

Kurtosis does not depend on the scale of ``W``, so the penalty changes only the shape of
the weight distribution (a few large weights and many near zero at high kurtosis), and the
task loss sets the scale. The clean accuracies reached are reported beside the kurtosis,
so "equal accuracy" is measured, not assumed. (Docs: ``docs/saturation.md``.)

For a linear model the smallest perturbation that changes the class has a closed form
once the [0, 1] box is ignored: ``min_j (z_y - z_j) / ||w_y - w_j||_*`` with the dual norm
(L1 for an L-inf budget, L2 for L2). The box can only make it larger, so
``linear_distances`` gives a lower bound on every image's true distance, and robust
accuracy computed from it is a lower bound that any attack's figure must not undercut.
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
    """Per image the smallest ``norm`` perturbation that changes the class of the linear ``model``,
    ignoring the [0, 1] box (a lower bound on the true one); 0 where ``x`` is misclassified."""
    lin = model[0]
    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    z = np.asarray(x, dtype=np.float64) @ W.T + b
    y = np.asarray(y)
    out = np.zeros(len(x))
    dual = 1 if norm == "inf" else 2
    for i in range(len(x)):
        gap = z[i, y[i]] - z[i]
        if np.argmax(z[i]) != y[i]:
            continue
        diff = np.linalg.norm(W[y[i]] - W, ord=dual, axis=1)
        others = np.arange(len(W)) != y[i]
        out[i] = np.min(gap[others] / diff[others])
    return out
