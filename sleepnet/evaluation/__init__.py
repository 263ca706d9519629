"""Robustness evaluation: clean accuracy, distortions and attacks, suite by suite.

``quick`` suite: clean accuracy, Gaussian noise and blur at the paper's levels,
and the FGSM curve over ``eps = 0 : 0.005 : 0.4`` with the median epsilon.

``paper`` suite: the above plus salt-and-pepper, and the iterative attacks
with the paper's settings, each on its own documented number of test images
(``AttackSetting.n_images`` in ``suites.py``, capped by ``subsample``): the first of a permutation seeded
with 0, so every model, and every attack, sees nested subsets of the same
images. PGD L-inf (eps 0.1), PGD L2 (eps 1.5) and DeepFool on 1000 images;
JSMA on 50; Carlini-Wagner L2 on 12; HopSkipJump on 10; Boundary on 5. The
sizes are what fits the full MNIST experiment (9 models x 3 seeds) into an
hour on 2 cores. Per image, on one core, on the MNIST paper network: Boundary
(1000 iterations) about 5.5 s (ART's, then; ours, batched, 2.1 s), HopSkipJump
(50 iterations) about 2.6 s (ART's, then; ours, batched over images, is 1.75x
faster at 20 iterations), CW
about 1.4 s in a batch, JSMA 0.14 s; the full-test-set part of the suite
(FGSM curve, noise, blur, salt-and-pepper) costs about 50 s per model and
PGD and DeepFool on 1000 images 11 s. CW runs 9 x 1000 Adam steps, not the
paper's 20 x 1000: on the MNIST control (50 images) 9 binary-search steps
give the same median perturbation as 20 to four digits, at 45% of the time.
Then the gradient-masking checks (``masking.py``) on the first
``masking_subsample`` images, the gradient-free check reusing the HopSkipJump
result. ``quick=True`` shrinks the iterative attacks to CI size (fewer
iterations, ``AttackSetting.quick``).

Distortions are drawn with the same seed for every model, so the models are
compared on the very same noisy images.

Everything takes ``device`` (a ``torch.device`` or a name for
``sleepnet.devices.resolve_device``, default: where the model is): the model is moved there for
the evaluation and put back where it was afterwards, in the mode it was in;
test images go there once, and results come back as plain Python numbers.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import SleepnetError
from ..noise import JUDGE, single_draws
from ..state import modes_kept, on_device
from ..training import accuracy
from .attacks import ATTACKS, eot_default, stochastic
from .attacks.autoattack import default_version
from .curve import attack_curve
from .distortions import DISTORTIONS
from .robust import accuracy_over_draws, norms_from_json, robust_accuracy, worst_case
from .suites import MASKING_SUBSAMPLE, RAND_AUTOATTACK, SUITES, AttackSetting, Suite

__all__ = ["RAND_AUTOATTACK", "SUITES", "AttackSetting", "Suite", "distortion_curve", "evaluate",
           "evaluate_model", "headline", "subsample_indices"]  # fmt: skip


def subsample_indices(n_total: int, n: int) -> np.ndarray:
    """The first ``n`` of a permutation seeded with 0, sorted: the same test images for every model,
    and for a smaller ``n`` a subset of those for a larger one."""
    return np.sort(np.random.default_rng(0).permutation(n_total)[: min(n, n_total)])


def distortion_curve(model: nn.Module, data: Dataset, name: str, seed: int = 0, device=None) -> dict:
    """Accuracy on the test set under distortion ``name`` at each of its levels (seeded by level)."""
    d = DISTORTIONS.get(name)
    shape = data.image_shape or (28, 28)
    with on_device(model, device) as dev, modes_kept(model):
        x = torch.as_tensor(data.x_test, device=dev)
        y = torch.as_tensor(data.y_test, device=dev)
        acc = [accuracy(model, d.fn(x, level, np.random.default_rng([seed, k]), shape), y, device=dev)
               for k, level in enumerate(d.levels)]  # fmt: skip
    return {d.level_name: list(d.levels), "accuracy": acc}


def evaluate_model(model: nn.Module, data: Dataset, loss: str, suite: str | Suite = "quick",
                   seed: int = 0, subsample: int = 1000, masking_subsample: int = MASKING_SUBSAMPLE,
                   quick: bool = False, device=None, units=None, eot: bool = True,
                   rand_autoattack: bool = False) -> dict:  # fmt: skip
    """Every measure of ``suite`` (a name in ``SUITES`` or a ``Suite``) for one model, on ``data``'s
    test set, run on ``device``; ``model`` ends where it was and in the mode it was in.

    ``eot=False`` evaluates a stochastic model naively (``noise.single_draws``: single noisy passes
    judged, gradients of one draw), to show what EOT and the expected prediction change; the
    result then says ``"single_draws": true``. It changes nothing for a deterministic model.

    ``units`` (a ``sleepnet.units.Units`` whose context identifies the model, the data, the seed
    and the options): each measure is kept there as it finishes and reused if it is there already
    (``sleepnet run`` and ``sleepnet evaluate`` resume this way). A measure that ``units`` leaves for a
    later run (``Units.only``) is None here; the worst cases (``robust``) and the masking checks' budget
    checks, made from the others, are absent until every one they need is in, and the masking checks
    cannot be made before HopSkipJump (one of them compares with it: one clear error).

    ``rand_autoattack``: where the suite's L-inf AutoAttack (``autoattack-linf``) runs its standard
    version (a deterministic model, or a naive pass), also its rand version (APGD-CE and APGD-DLR,
    EOT 1) at the same budgets on the same images, as ``RAND_AUTOATTACK``: what a stochastic model's
    AutoAttack is (with EOT), so the two can be compared like for like (``claims.stochastic_rows``).
    Not among the worst cases (``robust``), which are the suite's.
    """
    spec = suite if isinstance(suite, Suite) else SUITES.get(suite)

    naive = not eot and stochastic(model)

    def unit(name: str, inputs, fn):
        # not a measure kept under other draws (noise.JUDGE): the expected prediction's, and a naive
        # pass's single draws, which start from the same seeds (noise.judging)
        if stochastic(model):
            inputs = [inputs, {"judge": JUDGE}]
        return fn() if units is None else units.run(name, inputs, fn)

    with on_device(model, device) as dev, modes_kept(model), single_draws(naive):
        out = {"clean_accuracy": unit("clean", None,
                                      lambda: accuracy(model, data.x_test, data.y_test, device=dev))}
        if stochastic(model):  # the mean over draws, with its spread (docs/evaluation.md §4)
            probe = ATTACKS["pgd"](model, "cross-entropy", device=dev)
            draws = eot_default(model)
            out["clean_over_draws"] = unit("clean-over-draws", draws, lambda: accuracy_over_draws(
                functools.partial(probe.predict, once=True), data.x_test, data.y_test, draws, seed, model))
        for name in spec.distortions:
            out[name] = unit(name, DISTORTIONS.get(name).levels,
                             lambda name=name: distortion_curve(model, data, name, seed, device=dev))
        for name in spec.attacks:
            out[name] = unit(name, None, lambda name=name: ATTACKS[name](model, loss, device=dev).run(
                data.x_test, data.y_test))
        if spec.subsample_attacks:
            out |= _subsample_part(model, data, loss, spec, seed, subsample, masking_subsample, quick, dev,
                                   unit)  # fmt: skip
        aa = next((s for s in spec.subsample_attacks if s.label == "autoattack-linf"), None)
        if rand_autoattack and aa is not None and default_version(model) == "standard":
            out[RAND_AUTOATTACK] = _rand_autoattack(model, data, loss, aa, seed, subsample, quick, dev, unit)
    return out | ({"single_draws": True} if naive else {})


def _rand_autoattack(model, data, loss, setting: AttackSetting, seed, subsample, quick, device, unit):
    """``evaluate_model``'s ``RAND_AUTOATTACK``: ``setting`` (the suite's L-inf AutoAttack) in its rand
    version with EOT 1, on the same images."""
    n_test = len(data.x_test)
    idx = subsample_indices(n_test, min(setting.n_images, subsample, n_test))
    params = setting.kwargs(quick) | {"version": "rand", "eot_samples": 1}
    run = functools.partial(_run_setting, model, data, idx, setting, params, setting.loss or loss, seed,
                            device)  # fmt: skip
    return unit(RAND_AUTOATTACK, [repr(setting), params, len(idx)], run)


def _run_setting(model, data, idx, setting: AttackSetting, params: dict, loss: str, seed, device) -> dict:
    """``setting``'s attack with ``params`` on test images ``idx``: its robust-accuracy curve where it has
    a norm, else its ``run``; with ``params`` and ``n``."""
    x, y = data.x_test[idx], data.y_test[idx]
    if setting.norm is not None:
        shape = (1, *data.image_shape) if data.image_shape else None
        res = attack_curve(model, x, y, setting.attack, setting.norm, setting.budgets, loss=loss, seed=seed,
                           image_shape=shape, device=device, **params)  # fmt: skip
    else:
        res = ATTACKS[setting.attack](model, loss, device=device, **params).run(x, y)
    return res | {"params": params, "n": len(idx)}


def _subsample_part(model, data, loss, spec: Suite, seed, subsample, masking_subsample, quick,
                    device, unit) -> dict:  # fmt: skip
    """The subsample attacks of ``spec`` and the gradient-masking checks (each through ``unit``)."""
    from .masking import add_budget_checks, masking_checks

    n_test = len(data.x_test)
    sizes = spec.sizes(subsample, n_test)
    out = {"subsample": {"n": min(subsample, n_test), "seed": 0, "sizes": sizes}}
    for setting in spec.subsample_attacks:
        params = setting.kwargs(quick)
        idx = subsample_indices(n_test, sizes[setting.label])
        run = functools.partial(_run_setting, model, data, idx, setting, params, setting.loss or loss, seed,
                                device)  # fmt: skip
        inputs = [repr(setting), params, len(idx)]
        rand = setting.attack == "autoattack" and "version" not in params and default_version(model) == "rand"
        if rand:  # not a measure kept before rand was a stochastic model's default
            inputs.append({"version": "rand"})
        if hasattr(ATTACKS[setting.attack], "implementation"):  # not one kept from another implementation
            inputs.append({"implementation": ATTACKS[setting.attack].implementation})
        out[setting.label] = unit(setting.label, inputs, run)
    idx = subsample_indices(n_test, min(masking_subsample, subsample))
    free = None
    if "hopskipjump" in out:
        hsj = subsample_indices(n_test, sizes["hopskipjump"])
        free = (data.x_test[hsj], data.y_test[hsj], out["hopskipjump"])
    inputs = [repr(spec), len(idx)] + [{"implementation": ATTACKS["hopskipjump"].implementation}]  # check 4
    if stochastic(model):  # not one kept when the float64 copy of check 5 drew other noise (Noise.eps)
        inputs.append({"float64_noise": "float32 draws"})

    def checks():
        if free is not None and free[2] is None:  # HopSkipJump left for a later run (Units.only)
            raise SleepnetError("the masking checks need HopSkipJump's result: make it first, or with them")
        return masking_checks(model, loss, data.x_test[idx], data.y_test[idx], seed, free=free,
                              eps=spec.masking_eps)  # fmt: skip

    out["masking"] = unit("masking", inputs, checks)
    if any(s.norm for s in spec.subsample_attacks) and all(v is not None for v in out.values()):
        out["robust"] = worst_cases(out, spec)
        aligned = None
        if "hopskipjump" in out and "autoattack-l2" in out:  # HSJ's images among AutoAttack's (both sorted)
            aligned = np.searchsorted(subsample_indices(n_test, sizes["autoattack-l2"]),
                                      subsample_indices(n_test, sizes["hopskipjump"]))  # fmt: skip
        out["masking"] = add_budget_checks(out["masking"], out, spec, aligned)
    return out


def worst_cases(out: dict, spec: Suite) -> dict:
    """Per norm, the worst case over the suite's curves that ran on the most images (robust only if
    every one of them failed), at the budgets all of them ran at; a curve on fewer images
    (HopSkipJump) is left out of it and compared on its own images by the masking checks."""
    res = {}
    for norm in ("inf", "2"):
        curves = [(s.label, out[s.label]) for s in spec.subsample_attacks if s.norm == norm]
        if not curves:
            continue
        n = max(c["n"] for _, c in curves)
        used = [(label, c) for label, c in curves if c["n"] == n]
        # the budgets every one of them ran at: above its largest budget a sweep records no attack (inf)
        budgets = sorted(set.intersection(*[set(c["budgets"]) for _, c in used]))
        norms = worst_case(*[norms_from_json(c["norms"]) for _, c in used])
        res[norm] = {"attacks": [label for label, _ in used], "n": n, "budgets": budgets,
                     "robust_accuracy": robust_accuracy(norms, budgets)}  # fmt: skip
    return res


def evaluate(models: dict[str, nn.Module], data: Dataset, losses: dict[str, str],
             suite: str | Suite = "quick", seed: int = 0, progress: bool = False, device=None,
             units: dict | None = None, **options) -> dict:  # fmt: skip
    """Evaluate several models on the same test set, on ``device``; ``{name: results}``.

    ``units``: ``{name: Units}`` where each model's measures are kept and resumed (``evaluate_model``).
    """
    results = {}
    from ..progress import bar

    label = suite.name if isinstance(suite, Suite) else suite
    for name, model in bar(f"evaluate ({label})", items=list(models.items()), enabled=progress):
        results[name] = evaluate_model(model, data, losses[name], suite, seed, device=device,
                                       units=(units or {}).get(name), **options)  # fmt: skip
    return results


#: the distortions a headline averages, under their short names
HEADLINE = {"gaussian-noise": "noise", "gaussian-blur": "blur", "white-noise": "white-noise",
            "babble": "babble", "time-shift": "time-shift"}  # fmt: skip


def headline(results: dict) -> dict:
    """The numbers of the demo table: clean accuracy, the mean accuracy over the levels of each
    distortion that ran (``noise`` and ``blur`` for images; ``white-noise``, ``babble`` and
    ``time-shift`` for waveforms), and the FGSM median eps (NaN where FGSM did not run)."""
    out = {"clean": results["clean_accuracy"]}
    for name, short in HEADLINE.items():
        if name in results:
            out[short] = float(np.mean(results[name]["accuracy"]))
    out["fgsm_median_eps"] = results["fgsm"]["median_eps"] if "fgsm" in results else float("nan")
    return out
