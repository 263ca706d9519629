"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019), reported beside results.

A defence that only hides its gradients looks robust to gradient attacks and
is not. Five checks on the same images, each with a verdict in plain words:

1. ``unbounded``: PGD (L-inf) with ``eps = 1``, which can reach any image of
   the box, must bring accuracy to about 0.
2. ``gradient_norms``: the share of images where the input gradient of the
   training loss is exactly zero, and the median gradient norm.
3. ``loss_choice``: PGD with the training loss against PGD with the logit
   margin loss at the same ``eps``: a much stronger margin attack means the
   training loss saturates.
4. ``gradient_free``: the decision-based HopSkipJump (no gradients) against
   DeepFool (gradients): median L2 perturbations of their successes. A
   gradient-free attack that needs clearly smaller perturbations means the
   gradients mislead.
5. ``precision``: margin-loss PGD in float32 against the same attack on a
   float64 copy of the model (``float64_model``), Brendel & Bethge's (2017)
   stabilised gradient for saturated networks, whose float32 gradients round
   to zero: a much stronger float64 attack means the robustness is numerical.
   (The loss is check 3's business; this one changes the precision only.)

With robust-accuracy curves (the ``standard`` suite), ``add_budget_checks``
adds two on the same budgets:

6. ``square_after_gradients``: the share of images that AutoAttack's Square,
   run last, fooled after APGD-CE, APGD-T and FAB-T had all failed on them, at
   any budget. Above ``SQUARE_MAX_SHARE`` the gradient attacks miss what a
   random search finds. AutoAttack's rand version (a stochastic model's) has no
   Square part: the suite's own Square run of the same norm takes its place
   (images AutoAttack left robust that Square broke); with neither, the check
   says ``ok: None`` (not applicable) and warns of nothing.
7. ``free_vs_gradient``: at each L2 budget, robust accuracy under
   HopSkipJump against AutoAttack's on the same images. The decision attack
   must not be stronger by more than ``FREE_MAX_GAIN``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .attacks import PGD, DeepFool, HopSkipJump
from .robust import limit, norms_from_json, robust_accuracy

#: accuracy under the unbounded attack above which the attack is judged stuck
UNBOUNDED_MAX_ACCURACY = 0.05
#: share of zero input gradients above which gradients are judged masked
ZERO_GRADIENT_MAX_SHARE = 0.05
#: the margin-loss attack may beat the training-loss attack by this much accuracy
LOSS_GAP_MAX = 0.10
#: gradient-free / gradient median perturbation below which gradients are judged misleading
FREE_TO_GRADIENT_MIN_RATIO = 0.8
#: share of images that only Square (after the gradient parts of AutoAttack) may fool
SQUARE_MAX_SHARE = 0.01
#: robust accuracy by which HopSkipJump may undercut AutoAttack at an L2 budget
FREE_MAX_GAIN = 0.02


def gradient_norms(model: nn.Sequential, loss: str, x: np.ndarray, y: np.ndarray) -> dict:
    """Check 2: share of exactly zero input gradients of the training loss, and their median L2 norm.

    Parameters
    ----------
    model : nn.Sequential
        The model under test.
    loss : str
        Its training loss (``sleepnet.losses``).
    x : float32 (N, n) in [0, 1]
        Images.
    y : int64 (N,)
        Their labels.

    Returns
    -------
    dict
        ``share_zero``, ``median_norm`` and ``ok`` (share at most ``ZERO_GRADIENT_MAX_SHARE``).
    """
    g = PGD(model, loss).input_gradient(x, y).astype(np.float64)
    norms = np.linalg.norm(g, axis=1)
    share_zero = float(np.mean(norms == 0.0))
    return {"share_zero": share_zero, "median_norm": float(np.median(norms)),
            "ok": share_zero <= ZERO_GRADIENT_MAX_SHARE}  # fmt: skip


def unbounded(model, loss, x, y, seed=0) -> dict:
    """Check 1: accuracy under L-inf PGD with ``eps = 1`` (50 steps of 0.05), which should reach about 0.

    Returns ``accuracy`` and ``ok`` (accuracy at most ``UNBOUNDED_MAX_ACCURACY``).
    """
    res = PGD(model, loss, eps=1.0, norm="inf", n_steps=50, step=0.05, seed=seed).run(x, y)
    return {"accuracy": res["accuracy"], "ok": res["accuracy"] <= UNBOUNDED_MAX_ACCURACY}


def loss_choice(model, loss, x, y, eps: float = 0.1, seed: int = 0) -> dict:
    """Check 3: accuracy under PGD (L-inf, ``eps``) with the training loss against the logit margin loss.

    Returns ``eps``, ``accuracy_training_loss``, ``accuracy_margin_loss`` and ``ok`` (the margin attack is
    at most ``LOSS_GAP_MAX`` accuracy stronger).
    """
    own = PGD(model, loss, eps=eps, seed=seed).run(x, y)["accuracy"]
    margin = PGD(model, "margin", eps=eps, seed=seed).run(x, y)["accuracy"]
    return {"eps": eps, "accuracy_training_loss": own, "accuracy_margin_loss": margin,
            "ok": own - margin <= LOSS_GAP_MAX}  # fmt: skip


class ToFloat64(nn.Module):
    """Casts its input to float64: the first layer of ``float64_model``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as float64."""
        return x.double()


def float64_model(model: nn.Sequential) -> nn.Sequential:
    """A float64 copy of ``model`` that takes float32 images: ``ToFloat64`` then its layers in float64.

    Attacks run on it unchanged; their input gradients are computed in float64 through every
    layer (and returned as float32, where a gradient that float32 would round to zero inside
    the network survives as a small nonzero number).
    """
    return nn.Sequential(ToFloat64(), *copy.deepcopy(model).double())


def precision(model, x, y, eps: float = 0.1, seed: int = 0, float32: float | None = None) -> dict:
    """Check 5: margin-loss PGD (L-inf, ``eps``) in float32 against the same attack in float64.

    ``float32``: the float32 accuracy if already measured with the same attack and seed
    (check 3's ``accuracy_margin_loss``). Returns ``eps``, ``accuracy_float32_margin``,
    ``accuracy_float64_margin`` and ``ok`` (float64 at most ``LOSS_GAP_MAX`` accuracy stronger).
    """
    if float32 is None:
        float32 = PGD(model, "margin", eps=eps, seed=seed).run(x, y)["accuracy"]
    stable = PGD(float64_model(model), "margin", eps=eps, seed=seed).run(x, y)["accuracy"]
    return {"eps": eps, "accuracy_float32_margin": float32, "accuracy_float64_margin": stable,
            "ok": float32 - stable <= LOSS_GAP_MAX}  # fmt: skip


#: what each check says when it fails: which attack's figure overstates robustness, and why
WORDS = {
    "unbounded": "an attack that may change every pixel fully does not bring accuracy to 0: "
                 "the gradient attack is stuck, not the model robust",
    "gradient_norms": "many input gradients are exactly zero: gradient attacks have nothing to follow",
    "loss_choice": "the logit-margin attack is much stronger than the training-loss attack: "
                   "the training loss saturates and hides the gradient",
    "gradient_free": "a gradient-free attack (HopSkipJump) finds clearly smaller perturbations than "
                     "DeepFool: DeepFool's gradient steps mislead here, so its figure overstates robustness",
    "precision": "margin-loss PGD on a float64 copy is much stronger than in float32: float32 "
                 "gradients vanish in saturated units (numerical gradient masking)",
    "square_after_gradients": "Square fools images on which every gradient attack of AutoAttack "
                              "failed: the gradients are masked",
    "free_vs_gradient": "HopSkipJump, which uses no gradients, breaks more images than AutoAttack "
                        "at an L2 budget: the gradients are masked",
}  # fmt: skip


def failed_checks(checks: dict) -> list[tuple[str, str]]:
    """``(kind, name)`` of every check in ``checks`` that failed (``ok`` False; None is not applicable),
    in ``WORDS``' order: ``kind`` its key in ``WORDS``, ``name`` its own (a per-norm check's with the
    norm: ``square_after_gradients_linf``)."""
    return [(key, name) for key in WORDS
            for name in sorted(k for k in checks if k == key or k.startswith(key + "_l"))
            if isinstance(checks[name], dict) and checks[name].get("ok") is False]  # fmt: skip


def failed_lines(checks: dict) -> list[str]:
    """The line of ``WORDS`` of every failed check (``failed_checks``), a per-norm one's with its norm.
    Made from the checks, not from the lines stored with them, so a report says today's words."""
    return [WORDS[key] if name == key else f"{WORDS[key]} (L{name[len(key) + 2:]})"
            for key, name in failed_checks(checks)]  # fmt: skip


def gradient_free(model, loss, x, y, seed: int = 0, max_iter: int = 20, max_eval: int = 2000,
                  free: dict | None = None) -> dict:  # fmt: skip
    """DeepFool against HopSkipJump on ``x``; ``free``: a HopSkipJump result on ``x`` already at hand."""
    grad = DeepFool(model, loss).run(x, y)
    if free is None:
        free = HopSkipJump(model, loss, max_iter=max_iter, max_eval=max_eval, seed=seed).run(x, y)
    g, f = grad["median_rel_l2"], free["median_rel_l2"]
    ratio = f / g if g > 0 and np.isfinite(g) and np.isfinite(f) else float("nan")
    ok = bool(np.isfinite(ratio) and ratio >= FREE_TO_GRADIENT_MIN_RATIO) or (
        grad["success_rate"] >= free["success_rate"] and not np.isfinite(f))  # fmt: skip
    return {"deepfool": grad, "hopskipjump": free, "free_to_gradient": ratio, "ok": ok}


def masking_checks(model: nn.Sequential, loss: str, x: np.ndarray, y: np.ndarray, seed: int = 0,
                   free_kwargs: dict | None = None, free: tuple | None = None,
                   eps: float = 0.1) -> dict:  # fmt: skip
    """Checks 1-5 and a one-line verdict per failed check (``warnings``); checks 3 and 5 attack at
    L-inf ``eps`` (0.1 suits MNIST; the audio suite's is 0.0002, ``suites.Suite.masking_eps``).

    ``free``: ``(x_free, y_free, hopskipjump_result)`` to compare DeepFool against on those
    images instead of running HopSkipJump on ``x`` (the evaluation suite passes its own result).
    """
    if free is not None:
        x_free, y_free, result = free
        gradient = gradient_free(model, loss, x_free, y_free, seed, free=result)
    else:
        gradient = gradient_free(model, loss, x, y, seed, **(free_kwargs or {}))
    choice = loss_choice(model, loss, x, y, eps=eps, seed=seed)
    out = {
        "unbounded": unbounded(model, loss, x, y, seed),
        "gradient_norms": gradient_norms(model, loss, x, y),
        "loss_choice": choice,
        "gradient_free": gradient,
        "precision": precision(model, x, y, choice["eps"], seed, float32=choice["accuracy_margin_loss"]),
    }
    out["warnings"] = failed_lines(out)
    out["masked"] = bool(out["warnings"])
    return out


def square_after_gradients(aa: dict, square: dict | None) -> dict:
    """Check 6 for one norm: the share of images Square fooled on which AutoAttack's gradient parts
    failed (summed over budgets). From AutoAttack's own Square part when it has one (the standard
    version); else (the rand version, a stochastic model's) from the suite's own Square run of the
    same norm, on the same images, counting those AutoAttack left robust and Square broke; ``ok``
    is None when neither is there, or when the two ran on different numbers of images (each the
    sorted first n of one permutation, ``subsample_indices``: the smaller is not the larger's prefix)."""
    if "square" in aa.get("settings", {}).get("parts", ("square",)):
        share = sum(b.get("square", 0) for b in aa.get("breakdown", {}).values()) / max(aa["n"], 1)
        return {"share": share, "ok": share <= SQUARE_MAX_SHARE, "from": "AutoAttack's Square part"}
    if square is None or "norms" not in square:
        return {"share": None, "ok": None, "from": "no Square run beside AutoAttack's rand version"}
    if aa["n"] != square["n"]:
        return {"share": None, "ok": None, "from": f"the suite's Square run, on {square['n']} images, not "
                f"AutoAttack's {aa['n']}"}  # fmt: skip
    m = aa["n"]
    by_aa, by_sq = norms_from_json(aa["norms"]), norms_from_json(square["norms"])
    count = sum(int(np.sum((by_aa > limit(e)) & (by_sq <= limit(e)) & (by_sq > 0))) for e in aa["budgets"])
    share = count / max(m, 1)
    return {"share": share, "ok": share <= SQUARE_MAX_SHARE, "from": "the suite's Square run"}


def add_budget_checks(checks: dict, out: dict, spec, hsj_in_aa: np.ndarray | None = None) -> dict:
    """``checks`` with checks 6 and 7 (module docstring) from the suite's curve results ``out``;
    ``hsj_in_aa``: the position of each HopSkipJump image among AutoAttack's L2 images."""
    checks = dict(checks)
    for s in spec.subsample_attacks:
        if s.attack != "autoattack" or s.label not in out:
            continue
        key = f"square_after_gradients_l{s.norm}"
        square = out.get(s.label.replace("autoattack", "square", 1))
        checks[key] = square_after_gradients(out[s.label], square)
    hsj = out.get("hopskipjump")
    aa = out.get("autoattack-l2")
    if hsj is not None and "norms" in hsj and aa is not None and hsj_in_aa is not None:
        n = len(hsj_in_aa)
        free = norms_from_json(hsj["norms"])
        grad = norms_from_json(aa["norms"])[hsj_in_aa]
        by_grad, by_free = robust_accuracy(grad, aa["budgets"]), robust_accuracy(free, aa["budgets"])
        gains = {e: by_grad[e] - by_free[e] for e in by_grad}
        checks["free_vs_gradient"] = {"n": n, "gain": gains,
                                      "ok": max(gains.values()) <= FREE_MAX_GAIN}  # fmt: skip
    checks["warnings"] = failed_lines(checks)
    checks["masked"] = bool(checks["warnings"])
    return checks
