"""Aggregate an experiment over seeds and write its CSV, Markdown report and figures."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .evaluation import SUITES
from .evaluation.distortions import DISTORTIONS
from .evaluation.masking import failed_lines
from .fsio import atomic_write

ATTACKS = SUITES["paper"].labels  # the labels the paper suite reports
CURVES = DISTORTIONS.names()  # every registered distortion has an accuracy curve

#: ``docs/paper-protocol.md`` §5, per dataset: (row, metric, control, after sleep, our sleep variant);
#: the paper reports nothing for Fashion-MNIST
PAPER_ROWS = {
    "mnist": (
        ("FGSM median epsilon", "fgsm.median_eps", "0.09", "0.22", "sleep-fgsm"),
        ("DeepFool median perturbation", "deepfool.median_rel_l2", "0.0042 (96.5%)", "0.0484 (86.4%)",
         "sleep-deepfool"),
        ("JSMA median perturbation", "jsma.median_rel_l2", "0.0477 (95.6%)", "0.0059 (73.0%)",
         "sleep-deepfool"),
        ("Boundary attack distance", "boundary.median_rel_l2", "0.0525", "0.0488", "sleep-deepfool"),
    ),
    "patches": (("FGSM median epsilon", "fgsm.median_eps", "0.0175", "0.2025", "sleep-fgsm"),),
}  # fmt: skip


def scalars(res: dict) -> dict[str, float]:
    """The numbers of one model's results that are compared across seeds."""
    if not res:  # a seed that lacks the model
        return {}
    out = {"clean_accuracy": res["clean_accuracy"]}
    if "fgsm" in res:
        out["fgsm.median_eps"] = res["fgsm"]["median_eps"]
    for c in CURVES:
        if c in res:
            out[f"{c}.mean_accuracy"] = float(np.mean(res[c]["accuracy"]))
    for a in ATTACKS:
        if a in res:
            for k in ("success_rate", "median_rel_l2", "accuracy"):
                if k in res[a]:  # a curve (standard suite) has no single accuracy
                    out[f"{a}.{k}"] = res[a][k]
    for label, r in res.items():  # robust-accuracy curves (standard suite), FGSM's 81 budgets excepted
        curve = isinstance(r, dict) and isinstance(r.get("robust_accuracy"), dict)
        if curve and label not in ("robust", "fgsm"):
            for eps, v in r["robust_accuracy"].items():
                out[f"{label}.robust@{eps}"] = v
    for norm, r in res.get("robust", {}).items():
        for eps, v in r["robust_accuracy"].items():
            out[f"worst-l{norm}.robust@{eps}"] = v
    if "masking" in res:
        out["masking.flagged"] = float(res["masking"]["masked"])
    return out | analysis_scalars(res.get("analyses") or {})


#: the geometry's measures compared across seeds (each per layer; the rest stay in per_seed)
GEOMETRY = ("capacity", "radius", "dimension")
#: the analyses whose metrics are per layer
ANALYSIS_KINDS = ("weights", "activations", "geometry")


def analysis_scalars(analyses: dict) -> dict[str, float]:
    """The numbers of one model's analyses (``sleepnet.analysis``) compared across seeds, each layer by
    its place (``@1`` the first weight layer, or for the geometry ``@0`` the input): models of other
    architectures have other layer names."""
    out = {}
    for k, layer in enumerate((analyses.get("weights") or {}).get("layers", []), 1):
        out[f"weights.kurtosis@{k}"] = layer["kurtosis"]
    for k, layer in enumerate((analyses.get("activations") or {}).get("layers", []), 1):
        out[f"activations.silent@{k}"] = layer["silent"]
        out[f"activations.saturated@{k}"] = layer["saturated"]
    if "jacobian" in analyses:
        out["jacobian.top"] = analyses["jacobian"]["top"]
        out["jacobian.participation_ratio"] = analyses["jacobian"]["participation_ratio"]
    for kind, res in (analyses.get("geometry") or {}).get("manifolds", {}).items():
        for measure in GEOMETRY:
            for k, v in enumerate(res[measure]):
                out[f"geometry.{kind}.{measure}@{k}"] = v
    for key in ("separation", "separation_draws"):  # clean vs adversarial exemplars, d' (None: not made)
        for k, v in enumerate((analyses.get("geometry") or {}).get(key) or []):
            out[f"geometry.{key}@{k}"] = float("nan") if v is None else v
    return out


def paired_p(a: list[float], b: list[float]) -> float:
    """Paired t-test p of ``a`` against ``b`` (seeds): nan for fewer than 2 pairs or non-finite values;
    0 or nan (equal) when every difference is the same."""
    if len(a) < 2 or not all(map(math.isfinite, a + b)):
        return float("nan")
    d = np.asarray(a) - np.asarray(b)
    tol = 1e-9 * max(1.0, float(np.max(np.abs(d))))
    if np.ptp(d) <= tol:  # the same difference every seed, up to float rounding
        return float("nan") if np.max(np.abs(d)) <= tol else 0.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b).pvalue)


def seed_cell(values: dict, baseline: dict | None = None, digits: int = 3) -> str:
    """``values`` over seeds (``{seed: value}``) as ``mean ± std`` (sample std; the value alone for one
    seed); with a ``baseline`` of the same form, `` (p=...)``: the paired t-test over the seeds both
    have, with ``, n seeds`` where those are fewer than the mean's (left out where there are fewer than
    2 or it is undefined)."""
    vals = list(values.values())
    text = f"{np.mean(vals):.{digits}f}" + (f" ± {np.std(vals, ddof=1):.{digits}f}" if len(vals) > 1 else "")
    both = sorted(s for s in values if s in (baseline or {}))
    if len(both) > 1:
        p = paired_p([values[s] for s in both], [baseline[s] for s in both])
        fewer = f", {len(both)} seeds" if len(both) < len(vals) else ""
        text += p_text(p, fewer)
    return text


def seed_groups(runs: list[dict], setting, baseline) -> list[tuple[tuple, dict[int, dict], dict[int, dict]]]:
    """``(setting, {seed: run}, {seed: baseline run})`` for each setting run under several seeds, in sorted
    order: ``setting(run)`` is a run's identity less its ``seed``, ``baseline(setting)`` the setting it is
    tested against (None for none)."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in runs:
        groups.setdefault(setting(r), {})[r["seed"]] = r
    several = [(k, seeds, baseline(k)) for k, seeds in sorted(groups.items()) if len(seeds) > 1]
    return [(k, seeds, groups.get(base, {}) if base is not None else {}) for k, seeds, base in several]


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test of paired booleans (per image, robust or not): the number true for ``a``
    only, for ``b`` only, and the two-sided binomial p."""
    from scipy.stats import binomtest

    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0


def aggregate(per_seed: dict) -> dict:
    """``{model: {metric: {mean, std, n, values, p_vs_control}}}`` over seeds (paired t-test; none where a
    seed's value is missing or not finite). A metric (or model) a seed lacks is nan there; mean and std
    are over the ``n`` seeds that have a finite value (std nan below 2). A per-layer analysis metric
    (``analysis_scalars``) is tested against the control only where both have the same layers for it:
    a network of another depth has other layers at the same place."""
    seeds = list(per_seed)
    models = list(dict.fromkeys(m for s in seeds for m in per_seed[s]))  # every seed's, in order
    table = {m: {} for m in models}
    base = {s: scalars(per_seed[s].get("control", {})) for s in seeds} if "control" in models else None
    nan = float("nan")
    for m in models:
        rows = [scalars(per_seed[s].get(m, {})) for s in seeds]
        for key in dict.fromkeys(k for r in rows for k in r):  # every seed's keys, in order
            vals = [float(r.get(key, nan)) for r in rows]
            finite = [v for v in vals if math.isfinite(v)]
            p = nan
            if base and m != "control" and _same_layers(key, rows, [base[s] for s in seeds]):
                p = paired_p(vals, [float(base[s].get(key, nan)) for s in seeds])  # nan if a seed lacks it
            table[m][key] = {
                "mean": float(np.mean(finite)) if finite else nan,
                "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else nan,
                "n": len(finite),  # the seeds behind mean and std (of len(values))
                "values": vals,
                "p_vs_control": p,
            }
    return table


def _same_layers(key: str, rows: list[dict], control: list[dict]) -> bool:
    """Whether ``key`` is comparable with the control's: any key that is not per layer; a per-layer one
    (``PREFIX@k``) where the model and the control hold the same layers of ``PREFIX``."""
    if "@" not in key or key.split(".")[0] not in ANALYSIS_KINDS:
        return True
    prefix = key.rsplit("@", 1)[0] + "@"
    layers = lambda rs: {k for r in rs for k in r if k.startswith(prefix)}  # noqa: E731
    return layers(rows) == layers(control)


def _fmt(cell: dict | None, digits: int = 3) -> str:
    """An ``aggregate`` cell: ``mean ± std (p=...)``; the mean alone for one seed; `` [n of N seeds]``
    where some seeds have no finite value (then no test: ``aggregate``)."""
    if cell is None or not math.isfinite(cell["mean"]):
        return "n/a"
    n, total = sum(map(math.isfinite, cell["values"])), len(cell["values"])  # as in aggregate's "n"
    text = f"{cell['mean']:.{digits}f}" + (f" ± {cell['std']:.{digits}f}" if n > 1 else "")
    return text + p_text(cell["p_vs_control"]) + (f" [{n} of {total} seeds]" if n < total else "")


def p_text(p: float, fewer: str = "") -> str:
    """`` (p=...)`` for a paired test's p (``fewer``: what to add inside the brackets); nothing for nan
    (no test). The experiment scripts' tables say their p-values with it too."""
    return f" ({_p_words(p)}{fewer})" if math.isfinite(p) else ""


def _p_words(p: float) -> str:
    """``p=...``, or for 0 (every seed the same difference: no spread to test) the words that say so."""
    return "the same difference every seed" if p == 0 else f"p={p:.2g}"


def write_csv(agg: dict, path: Path) -> None:
    """``results.csv``: one row per model and metric (mean, std, paired p, the per-seed values)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["model", "metric", "mean", "std", "p_vs_control", "values"])
    for model, metrics in agg.items():
        for key, c in metrics.items():
            w.writerow([model, key, c["mean"], c["std"], c["p_vs_control"],
                        " ".join(f"{v:.6g}" for v in c["values"])])  # fmt: skip
    atomic_write(path, buf.getvalue())


def mean_curves(per_seed: dict) -> dict:
    """Per model, the accuracy curves (noise, blur, FGSM...) averaged over the seeds that hold them at the
    first such seed's levels; a curve of fewer than every seed is labelled with how many it averages."""
    out = {}
    for m in dict.fromkeys(m for runs in per_seed.values() for m in runs):
        out[m] = {}
        for key in (*CURVES, "fgsm"):
            held = [c for runs in per_seed.values() if isinstance(c := runs.get(m, {}).get(key), dict)
                    and isinstance(c.get("accuracy"), list)]  # fmt: skip
            if not held:
                continue
            level = next(k for k in held[0] if k not in ("accuracy", "median_eps", "never_fooled"))
            same = [c["accuracy"] for c in held if c[level] == held[0][level]]
            out[m][key] = {level: held[0][level], "accuracy": np.mean(same, axis=0).tolist()}
            if len(same) < len(per_seed):
                out[m][key]["label"] = f"{m} ({len(same)} of {len(per_seed)} seeds)"
    return out


def write_report(metrics: dict, folder: Path) -> Path:
    """Write ``results.csv``, ``report.md`` and ``figures/`` into ``folder``; returns ``report.md``'s path.

    ``metrics``: the experiment's ``experiment``, ``dataset``, ``per_seed`` (results per seed and
    model), ``aggregate`` (from ``aggregate``) and, optionally, ``timing``.
    """
    from .plots import robust_at_budgets, robustness_curves

    folder = Path(folder)
    agg = metrics["aggregate"]
    exp = metrics["experiment"]
    write_csv(agg, folder / "results.csv")
    figures = robustness_curves(mean_curves({int(k): v for k, v in metrics["per_seed"].items()}),
                                folder / "figures")  # fmt: skip
    figures += robust_at_budgets(agg, folder / "figures", _budget_about(metrics))
    models = list(agg)
    lines = [f"# {exp['name']}: robustness of each model against the control", "",
             "## Setup", "",
             f"- dataset: {metrics['dataset']['name']} (SHA-256 {metrics['dataset']['sha256'][:16]}...), "
             f"{metrics['dataset']['n_train']} training / {metrics['dataset']['n_test']} test images",
             f"- recipe: {exp['recipe']}; seeds: {exp['seeds']}; suite: {exp['suite']}"
             + (f"; iterative attacks on at most {exp['subsample']} test images (a fixed permutation, "
                f"seed 0): {_sizes(metrics)}" if exp["suite"] != "quick" else "")
             + ("; CI-sized attack settings (--quick)" if exp.get("quick") else ""),
             f"- sleep variants: {', '.join(exp['sleep']) or 'none'}; "
             f"defences: {_defences(exp['defences']) or 'none'}",
             "- numbers are mean ± std over seeds; p is a paired t-test against the control "
             "(n/a with one seed)", ""]  # fmt: skip
    lines += _paper_table(agg, models, metrics["dataset"]["name"])
    cols = [("clean acc.", "clean_accuracy"), ("noise acc.", "gaussian-noise.mean_accuracy"),
            ("blur acc.", "gaussian-blur.mean_accuracy"), ("white noise acc.", "white-noise.mean_accuracy"),
            ("babble acc.", "babble.mean_accuracy"), ("time shift acc.", "time-shift.mean_accuracy"),
            ("FGSM med. eps", "fgsm.median_eps"),
            ("PGD-inf acc.", "pgd-linf.accuracy"), ("PGD-L2 acc.", "pgd-l2.accuracy"),
            ("DeepFool med. rel. L2", "deepfool.median_rel_l2"), ("CW success", "cw-l2.success_rate"),
            ("Boundary med. rel. L2", "boundary.median_rel_l2"),
            ("HSJ med. rel. L2", "hopskipjump.median_rel_l2")]  # fmt: skip
    cols = [c for c in cols if any(c[1] in agg[m] for m in models)]
    lines += ["## All models", "", "| model | " + " | ".join(c[0] for c in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]  # fmt: skip
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(agg[m].get(k)) for _, k in cols) + " |")
    if any("rel. L2" in c[0] for c in cols):
        lines += ["", "med. rel. L2: the median of ||delta||_2 / ||x||_2 over the images the attack fooled "
                  "(its success rate in results.csv); the budgets below are absolute."]
    lines += _attack_lines(agg, models, metrics)
    lines += _robust_lines(agg, models, metrics)
    lines += ["", "## Gradient-masking checks", ""]
    for m in models:
        flagged = agg[m].get("masking.flagged")
        if flagged is None:
            continue
        warnings = sorted({w for s in metrics["per_seed"].values()
                           for w in failed_lines(s.get(m, {}).get("masking", {}))})  # fmt: skip
        verdict = "; ".join(warnings) if warnings else "no sign of gradient masking"
        checked = [v for v in flagged["values"] if math.isfinite(v)]  # the seeds that checked it
        lines.append(f"- **{m}**: flagged in {int(sum(checked))} of {len(checked)} seeds. {verdict}.")
    if any(agg[m].get("masking.flagged") is not None for m in models) and any(
            k.startswith("worst-l") for m in models for k in agg[m]):
        lines += ["", "A flag names an attack whose own figure overstates robustness; the robust "
                  "accuracies at budgets above are each image's worst case over the attacks listed "
                  "there, so a flag alone does not make them masked."]
    from .claims import claim_lines, stochastic_lines

    lines += claim_lines(metrics) + stochastic_lines(metrics)
    analysed = _analysis_lines(agg, models, metrics)
    if analysed:
        first = next(iter(metrics["per_seed"]))
        shown = {m: r["analyses"] for m, r in metrics["per_seed"][first].items() if r.get("analyses")}
        from .analysis import figures as analysis_figures

        drawn = analysis_figures({"models": shown}, folder / "figures" / "analysis")
        figures += [folder / "figures" / "analysis" / p.name for p in drawn]
        lines += analysed + ["", f"The analyses' figures (below) are of seed {first}."]
    lines += _timing_lines(metrics.get("timing"))
    lines += ["", "## Figures", ""] + [f"![{p.stem}](figures/{p.relative_to(folder / 'figures')})"
                                       for p in figures] + [""]  # fmt: skip
    path = folder / "report.md"
    atomic_write(path, "\n".join(lines))
    return path


#: p below which a difference from the control is called significant in the verdict
ALPHA = 0.05
#: seeds below which the same difference in every seed (p = 0: no spread to test) is not called significant
MIN_SEEDS = 3


def significant(p: float, seeds: int) -> bool:
    """Whether a paired test's ``p`` over ``seeds`` seeds is below ``ALPHA``; p = 0, the same difference
    in every seed, only over at least ``MIN_SEEDS`` seeds (two seeds that each gain one image are not
    evidence)."""
    return math.isfinite(p) and p < ALPHA and (p > 0 or seeds >= MIN_SEEDS)


def _attack_lines(agg: dict, models: list[str], metrics: dict) -> list[str]:
    """Robust accuracy of each attack at each of its budgets (``ATTACK.robust@EPS``), one table per attack,
    headed by its norm, loss, EOT and number of images on the control (``_wordings``, over every
    seed); the models attacked otherwise, seed by seed (a stochastic model's rand AutoAttack), named
    below it."""
    attacks = list(dict.fromkeys(k.split(".robust@")[0] for m in models for k in agg[m]
                                 if ".robust@" in k and not k.startswith("worst-")))  # fmt: skip
    if not attacks:
        return []
    lines = ["", "## Robust accuracy per attack", "",
             "An image counts only if classified correctly clean and not fooled within the budget; a "
             "minimal-perturbation attack's figure at each budget follows from its per-image norms (a "
             "failure is an infinite norm)."]  # fmt: skip
    for attack in attacks:
        words = {m: w for m in models if (w := _wordings(metrics, m, attack))}
        ref = "control" if "control" in words else next(iter(words), None)
        common = _grouped(words[ref]) if ref else ""
        keys = sorted({k for m in models for k in agg[m] if k.startswith(f"{attack}.robust@")},
                      key=lambda k: float(k.split("@")[1]))  # fmt: skip
        lines += ["", f"{attack} ({common}):" if common else f"{attack}:", "",
                  "| model | " + " | ".join(k.split("@")[1] for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]  # fmt: skip
        lines += [f"| {m} | " + " | ".join(_fmt(agg[m].get(k)) for k in keys) + " |" for m in models]
        other = []
        base = words[ref] if ref else {}
        for m, w in words.items():  # seed by seed against the header's (its other seeds where it lacks one)
            if m == ref:
                continue
            diff = {s: a for s, a in w.items() if (a != base[s] if s in base else a not in base.values())}
            if diff:
                other.append(f"{m}: {_grouped(diff, seeds=len(diff) < len(w))}")
        if other:  # a stochastic model's AutoAttack is the rand version, with EOT
            lines += ["", "Attacked otherwise: " + "; ".join(other) + "."]
    return lines


def _wordings(metrics: dict, model: str, attack: str) -> dict[str, str]:
    """``{seed: _about(record)}`` of ``model``'s ``attack`` record in every seed that holds it."""
    return {str(seed): _about(rec) for seed, runs in metrics["per_seed"].items()
            if isinstance(rec := runs.get(model, {}).get(attack), dict)}  # fmt: skip


def _grouped(wordings: dict[str, str], seeds: bool = False) -> str:
    """``_wordings`` as a header says them: the one wording (with its seeds if ``seeds``), or each wording
    with its seeds."""
    said: dict[str, list[str]] = {}
    for seed, a in wordings.items():
        said.setdefault(a, []).append(seed)
    if len(said) == 1 and not seeds:
        return next(iter(said))
    return " / ".join(f"{a} ({_seed_list(s)})" for a, s in said.items())


def _seed_list(seeds: list[str]) -> str:
    """``seed 2``, ``seeds 0, 1``."""
    return f"seed{'s' * (len(seeds) > 1)} {', '.join(seeds)}"


def _about(record: dict) -> str:
    """An attack record's norm, loss, EOT (above 1) and number of images, as a table header says them."""
    eot = record.get("eot_samples", 1)
    return ", ".join(x for x in (f"L{record['norm']}" if record.get("norm") else "",
                                 f"loss {record['loss']}" if "loss" in record else "",
                                 f"EOT {eot}" if eot and eot > 1 else "",
                                 f"{record['n']} images" if "n" in record else "") if x)  # fmt: skip


def _defences(defences: dict) -> str:
    """The experiment's defences with their settings: ``sat (saturation: recipe relu-mlp, lam 0.001)``."""

    def about(d: dict) -> str:
        rest = ", ".join(f"{k} {v}" for k, v in d.items() if k != "defence")
        return f" ({d.get('defence', '')}{': ' if 'defence' in d and rest else ''}{rest})" if d else ""

    if not isinstance(defences, dict):  # names only
        return ", ".join(defences)
    return ", ".join(f"{name}{about(d or {})}" for name, d in defences.items())


def _robust_lines(agg: dict, models: list[str], metrics: dict) -> list[str]:
    """Robust accuracy at every budget (worst case over the suite's attacks) and the verdict."""
    keys = sorted({k for m in models for k in agg[m] if k.startswith("worst-l")})
    if not keys:
        return []
    lines = ["", "## Robust accuracy at budgets", "",
             "An image counts only if classified correctly clean and not fooled within the budget by "
             "any of the attacks listed here (the worst case per image; an attack of the suite on other "
             "images, as HopSkipJump on fewer, is not among them); the attacks, their losses and the "
             "numbers of images:", ""]  # fmt: skip
    how = lambda rec: _about({k: v for k, v in rec.items() if k in ("loss", "eot_samples")})  # noqa: E731
    for norm in ("inf", "2"):
        said: dict[str, dict[str, list[str]]] = {}  # how the worst case was made -> model -> its seeds
        for m in models:
            for seed, runs in metrics["per_seed"].items():
                r = runs.get(m, {}).get("robust", {}).get(norm)
                if r:
                    about = ", ".join(f"{a} ({how(runs[m][a])})" for a in r["attacks"])
                    said.setdefault(f"{about}; {r['n']} test images", {}).setdefault(m, []).append(str(seed))
        split = {m for by in said.values() for m in by if sum(m in b for b in said.values()) > 1}
        for about, by in said.items():  # a model made otherwise in some seeds is named with its seeds
            names = [f"{m} ({_seed_list(s)})" if m in split else m for m, s in by.items()]
            lines.append(f"- L{norm}: {about}" + (f" ({', '.join(names)})" if len(said) > 1 else ""))
    for norm in ("inf", "2"):
        cols = [k for k in keys if k.startswith(f"worst-l{norm}.")]
        if not cols:
            continue
        lines += ["", "| model | " + " | ".join(_budget(k) for k in cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]  # fmt: skip
        lines += [f"| {m} | " + " | ".join(_fmt(agg[m].get(k)) for k in cols) + " |" for m in models]
    tests = seed_mcnemar(metrics, models, keys)
    lines += _mcnemar_lines(tests, keys)
    return lines + ["", "## Verdict", "", *_verdict(agg, models, keys, tests)]


def _budget_about(metrics: dict) -> dict[str, str]:
    """Per norm (``linf``, ``l2``), the attacks and images of the control's worst case (else the first
    model's that has one), named as that model's (another model's may differ: a stochastic one's rand
    AutoAttack), for the robust-accuracy figures' subtitles."""
    out = {}
    for norm, name in (("inf", "linf"), ("2", "l2")):
        for runs in metrics["per_seed"].values():
            order = sorted(runs, key=lambda m: m != "control")
            found = next(((m, w) for m in order if (w := runs[m].get("robust", {}).get(norm))), None)
            if found:
                model, r = found
                out[name] = f"{model}: over {', '.join(r['attacks'])}; {r['n']} test images"
                break
    return out


def worst_flags(run: dict, norm: str, eps: float) -> np.ndarray | None:
    """Per image, robust at ``eps`` against every attack of ``run``'s worst case for ``norm`` (the
    attacks ``run["robust"][norm]`` names, their stored per-image norms); None where they are not kept."""
    from .evaluation.robust import limit, norms_from_json, worst_case

    worst = run.get("robust", {}).get(norm)
    if not worst or any("norms" not in run.get(a, {}) for a in worst["attacks"]):
        return None
    return worst_case(*[norms_from_json(run[a]["norms"]) for a in worst["attacks"]]) > limit(eps)


def seed_mcnemar(metrics: dict, models: list[str], keys: list[str]) -> dict:
    """``{model: {worst-case key: {seed: (control only, model only, p) or None}}}``: per seed, the exact
    McNemar test (``mcnemar``) of each model against that seed's control over the same images, for each
    ``worst-l<norm>.robust@<eps>`` key; None for a seed that holds the model but cannot be tested (its
    per-image norms not kept, or the two attacked on other images)."""
    out: dict = {}
    for m in models:
        if m == "control":
            continue
        for key in keys:
            norm, eps = key[len("worst-l"):].split(".robust@")
            for seed, runs in metrics["per_seed"].items():
                if "control" not in runs or m not in runs:
                    continue
                ctrl, run = runs["control"], runs[m]
                a, b = worst_flags(ctrl, norm, float(eps)), worst_flags(run, norm, float(eps))
                same = (a is not None and b is not None and a.shape == b.shape
                        and ctrl.get("subsample") == run.get("subsample"))  # fmt: skip
                out.setdefault(m, {}).setdefault(key, {})[str(seed)] = mcnemar(a, b) if same else None
    return out


def holm(pvalues: list[float], alpha: float = 0.05) -> list[bool]:
    """Which of ``pvalues`` are significant at ``alpha`` after Holm's step-down correction for their
    number: the k-th smallest (from 0) passes if it and every smaller one are below alpha / (n - k)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    passed = [False] * len(pvalues)
    for k, i in enumerate(order):
        if pvalues[i] >= alpha / (len(pvalues) - k):
            break
        passed[i] = True
    return passed


def _budget(key: str) -> str:
    """``worst-linf.robust@0.1`` as a table says it: ``Linf 0.1``."""
    return f"L{key[len('worst-l'):].replace('.robust@', ' ')}"


def _mcnemar_lines(tests: dict, keys: list[str]) -> list[str]:
    """The per-seed McNemar tests (``seed_mcnemar``) as one table per norm, a row per model and tested
    seed; the seeds that could not be tested named below them."""
    if not any(t for per in tests.values() for by_seed in per.values() for t in by_seed.values()):
        return []
    lines = ["", "Per seed, over the same images: images robust for the control only / for the model "
             f"only, and the exact two-sided McNemar p (bold below {ALPHA}; uncorrected for the number of "
             "models, seeds and budgets tested, so a budget significant in one seed of three is what chance "
             "gives somewhere in a large table: the verdict says what survives a Holm correction). It tests "
             "these trained models on these images; the paired t-test over seeds above tests the training "
             "procedure, seed to seed."]  # fmt: skip
    for norm in ("inf", "2"):
        cols = [k for k in keys if k.startswith(f"worst-l{norm}.")]
        rows = [(m, seed) for m, per in tests.items()
                for seed in sorted({s for k in cols for s, t in per.get(k, {}).items() if t}, key=int)]
        if not cols or not rows:
            continue
        lines += ["", "| model | seed | " + " | ".join(_budget(k) for k in cols) + " |",
                  "|---" * (len(cols) + 2) + "|"]  # fmt: skip
        for m, seed in rows:
            cells = []
            for k in cols:
                test = tests[m].get(k, {}).get(seed)
                p = f"p={test[2]:.2g}" if test else ""
                cells.append("" if test is None else
                             f"{test[0]}/{test[1]} " + (f"(**{p}**)" if test[2] < ALPHA else f"({p})"))
            lines.append(f"| {m} | {seed} | " + " | ".join(cells) + " |")
    untested = [f"{m} (seeds {', '.join(seeds)})" for m in tests if (seeds := _untested(tests[m]))]
    if untested:
        lines += ["", "Not tested per seed (per-image results not kept, or the control attacked on other "
                      "images): " + "; ".join(untested) + "."]  # fmt: skip
    return lines


def _untested(per_key: dict) -> list[str]:
    """The seeds of one model's ``seed_mcnemar`` tests that could not be tested at some budget."""
    return sorted({s for by_seed in per_key.values() for s, t in by_seed.items() if t is None}, key=int)


def _verdict(agg: dict, models: list[str], keys: list[str], tests: dict | None = None) -> list[str]:
    """One plain sentence per model against the control, from the worst-case robust accuracies: over
    seeds (paired t-test), then per seed over the same images (``seed_mcnemar``'s tests)."""
    if "control" not in models:
        return ["No control in this experiment: nothing to compare against."]
    out = []
    for m in models:
        if m == "control":
            continue
        better, worse, same = [], [], []
        for k in keys:
            cell, ctrl = agg[m].get(k), agg["control"].get(k)
            if cell is None or ctrl is None:
                continue
            diff, p = cell["mean"] - ctrl["mean"], cell["p_vs_control"]
            budget = f"{_budget(k)} ({diff:+.3f}, {_p_words(p)})"
            sig = significant(p, len(cell["values"]))
            (better if diff > 0 and sig else worse if diff < 0 and sig else same).append(budget)
        text = f"- **{m}**: "
        text += (f"more robust than the control at {', '.join(better)}" if better else
                 f"not more robust than the control at any budget (paired p < {ALPHA} over seeds)")
        if worse:
            text += f"; less robust at {', '.join(worse)}"
        clean = agg[m].get("clean_accuracy"), agg["control"].get("clean_accuracy")
        if all(clean):
            text += f"; clean accuracy {clean[0]['mean'] - clean[1]['mean']:+.4f}"
        out.append(text + "." + _seed_words((tests or {}).get(m, {})))
    seeds = len(next(iter(agg["control"].values()))["values"])
    return out + ["", f"With {seeds} seed(s) a paired t-test has little power: 'not more robust' means "
                      f"no difference at p < {ALPHA} was measured, not that there is none. The same "
                      f"difference in every seed counts only over at least {MIN_SEEDS} seeds."]  # fmt: skip


def _seed_words(per_key: dict) -> str:
    """`` Per seed, over the same images (McNemar p < 0.05, uncorrected): more robust at Linf 0.1 in 3 of 3
    seeds; ...; 4 of these 5 survive a Holm correction over the model's 24 tests``, or that no seed
    differs; the seeds that could not be tested named; nothing without tests."""
    tested = {k: {s: t for s, t in by_seed.items() if t} for k, by_seed in per_key.items()}
    if not any(tested.values()):
        return ""
    order = sorted(tested, key=lambda k: ("linf" not in k, float(k.split("@")[1])))  # L-inf first, as tables
    flat = [t for k in order for t in tested[k].values()]
    better, worse = [], []
    for key in order:
        up = [t for t in tested[key].values() if t[2] < ALPHA and t[1] > t[0]]
        down = [t for t in tested[key].values() if t[2] < ALPHA and t[0] > t[1]]
        better += [f"{_budget(key)} in {len(up)} of {len(tested[key])} seeds"] if up else []
        worse += [f"{_budget(key)} in {len(down)} of {len(tested[key])} seeds"] if down else []
    untested = _untested(per_key)
    left = f" (seeds {', '.join(untested)} could not be tested)" if untested else ""
    if not better and not worse:
        return f" Per seed, over the same images: no difference at McNemar p < {ALPHA} at any budget{left}."
    said = ([f"more robust at {', '.join(better)}"] if better else []) + (
        [f"less robust at {', '.join(worse)}"] if worse else [])
    significant = sum(1 for t in flat if t[2] < ALPHA)
    held = sum(holm([p for _, _, p in flat], ALPHA))  # each one held is below ALPHA too
    return (f" Per seed, over the same images (McNemar p < {ALPHA}, uncorrected): {'; '.join(said)}{left}; "
            f"{held} of these {significant} survive a Holm correction over its {len(flat)} tests.")


def _paper_table(agg: dict, models: list[str], dataset: str) -> list[str]:
    """The report's section with the paper's numbers next to ours (``PAPER_ROWS``)."""
    lines = ["## The paper's table next to ours", ""]
    rows = PAPER_ROWS.get(dataset, ())
    if rows:
        lines += ["| measure | paper control | paper sleep | our control | our sleep | our sleep variant |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
    for label, key, pc, ps, variant in rows:
        if variant not in agg:
            variant = next((m for m in models if m.startswith("sleep")), None)
        ours_c = _paper_cell(agg.get("control", {}), key)
        ours_s = _paper_cell(agg.get(variant, {}), key) if variant else "n/a"
        lines.append(f"| {label} | {pc} | {ps} | {ours_c} | {ours_s} | {variant or 'none'} |")
    if rows:
        lines += ["", f"The paper's numbers are from `docs/paper-protocol.md` §5 ({dataset}), a summary to "
                  "compare with, not a ground truth. These are the paper's measures under its own "
                  "protocol (the model's training loss, squared error, for FGSM; minimal-perturbation "
                  "medians), not robust accuracy at a budget: see `docs/replication.md`.", ""]  # fmt: skip
    else:
        lines += [f"The paper reports no numbers for {dataset} (`docs/paper-protocol.md` §5 covers MNIST, "
                  "Patches and CUB-200); ours are in the next table.", ""]  # fmt: skip
    return lines


def _analysis_lines(agg: dict, models: list[str], metrics: dict) -> list[str]:
    """The analyses' section (none where no model was analysed): per layer tables of weight kurtosis,
    saturated and silent units and the geometry's capacity, the Jacobian's spectrum."""
    keys = {k for m in models for k in agg[m]}
    if not any(k.split(".")[0] in (*ANALYSIS_KINDS, "jacobian") for k in keys):
        return []
    first = next(iter(metrics["per_seed"].values()))
    settings = next((r["analyses"] for r in first.values() if r.get("analyses")), {})
    n = metrics["experiment"].get("analysis_images", "?")
    geo = (settings.get("geometry") or {}).get("settings", {})
    own = f" (the geometry on its own: {geo['m']} a class)" if "m" in geo else ""
    lines = ["", "## Analyses", "",
             f"`sleepnet.analysis` of every model of every seed (`docs/analysis.md`), on the first {n} test "
             f"images of the fixed permutation{own}; mean ± std over seeds, p against the control. Layers "
             "by their place: weight layers from the input side; the geometry's from the input (0) to the "
             "logits.", ""]  # fmt: skip

    def table(title: str, prefix: str, digits: int = 3) -> None:
        layers = sorted({int(k.rsplit("@", 1)[1]) for k in keys if k.startswith(prefix + "@")})
        if not layers:
            return
        lines.extend([title, "", "| model | " + " | ".join(f"layer {k}" for k in layers) + " |",
                      "|---" * (len(layers) + 1) + "|"])  # fmt: skip
        for m in models:  # the models analysed (not a stochastic model's naive evaluation, say)
            cells = [_fmt(agg[m][f"{prefix}@{k}"], digits) if f"{prefix}@{k}" in agg[m] else ""
                     for k in layers]  # fmt: skip
            if any(cells):
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")

    table("Excess kurtosis (Fisher) of each weight layer's weights:", "weights.kurtosis", 2)
    table("Fraction of unit x image pairs saturated, each activation layer's (the readout's included): "
          "in the flat part of the nonlinearity (ReLU: pre-activation <= 0; sigmoid: output below 0.01 or "
          "above 0.99):", "activations.saturated")
    table("Fraction of unit x image pairs silent (ReLU: the same as saturated; sigmoid: output below "
          "0.01):", "activations.silent")
    if any(k.startswith("jacobian.") for k in keys):
        lines += ["Input-output Jacobian (d logits / d input): mean top singular value; participation "
                  "ratio of the squared singular values (1: one direction):", "",
                  "| model | top singular value | participation ratio |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {m} | {_fmt(agg[m]['jacobian.top'])} | {_fmt(agg[m]['jacobian.participation_ratio'])} |"
                  for m in models if "jacobian.top" in agg[m]]  # fmt: skip
        lines.append("")
    for kind in (settings.get("geometry") or {}).get("manifolds", {}):
        table(f"MFTMA capacity of the {kind} manifolds per layer (`docs/geometry.md`; radius and "
              "dimension in results.csv; points have capacity 2 at kappa 0, manifolds less, and the "
              "estimate from n_t Gaussian samples scatters by a few percent, so a little above 2 is its "
              "noise):", f"geometry.{kind}.capacity")
    table("Separation of clean and adversarial exemplar manifolds per layer (cross-validated d'; below 1 "
          "they overlap; `docs/geometry.md` §5):", "geometry.separation", 2)
    table("The same on a stochastic model's own noise draws (d'):", "geometry.separation_draws", 2)
    return lines[:-1] if lines[-1] == "" else lines


def _timing_lines(timing: dict | None) -> list[str]:
    """The report's timing section (none without timings)."""
    if not timing:
        return []
    ev = timing.get("evaluate_s", {})
    cores = timing.get("cores")  # not recorded before 2026-12-02: then unsaid
    return ["", "## Timing", "",
            f"- wall time {timing['total_s'] / 60:.1f} min with {timing['workers']} evaluation worker(s)"
            + (f" on {cores} core{'s' if cores != 1 else ''}" if cores else ""),
            "- training (control, sleep variants, defences) per seed"
            + (f" on {timing['train_threads']} torch thread(s)" if "train_threads" in timing else "")
            + ": " + ", ".join(f"seed {k} {v / 60:.1f} min" for k, v in timing["train_s"].items()),
            f"- evaluation per model: median {np.median(list(ev.values())):.0f} s, "
            f"max {max(ev.values()):.0f} s ({len(ev)} models)" if ev else
            "- no evaluation"] \
        + _measure_line(timing.get("measure_s"), timing.get("kept_measure_s"), timing.get("eval_threads")) \
        + _reuse_line(timing.get("reused"), timing.get("reused_from"), "kept_measure_s" in timing)


def _measure_line(measure_s: dict | None, kept_s: dict | None = None,
                  threads: int | None = None) -> list[str]:  # fmt: skip
    """Where the evaluation's time went: each measure, summed over models, the largest first; those
    taken from earlier work (``kept_s``) at the time they took when made (none before 2026-12-02,
    when runs began to record measure times, and kept ones from later that day on). ``threads``: each
    worker's torch threads (the same for kept measures: their hashes hold it), for the core-hours
    (recorded from 2026-12-02 on; worker-hours before)."""
    totals: dict[str, float] = {}
    count = {"now": 0, "kept": 0}
    for when, times in (("now", measure_s), ("kept", kept_s)):
        for per_model in (times or {}).values():
            for name, seconds in per_model.items():
                totals[name] = totals.get(name, 0.0) + seconds
                count[when] += 1
    whole = sum(totals.values())
    if not whole:
        return []
    parts = sorted(totals.items(), key=lambda kv: -kv[1])
    made = (f", {count['kept']} of its {sum(count.values())} measures made by an earlier run, at the time "
            "they took then") if count["kept"] else ""  # fmt: skip
    return [f"- where the evaluation's time went (each measure summed over models, one worker's time{made}): "
            + ", ".join(f"{name} {s / 60:.1f} min ({s / whole:.0%})" for name, s in parts)
            + (f"; {whole * threads / 3600:.1f} core-hours in all ({threads} "
               f"thread{'s' if threads > 1 else ''} a worker)" if threads
               else f"; {whole / 3600:.1f} worker-hours in all")]  # fmt: skip


def _reuse_line(reused: dict | None, sources: list | None = None, kept_timed: bool = True) -> list[str]:
    """What a resumed run (or one with ``--force`` over a finished one, or with ``--reuse``) took from
    earlier work: its wall and per-model times are this run's, not those of the work it reused, and
    where the reused measures' times were not recorded (``kept_timed`` false), all its times."""
    if not reused or not (reused["models"] or reused["measures"]):
        return []
    where = "an earlier run" + (f" or the outputs of {', '.join(sources)} (`--reuse`)" if sources else "")
    return [f"- resumed: {reused['models']} of {reused['models_of']} models and {reused['measures']} of "
            f"{reused['measures_of']} measures were reused from {where}; "
            + ("the wall time and the times per seed and per model above are only this run's" if kept_timed
               else "the times above are only this run's")]  # fmt: skip


def _sizes(metrics: dict) -> str:
    first = next(iter(metrics["per_seed"].values()))
    sizes = next(iter(first.values())).get("subsample", {}).get("sizes", {})
    return ", ".join(f"{k} {v}" for k, v in sizes.items()) or "n/a"


def _paper_cell(metrics: dict, key: str) -> str:
    cell = metrics.get(key)
    if cell is None or not math.isfinite(cell["mean"]):
        return "n/a"
    text = f"{cell['mean']:.4f}"
    attack = key.split(".")[0]
    rate = metrics.get(f"{attack}.success_rate")
    if rate is not None and key.endswith("median_rel_l2"):
        text += f" ({100 * rate['mean']:.1f}%)"
    return text
