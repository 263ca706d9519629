"""Robust accuracy of the MNIST control and the slept network (preset ``mnist-fgsm``) under AutoAttack,
or under the decision-based Boundary or HopSkipJump attack.

    python experiments/robust_mnist.py [--attack autoattack|boundary|hopskipjump] [--seeds 0,1,2]
        [--norms inf,2] [--n N] [--work runs/robust_mnist] [--carry]

For each seed: train the paper's network (paper recipe), sleep it with the
published ``mnist-fgsm`` preset (sleep seed = the seed), and run the attack
at the default budgets of each norm on the first ``n`` test images of the
fixed permutation (``sleepnet evaluate --attack``): AutoAttack (standard
version; L-inf and L2, 1000 images by default), or Boundary (the sleep
paper's settings, 1000 iterations) or HopSkipJump (50 iterations, at most
10,000 queries per gradient estimate), both L2 only, 500 images by default.
Every step is skipped when its output exists, so a stopped run resumes. Then
``experiments/results/robust_mnist/``: ``summary.json`` and ``report.md``
(``summary-<attack>.json`` and ``report-<attack>.md`` for the decision
attacks) with robust accuracy per budget, mean and std over seeds, the paired
t-test over seeds, and per seed the exact McNemar test over images (images
robust for one model and not the other). Each run's result (per image) is
also kept under ``experiments/results/robust_mnist/per_image/`` and used from
there when the work folder lacks it. ``--carry`` (AutoAttack) takes a seed that has no such
file from the committed ``summary.json`` (its values, clean accuracy, seconds and McNemar test)
rather than training and attacking it again; the report says which seeds were carried.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "robust_mnist"

class AttackRun(NamedTuple):
    """How ``--attack`` runs: its settings, default norms and images, and what the report says it is."""

    settings: dict
    norms: str
    n: int
    title: str
    what: str


ATTACK_RUNS = {
    "autoattack": AttackRun({}, "inf,2", 1000, "AutoAttack", "within the budget by any part of AutoAttack "
                            "(standard version: APGD-CE, APGD-T, FAB-T, Square 5000 queries; torchattacks "
                            "3.5.1)"),
    "boundary": AttackRun({"max_iter": 1000}, "2", 500, "The Boundary attack", "within the budget by the "
                          "Boundary attack (ours, batched; the sleep paper's settings: 1000 iterations, 25 "
                          "trials of 20 candidates, step sizes 0.5; decision-based: it queries only the "
                          "predicted class)"),
    "hopskipjump": AttackRun({"max_iter": 50, "max_eval": 10000}, "2", 500, "HopSkipJump", "within the "
                             "budget by HopSkipJump (ours, batched; 50 iterations, at most 10,000 queries "
                             "per gradient estimate; decision-based: it queries only the predicted class)"),
}  # fmt: skip


def summary_path(attack: str) -> Path:
    """The committed summary of ``attack``'s runs (``report_path`` likewise)."""
    return RESULTS / ("summary.json" if attack == "autoattack" else f"summary-{attack}.json")


def report_path(attack: str) -> Path:
    return RESULTS / ("report.md" if attack == "autoattack" else f"report-{attack}.md")


def step(out: Path, what: str, fn) -> None:
    """Run ``fn`` unless ``out`` exists (resume)."""
    if out.exists():
        print(f"have {out}", flush=True)
        return
    print(f"{what} -> {out}", flush=True)
    fn()


def models(work: Path, seed: int) -> dict[str, Path]:
    """Train the control and sleep it for ``seed``; the two folders."""
    from sleepnet.config import load_preset
    from sleepnet.workflow import sleep_to_folder, train_to_folder

    control, slept = work / f"control-{seed}", work / f"sleep-{seed}"
    step(control, "train", lambda: train_to_folder("mnist", "paper", seed, control, progress=False))
    config = load_preset("mnist-fgsm").replace(seed=seed)
    step(slept, "sleep", lambda: sleep_to_folder(control, config, slept, progress=False))
    return {"control": control, "sleep": slept}


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict:
    """Exact McNemar test of paired booleans: images robust for one only; two-sided binomial p."""
    from sleepnet.report import mcnemar as test

    only_a, only_b, p = test(a, b)
    return {"only_control": only_a, "only_sleep": only_b, "p": p}


def records(runs: dict, seeds: list[int], norm: str, n: int, attack: str = "autoattack") -> dict:
    """Per (model, seed): robust accuracy per budget, clean accuracy, seconds and the per-image verdicts
    (robust at each budget) of a run kept as a file; a seed with no file for either model comes from
    the committed summary of ``attack`` (``summary_path``: values, clean accuracy, seconds and McNemar
    only; AutoAttack's seeds 0 and 1 had their per-image files in ``runs/``, which was not kept),
    marked ``carried``. Every result must be on ``n`` images."""
    from sleepnet.evaluation.robust import key, limit, norms_from_json

    path = summary_path(attack)
    old = json.loads(path.read_text()).get(norm) if path.exists() else None
    out = {}
    for s in seeds:
        have = [m for m in ("control", "sleep") if (norm, m, s) in runs]
        if len(have) == 1:
            raise SystemExit(f"robust_mnist: seed {s} (L{norm}) has a result for {have[0]} only; both models "
                             "of a seed are attacked, or both carried")  # fmt: skip
        for m in ("control", "sleep"):
            run = runs.get((norm, m, s))
            if run is not None:
                if run["n"] != n:
                    raise SystemExit(f"robust_mnist: the {m} result of seed {s} is on {run['n']} images, "
                                     f"not --n {n}")  # fmt: skip
                found = norms_from_json(run["norms"])
                out[(m, s)] = {"budgets": run["budgets"], "robust_accuracy": run["robust_accuracy"],
                               "clean": run["clean_accuracy"], "seconds": run["seconds"],
                               "robust": {key(e): found > limit(e) for e in run["budgets"]},
                               "n": run["n"], "loss": run["loss"], "settings": run["settings"]}  # fmt: skip
                continue
            first = next(iter(old["budgets"].values())) if old else {}
            had = list(first.get("mcnemar", {}))
            if str(s) not in had:
                raise SystemExit(f"robust_mnist: no result for {m}, seed {s}, L{norm}, in {RESULTS} or the "
                                 "work folder")  # fmt: skip
            if old["n"] != n:
                raise SystemExit(f"robust_mnist: the summary's seed {s} is on {old['n']} images, not --n {n}")
            i = had.index(str(s))
            out[(m, s)] = {"budgets": [float(k) for k in old["budgets"]],
                           "robust_accuracy": {k: row[m]["values"][i] for k, row in old["budgets"].items()},
                           "clean": old["clean"][m][i], "seconds": old["seconds"][m][i], "carried": True,
                           "mcnemar": {k: row["mcnemar"][str(s)] for k, row in old["budgets"].items()},
                           "n": old["n"], "loss": old["loss"], "settings": old["settings"]}  # fmt: skip
    return out


def summarize(runs: dict, seeds: list[int], norms: list[str], n: int, attack: str = "autoattack") -> dict:
    """Per norm and budget: robust accuracy per model and seed, mean/std, paired tests."""
    from sleepnet.evaluation.robust import key
    from sleepnet.report import paired_p

    out = {}
    for norm in norms:
        rec = records(runs, seeds, norm, n, attack)
        first = rec[("control", seeds[0])]
        rows = {}
        for eps in first["budgets"]:
            k = key(eps)
            acc = {m: [rec[(m, s)]["robust_accuracy"][k] for s in seeds] for m in ("control", "sleep")}
            p = paired_p(acc["sleep"], acc["control"])
            rows[k] = {m: {"values": v, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))
                           if len(v) > 1 else 0.0} for m, v in acc.items()}  # fmt: skip
            rows[k]["p_seeds"] = p
            rows[k]["mcnemar"] = {}
            for s in seeds:
                c, z = rec[("control", s)], rec[("sleep", s)]
                rows[k]["mcnemar"][str(s)] = (c["mcnemar"][k] if c.get("carried")
                                              else mcnemar(c["robust"][k], z["robust"][k]))  # fmt: skip
        out[norm] = {"n": first["n"], "loss": first["loss"], "settings": first["settings"], "budgets": rows,
                     "seeds": seeds,
                     "carried": sorted({s for (m, s), r in rec.items() if r.get("carried")}),
                     "clean": {m: [rec[(m, s)]["clean"] for s in seeds] for m in ("control", "sleep")},
                     "seconds": {m: [rec[(m, s)]["seconds"] for s in seeds]
                                 for m in ("control", "sleep")}}  # fmt: skip
    return out


def report(summary: dict, seeds: list[int], attack: str = "autoattack") -> str:
    """``report.md``: one table per norm."""
    carry = any(s.get("carried") for s in summary.values())
    run = ATTACK_RUNS[attack]
    which = "" if attack == "autoattack" else f"--attack {attack} "
    lines = [f"# {run.title} on the MNIST control and the slept network (preset mnist-fgsm)",
             "", f"Written by `python experiments/robust_mnist.py {which}--seeds {','.join(map(str, seeds))} "
             f"--norms {','.join(summary)}{' --carry' if carry else ''}`. "
             "Robust accuracy: the share of test images classified correctly clean and not fooled "
             f"{run.what}, mean ± std over seeds. p (seeds): "
             "paired t-test over seeds; McNemar: per seed, images robust for the control only / "
             "for sleep only, exact two-sided p.", ""]  # fmt: skip
    for norm, s in summary.items():
        clean = {m: np.mean(v) for m, v in s["clean"].items()}
        lines += [f"## L{norm}, {s['n']} test images, loss {s['loss']}", "",
                  f"clean accuracy on these images: control {clean['control']:.4f}, "
                  f"sleep {clean['sleep']:.4f}", "",
                  "| eps | control | sleep | sleep - control | p (seeds) | McNemar per seed |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for k, row in s["budgets"].items():
            c, z = row["control"], row["sleep"]
            mc = "; ".join(
                f"{v['only_control']}/{v['only_sleep']} p={v['p']:.2g}" for v in row["mcnemar"].values()
            )
            lines.append(f"| {k} | {c['mean']:.4f} ± {c['std']:.4f} | {z['mean']:.4f} ± {z['std']:.4f} | "
                         f"{z['mean'] - c['mean']:+.4f} | {row['p_seeds']:.3g} | {mc} |")  # fmt: skip
        if s.get("carried"):
            lines += ["", f"Seeds {', '.join(map(str, s['carried']))}: carried from the summary committed "
                      "before this run (their per-image result files were not kept then; every seed's file "
                      "is now kept under `per_image/` here)."]  # fmt: skip
        secs = {m: np.median(v) for m, v in s["seconds"].items()}
        lines += [
            "",
            f"seconds per model (median): control {secs['control']:.0f}, sleep {secs['sleep']:.0f}",
            "",
        ]
    return "\n".join(lines) + "\n"


def carried_seeds(norm: str, attack: str = "autoattack") -> set[int]:
    """The seeds of the committed summary of ``attack`` for ``norm`` (empty if none)."""
    path = summary_path(attack)
    if not path.exists() or norm not in json.loads(path.read_text()):
        return set()
    first = next(iter(json.loads(path.read_text())[norm]["budgets"].values()))
    return {int(s) for s in first["mcnemar"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--attack", choices=sorted(ATTACK_RUNS), default="autoattack")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--norms", help="default: inf,2 for AutoAttack, 2 for the decision attacks")
    p.add_argument("--n", type=int, help="default: 1000 for AutoAttack, 500 for the decision attacks")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "robust_mnist")
    p.add_argument("--carry", action="store_true", help="take a seed whose result file is absent from the "
                   "committed summary.json instead of training and attacking it again")  # fmt: skip
    args = p.parse_args(argv)
    from sleepnet.cli.common import parse_seeds
    from sleepnet.evaluation.robust import DEFAULT_BUDGETS
    from sleepnet.workflow import attack_to_file

    run = ATTACK_RUNS[args.attack]
    args.n = run.n if args.n is None else args.n
    seeds = parse_seeds(args.seeds, "robust_mnist")
    norms = (args.norms or run.norms).split(",")
    if args.attack != "autoattack" and norms != ["2"]:
        raise SystemExit(f"robust_mnist: {args.attack} is an L2 attack: --norms 2, not {','.join(norms)}")
    if args.carry and args.attack != "autoattack":
        raise SystemExit("robust_mnist: --carry takes seeds from the AutoAttack summary only")
    for norm in norms:  # a summary's carried seeds have no file anywhere: dropping them loses them
        had = carried_seeds(norm, args.attack)
        filed = {s for s in had
                 if (RESULTS / "per_image" / f"{args.attack}-l{norm}-control-{s}.json").exists()}  # fmt: skip
        lost = had - set(seeds) - filed
        if lost:
            raise SystemExit(f"robust_mnist: {summary_path(args.attack).name} holds seeds {sorted(lost)} "
                             f"(L{norm}) that have no result files: name them in --seeds (with --carry) "
                             "or they are lost")  # fmt: skip
    runs = {}
    for norm in norms:  # every seed of one norm before the next: a stopped run has whole tables
        for seed in seeds:
            files = {name: args.work / f"{args.attack}-l{norm}-{name}-{seed}.json"
                     for name in ("control", "sleep")}  # fmt: skip
            kept = {name: RESULTS / "per_image" / f.name for name, f in files.items()}  # beside the summary
            present = [name for name in files if files[name].exists() or kept[name].exists()]
            if args.carry and not present and seed in carried_seeds(norm, args.attack):
                continue  # both from the summary (records)
            for name, out in files.items():
                if not out.exists() and kept[name].exists():
                    out = kept[name]
                step(out, args.attack, lambda name=name, out=out, norm=norm, seed=seed: attack_to_file(
                    models(args.work, seed)[name], out, attack=args.attack, norm=norm,
                    eps=DEFAULT_BUDGETS[norm], n=args.n, seed=0, **run.settings))  # fmt: skip
                runs[(norm, name, seed)] = json.loads(out.read_text())
                if out != kept[name]:
                    kept[name].parent.mkdir(parents=True, exist_ok=True)
                    kept[name].write_text(out.read_text())
    summary = summarize(runs, seeds, norms, args.n, args.attack)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = report(summary, seeds, args.attack)
    summary_path(args.attack).write_text(json.dumps(summary, indent=2) + "\n")
    report_path(args.attack).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
