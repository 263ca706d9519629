"""Training recipes: the paper's (exactly, ``docs/paper-protocol.md`` §2) and a standard one.

``paper``: ``[784, 1200, 1200, 10]``, no biases, ReLU hidden and output, weights
U(-0.01, 0.01), squared error with a straight-through output ReLU, SGD lr 0.1
momentum 0.5 (torch's momentum form, identical for a constant lr), batch 100,
2 epochs, shuffled, non-inverted dropout 0.2 on hidden activations.

``standard``: the same architecture, torch's default (Kaiming-uniform) init,
cross-entropy on the logits, Adam lr 1e-3, inverted dropout 0.2, 3 epochs.

``relu-mlp``, ``sigmoid-mlp`` and ``cnn`` (the saturation defence's networks,
``docs/saturation.md``): biases, torch's init, cross-entropy, Adam lr 1e-3, batch 100,
no dropout, 5 epochs; MLPs ``[784, 1200, 1200, 10]``; the CNN of ``models.build_cnn``
(16 and 32 channels, 128 hidden units). The activation is on every layer, the readout's
included; the loss reads the logits before it.

``saturation = lambda > 0`` adds the saturation penalty (``sleepnet.saturation``) to any
recipe's loss, annealed by ``schedule``.

Determinism: the seed fixes the initial weights, the shuffling and the dropout
masks, and ``torch.use_deterministic_algorithms`` is on while training. The
result is bit-identical for the same seed and the same number of torch threads;
a different thread count can change the float summation order of matrix
products and hence the last bits of the weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from . import noise
from .data import Dataset
from .devices import cuda_deterministic_env, model_device, resolve_device
from .errors import SleepnetError
from .losses import LOSSES, logit_body, loss_fn
from .models import build_cnn, build_mlp
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
    arch: str = "mlp"  # "mlp" (sizes) or "cnn" (sizes[1] = dense hidden units, channels)
    activation: str = "relu"
    bias: bool = False
    channels: tuple[int, ...] = (16, 32)
    saturation: float = 0.0  # lambda of the saturation penalty; 0: none
    schedule: str = "linear:0.5"
    noise: str = ""  # a noise layer on at test time (``sleepnet.noise``): "poisson:GAIN", "gaussian:SIGMA"
    noise_after: tuple[int, ...] = ()  # the hidden layers it follows, from 1; empty: every one

    def validate(self) -> None:
        """``SleepnetError`` for non-positive epochs, batch_size or lr, an unknown loss, optimizer,
        init, architecture or activation, a negative saturation lambda or a schedule that does not
        parse."""
        from .models import ACTIVATIONS
        from .saturation import Schedule, check_lambda

        if self.arch not in ("mlp", "cnn"):
            raise SleepnetError(f"unknown architecture {self.arch!r} (mlp or cnn)")
        if self.arch == "cnn" and (len(self.sizes) != 3 or len(self.channels) != 2):
            raise SleepnetError(f"the CNN has one dense hidden layer and two convolutions: sizes must be "
                                f"[inputs, hidden, classes] and channels two numbers, got sizes "
                                f"{list(self.sizes)} and channels {list(self.channels)}")  # fmt: skip
        if self.activation not in ACTIVATIONS:
            raise SleepnetError(f"unknown activation {self.activation!r} (known: {', '.join(ACTIVATIONS)})")
        check_lambda(self.saturation)
        Schedule.parse(self.schedule)
        if self.noise:
            noise.parse(self.noise)
            hidden = 3 if self.arch == "cnn" else len(self.sizes) - 2
            if hidden < 1:
                raise SleepnetError(f"noise {self.noise!r} goes after hidden layers, and the network has "
                                    "none")  # fmt: skip
            noise.check_places(list(self.noise_after), hidden)
        elif self.noise_after:
            raise SleepnetError("noise_after needs a noise")
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
        d["sizes"], d["channels"] = list(self.sizes), list(self.channels)
        d["noise_after"] = list(self.noise_after)
        return d


RECIPES: Registry[Recipe] = Registry("recipe")
RECIPES.register("paper", Recipe("paper"))
RECIPES.register("standard", Recipe("standard", epochs=3, optimizer="adam", lr=1e-3, momentum=0.0,
                                    loss="cross-entropy", init="default",
                                    dropout_convention="inverted"))  # fmt: skip
for _name, _changes in (("relu-mlp", {}), ("sigmoid-mlp", {"activation": "sigmoid"}),
                        ("cnn", {"arch": "cnn", "sizes": (784, 128, 10)})):  # fmt: skip
    RECIPES.register(_name, Recipe(_name, **({"epochs": 5, "optimizer": "adam", "lr": 1e-3, "momentum": 0.0,
                                             "loss": "cross-entropy", "init": "default", "dropout": 0.0,
                                             "dropout_convention": "inverted", "bias": True} | _changes)))


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
    """Fraction of ``x`` classified as ``y`` (argmax of the output, evaluation mode); for a stochastic
    model, of its expected prediction over ``noise.DRAWS`` passes (``noise.expected_scores``; of one
    pass within ``noise.single_draws``), its draws seeded as the expected prediction's.

    Runs on ``device`` (default: the model's own); the model is left on its device and in its mode.
    """
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    net = model
    if noise.stochastic(model):  # common random numbers, so a rerun gives the same figure
        body, draws = logit_body(model), noise.judge_draws()
        net = lambda xb: noise.expected_scores(body, xb, draws)  # noqa: E731
    with on_device(model, device) as dev, eval_mode(model):
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        for s in range(0, len(x), batch_size):
            xb, yb = x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev)
            correct += (net(xb).argmax(1) == yb).sum()
    return int(correct) / len(x)


def init_model(recipe: Recipe, seed: int, image_shape: tuple[int, int] | None = None,
               frontend: dict | None = None) -> nn.Sequential:  # fmt: skip
    """A fresh untrained network of ``recipe`` with initial weights drawn from ``seed``.

    Parameters
    ----------
    recipe : Recipe
        Its architecture, activation, biases, dropout and init (``uniform``:
        U(-init_scale, init_scale) weights and zero biases; else torch's).
    seed : int
        Seeds torch's global generator (``torch.manual_seed``) before the draw.
    image_shape : (int, int), optional
        The images' shape, for a CNN (default: square images of ``sizes[0]`` pixels).
    frontend : dict, optional
        A front-end record (``Dataset.frontend``): the model starts with that ``LogMel``, the
        recipe's ``sizes[0]`` counts its features, and a CNN sees them as (frames, mel bands).

    Returns
    -------
    nn.Sequential
        The model from ``build_mlp`` or ``build_cnn``, on the CPU, with the recipe's noise layers
        (``noise.add_noise``, seeded from ``seed``) if it has any, after the front-end if any.
    """
    front = None
    if frontend is not None:
        from .audio.frontend import LogMel

        front = LogMel.from_record(frontend)
        image_shape = (front.frames, front.n_mels)
    torch.manual_seed(seed)
    if recipe.arch == "cnn":
        side = math.isqrt(recipe.sizes[0])
        shape = image_shape or (side, side)
        if shape[0] * shape[1] != recipe.sizes[0]:
            raise SleepnetError(f"a CNN needs image inputs: {recipe.sizes[0]} inputs are not {shape}")
        model = build_cnn(shape, recipe.sizes[-1], tuple(recipe.channels), recipe.sizes[1], recipe.activation,
                          recipe.dropout, recipe.dropout_convention)  # fmt: skip
    else:
        model = build_mlp(list(recipe.sizes), recipe.dropout, recipe.dropout_convention, recipe.activation,
                          recipe.bias)  # fmt: skip
    if recipe.init == "uniform":
        with torch.no_grad():
            for m in model:
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    m.weight.uniform_(-recipe.init_scale, recipe.init_scale)
                    if m.bias is not None:
                        m.bias.zero_()
    if recipe.noise:
        model = noise.add_noise(model, recipe.noise, tuple(recipe.noise_after), seed)
    if front is not None:
        model = nn.Sequential(front, *model)
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
    n_batches = (len(xt) + recipe.batch_size - 1) // recipe.batch_size
    if recipe.saturation > 0:
        loss = saturated(loss, recipe, recipe.epochs * n_batches)
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)  # dropout masks
    losses = []
    from .progress import bar as progress_bar

    bar = progress_bar(f"train ({recipe.name})", total=recipe.epochs * n_batches, enabled=progress,
                       unit="batches")  # fmt: skip
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
                bar.update(1)
            losses.append(total / n_batches)
    bar.close()
    model.eval()
    return losses


def saturated(loss: Callable, recipe: Recipe, total: int) -> Callable:
    """``loss`` plus ``lambda(t) *`` the saturation penalty of every layer, ``t`` counting the calls
    (one per training step) up to ``total`` (``sleepnet.saturation``)."""
    from .saturation import Schedule, penalty, tapped

    schedule, step = Schedule.parse(recipe.schedule), iter(range(10**12))

    def total_loss(m, xb, tb):
        """The task loss and the annealed penalty, from one forward pass's activation inputs."""
        with tapped(m) as taps:
            value = loss(m, xb, tb)
        return value + recipe.saturation * schedule.factor(next(step), total) * penalty(taps)

    return total_loss


def train(data: Dataset, recipe: Recipe | str = "paper", seed: int = 0,
          progress: bool = False, device=None) -> tuple[nn.Sequential, dict]:  # fmt: skip
    """Train a fresh network on ``data`` on ``device`` (default cpu).

    Returns the model, on ``device``, and its record for ``model.json``.
    """
    device = resolve_device(device)
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    recipe.validate()
    if data.n_features != recipe.sizes[0] or data.n_classes > recipe.sizes[-1]:
        recipe = replace(recipe, sizes=(data.n_features, *recipe.sizes[1:-1], data.n_classes))
    start = time.perf_counter()
    # drawn on the CPU: the same weights on every device
    model = init_model(recipe, seed, data.image_shape, data.frontend)
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
