"""The small interface every attack implements.

An attack is constructed with the model under attack and the name of its loss
(the model's own training loss, ``sleepnet.losses``); ``run(x, y)`` returns a
dict of JSON-able results.

Devices: an attack runs the model on ``device`` (default: the device the model
is on; a model elsewhere is moved there for each call and back afterwards).
Our own attacks (FGSM, PGD, DeepFool, CW-L2) work on tensors on that device
from input to result (``gradient``, ``classify``, ``generate_tensor``), numpy
only at the edges; our HopSkipJump and Boundary and ART's attacks (JSMA, ``*-art``)
search on the host in numpy, as ART does, and send each batch of model calls
to the device. ``run`` takes numpy arrays or tensors (on any device); ``generate``
works on numpy arrays; a perturbation attack called as ``attack(x, y)``
returns adversarial examples of the input's type, a tensor on the input's
device for a tensor.

The model is attacked in evaluation mode, for the duration of each call only:
every method that runs the model (``run``, ``generate``, ``predict``,
``input_gradient``, and the like of each attack) holds ``state.eval_mode``,
which puts back every module's own training flag afterwards, so attacking a
model in training mode leaves it in training mode; and ``state.grads_kept``,
which puts back the weights' ``.grad`` (ART's attacks call ``backward()``); and
``state.weights_frozen``: no gradient flows into the weights during the call.
``run``, ``generate`` and ``generate_tensor`` of every subclass are wrapped so automatically
(``Attack.__init_subclass__``); other methods that call the model take the
``evaluating`` decorator.

Attacks that produce one adversarial example per image derive from
``PerturbationAttack`` and implement ``generate``; their results are
summarised the same way (``summarize``): success rate over the images the
model classified correctly, median relative L2 perturbation
``||x_adv - x|| / ||x||`` over the successes, robust accuracy (an image counts
only if classified correctly clean and not fooled), and the found norm per
image (``robust.py``), with the robust-accuracy curve over budgets for a
minimal-perturbation attack (``minimal = True``: DeepFool, CW, Boundary,
HopSkipJump) and at its own budget for a fixed-budget one.

Losses: ``loss`` names the loss a gradient attack ascends (``sleepnet.losses``):
the model's training loss where the sleep paper's protocol is reproduced, else
cross-entropy, the margin or the DLR loss; every result says which (``loss``).

Randomized models: a gradient attack averages the gradient over
``eot_samples`` forward passes (Expectation over Transformation, Athalye et
al. 2018); ``eot_default`` gives the number for a model, and every attack that
takes EOT gets it unless told otherwise (the full-test-set FGSM, the paper
suite's attacks and the masking checks included). Every attack judges a
stochastic model by its expected prediction, the class of highest mean
probability over ``draws`` = 20 passes drawn as common random numbers
(``ExpectedScores``, ``noise.expected_scores``, ``classify``), and the attacks
that query the model rather than average gradients (Boundary, HopSkipJump,
Square, FAB; JSMA too, its target and saliency) query those expected scores:
on single draws they fail for the wrong reason, the noise hiding the decision
boundary. The attacks that decide
on the model's outputs as they go decide by that judge too: DeepFool's class
and its stop, CW's successes, AutoAttack's APGD parts' results
(``autoattack.LibraryAttack._judged``). ``judge_by(1)`` gives that
naive evaluation back, to measure it. Each ``run``/``generate`` call holds the
model's noise layers at the attack's seed (``noise.seeded``). ``docs/stochastic.md`` §4.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from ...devices import model_device, resolve_device
from ...errors import SleepnetError
from ...losses import logit_body, loss_fn, loss_from_scores
from ...noise import expected_scores, judge_draws, seeded, split, stochastic
from ...registry import Registry
from ...state import eval_mode, grads_kept, on_device, weights_frozen
from ..robust import DEFAULT_BUDGETS, found_norms, into_ball, jsonable_norms, robust_accuracy

#: EOT draws for a stochastic model whose record names none (AutoAttack's rand version uses 20)
EOT_STOCHASTIC = 20

ATTACKS: Registry[type[Attack]] = Registry("attack")


def register(cls):
    """Class decorator: ``cls`` joins ``ATTACKS`` under ``cls.name``."""
    return ATTACKS.register(cls.name, cls)


def evaluating(method, seeds_noise: bool = False):
    """A method of an attack that runs ``self.model``: in evaluation mode, and with the model's
    training flags, weight gradients and ``requires_grad`` flags as they were once it returns (or
    raises), the weights frozen meanwhile. With
    ``seeds_noise`` (``run``, ``generate``, ``generate_tensor``) the model's noise layers also draw
    from the attack's seed for the call (``noise.seeded``: a run does not depend on what ran
    before it, and the layers' streams go on afterwards as before); the helpers (``classify``,
    ``gradient``) draw on from the layers' own streams."""
    if getattr(method, "evaluating", False):
        return method

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        """``method`` with the model on the attack's device, in evaluation mode, grads kept, weights
        frozen."""
        if getattr(self, "_evaluating", False):  # nested: the outer call holds the state already
            return method(self, *args, **kwargs)
        self._evaluating = True
        held = seeded(self.model, int(getattr(self, "seed", 0) or 0)) if seeds_noise else nullcontext()
        try:
            with (
                on_device(self.model, self.device),
                eval_mode(self.model),
                grads_kept(self.model),
                weights_frozen(self.model),
                held,
            ):
                return method(self, *args, **kwargs)
        finally:
            self._evaluating = False

    wrapper.evaluating = True
    return wrapper


def n_outputs(model: nn.Sequential) -> int:
    """Outputs of ``model``'s last ``Linear`` layer: its number of classes."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def eot_default(model: nn.Module, record: dict | None = None) -> int:
    """EOT samples for ``model``: its record's ``eot_samples``, else ``EOT_STOCHASTIC`` for a stochastic
    model and 1 for a deterministic one; 1 within ``noise.single_draws``."""
    if judge_draws() == 1 and stochastic(model):
        return 1
    if record and record.get("eot_samples"):
        return check_eot(record["eot_samples"])
    return EOT_STOCHASTIC if stochastic(model) else 1


class ExpectedScores(nn.Module):
    """Log of the mean class probability of ``model`` over ``draws`` forward passes, with common random
    numbers (``noise.expected_scores``): the scores of its expected prediction (their argmax)."""

    def __init__(self, model: nn.Sequential, draws: int) -> None:
        super().__init__()
        self.body, self.draws = logit_body(model), int(draws)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log(mean_d softmax(logits_d(x)))``, ``(N, K)``."""
        return expected_scores(self.body, x, self.draws)


def expected(model: nn.Sequential, draws: int) -> nn.Sequential:
    """``model`` judged by its expected prediction over ``draws`` passes (``ExpectedScores``), as a
    Sequential whose output is those scores; ``model`` itself if ``draws`` is 1."""
    return nn.Sequential(ExpectedScores(model, draws)) if draws > 1 else model


def check_eot(value) -> int:
    """``value`` as a number of EOT samples (an integer >= 1); one clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SleepnetError(f"eot_samples must be an integer >= 1, got {value!r}")
    return int(value)


def one_draw(name: str, kwargs: dict) -> dict:
    """``kwargs`` of an attack that takes one draw a gradient (the ART twins), with ``eot_samples`` 1:
    one clear error if it asks for more (``None``, the default, is 1 here, not the model's default)."""
    eot = kwargs.get("eot_samples")
    if eot not in (None, 1):
        raise SleepnetError(f"{name} takes one draw a gradient (ART's implementation): eot_samples must "
                            f"be 1, got {eot!r}")  # fmt: skip
    return kwargs | {"eot_samples": 1}


def as_numpy(a, dtype=None) -> np.ndarray:
    """A host array of ``a`` (a numpy array, a tensor on any device, or a list)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


class Attack(ABC):
    """An attack on ``model`` with its training ``loss``, run on ``device``; ``run(x, y)`` gives results."""

    name = "abstract"

    def __init__(self, model: nn.Sequential, loss: str, batch_size: int = 2500, device=None,
                 eot_samples: int | None = 1) -> None:  # fmt: skip
        self.model = model  # left in its mode: each call holds eval_mode (module docstring)
        self.loss = loss
        self.batch_size = batch_size
        self.device = model_device(model) if device is None else resolve_device(device)
        # None: the model's default (eot_default), what every attack that takes EOT is given unless told
        self.eot_samples = eot_default(model) if eot_samples is None else check_eot(eot_samples)
        #: passes behind each prediction: 1 for a deterministic model, else 20 (``judge_by``;
        #: 1 within ``noise.single_draws``)
        self.draws = judge_draws() if stochastic(model) else 1
        self.queried = expected(model, self.draws)  # what is judged, and what query attacks query

    def judge_by(self, draws: int) -> Attack:
        """Judge (and, for a query attack, query) a stochastic model by its expected prediction over
        ``draws`` passes; ``draws = 1``: by single noisy passes, as a naive evaluation does (to show
        what that misses). Returns the attack."""
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
            raise SleepnetError(f"draws must be an integer >= 1, got {draws!r}")
        if stochastic(self.model):
            self.draws = int(draws)
            self.queried = expected(self.model, self.draws)
        return self

    def tensor(self, a, dtype=torch.float32) -> torch.Tensor:
        """``a`` as a tensor on the attack's device."""
        return torch.as_tensor(as_numpy(a) if not isinstance(a, torch.Tensor) else a, dtype=dtype,
                               device=self.device)  # fmt: skip

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("run", "generate", "generate_tensor"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, name, evaluating(method, seeds_noise=True))

    @evaluating
    def gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``d loss / d x`` per image, on the attack's device (summed loss: a batch does not scale it),
        averaged over ``eot_samples`` forward passes.

        x : float32 ``(N, n)``; y : int64 ``(N,)``; both on the attack's device.

        With EOT, the layers before the first noise layer (``noise.split``) run forward once and
        backward once, on the sum of the draws' gradients at their output: the same gradient, up
        to float rounding, at a fraction of the cost when those layers are the heavy part (an
        audio front-end, the first weight layer).
        """
        grads = []
        head, tail = split(logit_body(self.model)) if self.eot_samples > 1 else (None, None)
        for s in range(0, len(x), self.batch_size):
            xb = x[s : s + self.batch_size].detach().clone().requires_grad_(True)
            yb = y[s : s + self.batch_size]
            if head is None:
                loss = loss_fn(self.loss, self.model, xb, yb, reduction="sum")
                grads.append(torch.autograd.grad(loss, xb)[0])
                continue
            h = head(xb)
            at = h.detach().requires_grad_(True)
            g = 0
            for _ in range(self.eot_samples):
                loss = loss_from_scores(self.loss, tail(at), yb, reduction="sum")
                g = g + torch.autograd.grad(loss, at)[0]
            grads.append(torch.autograd.grad(h, xb, grad_outputs=g)[0] / self.eot_samples)
        return torch.cat(grads)

    def input_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``gradient`` for host arrays: float32 ``(N, n)`` numpy in and out."""
        return self.gradient(self.tensor(x), self.tensor(y, dtype=torch.int64)).cpu().numpy()

    def n_classes(self) -> int:
        """Outputs of the last ``Linear`` layer."""
        return n_outputs(self.model)

    @evaluating
    @torch.no_grad()
    def classify(self, x: torch.Tensor, once: bool = False) -> torch.Tensor:
        """The model's class of each image of ``x`` (a tensor on the attack's device), in batches of 5000:
        int64 ``(N,)`` on the same device. A stochastic model's expected prediction over ``draws``
        passes, or with ``once`` that of a single pass."""
        net = self.model if once else self.queried
        return torch.cat([net(x[s : s + 5000]).argmax(1) for s in range(0, len(x), 5000)])

    def predict(self, x: np.ndarray, once: bool = False) -> np.ndarray:
        """``classify`` for host arrays: int64 ``(N,)`` numpy."""
        return self.classify(self.tensor(x), once).cpu().numpy()

    @abstractmethod
    def run(self, x: np.ndarray, y: np.ndarray) -> dict:
        """Attack images ``x`` (float32 ``(N, n)`` in [0, 1]) with labels ``y``."""


def summarize(x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, pred_clean: np.ndarray,
              pred_adv: np.ndarray, norm: str = "2", budgets=None) -> dict:  # fmt: skip
    """Success rate, median relative L2 perturbation over successes, robust accuracy, found norms.

    ``accuracy`` is robust accuracy under this attack: the share of images classified correctly
    clean and not fooled (an image misclassified clean and pushed into its class by the attack
    does not count). ``norms``: per image the ``norm`` of its adversarial example, 0 if
    misclassified clean, None if not fooled; ``robust_accuracy`` over ``budgets`` from them.
    """
    attacked = pred_clean == y
    success = attacked & (pred_adv != y)
    rel = np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1) / np.maximum(
        np.linalg.norm(x.reshape(len(x), -1), axis=1), 1e-12)  # fmt: skip
    n_attacked = int(attacked.sum())
    norms = found_norms(x, x_adv, y, pred_clean, pred_adv, norm)
    out = {
        "n": len(x),
        "clean_accuracy": float(attacked.mean()),
        "success_rate": float(success.sum() / n_attacked) if n_attacked else 0.0,
        "median_rel_l2": float(np.median(rel[success])) if success.any() else float("nan"),
        "accuracy": float(np.mean(attacked & ~success)),
        "norm": norm,
        "norms": jsonable_norms(norms),
    }
    if budgets is not None:
        out["robust_accuracy"] = robust_accuracy(norms, budgets)
    return out


class PerturbationAttack(Attack):
    """An attack that returns one adversarial example per image.

    ``norm``: the norm its perturbations are measured in; ``minimal``: whether it searches for the
    smallest adversarial example (then its summary has the robust-accuracy curve over
    ``DEFAULT_BUDGETS[norm]``) rather than any within a fixed budget ``eps``.
    """

    norm = "2"
    minimal = False

    @abstractmethod
    def generate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Adversarial examples for ``x`` (same shape, values in [0, 1])."""

    @evaluating
    def generate_tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``generate`` on tensors on the attack's device; an attack that works on tensors
        overrides this (and makes ``generate`` its host wrapper), others go through the host."""
        return self.tensor(self.generate(as_numpy(x, np.float32), as_numpy(y)))

    def run(self, x: np.ndarray, y: np.ndarray) -> dict:
        """See ``Attack.run``; returns ``summarize`` of ``generate``'s examples (clipped to [0, 1]; a
        fixed-budget attack's put inside its ball exactly, ``robust.into_ball``, as a sweep's are).

        Returns
        -------
        dict
            ``n``, ``clean_accuracy``, ``success_rate``, ``median_rel_l2``, ``accuracy`` (robust
            accuracy), ``norm``, ``norms``, ``robust_accuracy`` (at ``eps`` for a fixed-budget
            attack, over the default budgets for a minimal one), ``loss``, ``eot_samples`` and
            ``draws`` (passes behind each prediction).
        """
        x, y = as_numpy(x, np.float32), as_numpy(y)
        x_adv = np.clip(self.generate(x, y).astype(np.float32), 0.0, 1.0)
        if self.minimal:
            budgets = DEFAULT_BUDGETS[self.norm]
        else:  # a fixed-budget attack at its own eps; JSMA (L0) has none
            budgets = (self.eps,) if hasattr(self, "eps") else None
            if budgets and self.norm in ("inf", "2"):
                x_adv = into_ball(x, x_adv, self.eps, self.norm)
        out = summarize(x, x_adv, y, self.predict(x), self.predict(x_adv), self.norm, budgets)
        return out | {"loss": self.loss, "eot_samples": self.eot_samples, "draws": self.draws}

    def __call__(self, x, y):
        """Adversarial examples for ``x`` (numpy or a tensor), of the same type, in [0, 1].

        A tensor comes back on the device it came from; ``y`` may be either. An attack that
        works on tensors (``generate_tensor``) keeps them on its device throughout.
        """
        if isinstance(x, torch.Tensor):
            adv = self.generate_tensor(self.tensor(x), self.tensor(y, dtype=torch.int64))
            return adv.clamp(0.0, 1.0).to(device=x.device, dtype=torch.float32)
        adv = self.generate(as_numpy(x, np.float32), as_numpy(y))
        return np.clip(adv.astype(np.float32), 0.0, 1.0)

    def art(self, queried: bool = False):
        """This model as an ART classifier (``art_adapter``); with ``queried``, its expected scores."""
        from ...audio.frontend import LogMel
        from .art_adapter import art_classifier

        first = self.model[0]
        if isinstance(first, nn.Linear):
            n_inputs = first.in_features
        elif isinstance(first, LogMel):
            n_inputs = first.n_samples
        elif isinstance(first, nn.Unflatten):
            n_inputs = math.prod(first.unflattened_size)
        else:
            raise ValueError("the model must start with a Linear, Unflatten or LogMel layer")
        return art_classifier(self.queried if queried else self.model, self.loss, n_inputs, self.n_classes())
