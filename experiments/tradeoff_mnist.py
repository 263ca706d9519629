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
   points), ``tradeoff.json`` and ``report.md``.

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
    (RESULTS / "report.md").write_text(report(points, study, args))
    return 0


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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
