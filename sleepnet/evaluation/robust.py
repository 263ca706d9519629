"""Robust accuracy at a budget: the primary robustness figure (``docs/evaluation.md``).

A threat model is a norm (``"inf"`` or ``"2"``) and a budget ``eps`` on inputs
in [0, 1]. An image is robust at ``eps`` only if the model classifies it
correctly clean **and** no attack found an adversarial example within ``eps``
of it. Everything here works on one number per image, the **found norm**: the
norm of the smallest adversarial example any attack found for it, ``0`` for an
image misclassified clean (never robust), ``inf`` where every attack failed.
Robust accuracy at ``eps`` is the share of images whose found norm exceeds
``eps``; the worst case over attacks is the per-image minimum.

A minimal-perturbation attack (DeepFool, CW, Boundary, HopSkipJump) gives the
found norms in one run, hence the whole curve. A fixed-budget attack (PGD,
APGD, FAB-T, Square, AutoAttack) is run at each budget in ascending order
(``sweep``), each time only on the images no smaller budget has broken yet: an
example within ``eps`` is within every larger budget too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import SleepnetError

NORMS = ("inf", "2")
#: default budgets for MNIST-like data (inputs in [0, 1])
DEFAULT_BUDGETS = {"inf": (0.05, 0.1, 0.2, 0.3), "2": (0.5, 1.0, 1.5, 2.0)}
#: an adversarial example counts within ``eps`` if its norm is at most ``eps * (1 + TOLERANCE)``
#: (``limit``): for an attack's examples after ``into_ball`` that is exact; the tolerance is for
#: norms a minimal-perturbation attack reports
TOLERANCE = 1e-5


def limit(eps: float) -> float:
    """The largest found norm that counts as within budget ``eps``."""
    return eps * (1 + TOLERANCE)


def into_ball(x: np.ndarray, adv: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """``adv`` (float32) moved into the ``eps`` ball of ``norm`` around ``x`` exactly, in float32.

    An attack that projects onto the ball in float32 (torchattacks), or in float64 and then
    rounds, lands a few ulps outside it: ~3e-8 a coordinate near 0.5, which is 3e-4 of an audio
    budget of 1e-4. Coordinates beyond ``eps`` (L-inf) are clipped to it and, where rounding still
    leaves them outside, moved one ulp towards ``x``; rows beyond ``eps`` (L2) are scaled to
    ``eps`` less a margin (1e-6 of it, four times more at each retry) until their float32 norm is
    within it. Norms are measured in float64 from the float32 values,
    exactly as ``norms_of`` does.
    """
    x32, out = np.asarray(x, dtype=np.float32), np.asarray(adv, dtype=np.float32).copy()
    x64 = x32.astype(np.float64)
    if norm == "inf":
        out = np.clip(out.astype(np.float64), x64 - eps, x64 + eps).astype(np.float32)
        over = np.abs(out.astype(np.float64) - x64) > eps
        out[over] = np.nextafter(out[over], x32[over])
        return np.clip(out, 0.0, 1.0)
    for k in range(30):
        delta = out.astype(np.float64) - x64
        length = norms_of(delta, "2")
        over = length > eps
        if not over.any():
            break
        shrink = eps / length[over] * (1 - 2.0 ** (2 * k - 20))  # a margin of 1e-6, then 4x each time
        out[over] = np.clip(x64[over] + delta[over] * shrink.reshape(-1, *([1] * (delta.ndim - 1))), 0.0,
                            1.0).astype(np.float32)  # fmt: skip
    return out


def check_norm(norm: str) -> str:
    """``norm`` if it is ``"inf"`` or ``"2"``; one clear error otherwise."""
    if norm not in NORMS:
        raise SleepnetError(f"unknown norm {norm!r} (known: {', '.join(NORMS)})")
    return norm


def check_budgets(budgets: Iterable[float]) -> tuple[float, ...]:
    """The budgets as sorted, distinct floats; one clear error for an empty list, a negative or NaN."""
    out = []
    for e in budgets:
        try:
            value = float(e)
        except (TypeError, ValueError):
            raise SleepnetError(f"a budget must be a number, got {e!r}") from None
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise SleepnetError(f"a budget must be a finite number >= 0, got {e!r}")
        out.append(value)
    if not out:
        raise SleepnetError("at least one budget is needed")
    return tuple(sorted(set(out)))


def norms_of(delta: np.ndarray, norm: str) -> np.ndarray:
    """Per-row L-inf or L2 norm of ``delta`` ``(N, ...)``, float64 ``(N,)``."""
    flat = np.asarray(delta, dtype=np.float64).reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "inf" else np.linalg.norm(flat, axis=1)


def found_norms(x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, pred_clean: np.ndarray,
                pred_adv: np.ndarray, norm: str) -> np.ndarray:  # fmt: skip
    """Per image: 0 if misclassified clean, the norm of ``x_adv - x`` if it fools the model, else inf.

    An example with a NaN or inf pixel is no image: the attack failed on it (inf), whatever the
    model made of it (argmax of NaN scores is class 0). Left NaN, its norm would count as broken
    here and, written to JSON as null and read back as inf (``norms_from_json``), as robust in
    every worst case made from the kept measures."""
    finite = np.isfinite(np.asarray(x_adv).reshape(len(x_adv), -1)).all(axis=1)
    with np.errstate(invalid="ignore"):
        out = np.where((pred_adv != y) & finite, norms_of(x_adv - x, norm), np.inf)
    out[pred_clean != y] = 0.0
    return out


def robust_accuracy(norms: np.ndarray, budgets: Sequence[float]) -> dict[str, float]:
    """``{str(eps): share of images whose found norm exceeds eps}`` for each budget."""
    norms = np.asarray(norms, dtype=np.float64)
    return {key(e): float(np.mean(norms > limit(e))) if len(norms) else float("nan")
            for e in budgets}  # fmt: skip


def key(eps: float) -> str:
    """The JSON key of a budget: the shortest decimal that reads back as ``eps`` (``0.1``, ``1.5``)."""
    return repr(float(eps))


def worst_case(*norms: np.ndarray) -> np.ndarray:
    """Per image, the smallest found norm over attacks: robust only if every attack failed."""
    return np.minimum.reduce([np.asarray(n, dtype=np.float64) for n in norms])


def sweep(attack_at: Callable[[float], object], x: np.ndarray, y: np.ndarray, budgets: Sequence[float],
          norm: str, predict: Callable[[np.ndarray], np.ndarray]) -> dict:  # fmt: skip
    """A fixed-budget attack at each budget, ascending, on the images not yet broken.

    ``attack_at(eps)`` gives an attack object whose call ``(x, y)`` returns adversarial examples
    within ``eps``; ``predict`` gives the model's classes, always on the full batch (each image in
    the row it was judged in clean: on a CPU a row's scores can round differently in a call of
    another size). Returns ``norms`` (found
    norms, per image), ``robust_accuracy`` and ``clean_accuracy``.
    """
    budgets = check_budgets(budgets)
    pred_clean = predict(x)
    norms = np.where(pred_clean == y, np.inf, 0.0)
    for eps in budgets:
        todo = np.flatnonzero(norms > limit(eps))
        if not len(todo):
            continue
        adv = into_ball(x[todo], np.clip(np.asarray(attack_at(eps)(x[todo], y[todo]), dtype=np.float32),
                                         0.0, 1.0), eps, norm)  # fmt: skip
        merged = x.copy()  # judged in the full batch, each image in its own row, as the clean ones were
        merged[todo] = adv
        # an example with a NaN or inf pixel is no image: the attack failed on it (found_norms)
        fooled = (predict(merged)[todo] != y[todo]) & np.isfinite(adv.reshape(len(adv), -1)).all(axis=1)
        dist = norms_of(adv - x[todo], norm)
        norms[todo[fooled]] = np.minimum(norms[todo[fooled]], dist[fooled])
    return {"norm": norm, "budgets": list(budgets), "clean_accuracy": float(np.mean(pred_clean == y)),
            "robust_accuracy": robust_accuracy(norms, budgets), "norms": norms}  # fmt: skip


def jsonable_norms(norms: np.ndarray) -> list:
    """Found norms for JSON: floats (unrounded: robust accuracy is recomputed from them), ``None``
    for inf (no adversarial example found)."""
    return [None if not np.isfinite(v) else float(v) for v in norms]


def norms_from_json(values: list) -> np.ndarray:
    """``jsonable_norms`` read back: float64, inf for ``None``."""
    return np.array([np.inf if v is None else v for v in values], dtype=np.float64)


def accuracy_over_draws(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                        draws: int, seed: int = 0, model=None) -> dict:  # fmt: skip
    """Clean accuracy of a stochastic model: mean and standard deviation over ``draws`` single passes
    (``predict``).

    The passes draw from torch's generators seeded with ``seed`` (``state.torch_rng_kept``: the
    caller's are as they were afterwards) and from ``model``'s noise layers, if given, seeded so too
    (``noise.seeded``); one pass for a deterministic model.
    """
    import contextlib

    import torch

    from ..noise import seeded
    from ..state import torch_rng_kept

    with torch_rng_kept(), (seeded(model, seed) if model is not None else contextlib.nullcontext()):
        torch.manual_seed(seed)
        acc = np.array([np.mean(predict(x) == y) for _ in range(max(1, draws))])
    return {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "draws": len(acc)}  # fmt: skip
