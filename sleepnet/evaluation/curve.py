"""One attack, one norm, a list of budgets: the robust-accuracy curve (``sleepnet evaluate --attack``).

``attack_curve`` runs attack ``name`` on test images ``x`` (labels ``y``) and
returns robust accuracy at each budget (``robust.py``): a minimal-perturbation
attack once, its found norms giving the whole curve; a fixed-budget attack
(``pgd``, ``autoattack`` and its parts) at each budget in ascending order on
the images still unbroken (``robust.sweep``); ``fgsm`` once per budget, from
the same gradient. The result says which loss, how many and which images, the
EOT samples, the seed and the attack's settings.
"""

from __future__ import annotations

import functools
import inspect
import time

import numpy as np
from torch import nn

from ..errors import SleepnetError
from .attacks import ATTACKS, FGSM, eot_default, stochastic, summarize
from .attacks.autoattack import EOT_PARTS, LibraryAttack
from .robust import (
    accuracy_over_draws,
    check_budgets,
    check_norm,
    found_norms,
    jsonable_norms,
    key,
    robust_accuracy,
    sweep,
)


def check_attack(name: str, norm: str) -> type:
    """The attack class of ``name``, checked against ``norm``; one clear error otherwise."""
    cls = ATTACKS.get(name)
    check_norm(norm)
    if getattr(cls, "minimal", False) and norm != cls.norm:
        raise SleepnetError(f"attack {name!r} measures L{cls.norm} perturbations: use --norm {cls.norm}")
    if name == "jsma":
        raise SleepnetError("attack 'jsma' changes few pixels (L0): it has no L-inf or L2 budget")
    if name == "fgsm" and norm != "inf":
        raise SleepnetError("attack 'fgsm' is an L-inf attack: use --norm inf")
    return cls


def takes_eot(name: str) -> bool:
    """Whether attack ``name`` averages gradients over ``eot_samples`` forward passes."""
    cls = ATTACKS.get(name)
    if issubclass(cls, LibraryAttack):
        return name == "autoattack" or name in EOT_PARTS
    return "eot_samples" in inspect.signature(cls).parameters and not name.endswith("-art")


def attack_curve(model: nn.Sequential, x: np.ndarray, y: np.ndarray, name: str, norm: str, budgets,
                 loss: str = "cross-entropy", eot_samples: int | None = None, seed: int = 0,
                 image_shape: tuple[int, ...] | None = None, device=None, **params) -> dict:  # fmt: skip
    """Robust accuracy of ``model`` under attack ``name`` at each of ``budgets`` (module docstring).

    ``eot_samples``: forward passes per gradient; None: the model's default (``eot_default``;
    AutoAttack's rand version: 20) for an attack that takes EOT, else 1.

    Returns
    -------
    dict
        ``attack``, ``norm``, ``budgets``, ``clean_accuracy``, ``robust_accuracy`` (``{str(eps):
        share}``), ``norms`` (the found norm per image, None for none found), ``n``, ``loss``,
        ``eot_samples``, ``draws`` (passes behind each prediction: a stochastic model is judged by
        its expected prediction), ``seed``, ``settings`` and ``seconds``; for a stochastic model
        ``clean_over_draws`` (single passes); for AutoAttack and its parts ``breakdown``.
    """
    cls = check_attack(name, norm)
    budgets = check_budgets(budgets)
    y = np.asarray(y)
    start = time.perf_counter()
    kwargs = dict(params, device=device)
    accepts = inspect.signature(cls).parameters
    if "seed" in accepts:
        kwargs["seed"] = seed
    if issubclass(cls, LibraryAttack):
        kwargs["image_shape"] = image_shape
    if takes_eot(name):
        if eot_samples is not None or name != "autoattack":
            kwargs["eot_samples"] = eot_default(model) if eot_samples is None else eot_samples
    elif eot_samples not in (None, 1):
        raise SleepnetError(f"attack {name!r} takes no EOT (it uses no gradients or averages none)")
    extra = {}
    if name == "fgsm":
        attack = FGSM(model, loss, eps=budgets, **kwargs)
        clean = attack.predict(x) == y
        norms = _fgsm_norms(attack, x, y, budgets, clean)
    elif cls.minimal:
        attack = cls(model, loss, **kwargs)
        x_adv = attack(x, y)
        pred_clean, pred_adv = attack.predict(x), attack.predict(x_adv)
        clean = pred_clean == y
        norms = found_norms(x, x_adv, y, pred_clean, pred_adv, norm)  # unrounded, unlike the JSON's
        run = summarize(x, x_adv, y, pred_clean, pred_adv, norm)
        extra = {k: run[k] for k in ("success_rate", "median_rel_l2")}
        if hasattr(attack, "no_start"):  # a decision attack's images with no start (not attacked)
            extra["no_start"] = attack.no_start
    else:
        made = {}

        def attack_at(eps):
            made[eps] = cls(model, loss, eps=eps, norm=norm, **kwargs)
            return made[eps]

        attack = attack_at(budgets[0])
        res = sweep(attack_at, x, y, budgets, norm, attack.predict)
        attack = made[budgets[0]]  # the one that ran at the first budget (its settings after a call)
        # clean from the clean predictions, not from the norms: a correct image that a single noisy draw
        # (a naive pass) calls wrong at the unchanged image is "broken at distance 0", not wrong clean
        norms, clean = res["norms"], res["clean_accuracy"]
        if issubclass(cls, LibraryAttack):
            extra["breakdown"] = {key(e): a.breakdown for e, a in made.items()}
    if stochastic(model):  # a stochastic model's clean accuracy: the mean over draws, with its spread
        extra["clean_over_draws"] = accuracy_over_draws(functools.partial(attack.predict, once=True), x, y,
                                                        attack.draws, seed, model)  # fmt: skip
    return {"attack": name, "norm": norm, "budgets": list(budgets), "n": len(x),
            "clean_accuracy": float(np.mean(clean)),
            "robust_accuracy": robust_accuracy(norms, budgets), "norms": jsonable_norms(norms),
            "loss": attack.loss, "eot_samples": attack.eot_samples, "draws": attack.draws, "seed": seed,
            "settings": _settings(attack, budgets, params), **extra,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def _fgsm_norms(attack: FGSM, x: np.ndarray, y: np.ndarray, budgets, clean: np.ndarray) -> np.ndarray:
    """Per image the first budget whose FGSM step (one gradient for all) fools it; 0 if wrong clean."""
    # sign() is finite but for NaN: a NaN gradient makes no step there, the image judged as it is
    direction = np.nan_to_num(np.sign(attack.input_gradient(x, y)), nan=0.0)
    norms = np.full(len(x), np.inf)
    for e in budgets:
        fooled = attack.predict(np.clip(x + np.float32(e) * direction, 0, 1).astype(np.float32)) != y
        norms[np.isinf(norms) & fooled] = e
    norms[~clean] = 0.0
    return norms


def _settings(attack, budgets, params: dict) -> dict:
    """The attack's own settings, JSON-able, with ``eps`` the budgets swept."""
    if hasattr(attack, "settings"):
        out = attack.settings()
    else:
        keep = ("params", "max_iter", "overshoot", "box", "n_steps", "step", "restarts", "random_start")
        out = {k: dict(v) if isinstance(v, dict) else v for k in keep
               if (v := getattr(attack, k, None)) is not None}  # fmt: skip
        if "step" in out and "step" not in params:
            out["step"] = "2.5 * eps / n_steps"
    return out | {"eps": list(budgets)}
