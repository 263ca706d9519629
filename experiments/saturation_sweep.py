"""The saturation defence over lambda: does the regime Nayebi & Ganguli (2017) describe exist?

    python experiments/saturation_sweep.py [--acts relu,sigmoid,cnn] [--lams 0,1e-4,...,1]
        [--epochs 5] [--seeds 0,1,2] [--n 500] [--work runs/saturation_sweep] [--autoattack]

For each seed, activation and lambda: train the MLP ``<act>-mlp`` (784-1200-1200-10, biases,
Adam 1e-3, cross-entropy), or for ``cnn`` the ReLU CNN of recipe ``cnn`` (two 5x5
convolutions, 16 and 32 channels, dense 128, ``docs/saturation.md`` §2), with the saturation
penalty (schedule ``linear:0.5``) for ``--epochs`` epochs, then measure on the first ``--n``
test images of the fixed permutation, L-inf budgets 0.1 and 0.2 (0.1 only for the costlier attacks):

- the paper's attack: FGSM with the float32 cross-entropy gradient (robust accuracy);
- PGD-40 with cross-entropy and with the margin loss in float32, and with the margin loss
  on a float64 copy (Brendel & Bethge's stabilised gradient): the loss and the precision
  each changed alone;
- Square (gradient-free, 1000 queries, L-inf 0.1);
- with ``--autoattack``, also AutoAttack (standard version: APGD-CE, APGD-T, FAB-T, Square 5000
  queries; torchattacks) at L-inf 0.1 and 0.2 and at L2 1.0 and 2.0 (the second-order
  measurement's budgets, ``second_order.py``), per image the worst case over its parts (added to
  a run measured without it);
- the analyses: weight kurtosis per layer, saturated fraction and relative slope per layer,
  the input-output Jacobian's top singular value and participation ratio (500 images).

Clean accuracy is on all 10000 test images. Every model and every result is kept under
``--work`` and skipped when present, so a stopped run resumes; a longer run is another
``--epochs``. Then ``experiments/results/saturation_sweep/``: ``sweep.json``, ``report.md``,
``sweep.png``: the committed ``sweep.json``'s runs, each replaced by the run of the same
activation, lambda, epochs, seed and number of images found under ``--work``, and every other run found there
(so a sweep of one activation adds to the table rather than replacing it). Where a setting ran
under several seeds, the report adds its mean and std over them, with a paired t-test over seeds
against lambda 0 of the same activation and epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "saturation_sweep"
LAMS = "0,1e-4,1e-3,1e-2,1e-1,1"
RECIPES = {"relu": "relu-mlp", "sigmoid": "sigmoid-mlp", "cnn": "cnn"}


def identity(run: dict) -> tuple:
    """What makes a run of the sweep: activation (or ``cnn``), lambda, epochs, seed, images."""
    return run["act"], run["lam"], run["epochs"], run["seed"], run["n"]


def loaded(folder: Path, n: int):
    """The model in ``folder``, its record, its dataset and the indices of the first ``n`` test images
    of the fixed permutation: what every measure of a run starts from."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.workflow import load_with_data

    model, meta, data = load_with_data(folder)
    return model, meta, data, subsample_indices(len(data.x_test), n)


def measure(folder: Path, n: int, seed: int) -> dict:
    """Every attack and analysis of the module docstring on the model in ``folder``."""
    from sleepnet.analysis import analyze
    from sleepnet.evaluation.attacks import PGD
    from sleepnet.evaluation.curve import attack_curve
    from sleepnet.evaluation.masking import float64_model
    from sleepnet.training import accuracy

    model, meta, data, idx = loaded(folder, n)
    x, y = data.x_test[idx], data.y_test[idx]
    wide = float64_model(model)
    out: dict = {"clean": accuracy(model, data.x_test, data.y_test), "n": int(len(idx)), "seconds": {}}

    def timed(key, fn):
        start = time.perf_counter()
        out[key] = fn()
        out["seconds"][key] = time.perf_counter() - start

    for eps in (0.1, 0.2):
        attacks = {"fgsm32-ce": PGD(model, "cross-entropy", eps=eps, n_steps=1, step=eps, random_start=False),
                   "pgd32-ce": PGD(model, "cross-entropy", eps=eps, seed=seed),
                   "pgd32-margin": PGD(model, "margin", eps=eps, seed=seed),
                   "pgd64-margin": PGD(wide, "margin", eps=eps, seed=seed)}  # fmt: skip
        for key, attack in attacks.items():
            timed(f"{key}@{eps}", lambda a=attack: a.run(x, y)["accuracy"])
    timed("square@0.1", lambda: attack_curve(model, x, y, "square", "inf", [0.1], seed=seed,
                                             n_queries=1000)["robust_accuracy"]["0.1"])  # fmt: skip
    an = analyze({"m": model}, data.x_test, idx[:500])["models"]["m"]
    out["kurtosis"] = [layer["kurtosis"] for layer in an["weights"]["layers"]]
    out["saturated"] = [layer["saturated"] for layer in an["activations"]["layers"]]
    out["slope"] = [layer["slope"] for layer in an["activations"]["layers"]]
    out["jacobian_top"] = an["jacobian"]["top"]
    out["jacobian_pr"] = an["jacobian"]["participation_ratio"]
    out["jacobian_zero"] = an["jacobian"]["zero_jacobian"]  # share of images whose Jacobian is 0
    out["train_time_s"] = meta["metrics"]["train_time_s"]
    return out


#: AutoAttack's runs: norm -> (the key of its columns, budgets)
AUTOATTACK = {"inf": ("autoattack", (0.1, 0.2)), "2": ("autoattack-l2", (1.0, 2.0))}


def autoattack(folder: Path, n: int, seed: int, norm: str) -> dict:
    """AutoAttack (standard) at ``norm``'s budgets (``AUTOATTACK``) on the run's images, with its seconds
    and per-part breakdown."""
    from sleepnet.evaluation.curve import attack_curve

    key, budgets = AUTOATTACK[norm]
    model, _, data, idx = loaded(folder, n)
    res = attack_curve(model, data.x_test[idx], data.y_test[idx], "autoattack", norm, budgets, seed=seed,
                       image_shape=(1, 28, 28), version="standard")  # fmt: skip
    return {f"{key}@{k}": v for k, v in res["robust_accuracy"].items()} | {
        f"{key}_seconds": res["seconds"], f"{key}_breakdown": res.get("breakdown")}


def margin32(folder: Path, n: int, seed: int) -> dict:
    """``pgd32-margin`` at both budgets, for a result written before it was measured."""
    from sleepnet.evaluation.attacks import PGD

    model, _, data, idx = loaded(folder, n)
    return {f"pgd32-margin@{eps}": PGD(model, "margin", eps=eps, seed=seed).run(data.x_test[idx],
                                                                               data.y_test[idx])["accuracy"]
            for eps in (0.1, 0.2)}  # fmt: skip


def run_one(work: Path, act: str, lam: float, epochs: int, seed: int, n: int, with_aa: bool) -> dict:
    """One run of the sweep, trained and measured under ``work`` unless it is there already (what is
    missing from a kept result, such as AutoAttack, is added to it)."""
    from sleepnet.workflow import train_to_folder

    name = f"{act}-lam{lam:g}-ep{epochs}-seed{seed}"
    folder = work / name
    if not folder.exists():
        print(f"train {name}", flush=True)
        train_to_folder("mnist", RECIPES[act], seed, folder, epochs=epochs, saturation=lam, progress=False)
    result = work / f"{name}.json"
    if not result.exists():
        print(f"measure {name}", flush=True)
        res = {"act": act, "lam": lam, "epochs": epochs, "seed": seed} | measure(folder, n, seed)
        result.write_text(json.dumps(res, indent=1) + "\n")
    res = json.loads(result.read_text())
    if res["n"] != n:  # its columns would come from other images than a new one's
        raise SystemExit(f"saturation_sweep: {result} was measured on {res['n']} images, not --n {n}: "
                         "use another --work")  # fmt: skip
    if "pgd32-margin@0.1" not in res:  # measured before this column existed
        res |= margin32(folder, n, seed)
        result.write_text(json.dumps(res, indent=1) + "\n")
    for norm, (key, budgets) in AUTOATTACK.items() if with_aa else ():
        if f"{key}@{budgets[0]}" not in res:
            print(f"{key} {name}", flush=True)
            res |= autoattack(folder, n, seed, norm)
            result.write_text(json.dumps(res, indent=1) + "\n")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--acts", default="relu,sigmoid")
    p.add_argument("--lams", default=LAMS)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", "--seed", default="0", help="training and attack seeds, e.g. 0,1,2")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "saturation_sweep")
    p.add_argument("--autoattack", action="store_true",
                   help="AutoAttack at L-inf 0.1 and 0.2 and at L2 1.0 and 2.0 too")
    args = p.parse_args(argv)

    from sleepnet.cli.common import parse_seeds
    from sleepnet.saturation import check_lambda

    acts = [a for a in args.acts.split(",") if a]
    try:
        lams = [check_lambda(float(v)) for v in args.lams.split(",") if v]
    except ValueError as exc:
        raise SystemExit(f"saturation_sweep: --lams must be numbers ({exc})") from None
    seeds = parse_seeds(args.seeds, "saturation_sweep")
    for act in acts:
        if act not in RECIPES:
            raise SystemExit(f"saturation_sweep: unknown activation {act!r} (relu, sigmoid or cnn)")
    for seed in seeds:
        for act in acts:
            for lam in lams:
                print(run_one(args.work, act, lam, args.epochs, seed, args.n, args.autoattack), flush=True)
    runs = {identity(r): r for r in json.loads((RESULTS / "sweep.json").read_text())} \
        if (RESULTS / "sweep.json").exists() else {}  # fmt: skip
    for f in sorted(args.work.glob("*.json")):
        r = json.loads(f.read_text())
        runs[identity(r)] = r
    runs = list(runs.values())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep.json").write_text(json.dumps(runs, indent=1) + "\n")
    plot(runs, RESULTS / "sweep.png")
    (RESULTS / "report.md").write_text(report(runs))
    return 0


COLUMNS = ("clean", "fgsm32-ce@0.1", "pgd32-ce@0.1", "pgd32-margin@0.1", "pgd64-margin@0.1", "square@0.1",
           "autoattack@0.1", "fgsm32-ce@0.2", "pgd32-ce@0.2", "pgd32-margin@0.2", "pgd64-margin@0.2",
           "autoattack@0.2", "autoattack-l2@1.0", "autoattack-l2@2.0")  # fmt: skip
#: the columns given over seeds, where a setting ran under several
SEED_COLUMNS = ("clean", "fgsm32-ce@0.1", "pgd64-margin@0.1", "square@0.1", "autoattack@0.1",
                "autoattack@0.2", "autoattack-l2@1.0", "autoattack-l2@2.0")  # fmt: skip


def setting(run: dict) -> tuple:
    """A run's identity less its seed: the runs of one setting over seeds share it."""
    return run["act"], run["lam"], run["epochs"], run["n"]


def by_setting(runs: list[dict]) -> dict[tuple, dict[int, dict]]:
    """``{setting: {seed: run}}``."""
    out: dict[tuple, dict[int, dict]] = {}
    for r in runs:
        out.setdefault(setting(r), {})[r["seed"]] = r
    return out


def lambda_0(k: tuple) -> tuple | None:
    """The baseline of a setting (``setting``): lambda 0 of the same activation, epochs and images; none
    for lambda 0 itself. ``second_order.py`` tests against the same."""
    return (k[0], 0.0, k[2], k[3]) if k[1] > 0 else None


def images(runs: list[dict]) -> str:
    """The number of images the runs were measured on (``500``, or ``200 or 500`` if they differ)."""
    return " or ".join(str(n) for n in sorted({r["n"] for r in runs}))


def plot(runs: list[dict], path: Path) -> None:
    import numpy as np

    from sleepnet.plots import save, subplots

    acts = sorted({r["act"] for r in runs})
    fig, axes = subplots(1, len(acts), figsize=(6 * len(acts), 4.2), squeeze=False)
    for ax, act in zip(axes[0], acts):
        for epochs in sorted({r["epochs"] for r in runs if r["act"] == act}):
            groups = sorted((k, seeds) for k, seeds in by_setting(runs).items()
                            if k[0] == act and k[2] == epochs)  # fmt: skip
            lam = [max(k[1], 1e-5) for k, _ in groups]  # lambda 0 drawn at 1e-5
            # the curve: one seed that every lambda ran under (not means of some points and single seeds
            # of others); where a lambda ran under several seeds, their mean ± std beside it
            common = set.intersection(*(set(seeds) for _, seeds in groups))
            first = min(common) if common else None
            for key, style in (("clean", "-ok"), ("fgsm32-ce@0.1", "--s"), ("pgd64-margin@0.1", "-^"),
                               ("square@0.1", ":v")):  # fmt: skip
                ys = [seeds[first][key] if first is not None else np.mean([r[key] for r in seeds.values()])
                      for _, seeds in groups]  # fmt: skip
                line = ax.plot(lam, ys, style, ms=4, label=f"{key} ({epochs} ep, "
                               + (f"seed {first})" if first is not None else "mean over seeds)"))[0]
                several = [(x, [r[key] for r in seeds.values()]) for x, (_, seeds) in zip(lam, groups)
                           if len(seeds) > 1]  # fmt: skip
                if several and first is not None:
                    ax.errorbar([x * 1.15 for x, _ in several], [np.mean(v) for _, v in several],
                                yerr=[np.std(v, ddof=1) for _, v in several], fmt="o", mfc="none", ms=5,
                                color=line.get_color(), capsize=3)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("lambda (0 drawn at 1e-5)")
        ax.set_ylabel(f"accuracy (robust: L-inf 0.1, {images(runs)} images)\n"
                      "open circles: mean ± std over seeds, where several")  # fmt: skip
        ax.set_title(f"{act if act == 'cnn' else act + ' MLP'} with the saturation penalty")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    save(fig, path)


def report(runs: list[dict]) -> str:
    lines = ["# The saturation defence over lambda (MNIST: 784-1200-1200-10 MLPs, the ReLU CNN)", "",
             "Written by `python experiments/saturation_sweep.py`. Robust accuracy at L-inf eps on the "
             f"first {images(runs)} test images of the fixed permutation (correct clean and not broken); "
             "clean on all 10000. `fgsm32-ce`: the paper's attack, FGSM with the float32 cross-entropy "
             "gradient; "
             "`pgd32-ce`, `pgd32-margin`: PGD-40 with either loss; `pgd64-margin`: PGD-40 with the margin "
             "loss on a float64 copy of the model "
             "(Brendel & Bethge); `square`: Square, 1000 queries, no gradients; `autoattack`: AutoAttack "
             "(standard version, `--autoattack`, at L-inf and at L2 (`autoattack-l2`); `-` where it was not "
             "run). `sat`: share of "
             "saturated unit x image per hidden layer; "
             "`kurt`: excess kurtosis of the weights per layer; `J`: top singular value and participation "
             "ratio of d logits / d x.", "", "![sweep](sweep.png)", "",
             "| act | lambda | epochs | seed | " + " | ".join(COLUMNS)
             + " | sat | kurt | J top / PR | train s |",
             "|" + "---|" * (len(COLUMNS) + 8)]  # fmt: skip
    for r in sorted(runs, key=lambda r: (r["act"], r["epochs"], r["lam"], r["seed"])):
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in COLUMNS]  # AutoAttack: some runs only
        sat = "/".join(f"{v:.2f}" for v in r["saturated"][:-1])
        kurt = "/".join(f"{v:.1f}" for v in r["kurtosis"])
        lines.append(f"| {r['act']} | {r['lam']:g} | {r['epochs']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {sat} | {kurt} | {r['jacobian_top']:.3g} / {r['jacobian_pr']:.2f} "
                       f"| {r['train_time_s']:.0f} |")  # fmt: skip
    return "\n".join(lines + over_seeds(runs)) + "\n"


def over_seeds(runs: list[dict]) -> list[str]:
    """The report's lines for the settings run under several seeds: each column's mean ± std over them,
    and for lambda > 0 the paired t-test p over the seeds both have against lambda 0 of the same
    activation, epochs and images (``-`` where a column was not measured on every seed)."""
    from sleepnet.report import seed_cell, seed_groups

    several = seed_groups(runs, setting, lambda_0)
    if not several:
        return []
    lines = ["", "## Over seeds", "",
             "Mean ± std over the seeds each setting ran under (training and attack seed alike); "
             "`p`: paired t-test over seeds against lambda 0 of the same activation and epochs.", "",
             "| act | lambda | epochs | seeds | " + " | ".join(SEED_COLUMNS) + " |",
             "|" + "---|" * (len(SEED_COLUMNS) + 4)]  # fmt: skip
    for k, seeds, base in several:
        cells = []
        for col in SEED_COLUMNS:
            if any(r.get(col) is None for r in seeds.values()):
                cells.append("-")
                continue
            against = {s: r[col] for s, r in base.items() if r.get(col) is not None}
            cells.append(seed_cell({s: r[col] for s, r in seeds.items()}, against))
        lines.append(f"| {k[0]} | {k[1]:g} | {k[2]} | {','.join(map(str, sorted(seeds)))} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return lines


if __name__ == "__main__":
    sys.exit(main())
