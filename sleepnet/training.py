"""Training recipes: the paper's (exactly, ``docs/paper-protocol.md`` §2) and a standard one.

``paper``: ``[784, 1200, 1200, 10]``, no biases, ReLU hidden and output, weights
U(-0.01, 0.01), squared error with a straight-through output ReLU, SGD lr 0.1
momentum 0.5 (torch's momentum form, identical for a constant lr), batch 100,
2 epochs, shuffled, non-inverted dropout 0.2 on hidden activations.

``standard``: the same architecture, torch's default (Kaiming-uniform) init,
cross-entropy on the logits, Adam lr 1e-3, inverted dropout 0.2, 3 epochs.

Determinism: the seed fixes the initial weights, the shuffling and the dropout
masks, and ``torch.use_deterministic_algorithms`` is on while training. The
result is bit-identical for the same seed and the same number of torch threads;
a different thread count can change the float summation order of matrix
products and hence the last bits of the weights.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from .data import Dataset
from .devices import cuda_deterministic_env, model_device, resolve_device
from .errors import SleepnetError
from .losses import LOSSES, loss_fn
from .models import build_mlp
from .registry import Registry
from .state import eval_mode, on_device


@dataclass(frozen=True)
class Recipe:
    """A training recipe: architecture ``sizes``, optimiser, loss, init and dropout (``RECIPES``)."""

    name: str
    sizes: tuple[int, ...] = (784, 1200, 1200, 10)
    epochs: int = 2
    batch_size: int = 100
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.5
    loss: str = "squared"
    init: str = "uniform"  # "uniform": U(-init_scale, init_scale); "default": torch's init
    init_scale: float = 0.01
    dropout: float = 0.2
    dropout_convention: str = "paper"

    def validate(self) -> None:
        """``SleepnetError`` for non-positive epochs, batch_size or lr, or an unknown loss/optimizer/init."""
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise SleepnetError("epochs, batch_size and lr must be positive")
        if self.loss not in LOSSES:
            raise SleepnetError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        if self.optimizer not in ("sgd", "adam"):
            raise SleepnetError(f"unknown optimizer {self.optimizer!r} (sgd or adam)")
        if self.init not in ("uniform", "default"):
            raise SleepnetError(f"unknown init {self.init!r} (uniform or default)")

    def to_dict(self) -> dict:
        """The recipe as a JSON-able dict (``sizes`` as a list), as in ``model.json``."""
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d


RECIPES: Registry[Recipe] = Registry("recipe")
RECIPES.register("paper", Recipe("paper"))
RECIPES.register("standard", Recipe("standard", epochs=3, optimizer="adam", lr=1e-3, momentum=0.0,
                                    loss="cross-entropy", init="default",
                                    dropout_convention="inverted"))  # fmt: skip


def get_recipe(name: str, **changes) -> Recipe:
    """Recipe ``name`` with ``changes`` (those not None); ``UnknownName`` for an unknown name."""
    recipe = replace(RECIPES.get(name), **{k: v for k, v in changes.items() if v is not None})
    recipe.validate()
    return recipe


@contextlib.contextmanager
def deterministic(device=None):
    """Torch's deterministic algorithms on for the block (and cuBLAS allowed to run so on a GPU)."""
    if device is not None and torch.device(device).type == "cuda":
        cuda_deterministic_env()
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
             batch_size: int = 5000, device=None) -> float:  # fmt: skip
    """Fraction of ``x`` classified as ``y`` (argmax of the output, evaluation mode).

    Runs on ``device`` (default: the model's own); the model is left on its device and in its mode.
    """
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    with on_device(model, device) as dev, eval_mode(model):
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        for s in range(0, len(x), batch_size):
            xb, yb = x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev)
            correct += (model(xb).argmax(1) == yb).sum()
    return int(correct) / len(x)


def init_model(recipe: Recipe, seed: int) -> nn.Sequential:
    """A fresh untrained network of ``recipe`` with initial weights drawn from ``seed``.

    Parameters
    ----------
    recipe : Recipe
        Its ``sizes``, dropout and init (``uniform``: U(-init_scale, init_scale); else torch's).
    seed : int
        Seeds torch's global generator (``torch.manual_seed``) before the draw.

    Returns
    -------
    nn.Sequential
        The model from ``build_mlp``, on the CPU.
    """
    torch.manual_seed(seed)
    model = build_mlp(list(recipe.sizes), recipe.dropout, recipe.dropout_convention)
    if recipe.init == "uniform":
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Linear):
                    m.weight.uniform_(-recipe.init_scale, recipe.init_scale)
    return model


def fit(model: nn.Sequential, recipe: Recipe, x: np.ndarray, y: np.ndarray, seed: int,
        progress: bool = False, *, targets: np.ndarray | None = None,
        loss: Callable | None = None, perturb: Callable | None = None,
        device=None) -> list[float]:  # fmt: skip
    """Train ``model`` in place with ``recipe``; returns the mean loss of each epoch.

    ``device`` (default: the model's own) is where the model is moved and trained; the data
    are moved there once. The same seed on another device gives other weights (other kernels
    and dropout generators); on one device it gives the same bits.

    The defences reuse this loop: ``targets`` replace the labels given to the
    loss (e.g. soft labels), ``loss(model, xb, tb)`` replaces the recipe's
    loss, and ``perturb(model, xb, yb)`` replaces each batch's inputs (e.g.
    adversarial examples, made with the model in evaluation mode).
    """
    device = model_device(model) if device is None else resolve_device(device)
    model.to(device)
    xt, yt = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    tt = yt if targets is None else torch.as_tensor(targets).to(device)
    if loss is None:
        loss = lambda m, xb, tb: loss_fn(recipe.loss, m, xb, tb)  # noqa: E731
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)  # dropout masks
    losses = []
    n_batches = (len(xt) + recipe.batch_size - 1) // recipe.batch_size
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=recipe.epochs * n_batches, desc=f"train ({recipe.name})", leave=False)
    model.train()
    with deterministic(device):
        for _ in range(recipe.epochs):
            order = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for b in range(n_batches):
                idx = order[b * recipe.batch_size : (b + 1) * recipe.batch_size].to(device)
                xb = xt[idx]
                if perturb is not None:
                    model.eval()
                    xb = perturb(model, xb, yt[idx])
                    model.train()
                opt.zero_grad(set_to_none=True)
                value = loss(model, xb, tt[idx])
                value.backward()
                opt.step()
                total += float(value.detach())
                if bar is not None:
                    bar.update(1)
            losses.append(total / n_batches)
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def train(data: Dataset, recipe: Recipe | str = "paper", seed: int = 0,
          progress: bool = False, device=None) -> tuple[nn.Sequential, dict]:  # fmt: skip
    """Train a fresh network on ``data`` on ``device`` (default cpu).

    Returns the model, on ``device``, and its record for ``model.json``.
    """
    device = resolve_device(device)
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    recipe.validate()
    if data.x_train.shape[1] != recipe.sizes[0] or data.n_classes > recipe.sizes[-1]:
        recipe = replace(recipe, sizes=(data.x_train.shape[1], *recipe.sizes[1:-1], data.n_classes))
    start = time.perf_counter()
    model = init_model(recipe, seed)  # drawn on the CPU: the same initial weights on every device
    losses = fit(model, recipe, data.x_train, data.y_train, seed, progress, device=device)
    wall = time.perf_counter() - start
    metrics = {
        "train_loss": losses,
        "train_accuracy": accuracy(model, data.x_train, data.y_train),
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "train_time_s": wall,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    record = {"kind": "trained", "recipe": recipe.to_dict(), "dataset": data.record(), "seed": seed,
              "metrics": metrics}  # fmt: skip
    return model, record
