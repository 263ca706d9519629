"""Sleep's whole trade-off on MNIST: robust against clean accuracy, beside adversarial training.

    python experiments/tradeoff_mnist.py [--trials 40] [--control runs/robust_mnist/control-0]

1. Tune sleep for the control (the paper network, seed 0) with objective
   ``apgd`` (robust accuracy under APGD-CE at L-inf 0.1, on 1000 of 2000
   validation images from the training set) beside clean accuracy, NSGA-II,
   clean accuracy allowed down to the control's minus 0.15 (``--max-drop``)
   so that the front spans clean accuracy 0.80-0.95.
2. Sleep again with each config of the Pareto front (the same slept weights,
   checked by hash) and measure clean accuracy (10000 test images) and robust
   accuracy under APGD-CE at L-inf 0.1 on the first 1000 test images of the
   fixed permutation, cross-entropy.
3. Adversarial training (``adv-pgd``, one epoch of PGD-7 from the control) at
   L-inf eps 0.05, 0.1 and 0.2, and the control: the same two measures.
4. ``experiments/results/tradeoff_mnist/``: ``tradeoff.png`` (test-set
   points), ``tradeoff.json``, ``report.md``, and every trial on validation:
   ``trials.csv`` (``sleepnet.tuning.report.rows``) and ``validation.png``
   (``pareto_plot``); the report bins the complete trials by clean accuracy
   and gives the best robust accuracy in each bin: what sleep buys at each price,
   the dominated trials included (the front alone hides how far down the search went).

Every step resumes: the study from its database, the models from their folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "tradeoff_mnist"
ADV_EPS = (0.05, 0.1, 0.2)


def test_measures(model, data) -> dict:
    """Clean accuracy on the test set; APGD-CE robust accuracy at L-inf 0.1 on the first 1000."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.curve import attack_curve
    from sleepnet.training import accuracy

    idx = subsample_indices(len(data.x_test), 1000)
    res = attack_curve(
        model, data.x_test[idx], data.y_test[idx], "apgd-ce", "inf", [0.1], image_shape=(1, 28, 28)
    )
    return {"clean": accuracy(model, data.x_test, data.y_test), "apgd": res["robust_accuracy"]["0.1"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--control", type=Path, default=ROOT / "runs" / "robust_mnist" / "control-0")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "tradeoff_mnist")
    args = p.parse_args(argv)

    from sleepnet.config import from_mapping
    from sleepnet.defences import DEFENCES
    from sleepnet.hashing import weights_sha256
    from sleepnet.models import load_model, save_model
    from sleepnet.tuning.report import front
    from sleepnet.tuning.run import tune
    from sleepnet.tuning.storage import load
    from sleepnet.tuning.study import STUDY_NAME, Tuner, TuneSettings
    from sleepnet.workflow import dataset_for

    settings = TuneSettings(model=str(args.control), objective="apgd", max_drop=0.15, collapse=0.25)
    study_dir = args.work / "tune"
    tune(settings, study_dir, args.trials, progress=True)
    study = load(STUDY_NAME, f"sqlite:///{(study_dir / 'study.db').resolve()}")
    tuner = Tuner(settings)
    data = tuner.data
    points = {"control": test_measures(tuner.model, data) | {"kind": "control"}}
    for t in front(study):
        model = tuner.sleep(from_mapping(t.user_attrs["config"], f"trial {t.number}")).model
        if weights_sha256(model) != t.user_attrs["weights_sha256"]:
            raise SystemExit(f"trial {t.number} did not reproduce")
        points[f"sleep trial {t.number}"] = test_measures(model, data) | {
            "kind": "sleep",
            "validation": t.user_attrs["measures"],
            "config": t.user_attrs["config"],
        }
        print(points[f"sleep trial {t.number}"], flush=True)
    control, meta = load_model(args.control)
    for eps in ADV_EPS:
        folder = args.work / f"adv-pgd-{eps}"
        if not folder.exists():
            model, rec = DEFENCES["adv-pgd"](eps=eps).apply(control, meta, dataset_for(meta), seed=0)
            save_model(model, folder, rec)
        model, _ = load_model(folder)
        points[f"adv-pgd eps {eps}"] = test_measures(model, data) | {
            "kind": "adversarial training",
            "eps": eps,
        }
        print(eps, points[f"adv-pgd eps {eps}"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tradeoff.json").write_text(json.dumps(points, indent=2) + "\n")
    plot(points, RESULTS / "tradeoff.png")
    write_trials(study, RESULTS)
    (RESULTS / "report.md").write_text(report(points, study, args))
    return 0


def write_trials(study, folder: Path) -> None:
    """``trials.csv`` (one row per trial) and ``validation.png`` (every complete trial, validation)."""
    import csv

    from sleepnet.tuning.report import pareto_plot, rows

    table = rows(study)
    keys = list(dict.fromkeys(k for r in table for k in r))
    with open(folder / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(table)
    pareto_plot(study, folder / "validation.png")


#: clean-accuracy bins of the trials table (validation): the issue asks for the trade-off over 0.80-0.95
BINS = (0.0, 0.80, 0.85, 0.90, 0.92, 0.94, 1.01)


def binned(trials: list[tuple[int, float, float]], control: tuple[float, float]) -> list[str]:
    """Markdown rows: per clean-accuracy bin, the complete trials in it and the best robust accuracy
    among them (its trial and its gain over the control), from ``(trial, clean, robust)``."""
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        inside = [t for t in trials if lo <= t[1] < hi]
        label = f"{lo:.2f}-{min(hi, 1.0):.2f}" if lo else f"below {hi:.2f}"
        if not inside:
            rows.append(f"| {label} | 0 | - | - |")
            continue
        best = max(inside, key=lambda t: (t[2], t[1], -t[0]))
        rows.append(f"| {label} | {len(inside)} | {best[2]:.3f} (trial {best[0]}, clean {best[1]:.4f}) | "
                    f"{best[2] - control[1]:+.3f} |")  # fmt: skip
    return rows


def plot(points: dict, path: Path) -> None:
    from sleepnet.plots import save, subplots

    fig, ax = subplots(figsize=(6.4, 4.6))
    sleep = sorted((v["clean"], v["apgd"]) for v in points.values() if v["kind"] == "sleep")
    if sleep:
        ax.plot(*zip(*sleep), "-o", c="tab:red", ms=5, label="sleep: Pareto front (chosen on validation)")
    adv = sorted(
        (v["eps"], v["clean"], v["apgd"]) for v in points.values() if v["kind"] == "adversarial training"
    )
    ax.plot(
        [a[1] for a in adv],
        [a[2] for a in adv],
        "-s",
        c="tab:green",
        ms=5,
        label="adversarial training (PGD-7, 1 epoch)",
    )
    for eps, c, r in adv:
        ax.annotate(f"eps {eps}", (c, r), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ctrl = points["control"]
    ax.scatter([ctrl["clean"]], [ctrl["apgd"]], marker="*", s=160, c="k", label="control", zorder=3)
    ax.set_xlabel("clean accuracy (10000 test images)")
    ax.set_ylabel("robust accuracy, APGD-CE L-inf 0.1 (1000 test images)")
    ax.set_title("MNIST paper network: what sleep buys, at what price")
    ax.legend(fontsize=8)
    save(fig, path)


def report(points: dict, study, args) -> str:
    from optuna.trial import TrialState

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    lines = ["# Sleep's trade-off on MNIST: robust against clean accuracy", "",
             f"Written by `python experiments/tradeoff_mnist.py --trials {args.trials}`. Sleep configs: "
             f"NSGA-II over the default search space around `mnist-fgsm`, {len(study.trials)} trials "
             f"({done} complete), objectives clean accuracy and APGD-CE robust accuracy at L-inf 0.1 "
             "on validation images from the training set; the Pareto front is then slept again and "
             "measured on the test set, like every other point: clean accuracy on 10000 test images, "
             "robust accuracy under APGD-CE (100 iterations, cross-entropy, torchattacks) at L-inf 0.1 "
             "on the first 1000 test images of the fixed permutation. One seed (the control of seed 0).",
             "", "![trade-off](tradeoff.png)", "", "| point | clean | robust (APGD-CE, L-inf 0.1) |",
             "|---|---|---|"]  # fmt: skip
    for name, v in sorted(points.items(), key=lambda kv: -kv[1]["clean"]):
        lines.append(f"| {name} | {v['clean']:.4f} | {v['apgd']:.3f} |")
    base = study.user_attrs["baseline"]
    obj = study.user_attrs["settings"]["objective"]
    trials = [(t.number, t.user_attrs["measures"]["clean"], t.user_attrs["measures"][obj])
              for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]  # fmt: skip
    control = (base["control"]["clean"], base["control"][obj])
    lines += ["", "## Every trial, on validation", "",
              f"All {done} complete trials (`trials.csv`, `validation.png`: validation images, not the "
              "test set; a trial stopped early has no measures), binned by clean accuracy, with the best "
              f"robust accuracy in each bin. Control on validation: clean {control[0]:.4f}, robust "
              f"{control[1]:.3f}.", "",
              "| clean (validation) | trials | best robust (APGD-CE, L-inf 0.1) | over the control |",
              "|---|---|---|---|", *binned(trials, control)]  # fmt: skip
    if trials:
        lo, hi = min(t[1] for t in trials), max(t[1] for t in trials)
        lines += ["", f"The complete trials span clean accuracy {lo:.4f}-{hi:.4f} on validation."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
