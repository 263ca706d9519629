"""Stochastic networks (Dapello et al. 2021) beside the control, PGD training and sleep on MNIST:
robustness with EOT and without, and the representation geometry of each.

    python experiments/stochastic_mnist.py [--seeds 0] [--n 500] [--n-aa 100] [--n-square 100]
                                           [--work runs/stochastic_mnist] [--carry]

For each seed: the paper's network (control, ``paper`` recipe), sleep (``mnist-fgsm``), PGD
adversarial training (``adv-pgd``), and five stochastic networks of the control's recipe and
seed: Poisson-like noise at gains 250 and 50 and Gaussian noise at sigma 0.03 and 0.06, after
both hidden layers, trained with the noise from scratch, and the Poisson gain-250 noise added to
the trained control (``docs/stochastic.md`` says why these scales). Each model (a step is
skipped when its output exists, so a stopped run resumes):

- clean accuracy of the expected prediction (20 draws) and over single draws (mean, std);
- PGD, L-inf, cross-entropy, 40 steps, at 0.05 and 0.1 on ``n`` images, with EOT (8 draws per
  gradient) and without (1 draw);
- AutoAttack at 0.1 on ``n-aa`` images: the rand version (APGD-CE and APGD-DLR, EOT 20) for a
  stochastic model, the standard one otherwise; and the control under the rand version too, the
  like-for-like baseline of the stochastic ones (``rand_baseline``; a carried seed's control is
  trained again for it and must match its recorded clean accuracy);
- Square at 0.1 on ``n-square`` images (1000 queries) on the expected scores (20 draws), and
  for a stochastic model also on single noisy draws, judged by single draws (``judge_by(1)``):
  what a naive evaluation reports;
- ``analyze --geometry``: MFTMA of class and exemplar manifolds per layer.

Then ``experiments/results/stochastic_mnist/``: ``summary.json``, ``report.md`` and
``geometry.png`` (the first seed's, when its work folder is here; else the committed figure stays,
and the summary's ``figure_seed`` says whose it is): every measure over seeds (mean, std, paired
t-test against the control), McNemar per seed over images (PGD and AutoAttack at 0.1), and the
geometry's capacities and clean/adversarial separations over seeds. Each model's result (with its
per-image norms) and each seed's geometry (capacity, radius, dimension, separations) are kept under
``per_image/`` there, and used from there when the work folder lacks them. ``--carry`` takes a seed
that has no such files from the committed ``summary.json`` (seed 0 was measured before per-image
results were kept); the report says which seeds were carried. Every seed of the committed summary
must be named in ``--seeds``, so that none is lost. The full suite
(``experiments/stochastic_mnist.toml``, 3 seeds) is the same comparison with the standard suite; it
did not fit on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "stochastic_mnist"
NOISES = {"poisson-250": ("poisson:250", True), "poisson-50": ("poisson:50", True),
          "gaussian-0.03": ("gaussian:0.03", True), "gaussian-0.06": ("gaussian:0.06", True),
          "poisson-250-added": ("poisson:250", False)}  # fmt: skip
EOT_PGD = 8


def step(out: Path, what: str, fn) -> None:
    """Run ``fn`` unless ``out`` exists (resume)."""
    if out.exists():
        return
    print(f"{what} -> {out}", flush=True)
    fn()


def models(work: Path, seed: int) -> dict[str, Path]:
    """Train and defend every model of ``seed``; their folders."""
    from sleepnet.config import load_preset
    from sleepnet.data import load_dataset
    from sleepnet.defences import DEFENCES
    from sleepnet.models import load_model, save_model
    from sleepnet.workflow import sleep_to_folder, train_to_folder

    control = work / f"control-{seed}"
    step(control, "train", lambda: train_to_folder("mnist", "paper", seed, control, progress=False))
    out = {"control": control, "sleep": work / f"sleep-{seed}"}
    config = load_preset("mnist-fgsm").replace(seed=seed)
    step(out["sleep"], "sleep", lambda: sleep_to_folder(control, config, out["sleep"], progress=False))
    entries = {"adv-pgd": DEFENCES["adv-pgd"]()}
    for name, (spec, train) in NOISES.items():
        entries[name] = DEFENCES["stochastic"](noise=spec, train=train)
    data = None
    for name, defence in entries.items():
        folder = work / f"{name}-{seed}"
        out[name] = folder
        if folder.exists():
            continue
        data = data or load_dataset("mnist")
        net, meta = load_model(control)
        print(f"{name} -> {folder}", flush=True)
        model, rec = defence.apply(net, meta, data, seed)
        save_model(model, folder, rec | {"parent": str(control.resolve())})
    return out


def measure(folder: Path, out: Path, n: int, n_aa: int, n_square: int, seed: int) -> None:
    """Every measure of one model into ``out`` (module docstring)."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.attacks import ATTACKS, stochastic
    from sleepnet.evaluation.curve import attack_curve
    from sleepnet.noise import JUDGE
    from sleepnet.training import accuracy
    from sleepnet.workflow import load_with_data

    model, meta, data = load_with_data(folder)
    noisy = stochastic(model)
    idx = subsample_indices(len(data.x_test), n)
    x, y = data.x_test[idx], data.y_test[idx]
    res = {"model": folder.name, "stochastic": noisy, "n": n, "judge": JUDGE if noisy else None,
           "clean": accuracy(model, data.x_test, data.y_test)}  # the expected prediction
    for eot in sorted({EOT_PGD if noisy else 1, 1}, reverse=True):
        curve = attack_curve(model, x, y, "pgd", "inf", [0.05, 0.1], seed=seed, eot_samples=eot)
        res[f"pgd-eot{eot}"] = {k: curve[k] for k in ("robust_accuracy", "clean_accuracy", "eot_samples",
                                                      "draws", "n", "loss", "seconds", "norms")}  # fmt: skip
    aa = autoattack(model, data, n_aa, seed, "rand" if noisy else "standard")
    res["autoattack"] = {k: aa[k] for k in ("robust_accuracy", "clean_accuracy", "eot_samples", "draws", "n",
                                            "loss", "seconds", "settings", "norms")}  # fmt: skip
    isq = subsample_indices(len(data.x_test), n_square)
    sq = attack_curve(model, data.x_test[isq], data.y_test[isq], "square", "inf", [0.1], seed=seed,
                      n_queries=1000, image_shape=(1, 28, 28))  # fmt: skip
    res["square"] = {k: sq[k] for k in ("robust_accuracy", "clean_accuracy", "draws", "n", "seconds",
                                        "norms")}  # fmt: skip
    if noisy:  # what a naive evaluation reports: Square querying, and judged by, single noisy passes
        naive = ATTACKS["square"](model, eps=0.1, n_queries=1000, seed=seed, image_shape=(1, 28, 28))
        run = naive.judge_by(1).run(data.x_test[isq], data.y_test[isq])
        res["square-single-draw"] = {"robust_accuracy": {"0.1": run["accuracy"]}, "n": run["n"],
                                     "clean_accuracy": run["clean_accuracy"],
                                     "draws": run["draws"]}  # fmt: skip
    out.write_text(json.dumps(res, indent=1) + "\n")


def autoattack(model, data, n_aa: int, seed: int, version: str) -> dict:
    """AutoAttack (``version``) at L-inf 0.1 on the first ``n_aa`` test images of the fixed permutation."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.curve import attack_curve

    ia = subsample_indices(len(data.x_test), n_aa)
    return attack_curve(model, data.x_test[ia], data.y_test[ia], "autoattack", "inf", [0.1], seed=seed,
                        version=version, image_shape=(1, 28, 28))  # fmt: skip


def rand_baseline(folder: Path, out: Path, n_aa: int, seed: int) -> None:
    """AutoAttack's rand version at 0.1 on the control (deterministic: its EOT 20 averages 20 equal
    passes), on the images the stochastic networks' rand version ran on: the like-for-like baseline
    for them (the control's own figure is the standard version's, four attacks to their two)."""
    from sleepnet.training import accuracy
    from sleepnet.workflow import load_with_data

    model, meta, data = load_with_data(folder)
    aa = autoattack(model, data, n_aa, seed, "rand")
    res = {k: aa[k] for k in ("robust_accuracy", "n", "loss", "seconds", "norms", "eot_samples")}
    out.write_text(json.dumps(res | {"clean": accuracy(model, data.x_test, data.y_test)}, indent=1) + "\n")


def over_draws(folder: Path, out: Path, seed: int) -> None:
    """Clean accuracy of a stochastic model over 20 single draws (mean, std) into ``out``."""
    from sleepnet.evaluation.attacks import ATTACKS, stochastic
    from sleepnet.evaluation.robust import accuracy_over_draws
    from sleepnet.workflow import load_with_data

    model, meta, data = load_with_data(folder)
    res = {}
    if stochastic(model):
        probe = ATTACKS["pgd"](model, "cross-entropy")
        res["clean_over_draws"] = accuracy_over_draws(lambda a: probe.predict(a, once=True), data.x_test,
                                                      data.y_test, 20, seed, model)  # fmt: skip
    out.write_text(json.dumps(res, indent=1) + "\n")


def geometry(folders: dict[str, Path], out: Path) -> None:
    """``analyze --geometry`` of all the models together (one figure)."""
    from sleepnet.workflow import analyze_to_folder

    analyze_to_folder(list(folders.values()), out, analyses=("weights",), geometry=True)


def report(runs: list[dict], geo: dict, over: dict, seeds: list[int], carried: list[int],
           sizes: tuple[int, int, int], figure_seed: int) -> str:
    """The report: robustness and geometry over seeds, robustness per run, then one seed's geometry per
    layer."""
    first = seeds[0]
    lines = ["# Stochastic networks on MNIST (experiments/stochastic_mnist.py)", "",
             f"Written by `python experiments/stochastic_mnist.py --seeds {','.join(map(str, seeds))} "
             f"--n {sizes[0]} --n-aa {sizes[1]} --n-square {sizes[2]}{' --carry' if carried else ''}`.", "",
             "Robust accuracy: an image counts only if correct clean and not broken within the budget; a",
             "stochastic model is judged by its expected prediction (mean probability over 20 draws).",
             "PGD: L-inf, cross-entropy, 40 steps; EOT 8 = the gradient averaged over 8 draws.",
             "Clean over draws: single passes, mean +- std over 20, on the 10000 test images.", "",
             *seeds_report(over, seeds, carried), "## Per run", "",
             "| model | clean (expected) | clean over draws | PGD no EOT .05 / .1 | PGD EOT .05 / .1 | "
             "AutoAttack .1 | Square .1 | Square .1, single draws |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        draws = r.get("clean_over_draws")
        over = f"{draws['mean']:.3f} +- {draws['std']:.3f}" if draws else "-"
        no = r["pgd-eot1"]["robust_accuracy"]
        eot = r.get(f"pgd-eot{EOT_PGD}", {}).get("robust_accuracy")
        aa, sq = r["autoattack"], r["square"]
        lines.append(f"| {r['model']} | {r['clean']:.4f} | {over} | {no['0.05']:.3f} / {no['0.1']:.3f} | "
                     + (f"{eot['0.05']:.3f} / {eot['0.1']:.3f}" if eot else "(deterministic)")
                     + f" | {aa['robust_accuracy']['0.1']:.3f} ({aa['settings'].get('version')}, "
                     f"n={aa['n']}) | "
                     f"{sq['robust_accuracy']['0.1']:.3f} (n={sq['n']}) | "
                     + (f"{r['square-single-draw']['robust_accuracy']['0.1']:.3f} |"
                        if "square-single-draw" in r else "- |"))  # fmt: skip
    lines += ["", f"## Geometry per layer (input, hidden 1, hidden 2, logits), seed {first}", "",
              "MFTMA capacity / radius / dimension of each kind of manifold (`docs/geometry.md`); "
              f"`geometry.png` draws seed {figure_seed}'s.", ""]
    for label, g in geo.items():
        lines.append(f"### {label}")
        lines.append("")
        lines.append("| manifolds | capacity | radius | dimension |")
        lines.append("|---|---|---|---|")
        for kind, m in g["manifolds"].items():
            fmt = lambda vals, f: " ".join(f.format(v) for v in vals)  # noqa: E731
            lines.append(f"| {kind} | {fmt(m['capacity'], '{:.3f}')} | {fmt(m['radius'], '{:.3f}')} | "
                         f"{fmt(m['dimension'], '{:.2f}')} |")  # fmt: skip
        for key in ("separation", "separation_draws"):
            if key in g:
                vals = " ".join("-" if v is None else f"{v:.2f}" for v in g[key])
                lines.append(f"| clean/adv {key} (d') | {vals} | | |")
        lines.append("")
    return "\n".join(lines) + "\n"


def base(label: str) -> str:
    """A model's name without its seed (``gaussian-0.03-1`` -> ``gaussian-0.03``)."""
    return label.rsplit("-", 1)[0]


def compact(geo: dict) -> dict:
    """Per model (seed dropped): capacity, radius and dimension per layer of every kind of manifold,
    and the clean/adversarial separations; what the over-seeds tables need of ``analysis.json``."""
    out = {}
    for label, r in geo["models"].items():
        g = r["geometry"]
        out[base(label)] = {"manifolds": {kind: {k: m[k] for k in ("capacity", "radius", "dimension")}
                                          for kind, m in g["manifolds"].items()},
                            **{k: g[k] for k in ("separation", "separation_draws") if k in g}}  # fmt: skip
    return out


def strongest_pgd(run: dict) -> dict:
    """The PGD run that counts: with EOT for a stochastic model, the only one otherwise."""
    return run[f"pgd-eot{EOT_PGD}"] if run["stochastic"] else run["pgd-eot1"]


MEASURES = {"clean": lambda r: r["clean"],
            "pgd .1": lambda r: strongest_pgd(r)["robust_accuracy"]["0.1"],
            "pgd .1 no EOT": lambda r: r["pgd-eot1"]["robust_accuracy"]["0.1"],
            "autoattack .1": lambda r: r["autoattack"]["robust_accuracy"]["0.1"],
            "autoattack rand .1": lambda r: r.get("autoattack-rand", {}).get("robust_accuracy", {})
            .get("0.1"),
            "square .1": lambda r: r["square"]["robust_accuracy"]["0.1"],
            "square .1 single draws": lambda r: r.get("square-single-draw", {}).get("robust_accuracy", {})
            .get("0.1")}  # fmt: skip
#: per-image comparisons with the control: (the control's run, the model's run, budget); the last for
#: stochastic models only, against the control under AutoAttack's rand version (like for like)
PER_IMAGE = {"pgd .1": (strongest_pgd, strongest_pgd, 0.1),
             "autoattack .1": (lambda r: r["autoattack"], lambda r: r["autoattack"], 0.1),
             "autoattack .1 vs rand": (lambda r: r.get("autoattack-rand", {}), lambda r: r["autoattack"],
                                       0.1)}  # fmt: skip


def over_seeds(runs: list[dict], geos: dict[int, dict], seeds: list[int]) -> dict:
    """Per model, every measure over seeds (mean, std, paired t-test against the control), McNemar per
    seed where both runs kept their per-image norms, and the geometry's key figures over seeds."""
    import numpy as np

    from sleepnet.evaluation.robust import limit, norms_from_json
    from sleepnet.report import mcnemar, paired_p

    by = {(base(r["model"]), r["seed"]): r for r in runs}
    names = list(dict.fromkeys(base(r["model"]) for r in runs))

    def stats(vals: list, ctrl: list | None) -> dict:
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        return {"values": vals, "mean": float(np.mean(vals)), "std": std,
                "p_vs_control": paired_p(vals, ctrl) if ctrl else float("nan")}  # fmt: skip

    out = {}
    for name in names:
        row = {}
        for measure, get in MEASURES.items():
            vals = [get(by[(name, s)]) for s in seeds]
            if None in vals:
                continue
            ctrl = [get(by[("control", s)]) for s in seeds] if name != "control" else None
            ctrl = None if ctrl is None or None in ctrl else ctrl  # a measure the control has not
            row[measure] = stats(vals, ctrl)
        noisy = by[(name, seeds[0])]["stochastic"]
        rand = [MEASURES["autoattack rand .1"](by[("control", s)]) for s in seeds]
        if noisy and None not in rand:  # like for like: both under the rand version
            own = [MEASURES["autoattack .1"](by[(name, s)]) for s in seeds]
            row["autoattack .1 vs control rand"] = stats(own, rand)
        row["mcnemar"] = {}
        for measure, (get_control, get, eps) in PER_IMAGE.items():
            if measure.endswith("vs rand") and not noisy:
                continue
            tests = {}
            for s in seeds:
                a, b = get_control(by[("control", s)]), get(by[(name, s)])
                if name != "control" and "norms" in a and "norms" in b:
                    ra, rb = (norms_from_json(x["norms"]) > limit(eps) for x in (a, b))
                    tests[str(s)] = dict(zip(("only_control", "only_model", "p"), mcnemar(ra, rb)))
            if tests:
                row["mcnemar"][measure] = tests
        geo = [geos[s][name] for s in seeds]
        ctrl_geo = [geos[s]["control"] for s in seeds]
        row["geometry"] = {
            f"{kind} capacity": [stats([g["manifolds"][kind]["capacity"][i] for g in geo], None)
                                 for i in range(len(geo[0]["manifolds"][kind]["capacity"]))]
            for kind in ("class", "class-adv", "exemplar-noise")}  # fmt: skip
        row["geometry"]["separation"] = [
            stats([g["separation"][i] for g in geo],
                  [c["separation"][i] for c in ctrl_geo] if name != "control" else None)
            if all(g["separation"][i] is not None for g in geo + ctrl_geo) else None
            for i in range(len(geo[0]["separation"]))]  # fmt: skip
        out[name] = row
    return out


def seeds_report(over: dict, seeds: list[int], carried: list[int]) -> list[str]:
    """The over-seeds section of the report."""
    from sleepnet.report import p_text

    cell = lambda m: f"{m['mean']:.3f} ± {m['std']:.3f}"  # noqa: E731
    vs = lambda m: p_text(m["p_vs_control"])  # noqa: E731

    lines = [f"## Over seeds {', '.join(map(str, seeds))}", "",
             "Mean ± std over seeds; p: paired t-test against the control over seeds (2 degrees of "
             "freedom with 3 seeds). PGD .1 is with EOT 8 for a stochastic model.", "",
             "| model | clean | PGD .1 | PGD .1 no EOT | AutoAttack .1 | AutoAttack rand .1 | Square .1 | "
             "Square .1 single draws |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in over.items():
        cells = [cell(row[m]) + vs(row[m]) if m in row else "-" for m in MEASURES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    key = "autoattack .1 vs control rand"
    like = {n: r[key] for n, r in over.items() if key in r}
    if like:
        lines += ["", "AutoAttack at .1 is the standard version (four attacks) for a deterministic model and "
                  "the rand version (two, with EOT 20) for a stochastic one. Like for like, against the "
                  "control under the rand version (AutoAttack rand .1): "
                  + "; ".join(f"{n} {m['mean']:.3f}{vs(m)}" for n, m in like.items()) + "."]  # fmt: skip
    tests = {n: r["mcnemar"] for n, r in over.items() if r["mcnemar"]}
    if tests:
        lines += ["", "McNemar per seed (images robust for the control only / for the model only, exact "
                  "two-sided p), for the seeds whose per-image results were kept:", "",
                  "| model | PGD .1 | AutoAttack .1 | AutoAttack .1 against the control's rand version |",
                  "|---|---|---|---|"]  # fmt: skip
        for name, t in tests.items():
            fmt = lambda d: "; ".join(f"seed {s}: {v['only_control']}/{v['only_model']} p={v['p']:.2g}"  # noqa: E731
                                      for s, v in d.items()) or "-"
            lines.append(f"| {name} | {fmt(t.get('pgd .1', {}))} | {fmt(t.get('autoattack .1', {}))} | "
                         f"{fmt(t.get('autoattack .1 vs rand', {}))} |")
    lines += ["", "Geometry over seeds (per layer input, hidden 1, hidden 2, logits; mean ± std): MFTMA "
              "capacity of the class manifolds, clean and adversarial, and of the exemplar noise "
              "manifolds; the clean/adversarial exemplar separation d' (p: paired against the "
              "control at each layer).", "",
              "| model | class capacity | class-adv capacity | exemplar-noise capacity | clean/adv d' |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, row in over.items():
        g = row["geometry"]
        caps = [" ".join(f"{m['mean']:.3f}±{m['std']:.3f}" for m in g[f"{k} capacity"])
                for k in ("class", "class-adv", "exemplar-noise")]  # fmt: skip
        sep = " ".join("-" if m is None else f"{m['mean']:.1f}±{m['std']:.1f}{vs(m)}"
                       for m in g["separation"])
        lines.append(f"| {name} | " + " | ".join(caps) + f" | {sep} |")
    if carried:
        which = f"Seed{'s' if len(carried) > 1 else ''} {', '.join(map(str, carried))}"
        lines += ["", f"{which}: carried from the summary committed before (`--carry`); their per-image "
                  "results were not kept then, so they have no McNemar test."]
    return lines + [""]


def geometry_seed(old: dict) -> int | None:
    """The seed of a summary's full ``geometry`` and of its figure (summaries from before
    ``geometry_seeds`` kept one seed's full geometry, its models labelled ``name-seed``)."""
    if "figure_seed" in old:
        return old["figure_seed"]
    return int(next(iter(old["geometry"]["models"])).rsplit("-", 1)[1]) if "geometry" in old else None


def check_record(record: dict, path: Path, sizes: tuple[int, int, int]) -> None:
    """One clear line unless ``record`` (from ``path``) was measured on ``--n, --n-aa, --n-square`` and,
    for a stochastic model, judged by the expected prediction's present draws (``noise.JUDGE``)."""
    from sleepnet.noise import JUDGE

    if (record["n"], record["autoattack"]["n"], record["square"]["n"]) != sizes:
        raise SystemExit(f"stochastic_mnist: {path} was measured on other sizes than --n, --n-aa, "
                         "--n-square: move it away to measure again")  # fmt: skip
    if record["stochastic"] and record.get("judge") != JUDGE:
        raise SystemExit(f"stochastic_mnist: {path} was judged by other draws of the expected prediction "
                         f"({record.get('judge', 'before they were named')}, not {JUDGE}): move it away to "
                         "measure again")  # fmt: skip


def with_rand_baseline(runs: list[dict], seed: int, kept: Path, work: Path, n_aa: int) -> None:
    """Add to ``seed``'s control record in ``runs`` its AutoAttack under the rand version
    (``rand_baseline``): kept under ``kept``, else measured in ``work`` (the control trained again
    there if it is gone; ``same_control`` checks it is the same network) and kept."""
    from sleepnet.workflow import train_to_folder

    rand = kept / f"control-{seed}-rand.json"
    record = next(r for r in runs if r["seed"] == seed and base(r["model"]) == "control")
    if not rand.exists():  # the like-for-like baseline (rand_baseline); a carried seed's control again
        control, made = work / f"control-{seed}", work / f"control-{seed}-rand.json"
        step(control, "train", lambda c=control, s=seed: train_to_folder("mnist", "paper", s, c,
                                                                          progress=False))  # fmt: skip
        step(made, "autoattack rand control",
             lambda c=control, s=seed, o=made: rand_baseline(c, o, n_aa, s))  # fmt: skip
        same_control(json.loads(made.read_text()), record, made, n_aa)
        kept.mkdir(parents=True, exist_ok=True)
        rand.write_text(made.read_text())
    baseline = json.loads(rand.read_text())
    same_control(baseline, record, rand, n_aa)
    record["autoattack-rand"] = baseline


def same_control(baseline: dict, record: dict, path: Path, n_aa: int) -> None:
    """One clear line unless the rand baseline in ``path`` is of the measured control (its clean
    accuracy to the last digit) on ``n_aa`` images: a retrained control must be the same network."""
    if baseline["clean"] != record["clean"] or baseline["n"] != n_aa:
        raise SystemExit(f"stochastic_mnist: {path} is not of the measured control (clean "
                         f"{baseline['clean']} against {record['clean']}, n {baseline['n']})")  # fmt: skip


def null_nans(value):
    """``value`` with every NaN float as None (strict JSON has no NaN; a p-value of no test)."""
    if isinstance(value, dict):
        return {k: null_nans(v) for k, v in value.items()}
    if isinstance(value, list):
        return [null_nans(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def carry(old: dict, seed: int, sizes: tuple[int, int, int]) -> tuple[list[dict], dict]:
    """Seed ``seed``'s runs and compact geometry from the committed summary ``old``; refuses other sizes."""
    runs = [r | {"carried": True} for r in old.get("runs", []) if r["seed"] == seed]
    if not runs:
        raise SystemExit(f"stochastic_mnist: summary.json has no seed {seed} to carry")
    have = (runs[0]["pgd-eot1"]["n"], runs[0]["autoattack"]["n"], runs[0]["square"]["n"])
    if have != sizes:
        raise SystemExit(f"stochastic_mnist: seed {seed} in summary.json was measured on --n, --n-aa, "
                         f"--n-square = {have}, not {sizes}: run it again without --carry")  # fmt: skip
    geo = old.get("geometry_seeds", {}).get(str(seed))
    if geo is None and geometry_seed(old) == seed:  # a summary of before geometry_seeds
        geo = compact(old["geometry"])
    if geo is None:
        raise SystemExit(f"stochastic_mnist: summary.json has no geometry of seed {seed}: run it again "
                         "without --carry")  # fmt: skip
    return runs, geo


def measured(work: Path, seed: int, sizes: tuple[int, int, int], kept: Path) -> tuple[list[dict], dict]:
    """Seed ``seed``'s records and compact geometry: from ``kept`` (``per_image/``) where all are there,
    else trained and measured in ``work`` (each step resumes) and kept."""
    names = ["control", "sleep", "adv-pgd", *NOISES]
    geo_file = kept / f"geometry-{seed}.json"
    if not all((kept / f"{name}-{seed}.json").exists() for name in names) or not geo_file.exists():
        folders = models(work, seed)
        for name, folder in folders.items():
            out = work / f"{name}-{seed}.json"
            step(out, f"measure {name}", lambda f=folder, o=out: measure(f, o, *sizes, seed))
            draws = work / f"{name}-{seed}-draws.json"
            step(draws, f"over draws {name}", lambda f=folder, o=draws: over_draws(f, o, seed))
            record = json.loads(out.read_text()) | json.loads(draws.read_text()) | {"seed": seed}
            check_record(record, out, sizes)
            if not (kept / f"{name}-{seed}.json").exists():  # a kept record is never overwritten
                kept.mkdir(parents=True, exist_ok=True)
                (kept / f"{name}-{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
        geo_dir = work / f"geometry-{seed}"
        step(geo_dir, "geometry", lambda: geometry(folders, geo_dir))
        geo_file.write_text(json.dumps(compact(json.loads((geo_dir / "analysis.json").read_text())),
                                       indent=1) + "\n")  # fmt: skip
    records = []
    for name in names:
        record = json.loads((kept / f"{name}-{seed}.json").read_text())
        check_record(record, kept / f"{name}-{seed}.json", sizes)
        records.append(record)
    return records, json.loads(geo_file.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--n-aa", type=int, default=100)
    p.add_argument("--n-square", type=int, default=100)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "stochastic_mnist")
    p.add_argument("--carry", action="store_true", help="take a seed that has no result files from the "
                   "committed summary.json instead of training and measuring it again")  # fmt: skip
    args = p.parse_args(argv)
    from sleepnet.cli.common import parse_seeds

    seeds = parse_seeds(args.seeds, "stochastic_mnist")
    sizes = (args.n, args.n_aa, args.n_square)
    old = json.loads((RESULTS / "summary.json").read_text()) if (RESULTS / "summary.json").exists() else {}
    committed = sorted({r["seed"] for r in old.get("runs", [])})
    kept = RESULTS / "per_image"
    left = [s for s in committed if s not in seeds]
    if left:
        raise SystemExit(f"stochastic_mnist: summary.json holds seeds {left}: name them in --seeds (with "
                         "--carry if per_image/ has none of their files), or they are lost")  # fmt: skip
    args.work.mkdir(parents=True, exist_ok=True)
    runs, geos, carried = [], {}, []
    for seed in seeds:
        if args.carry and seed in committed and not (kept / f"geometry-{seed}.json").exists() \
                and not (args.work / f"control-{seed}.json").exists():
            seed_runs, geos[seed] = carry(old, seed, sizes)
            carried.append(seed)
        else:
            seed_runs, geos[seed] = measured(args.work, seed, sizes, kept)
        runs += seed_runs
        with_rand_baseline(runs, seed, kept, args.work, sizes[1])
    first = seeds[0]
    png = args.work / f"geometry-{first}" / "geometry.png"
    figure_seed = first if png.exists() else geometry_seed(old)  # else the committed figure stays
    over = over_seeds(runs, geos, seeds)
    stripped = [{k: {kk: vv for kk, vv in v.items() if kk != "norms"} if isinstance(v, dict) else v
                 for k, v in r.items()} for r in runs]  # per-image norms stay in per_image/
    summary = null_nans({"seeds": seeds, "carried": carried, "runs": stripped, "over_seeds": over,
                         "geometry_seeds": {str(s): g for s, g in geos.items()},
                         "figure_seed": figure_seed})  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = report(runs, geos[first], over, seeds, carried, sizes, figure_seed)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / "report.md").write_text(text)
    if png.exists():
        (RESULTS / "geometry.png").write_bytes(png.read_bytes())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
