"""Stochastic layers: neuronal noise that stays on at test time (Dapello et al. 2021; VOneNet).

- ``PoissonNoise(gain, k=0.35, b=0.07)``: Poisson-like noise, its variance growing with the
  mean, as VOneNet's ``noise_f`` (github dicarlolab/vonenet, ``vonenet/modules.py``, neuronal
  mode) does it. VOneNet scales its V1 output into spike-count units (``k_exc = 25``) before
  the noise; ``gain`` is that factor here, applied to the layer's output ``x`` and undone::

      u = gain * x;  u' = k u + b;  u' += eps * sqrt(relu(u') + 1e-4);  out = relu((u' - b) / k / gain)

  that is ``relu(x + eps * sqrt(relu(k gain x + b) + 1e-4) / (k gain))``, ``eps ~ N(0, 1)``: a
  variance of about ``x / (k gain)`` for large ``x``. A larger gain is less noise; at gain 1
  (unit scale) the noise's std at ``x = 0`` is ``sqrt(0.07) / 0.35 = 0.76``, which swamps an
  MLP's activations (``docs/stochastic.md`` gives the scales measured on ours).
- ``GaussianNoise(sigma)``: ``relu(x + sigma * eps)`` (VOneNet's gaussian mode, ReLU included).

A noise layer goes after a hidden layer's activation (``add_noise``); its draws come from its
own generator, seeded by its ``seed`` (recorded in ``model.json``), fresh on every forward
pass, in training and in evaluation alike, so a loaded model draws the same sequence each
time and no other torch draw moves it. Every tool knows such a model is stochastic
(``stochastic = True``; ``evaluation.attacks.stochastic``) and evaluates it with EOT.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import torch
from torch import nn

from .errors import SleepnetError

KINDS = ("poisson", "gaussian")
#: passes behind a stochastic model's expected prediction
DRAWS = 20
#: the expected prediction draws each noise layer's noise from the layer's own seed plus this (layers are
#: seeded ``seed * 1000 + j``; attacks restart them at ``attack seed * 1000 + j``): each model seed its
#: own judge, apart from its training's and its attacks' streams
JUDGE_OFFSET = 10**9
#: the version of how a stochastic model is judged (the expected prediction's draws, ``judging``) and how
#: its attacks use the judge, in its kept measures' identities: a measure kept under row-by-row draws
#: (until 2026-12-02), under one judge for every model seed (on 2026-12-02), or before the attacks that
#: decide as they go (APGD, DeepFool, CW) decided by the judge and every EOT attack got EOT by default
#: (version 1, until 2026-12-03), or before JSMA took its target and saliency from the expected scores
#: (version 2, on 2026-12-03) is not reused
JUDGE = "own-seed-shared-rows-3"


_SINGLE = contextvars.ContextVar("sleepnet_single_draws", default=False)


@contextlib.contextmanager
def single_draws(on: bool = True):
    """Within the block (``on``), stochastic models are evaluated as if they were deterministic: each
    prediction is one noisy pass and each gradient one draw (no EOT), as an evaluation that ignores
    the noise does. It exists to measure what such an evaluation misses (``docs/stochastic.md``
    §4); it is never the default."""
    token = _SINGLE.set(bool(on))
    try:
        yield
    finally:
        _SINGLE.reset(token)


def judge_draws() -> int:
    """Passes behind a stochastic model's prediction: ``DRAWS``, or 1 within ``single_draws``."""
    return 1 if _SINGLE.get() else DRAWS


def positive(name: str, value) -> float:
    """``value`` as a finite positive float; one clear error otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise SleepnetError(f"noise {name} must be a finite positive number, got {value!r}")
    return v


class Noise(nn.Module):
    """The common part: a seeded generator per device, fresh noise each pass."""

    stochastic = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.restart()

    def restart(self, seed: int | None = None, shared: bool = False) -> None:
        """Start the draws again, from ``seed`` (default: the layer's own, which stays recorded); with
        ``shared``, each pass draws one noise for every row of its batch (``eps``)."""
        self._start = self.seed if seed is None else int(seed)
        self._gens: dict[str, torch.Generator] = {}
        self._shared = bool(shared)

    def eps(self, x: torch.Tensor) -> torch.Tensor:
        """``N(0, 1)`` of ``x``'s shape, dtype and device, from this layer's generator: fresh for every
        row, or, in a ``shared`` restart, one draw of a row's shape for all rows (what a row gets then
        depends neither on its place in the batch nor on the batch's size)."""
        key = str(x.device)
        if key not in self._gens:
            self._gens[key] = torch.Generator(device=x.device).manual_seed(self._start)
        shape = (1, *x.shape[1:]) if self._shared else x.shape
        # drawn in float32 whatever x's dtype: a float64 copy of the model (the masking checks' precision
        # check, masking.float64_model) gets the same numbers, not torch's other float64 stream
        e = torch.randn(shape, generator=self._gens[key], device=x.device, dtype=torch.float32).to(x.dtype)
        return e.expand(x.shape) if self._shared else e

    def with_draw(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The layer's output on ``x`` under the draw ``eps`` (``N(0, 1)`` of ``x``'s shape)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``with_draw`` under a fresh draw from the layer's generator."""
        return self.with_draw(x, self.eps(x))

    def __getstate__(self):  # generators do not copy or pickle: a copy starts from its seed
        state = self.__dict__.copy()
        state["_gens"] = {}
        return state


class PoissonNoise(Noise):
    """Poisson-like noise at ``gain`` spike counts per unit activation (module docstring)."""

    def __init__(self, gain: float = 25.0, k: float = 0.35, b: float = 0.07, seed: int = 0) -> None:
        super().__init__(seed)
        self.gain, self.k, self.b = positive("gain", gain), positive("k", k), float(b)

    def with_draw(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``relu(x + eps * sqrt(relu(k gain x + b) + 1e-4) / (k gain))`` for the given draw ``eps``."""
        kg = self.k * self.gain
        return torch.relu(x + eps * torch.sqrt(torch.relu(kg * x + self.b) + 1e-4) / kg)

    def extra_repr(self) -> str:
        """``gain=..., k=..., b=..., seed=...``."""
        return f"gain={self.gain}, k={self.k}, b={self.b}, seed={self.seed}"


class GaussianNoise(Noise):
    """``relu(x + sigma * eps)``."""

    def __init__(self, sigma: float = 0.1, seed: int = 0) -> None:
        super().__init__(seed)
        self.sigma = positive("sigma", sigma)

    def with_draw(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``relu(x + sigma * eps)`` for the given draw ``eps``."""
        return torch.relu(x + self.sigma * eps)

    def extra_repr(self) -> str:
        """``sigma=..., seed=...``."""
        return f"sigma={self.sigma}, seed={self.seed}"


def parse(spec: str) -> tuple[str, float]:
    """``"poisson:25"`` -> ``("poisson", 25.0)`` (the gain), ``"gaussian:0.1"`` -> ``("gaussian", 0.1)``
    (sigma); one clear error for anything else."""
    kind, _, value = str(spec).partition(":")
    try:
        scale = float(value)
    except ValueError:
        scale = float("nan")
    if kind not in KINDS or not math.isfinite(scale) or scale <= 0:
        raise SleepnetError(f"noise must be poisson:GAIN or gaussian:SIGMA with a positive number, "
                            f"got {spec!r}")
    return kind, scale


def make(spec: str, seed: int = 0) -> Noise:
    """A noise layer for ``spec`` (``parse``)."""
    kind, scale = parse(spec)
    return PoissonNoise(gain=scale, seed=seed) if kind == "poisson" else GaussianNoise(sigma=scale, seed=seed)


def spec_of(layer: Noise) -> str:
    """The ``parse``-able spec of ``layer``."""
    return f"poisson:{layer.gain:g}" if isinstance(layer, PoissonNoise) else f"gaussian:{layer.sigma:g}"


def hidden_outputs(model: nn.Sequential) -> list[int]:
    """Indices of ``model``'s hidden activations: each ReLU or sigmoid but the readout's."""
    acts = [i for i, m in enumerate(model) if isinstance(m, (nn.ReLU, nn.Sigmoid))]
    last_weight = max(i for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d)))
    return [i for i in acts if i < last_weight]


def check_places(after, hidden: int | None = None) -> list[int]:
    """``after`` (the hidden layers noise follows, from 1) as a list; one clear error unless it is a
    list of distinct integers in ``1..hidden`` (any from 1 when ``hidden`` is None)."""
    top = "" if hidden is None else f"..{hidden}"
    if not isinstance(after, (list, tuple)) or any(
            isinstance(j, bool) or not isinstance(j, int) or j < 1 or (hidden is not None and j > hidden)
            for j in after) or len(set(after)) != len(after):  # fmt: skip
        raise SleepnetError(f"noise goes after hidden layers 1{top} (each once), got {after!r}")
    return list(after)


def add_noise(model: nn.Sequential, spec: str, after: tuple[int, ...] | list[int] = (),
              seed: int = 0) -> nn.Sequential:  # fmt: skip
    """``model`` with a noise layer ``spec`` after the activation of each hidden layer in ``after``
    (numbered from 1; empty: every hidden layer); the ``j``-th noise layer is seeded ``seed * 1000 + j``.

    The layers are ``model``'s own (shared, not copied); a model that has noise already is refused.
    """
    parse(spec)
    if stochastic_layers(model):
        raise SleepnetError("the model has noise layers already")
    hidden = hidden_outputs(model)
    if not hidden:
        raise SleepnetError(f"noise {spec!r} goes after hidden layers, and the model has none")
    chosen = check_places(after, len(hidden)) or list(range(1, len(hidden) + 1))
    at = {hidden[h - 1]: j for j, h in enumerate(sorted(chosen), start=1)}
    layers: list[nn.Module] = []
    for i, m in enumerate(model):
        layers.append(m)
        if i in at:
            layers.append(make(spec, seed * 1000 + at[i]))
    return nn.Sequential(*layers)


def stochastic(model: nn.Module) -> bool:
    """Whether ``model`` draws noise at evaluation time: a module with a true ``stochastic`` attribute
    (every ``Noise`` layer, or a layer of your own that says so)."""
    return any(getattr(m, "stochastic", False) for m in model.modules())


def stochastic_layers(model: nn.Module) -> list[Noise]:
    """The noise layers of ``model``."""
    return [m for m in model.modules() if isinstance(m, Noise)]


def restart(model: nn.Module, seed: int | None = None, shared: bool = False, offset: int = 0) -> None:
    """Restart every noise layer of ``model``: from its own seed plus ``offset``, or from
    ``seed * 1000 + j`` (``j``: its place among them, from 1); ``shared``: one draw per pass for all
    rows (``Noise.eps``)."""
    for j, layer in enumerate(stochastic_layers(model), start=1):
        layer.restart(layer.seed + offset if seed is None else seed * 1000 + j, shared)


@contextlib.contextmanager
def seeded(model: nn.Module, seed: int | None, shared: bool = False, offset: int = 0):
    """Within the block, ``model``'s noise layers draw from ``seed`` (``restart``: ``None`` is each
    layer's own seed plus ``offset``; ``shared`` or not); afterwards they go on from where they were,
    as if the block had not drawn."""
    layers = stochastic_layers(model)
    saved = [(layer._start, layer._shared, {k: g.get_state() for k, g in layer._gens.items()})
             for layer in layers]  # fmt: skip
    restart(model, seed, shared, offset)
    try:
        yield model
    finally:
        for layer, (start, was_shared, states) in zip(layers, saved):
            layer.restart(start, was_shared)
            for key, state in states.items():
                gen = torch.Generator(device=key)
                gen.set_state(state)
                layer._gens[key] = gen


def draw(body: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """One pass of ``body`` on ``x``: the draw each of its noise layers made (their generators move on
    as in any pass). ``through(body, x, draw(body, x))`` repeats that pass exactly."""
    check_flat(body)
    draws, h = [], x
    for m in body:
        if isinstance(m, Noise):
            draws.append(m.eps(h))
            h = m.with_draw(h, draws[-1])
        else:
            h = m(h)
    return draws


def through(body: nn.Sequential, x: torch.Tensor, draws: list[torch.Tensor]) -> torch.Tensor:
    """``body`` on ``x`` with its noise layers' draws given (``draw``), not drawn: a deterministic
    function of ``x`` and ``draws``, so ``torch.func`` transforms (``vmap``, ``jacrev``) apply."""
    check_flat(body)
    given = iter(draws)
    for m in body:
        x = m.with_draw(x, next(given)) if isinstance(m, Noise) else m(x)
    return x


def check_flat(body: nn.Module) -> None:
    """One clear error unless every noise of ``body`` is a ``Noise`` layer at its top level."""
    top = [m for m in body.children() if isinstance(m, Noise)] if isinstance(body, nn.Sequential) else []
    drawing = [m for m in body.modules() if getattr(m, "stochastic", False)]
    if len(top) != len(drawing):
        raise SleepnetError("only noise layers of sleepnet's own (noise.Noise) at the top level of an "
                            "nn.Sequential can be held fixed; this model draws noise elsewhere")


def split(body: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``body`` as ``(head, tail)``: the layers before its first noise-drawing layer (``stochastic``, at
    any depth), which give the same
    output on every pass, and the rest (``tail(head(x)) == body(x)``, the same operations in the
    same order, so the same floats and the same draws). A body that is not an ``nn.Sequential`` is
    all tail; one without noise, all head."""
    if not isinstance(body, nn.Sequential):
        return nn.Sequential(), body
    k = next((i for i, m in enumerate(body) if stochastic(m)), len(body))
    return body[:k], body[k:]


def judging(body: nn.Module, draws: int = DRAWS):
    """The draws of ``body``'s expected prediction over ``draws`` passes, for a block: each noise layer
    restarted at its own seed plus ``JUDGE_OFFSET`` (``seeded``), whatever block it is called in;
    shared across the rows of a batch when ``draws`` > 1, one per row when it is 1 (docstring of
    ``expected_scores``)."""
    return seeded(body, None, shared=int(draws) > 1, offset=JUDGE_OFFSET)


def expected_scores(body: nn.Module, x: torch.Tensor, draws: int = DRAWS) -> torch.Tensor:
    """``log(mean_d softmax(body(x)))`` over ``draws`` passes of the logits ``body``: the scores of a
    stochastic network's expected prediction.

    The draws are common random numbers: every call restarts ``body``'s noise layers at their own
    seeds plus ``JUDGE_OFFSET``, and each pass draws one noise that every row of the batch shares
    (``judging``). The expected prediction is thus a fixed function of each image alone, the mean
    over ``draws`` fixed networks: an image gets the same scores in any batch, of any size, at any
    row, on its clean and its adversarial versions alike. The 20 networks follow from the model's
    noise seeds, so models of other seeds are judged by other draws, and a spread over seeds
    includes the judge's. The layers' own streams go on afterwards as if nothing had been drawn. A
    single pass (``draws`` 1, ``single_draws``: what a naive evaluation runs) draws its own noise for
    every row instead, from the same start on every call (so a row's noise depends on its place in
    the batch; a network in use would draw afresh each call). Noise
    layers of your own (``stochastic``, not ``Noise``) draw as they always do. The layers before
    the first noise layer run once, not once per draw (``split``).
    """
    head, tail = split(body)
    with judging(body, draws):
        h = head(x)  # once: the layers before the first noise layer draw nothing
        p = sum(torch.softmax(tail(h), dim=1) for _ in range(int(draws))) / int(draws)
    return torch.log(p.clamp_min(1e-30))
