"""AutoAttack (Croce & Hein 2020) and its parts, through torchattacks' port of the authors' code.

The parts, each a fixed-budget attack in L-inf or L2 (``eps``, ``norm``):

- ``apgd-ce``: APGD on the cross-entropy, 100 iterations, 1 restart.
- ``apgd-dlr``: APGD on the DLR loss (scale-invariant margin), 100 iterations.
- ``apgd-t``: targeted APGD on the targeted DLR loss, each of the K-1 most likely
  wrong classes in turn, 100 iterations each.
- ``fab-t``: targeted FAB (minimal-norm, geometric: no loss), K-1 targets, 100
  iterations each.
- ``square``: Square (Andriushchenko et al. 2020), gradient-free random search on the
  margin loss, 5000 queries, ``p_init`` 0.8.

``autoattack`` runs them in sequence, each on the images the parts before it left
correctly classified (per image, the first part that fools it wins):
``version="standard"`` is APGD-CE, APGD-T, FAB-T, Square; ``version="rand"``, for
randomized models, is APGD-CE and APGD-DLR with EOT over ``eot_samples`` (default
20) forward passes. These are the settings of the original ``AutoAttack`` class. With no
version given, a stochastic model gets ``rand`` and a deterministic one ``standard``, as the
authors prescribe (and as ``noise.single_draws``, which evaluates a stochastic model as if it
were deterministic, gets ``standard``).
``breakdown`` (after a call) counts the images each part fooled.

The library: ``torchattacks`` 3.5.1, whose APGD, APGD-T, FAB and Square are the
authors' code adapted. It declares ``torchvision`` as a dependency but its
attacks never import it, so it is installed with ``pip install --no-deps`` (the
Makefile does); it is cross-checked in the tests against ART's APGD and Square
on a fixed model. It wants images as ``(N, C, H, W)``: flat inputs are reshaped
to ``image_shape`` (``(1, 28, 28)`` for MNIST; Square's squares are squares of
that image) and back; inputs with no square image shape (a waveform, a spectrogram)
are laid out as ``(c, s, s)`` (``layout``), as its L2 Square needs, which also
needs a side its first squares tile (not 12, 14, 18, 19, 24: ``tiles``; its layout
is then another ``(c, s, s)``, its squares no longer squares of the image); the model is seen
through its class scores (the pre-ReLU output of the last ``Linear``). torchattacks reseeds torch's global
generator with ``seed``; each call holds ``torch.random.fork_rng``, so the
caller's generator is as it was afterwards.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from ...errors import SleepnetError
from ...losses import pre_activation
from ...noise import judge_draws, stochastic
from ...state import torch_rng_kept
from ..robust import check_budgets, check_norm
from .base import EOT_STOCHASTIC, PerturbationAttack, as_numpy, eot_default, register

#: what each part ascends, as its results report it
LOSSES = {"apgd-ce": "cross-entropy", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted", "fab-t": "none (FAB)",
          "square": "margin"}  # fmt: skip
VERSIONS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr")}
#: the parts that average their gradient over ``eot_samples`` forward passes
EOT_PARTS = {"apgd-ce", "apgd-dlr", "apgd-t"}
#: classes the DLR losses need: the third largest logit; the targeted one, the fourth
MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}


def torchattacks():
    """The ``torchattacks`` module, or one clear error saying how to install it."""
    try:
        import torchattacks as lib
    except ImportError:
        raise SleepnetError("AutoAttack needs torchattacks: pip install --no-deps torchattacks==3.5.1 "
                            "(its declared torchvision dependency is not used)") from None  # fmt: skip
    return lib


class ImageScores(nn.Module):
    """``model``'s class scores for images ``(N, C, H, W)``: flattened, then all layers but the last ReLU."""

    def __init__(self, model: nn.Sequential) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(N, K)`` of images ``x``."""
        return pre_activation(self.model, x.reshape(len(x), -1))


class JudgedScores(nn.Module):
    """What a gradient part sees of a stochastic model judged by its expected prediction: single noisy
    passes where it takes a gradient (its EOT), the expected scores (``judge``) where it only looks
    (an input that needs no gradient: APGD-T ranks its target classes so)."""

    def __init__(self, noisy: nn.Module, judge: nn.Module) -> None:
        super().__init__()
        self.noisy, self.judge = noisy, judge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(N, K)`` of images ``x``: of one noisy pass if ``x`` needs a gradient, else the
        expected scores."""
        return self.noisy(x) if x.requires_grad else self.judge(x)


def tiles(side: int) -> bool:
    """Whether torchattacks' L2 Square can start on ``side x side`` images: it tiles them with squares of
    ``s = side // 5``, ``side // s`` of them a row from ``(side - 5 s) // 2`` on, and fails where one
    runs over the edge unless ``s`` is 1 (an empty slice takes a 1 x 1 square by broadcasting), or
    where ``s`` is 0: of the sides up to 30, 1-4, 12, 14, 18, 19 and 24."""
    s = side // 5
    return s >= 1 and (s == 1 or (side - 5 * s) // 2 + (side // s) * s <= side)


def default_shape(n_inputs: int, l2_square: bool = False) -> tuple[int, int, int]:
    """``(c, s, s)`` with ``c * s * s = n_inputs`` and ``s`` as large as the number allows: ``(1, 28, 28)``
    for 784 inputs, ``(2, 64, 64)`` for a waveform of 8192 samples (Square's squares then cover a few
    consecutive samples in each of a few rows 64 samples apart), ``(n, 1, 1)`` for a prime. For L2
    Square (``l2_square``) the largest ``s`` it can tile (``tiles``): ``(56, 6, 6)`` for 2016 inputs,
    where the others get ``(14, 12, 12)``; a clear error where there is none."""
    sides = [d for d in range(math.isqrt(n_inputs), 0, -1) if n_inputs % (d * d) == 0
             and (tiles(d) or not l2_square)]  # fmt: skip
    if not sides:
        raise SleepnetError(f"Square at L2 (torchattacks) cannot run on {n_inputs} inputs: it lays "
                            "them out as c x s x s with a side s of 5 or more its squares tile")  # fmt: skip
    return (n_inputs // sides[0] ** 2, sides[0], sides[0])


def layout(image_shape: tuple[int, ...] | None, n_inputs: int, l2_square: bool = False) -> tuple[int, ...]:
    """The ``(C, H, W)`` the parts see: ``image_shape`` if its images are square (for L2 Square,
    ``l2_square``, also of a side it can tile: ``tiles``), else ``default_shape``: torchattacks' L2
    Square assumes ``H == W`` (a spectrogram of 63 x 32 becomes ``(14, 12, 12)``, and for L2 Square,
    which cannot tile a side of 12, ``(56, 6, 6)``; a 12 x 12 image ``(4, 6, 6)`` for it alone: its
    squares are then squares of that layout, not of the image)."""
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        if int(np.prod(shape)) != n_inputs:
            raise SleepnetError(f"image_shape {shape} does not hold {n_inputs} inputs")
        if shape[-1] == shape[-2] and (tiles(shape[-1]) or not l2_square):
            return shape
    return default_shape(n_inputs, l2_square)


class LibraryAttack(PerturbationAttack):
    """One or more torchattacks parts at budget ``eps`` (module docstring); ``parts`` names them."""

    parts: tuple[str, ...] = ()

    def __init__(self, model, loss=None, eps: float = 0.1, norm: str = "inf", steps: int = 100,
                 n_queries: int = 5000, image_shape: tuple[int, ...] | None = None, seed: int = 0,
                 batch_size: int = 1000, device=None, eot_samples: int | None = None):  # fmt: skip
        if eot_samples is None:  # the model's default (base.eot_default) where a part takes EOT
            eot_samples = eot_default(model) if set(self.parts) & EOT_PARTS else 1
        super().__init__(model, loss, batch_size, device, eot_samples)
        self.norm = check_norm(norm)
        (self.eps,) = check_budgets([eps])
        self.steps, self.n_queries, self.seed = int(steps), int(n_queries), int(seed)
        self.image_shape = tuple(image_shape) if image_shape else None
        self.loss = "+".join(dict.fromkeys(LOSSES[p] for p in self.parts))
        self.breakdown: dict[str, int] = {}
        self.layouts: dict[str, list[int]] = {}
        if self.eot_samples > 1 and not set(self.parts) & EOT_PARTS:
            raise SleepnetError(f"attack {self.name!r} takes no EOT (only {', '.join(sorted(EOT_PARTS))} do)")
        need = max((MIN_CLASSES.get(p, 2) for p in self.parts), default=2)
        if self.n_classes() < need:
            raise SleepnetError(f"attack {self.name!r} needs at least {need} classes (its DLR loss ranks "
                                f"the logits), the model has {self.n_classes()}")  # fmt: skip

    def settings(self) -> dict:
        """The parts and their budgets, for the record; after a call, ``layout``: the ``(C, H, W)`` of
        each part that did not see the image's own shape (``layout``), if any."""
        return {"parts": list(self.parts), "eps": self.eps, "norm": self.norm, "steps": self.steps,
                "n_queries": self.n_queries, "restarts": 1, "eot_samples": self.eot_samples,
                "seed": self.seed, "library": "torchattacks " + torchattacks().__version__} | (
                {"layout": self.layouts} if self.layouts else {})  # fmt: skip

    def part(self, name: str, scores: nn.Module):
        """The torchattacks attack for part ``name`` on ``scores``."""
        lib, k = torchattacks(), self.n_classes()
        norm = "Linf" if self.norm == "inf" else "L2"
        common = dict(norm=norm, eps=self.eps, seed=self.seed)
        if name in ("apgd-ce", "apgd-dlr"):
            return lib.APGD(scores, steps=self.steps, n_restarts=1, loss=name[5:], eot_iter=self.eot_samples,
                            rho=0.75, **common)  # fmt: skip
        if name == "apgd-t":
            return lib.APGDT(scores, steps=self.steps, n_restarts=1, eot_iter=self.eot_samples, rho=0.75,
                             n_classes=k, **common)  # fmt: skip
        if name == "fab-t":
            return lib.FAB(scores, steps=self.steps, n_restarts=1, multi_targeted=True, n_classes=k, **common)
        return lib.Square(scores, n_queries=self.n_queries, n_restarts=1, p_init=0.8, loss="margin", **common)

    def generate_tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The parts in sequence, each on the images still classified correctly; tensors on the device."""
        # each part's (C, H, W): L2 Square's may differ (``layout``); all looked up (and any refusal
        # made) before the first part runs, and those that are not the image's recorded (``settings``)
        shapes = {name: layout(self.image_shape, x.shape[1], self.norm == "2" and name == "square")
                  for name in self.parts}  # fmt: skip
        self.layouts = {name: list(shape) for name, shape in shapes.items() if shape != self.image_shape}
        # in evaluation mode: torchattacks puts a model it found in training mode back into training
        # mode after each part, which would switch the shared layers' dropout on for what follows
        scores = ImageScores(self.model).eval()
        queried = ImageScores(self.queried).eval()  # a stochastic model's expected scores (base docstring)
        adv = x.clone()
        self.breakdown = {}
        with torch_rng_kept():
            for name in self.parts:
                left = torch.nonzero(self.classify(adv) == y).flatten()
                if not len(left):
                    break
                judged = name in EOT_PARTS and self.draws > 1
                part = self.part(name, JudgedScores(scores, queried) if judged else
                                 scores if name in EOT_PARTS else queried)  # fmt: skip
                run = functools.partial(self._judged, part) if judged else part
                out = torch.cat([run(x[b].reshape(len(b), *shapes[name]), y[b]).reshape(len(b), -1)
                                 for b in left.split(self.batch_size)])  # fmt: skip
                fooled = self.classify(out) != y[left]
                adv[left[fooled]] = out[fooled]
                self.breakdown[name] = int(fooled.sum())
        return adv

    def _judged(self, part, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """An APGD part (``apgd-ce``, ``apgd-dlr``, ``apgd-t``) on images ``x`` ``(N, C, H, W)`` that a
        stochastic model's expected prediction classifies correctly, judged by that prediction.

        torchattacks' ``perturb`` decides on single noisy passes: it attacks only the images one pass
        gets right and returns an image unchanged unless one pass was fooled during the run, so an
        image that the expected prediction would call fooled comes back clean. Here every image is
        attacked, from the part's seed as ``perturb`` does, and of each run two candidates are judged
        by the expected prediction: the last iterate a single pass found fooled, then the iterate of
        the largest loss; the first that fools it is taken. APGD-T runs its targets in turn, each on
        the images no earlier target fooled (its targets ranked by the expected scores:
        ``JudgedScores``)."""
        torch.random.manual_seed(part.seed)
        adv, left = x.clone(), torch.arange(len(x), device=x.device)
        targets = range(2, part.n_target_classes + 2) if isinstance(part, torchattacks().APGDT) else [None]
        for target in targets:
            if not len(left):
                break
            if target is not None:
                part.target_class = target
            best, _, _, last = part.attack_single_run(x[left], y[left])
            found = torch.zeros(len(left), dtype=torch.bool, device=x.device)
            for candidate in (last, best):
                take = ~found & (self.classify(candidate.reshape(len(left), -1)) != y[left])
                adv[left[take]] = candidate[take]
                found |= take
            left = left[~found]
        return adv

    def generate(self, x, y):
        """See ``PerturbationAttack.generate``: ``generate_tensor`` on the attack's device."""
        return as_numpy(self.generate_tensor(self.tensor(x), self.tensor(y, dtype=torch.int64)))


def _part(label: str, doc: str) -> type[LibraryAttack]:
    cls = type(f"Part_{label.replace('-', '_')}", (LibraryAttack,), {"name": label, "parts": (label,),
                                                                      "__doc__": doc})  # fmt: skip
    return register(cls)


for _label, _doc in (("apgd-ce", "APGD on the cross-entropy (torchattacks)."),
                     ("apgd-dlr", "APGD on the DLR loss (torchattacks)."),
                     ("apgd-t", "Targeted APGD on the targeted DLR loss, K-1 targets (torchattacks)."),
                     ("fab-t", "Targeted FAB, K-1 targets (torchattacks)."),
                     ("square", "Square, gradient-free, margin loss (torchattacks).")):  # fmt: skip
    _part(_label, _doc)


def default_version(model: nn.Module) -> str:
    """The AutoAttack version for ``model`` when none is given: ``rand`` for a randomized (stochastic)
    model, ``standard`` otherwise, and within ``noise.single_draws`` (module docstring)."""
    return "rand" if stochastic(model) and judge_draws() > 1 else "standard"


@register
class AutoAttack(LibraryAttack):
    """AutoAttack, ``version`` standard or rand (module docstring)."""

    name = "autoattack"

    def __init__(self, model, loss=None, eps: float = 0.1, norm: str = "inf", version: str | None = None,
                 eot_samples: int | None = None, **kwargs):  # fmt: skip
        version = default_version(model) if version is None else version
        if version not in VERSIONS:
            raise SleepnetError(f"unknown AutoAttack version {version!r} (known: {', '.join(VERSIONS)})")
        self.parts, self.version = VERSIONS[version], version
        eot = eot_samples if eot_samples is not None else (EOT_STOCHASTIC if version == "rand"
                                                           else eot_default(model))  # fmt: skip
        super().__init__(model, loss, eps=eps, norm=norm, eot_samples=eot, **kwargs)

    def settings(self) -> dict:
        """See ``LibraryAttack.settings``; with the version."""
        return super().settings() | {"version": self.version}
