"""Stochastic networks (Dapello et al. 2021) beside the control, PGD training and sleep on MNIST:
robustness with EOT and without, and the representation geometry of each.

    python experiments/stochastic_mnist.py [--seeds 0] [--n 500] [--n-aa 100] [--n-square 100]
                                           [--work runs/stochastic_mnist]

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
  stochastic model, the standard one otherwise;
- Square at 0.1 on ``n-square`` images (1000 queries) on the expected scores (20 draws), and
  for a stochastic model also on single noisy draws, judged by single draws (``judge_by(1)``):
  what a naive evaluation reports;
- ``analyze --geometry``: MFTMA of class and exemplar manifolds per layer.

Then ``experiments/results/stochastic_mnist/``: ``summary.json``, ``report.md`` and
``geometry.png``. The full suite (``experiments/stochastic_mnist.toml``, 3 seeds) is the same
comparison with the standard suite; it did not fit on 2 cores.
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
    from sleepnet.models import load_model
    from sleepnet.training import accuracy
    from sleepnet.workflow import dataset_for

    model, meta = load_model(folder)
    data = dataset_for(meta)
    noisy = stochastic(model)
    idx = subsample_indices(len(data.x_test), n)
    x, y = data.x_test[idx], data.y_test[idx]
    res = {"model": folder.name, "stochastic": noisy, "n": n,
           "clean": accuracy(model, data.x_test, data.y_test)}  # the expected prediction
    for eot in sorted({EOT_PGD if noisy else 1, 1}, reverse=True):
        curve = attack_curve(model, x, y, "pgd", "inf", [0.05, 0.1], seed=seed, eot_samples=eot)
        res[f"pgd-eot{eot}"] = {k: curve[k] for k in ("robust_accuracy", "clean_accuracy", "eot_samples",
                                                      "draws", "n", "loss", "seconds")}  # fmt: skip
    ia = subsample_indices(len(data.x_test), n_aa)
    aa = attack_curve(model, data.x_test[ia], data.y_test[ia], "autoattack", "inf", [0.1], seed=seed,
                      version="rand" if noisy else "standard", image_shape=(1, 28, 28))  # fmt: skip
    res["autoattack"] = {k: aa[k] for k in ("robust_accuracy", "clean_accuracy", "eot_samples", "draws", "n",
                                            "loss", "seconds", "settings")}  # fmt: skip
    isq = subsample_indices(len(data.x_test), n_square)
    sq = attack_curve(model, data.x_test[isq], data.y_test[isq], "square", "inf", [0.1], seed=seed,
                      n_queries=1000, image_shape=(1, 28, 28))  # fmt: skip
    res["square"] = {k: sq[k] for k in ("robust_accuracy", "clean_accuracy", "draws", "n", "seconds")}
    if noisy:  # what a naive evaluation reports: Square querying, and judged by, single noisy passes
        naive = ATTACKS["square"](model, eps=0.1, n_queries=1000, seed=seed, image_shape=(1, 28, 28))
        run = naive.judge_by(1).run(data.x_test[isq], data.y_test[isq])
        res["square-single-draw"] = {"robust_accuracy": {"0.1": run["accuracy"]}, "n": run["n"],
                                     "clean_accuracy": run["clean_accuracy"],
                                     "draws": run["draws"]}  # fmt: skip
    out.write_text(json.dumps(res, indent=1) + "\n")


def over_draws(folder: Path, out: Path, seed: int) -> None:
    """Clean accuracy of a stochastic model over 20 single draws (mean, std) into ``out``."""
    from sleepnet.evaluation.attacks import ATTACKS, stochastic
    from sleepnet.evaluation.robust import accuracy_over_draws
    from sleepnet.models import load_model
    from sleepnet.workflow import dataset_for

    model, meta = load_model(folder)
    data = dataset_for(meta)
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


def report(runs: list[dict], geo: dict) -> str:
    """The report: robustness per model, then geometry per layer."""
    lines = ["# Stochastic networks on MNIST (experiments/stochastic_mnist.py)", "",
             "Robust accuracy: an image counts only if correct clean and not broken within the budget; a",
             "stochastic model is judged by its expected prediction (mean probability over 20 draws).",
             "PGD: L-inf, cross-entropy, 40 steps; EOT 8 = the gradient averaged over 8 draws.",
             "Clean over draws: single passes, mean +- std over 20, on the 10000 test images.", "",
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
    lines += ["", "## Geometry per layer (input, hidden 1, hidden 2, logits)", "",
              "MFTMA capacity / radius / dimension of each kind of manifold (`docs/geometry.md`).", ""]
    for label, r in geo["models"].items():
        g = r["geometry"]
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--n-aa", type=int, default=100)
    p.add_argument("--n-square", type=int, default=100)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "stochastic_mnist")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.work.mkdir(parents=True, exist_ok=True)
    runs = []
    sizes = (args.n, args.n_aa, args.n_square)
    for seed in seeds:
        folders = models(args.work, seed)
        for name, folder in folders.items():
            out = args.work / f"{name}-{seed}.json"
            step(out, f"measure {name}", lambda f=folder, o=out, s=seed: measure(f, o, *sizes, s))
            draws = args.work / f"{name}-{seed}-draws.json"
            step(draws, f"over draws {name}", lambda f=folder, o=draws, s=seed: over_draws(f, o, s))
            runs.append(json.loads(out.read_text()) | json.loads(draws.read_text()) | {"seed": seed})
        geo_dir = args.work / f"geometry-{seed}"
        step(geo_dir, "geometry", lambda f=folders, o=geo_dir: geometry(f, o))
    geo = json.loads((args.work / f"geometry-{seeds[0]}" / "analysis.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps({"runs": runs, "geometry": geo}, indent=1) + "\n")
    (RESULTS / "report.md").write_text(report(runs, geo))
    png = args.work / f"geometry-{seeds[0]}" / "geometry.png"
    (RESULTS / "geometry.png").write_bytes(png.read_bytes())
    print((RESULTS / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
