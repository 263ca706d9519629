"""Evaluation suites as typed, validated data: which distortions, which attacks, on how many images.

A ``Suite`` names its distortions (accuracy curves on the full test set), its
full-test-set attacks, and its ``AttackSetting``s: attacks run on the first
``n_images`` test images of a fixed permutation (``subsample`` caps them),
each with its parameters and the smaller ones of CI-sized runs (``quick``),
the loss it ascends (``loss``; None: the model's training loss, the sleep
paper's protocol) and, for a robust-accuracy curve, a ``norm`` and its
``budgets``. Both check their names against the registries when they are
made, so a typo fails before any model is trained. ``SUITES`` holds
``quick``, ``paper``, ``standard`` (the settings are documented in
``sleepnet.evaluation``) and ``audio`` (``docs/audio.md`` §4).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SleepnetError
from ..losses import ATTACK_LOSSES
from ..registry import Registry
from .attacks import ATTACKS
from .distortions import DISTORTIONS
from .robust import DEFAULT_BUDGETS, check_budgets, check_norm


class FrozenMap(Mapping):
    """A read-only, picklable mapping (the parameters of the typed specs)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __getstate__(self) -> dict:
        return self._data

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "_data", dict(state))

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _attack_keywords(name: str) -> tuple[str, ...] | None:
    """The keyword arguments attack ``name`` accepts beyond (model, loss); None if any."""
    params = list(inspect.signature(ATTACKS[name]).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params[2:])


@dataclass(frozen=True)
class AttackSetting:
    """Attack ``attack`` with ``params`` on the first ``n_images`` test images, reported as ``label``.

    ``quick``: parameters that replace ``params`` in CI-sized runs (fewer iterations). ``loss``:
    the loss a gradient attack ascends (None: the model's training loss). ``norm`` and
    ``budgets``: run for the robust-accuracy curve at those budgets (``curve.attack_curve``).
    """

    label: str
    attack: str
    params: Mapping[str, Any] = field(default_factory=FrozenMap)
    n_images: int = 1000
    quick: Mapping[str, Any] = field(default_factory=FrozenMap)
    loss: str | None = None
    norm: str | None = None
    budgets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        where = f"attack setting {self.label!r}"
        if not isinstance(self.label, str) or not self.label:
            raise SleepnetError(f"attack setting label must be a non-empty string, got {self.label!r}")
        if self.attack not in ATTACKS:
            known = ", ".join(ATTACKS.names())
            raise SleepnetError(f"{where}: unknown attack {self.attack!r} (known: {known})")
        if not _positive_int(self.n_images):
            raise SleepnetError(f"{where}: n_images must be a positive integer, got {self.n_images!r}")
        known = _attack_keywords(self.attack)
        for kind in ("params", "quick"):
            values = getattr(self, kind)
            if not isinstance(values, Mapping):
                raise SleepnetError(f"{where}: {kind} must be a mapping, got {values!r}")
            bad = [k for k in values if known is not None and k not in known]
            if bad:
                raise SleepnetError(f"{where}: {kind}: attack {self.attack!r} has no parameter "
                                    f"{bad[0]!r} (known: {', '.join(known)})")  # fmt: skip
            object.__setattr__(self, kind, FrozenMap(values))
        if self.loss is not None and self.loss not in ATTACK_LOSSES:
            raise SleepnetError(f"{where}: unknown loss {self.loss!r} (known: {', '.join(ATTACK_LOSSES)})")
        try:
            if self.norm is not None:
                check_norm(self.norm)
                object.__setattr__(self, "budgets", check_budgets(self.budgets))
            elif self.budgets:
                raise SleepnetError("budgets need a norm")
        except SleepnetError as e:
            raise SleepnetError(f"{where}: {e}") from None

    def kwargs(self, quick: bool = False) -> dict[str, Any]:
        """The attack's keyword arguments: ``params``, with ``quick`` over them for CI-sized runs."""
        return dict(self.params) | (dict(self.quick) if quick else {})


@dataclass(frozen=True)
class Suite:
    """Distortion curves and ``attacks`` on the full test set, then ``subsample_attacks``; the
    gradient-masking checks that compare two PGD runs attack at L-inf ``masking_eps``."""

    name: str
    distortions: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    subsample_attacks: tuple[AttackSetting, ...] = ()
    masking_eps: float = 0.1

    def __post_init__(self) -> None:
        where = f"suite {self.name!r}"
        for kind in ("distortions", "attacks", "subsample_attacks"):
            value = getattr(self, kind)
            if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
                raise SleepnetError(f"{where}: {kind} must be a list, got {value!r}")
            object.__setattr__(self, kind, tuple(value))
        for name in self.distortions:
            if name not in DISTORTIONS:
                raise SleepnetError(f"{where}: unknown distortion {name!r} "
                                    f"(known: {', '.join(DISTORTIONS)})")  # fmt: skip
        for name in self.attacks:
            if name not in ATTACKS:
                raise SleepnetError(f"{where}: unknown attack {name!r} (known: {', '.join(ATTACKS.names())})")
        for setting in self.subsample_attacks:
            if not isinstance(setting, AttackSetting):
                raise SleepnetError(f"{where}: subsample_attacks must be AttackSettings, got {setting!r}")
        if isinstance(self.masking_eps, bool) or not isinstance(self.masking_eps, (int, float)) \
                or not 0 < self.masking_eps <= 1:
            raise SleepnetError(f"{where}: masking_eps must be a number in (0, 1], got {self.masking_eps!r}")
        labels = self.labels
        clash = sorted({a for a in labels if labels.count(a) > 1} | (set(labels) & set(self.names)))
        if clash:
            raise SleepnetError(f"{where}: result name {clash[0]!r} is used twice")

    @property
    def labels(self) -> tuple[str, ...]:
        """The result names of the subsample attacks, in order."""
        return tuple(s.label for s in self.subsample_attacks)

    @property
    def names(self) -> tuple[str, ...]:
        """The result names of the full-test-set measures (distortions, then attacks)."""
        return self.distortions + self.attacks

    @property
    def measures(self) -> tuple[str, ...]:
        """The names of every measure ``evaluate_model`` keeps of a model (``Units``): clean accuracy (and
        a stochastic model's over draws), the full-test-set measures, the subsample attacks and, with
        those, the gradient-masking checks."""
        checks = ("masking",) if self.subsample_attacks else ()
        return ("clean", "clean-over-draws", *self.names, *self.labels, *checks)

    def sizes(self, subsample: int, n_test: int) -> dict[str, int]:
        """Test images per subsample attack: its ``n_images``, capped by ``subsample`` and the test set."""
        return {s.label: min(s.n_images, subsample, n_test) for s in self.subsample_attacks}


#: the masking checks' images (``evaluate_model``): the first this many of the subsample
MASKING_SUBSAMPLE = 200
#: ``evaluate_model(rand_autoattack=True)``: AutoAttack's rand version (EOT 1) beside the standard one
RAND_AUTOATTACK = "autoattack-rand-linf"

SUITES: Registry[Suite] = Registry("suite")
SUITES.register("quick", Suite("quick", ("gaussian-noise", "gaussian-blur"), ("fgsm",)))
SUITES.register("paper", Suite(
    "paper", ("gaussian-noise", "gaussian-blur", "salt-and-pepper"), ("fgsm",), (
        # PGD is not in the paper: it ascends the field's cross-entropy, not the training loss
        AttackSetting("pgd-linf", "pgd", {"eps": 0.1, "norm": "inf", "n_steps": 40}, 1000,
                      quick={"n_steps": 10}, loss="cross-entropy"),
        AttackSetting("pgd-l2", "pgd", {"eps": 1.5, "norm": "2", "n_steps": 40}, 1000,
                      quick={"n_steps": 10}, loss="cross-entropy"),
        AttackSetting("deepfool", "deepfool", {}, 1000),
        AttackSetting("jsma", "jsma", {}, 50, quick={"max_iter": 30}),
        AttackSetting("cw-l2", "cw-l2", {"binary_search_steps": 9}, 12,
                      quick={"binary_search_steps": 3, "max_iter": 50}),
        AttackSetting("boundary", "boundary", {"max_iter": 1000}, 5, quick={"max_iter": 50}),
        AttackSetting("hopskipjump", "hopskipjump", {"max_iter": 50}, 10,
                      quick={"max_iter": 5, "max_eval": 500}),
    ),
))  # fmt: skip

_AA_QUICK = {"steps": 10, "n_queries": 100}


def _budget_attacks(budgets: dict[str, tuple[float, ...]], hsj_images: int) -> tuple[AttackSetting, ...]:
    """AutoAttack and Square at every budget of both norms on 1000 images, HopSkipJump (L2) on
    ``hsj_images``: the robust-accuracy curves of the ``standard`` and ``audio`` suites."""
    return tuple(
        AttackSetting(f"{attack}-l{norm}", attack, {}, 1000, quick=_AA_QUICK, norm=norm,
                      budgets=budgets[norm])
        for norm in ("inf", "2") for attack in ("autoattack", "square")
    ) + (
        AttackSetting("hopskipjump", "hopskipjump", {"max_iter": 20, "max_eval": 1000}, hsj_images,
                      quick={"max_iter": 3, "max_eval": 100}, norm="2", budgets=budgets["2"]),
    )  # fmt: skip


SUITES.register("standard", Suite("standard", ("gaussian-noise", "gaussian-blur", "salt-and-pepper"),
                                  ("fgsm",), _budget_attacks(DEFAULT_BUDGETS, 500)))  # fmt: skip

# Spoken digits as waveforms (docs/audio.md §4): budgets on x in [0, 1), so a fraction of the 16-bit
# full-scale range (2^-16 = 1.5e-5 is one step). They were set from the control network's PGD curve
# before any defence ran (L-inf 2e-4 leaves it 0.2, 1e-3 nothing), to span the range where it breaks.
AUDIO_BUDGETS = {"inf": (0.0001, 0.0002, 0.0005, 0.001), "2": (0.002, 0.005, 0.01, 0.03)}
SUITES.register("audio", Suite("audio", ("white-noise", "babble", "time-shift"), (),
                               _budget_attacks(AUDIO_BUDGETS, 100), masking_eps=AUDIO_BUDGETS["inf"][1]))
SUITES.register("audio-quick", Suite("audio-quick", ("white-noise", "babble", "time-shift")))


def quick_suite(data) -> str:
    """The quick suite that suits ``data``: ``audio-quick`` for waveforms (a dataset with a front-end),
    else ``quick``."""
    return "audio-quick" if getattr(data, "frontend", None) is not None else "quick"
