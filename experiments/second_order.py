"""Do saturated networks resist the second-order attack (Nayebi & Ganguli 2017's claim)?

    python experiments/second_order.py [--configs relu:0,relu:1e-3,sigmoid:0,sigmoid:0.1]
        [--epochs 5] [--seeds 0] [--n 100] [--work runs/second_order]

For each ``act:lambda``: train the MLP ``<act>-mlp`` (784-1200-1200-10, biases, Adam 1e-3,
cross-entropy) with the saturation penalty (schedule ``linear:0.5``) for ``--epochs`` epochs, as
``experiments/saturation_sweep.py`` does, then on the first ``--n`` test images of the fixed
permutation run three minimal L2 attacks:

- ``lbfgs`` (Szegedy et al. 2014's box-constrained L-BFGS, the second-order attack) with the
  float32 gradient of the model as it is, as a 2017 attack would have;
- the same with float64 gradients on a float64 copy (Brendel & Bethge's numerics);
- DeepFool (first order, float32), the sleep paper's minimal attack;
- HopSkipJump (decision-based, no gradients; the standard suite's settings: 20 iterations, at
  most 1000 gradient-estimation queries), which numerical masking cannot stop.

Reported per model: clean accuracy (all 10000 test images), and per attack robust accuracy at the
L2 budgets 0.5, 1, 1.5, 2 (an image counts only if correct clean and not fooled within the budget),
the median L2 norm found over the images it fooled, its success rate and seconds; and the worst case
over the four per image. ``--seeds 0,1,2`` runs each config under each seed (training seed and the
attacks' seed alike) and adds a table over seeds: each attack's robust accuracy at each budget as
mean ± std, with the paired t-test over seeds against lambda 0 of the same activation. Every model
and result is kept under ``--work`` and skipped when present, so a stopped run resumes; a model folder
that is gone is trained again, and its kept results are taken only if they are of the same weights
(``of_these_weights``), else all measured again. Then
``experiments/results/second_order/``: ``results.json`` and ``report.md`` (the runs of this
invocation's configs and seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "second_order"
CONFIGS = "relu:0,relu:1e-3,sigmoid:0,sigmoid:0.1"
BUDGETS = (0.5, 1.0, 1.5, 2.0)
ATTACKS = {"lbfgs-float32": ("lbfgs", {"precision": "float32"}), "lbfgs-float64": ("lbfgs", {}),
           "deepfool": ("deepfool", {}),
           "hopskipjump": ("hopskipjump", {"max_iter": 20, "max_eval": 1000})}  # fmt: skip


def _implementation(name: str) -> str | None:
    """The version an attack's results are of, where it names one (our decision attacks)."""
    from sleepnet.evaluation.attacks import ATTACKS as REGISTRY

    return getattr(REGISTRY[name], "implementation", None)


def current(done: dict | None) -> dict | None:
    """``done`` without the attacks measured by another version of the attack than today's (HopSkipJump
    before its starts from another class, ``docs/evaluation.md`` §6): those are measured again."""
    if done is None:
        return None
    keep = {label for label, (name, _) in ATTACKS.items() if label in done["attacks"]
            and done["attacks"][label].get("implementation") == _implementation(name)}  # fmt: skip
    return done | {"attacks": {k: v for k, v in done["attacks"].items() if k in keep},
                   "norms": {k: v for k, v in done.get("norms", {}).items() if k in keep}}  # fmt: skip


def of_these_weights(done: dict | None, folder: Path, n: int) -> dict | None:
    """``done`` if it was measured on the weights now in ``folder``, else ``None`` (all measured again).

    A model folder that is gone is trained again, and on another machine or thread count it may come
    out with other weights (``docs/design.md``); kept attacks of the old weights must not be mixed with
    new ones. A result names its weights (``weights``, SHA-256); one kept before it did is checked by
    its clean accuracy and by DeepFool, which draws nothing: the same norms on every image (to float
    rounding) or it is measured again.
    """
    if done is None:
        return None
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.attacks import ATTACKS as REGISTRY
    from sleepnet.evaluation.robust import norms_from_json
    from sleepnet.hashing import weights_sha256
    from sleepnet.training import accuracy
    from sleepnet.workflow import load_with_data

    model, _, data = load_with_data(folder)
    if "weights" in done:
        same = done["weights"] == weights_sha256(model)
    else:
        idx = subsample_indices(len(data.x_test), n)
        again = norms_from_json(REGISTRY["deepfool"](model, "cross-entropy").run(data.x_test[idx],
                                                                                 data.y_test[idx])["norms"])
        kept = norms_from_json(done["norms"]["deepfool"])
        same = (done["clean"] == accuracy(model, data.x_test, data.y_test) and len(kept) == len(again)
                and bool(np.allclose(again, kept, rtol=1e-4, atol=1e-6)))  # inf == inf
    if not same:
        print(f"{folder.name}: the kept results are of other weights than the folder's: measured again",
              flush=True)
    return done if same else None


def measure(folder: Path, n: int, seed: int = 0, done: dict | None = None) -> dict:
    """The attacks of the module docstring on the model in ``folder`` (those that draw, with ``seed``);
    those in ``done`` (an earlier result) are kept, not run again."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.attacks import ATTACKS as REGISTRY
    from sleepnet.evaluation.robust import norms_from_json, robust_accuracy
    from sleepnet.hashing import weights_sha256
    from sleepnet.training import accuracy
    from sleepnet.workflow import load_with_data

    model, meta, data = load_with_data(folder)
    idx = subsample_indices(len(data.x_test), n)
    x, y = data.x_test[idx], data.y_test[idx]
    out: dict = {"clean": accuracy(model, data.x_test, data.y_test), "n": int(len(idx)), "attacks": {},
                 "weights": weights_sha256(model)}  # fmt: skip
    kept: dict = {}  # per attack, the found norm of each image (JSON form), for the worst case
    for label, (name, params) in ATTACKS.items():
        if done and label in done["attacks"]:
            out["attacks"][label], kept[label] = done["attacks"][label], done["norms"][label]
            continue
        start = time.perf_counter()
        if name == "hopskipjump":
            params = params | {"seed": seed}
        res = REGISTRY[name](model, "cross-entropy", **params).run(x, y)
        found = norms_from_json(res["norms"])
        fooled = found[np.isfinite(found) & (found > 0)]
        out["attacks"][label] = {
            "robust_accuracy": robust_accuracy(found, BUDGETS), "success_rate": res["success_rate"],
            "median_l2": float(np.median(fooled)) if len(fooled) else None,
            "clean_accuracy": res["clean_accuracy"], "seconds": round(time.perf_counter() - start, 1),
            "settings": dict(params),  # what differs from the attack's defaults; HopSkipJump's seed
        }  # fmt: skip
        if _implementation(name) is not None:
            out["attacks"][label]["implementation"] = _implementation(name)
        kept[label] = res["norms"]
    out["norms"] = kept
    out["worst"] = robust_accuracy(np.min([norms_from_json(v) for v in kept.values()], axis=0), BUDGETS)
    return out


def report(runs: list[dict], argv: str) -> str:
    """``report.md``: one row per model, seed and attack; then the table over seeds (``over_seeds``)."""
    from sleepnet.evaluation.robust import key

    seeds = sorted({r["seed"] for r in runs})
    lines = ["# The second-order attack (L-BFGS) on saturated networks", "",
             f"Written by `python experiments/second_order.py {argv}`. Robust accuracy at L2 budgets "
             "(correct clean and not fooled within the budget) on the first n test images of the fixed "
             "permutation; median L2 over the images each attack fooled. lbfgs-float32: the model's own "
             "float32 gradient; lbfgs-float64: a float64 copy's. Loss: targeted cross-entropy + c L2^2 "
             "(L-BFGS), DeepFool's linearised margin. "
             + (f"Seed {seeds[0]}." if len(seeds) == 1 else f"Seeds {', '.join(map(str, seeds))}."), "",
             "| act | lambda | epochs | seed | clean | attack | " + " | ".join(f"L2 {b:g}" for b in BUDGETS)
             + " | median L2 | success | s |",
             "|---|---|---|---|---|---|" + "---|" * len(BUDGETS) + "---|---|---|"]  # fmt: skip
    for r in runs:
        rows = list(r["attacks"].items()) + [("worst of all", {"robust_accuracy": r["worst"]})]
        for label, a in rows:
            acc = " | ".join(f"{a['robust_accuracy'][key(b)]:.2f}" for b in BUDGETS)
            med = f"{a['median_l2']:.2f}" if a.get("median_l2") is not None else "-"
            succ = f"{a['success_rate']:.2f}" if "success_rate" in a else "-"
            lines.append(f"| {r['act']} | {r['lam']:g} | {r['epochs']} | {r['seed']} | {r['clean']:.3f} | "
                         f"{label} | {acc} | {med} | {succ} | {a.get('seconds', '-')} |")  # fmt: skip
    return "\n".join(lines + over_seeds(runs)) + f"\n\nn = {runs[0]['n']} images per model.\n"


def over_seeds(runs: list[dict]) -> list[str]:
    """The report's lines for the configs run under several seeds: per attack (and the worst of all),
    the clean accuracy and the robust accuracy at each budget as mean ± std over the seeds, and for
    lambda > 0 the paired t-test p over the seeds both have against lambda 0 of the same activation
    and epochs."""
    from sleepnet.evaluation.robust import key
    from sleepnet.report import seed_cell, seed_groups

    several = seed_groups(runs, lambda r: (r["act"], r["lam"], r["epochs"], r["n"]),
                          lambda k: (k[0], 0.0, *k[2:]) if k[1] > 0 else None)  # as saturation_sweep.py
    if not several:
        return []
    lines = ["", "## Over seeds", "",
             "Mean ± std over the seeds each config ran under (training and attack seed alike); `p`: paired "
             "t-test over seeds against lambda 0 of the same activation and epochs.", "",
             "| act | lambda | seeds | attack | clean | " + " | ".join(f"L2 {b:g}" for b in BUDGETS) + " |",
             "|---|---|---|---|---|" + "---|" * len(BUDGETS)]  # fmt: skip

    def robust(run: dict, label: str) -> dict:
        return run["worst"] if label == "worst of all" else run["attacks"][label]["robust_accuracy"]

    for k, seeds, base in several:
        clean = seed_cell({s: r["clean"] for s, r in seeds.items()}, {s: r["clean"] for s, r in base.items()})
        for label in [*ATTACKS, "worst of all"]:
            cells = [seed_cell({s: robust(r, label)[key(b)] for s, r in seeds.items()},
                               {s: robust(r, label)[key(b)] for s, r in base.items()}) for b in BUDGETS]
            lines.append(f"| {k[0]} | {k[1]:g} | {','.join(map(str, sorted(seeds)))} | {label} | {clean} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default=CONFIGS)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "second_order")
    args = p.parse_args(argv)

    from sleepnet.cli.common import parse_seeds
    from sleepnet.errors import SleepnetError
    from sleepnet.saturation import check_lambda
    from sleepnet.workflow import train_to_folder

    seeds = parse_seeds(args.seeds, "second_order")
    configs = []
    for item in args.configs.split(","):
        act, _, lam = item.partition(":")
        if act not in ("relu", "sigmoid"):
            raise SystemExit(f"second_order: unknown activation {act!r} in --configs (relu or sigmoid)")
        try:
            configs.append((act, check_lambda(float(lam))))
        except (ValueError, SleepnetError) as exc:
            raise SystemExit(f"second_order: --configs needs act:lambda pairs ({exc})") from None
    runs = []
    for seed in seeds:
        for act, lam in configs:
            name = f"{act}-lam{lam:g}-ep{args.epochs}-seed{seed}"
            folder, result = args.work / name, args.work / f"{name}-n{args.n}.json"
            if not folder.exists():
                print(f"train {name}", flush=True)
                train_to_folder("mnist", f"{act}-mlp", seed, folder, epochs=args.epochs, saturation=lam,
                                progress=False)  # fmt: skip
            done = json.loads(result.read_text()) if result.exists() else None
            if done is not None and "norms" not in done:  # measured before the norms were kept
                done = None
            done = current(of_these_weights(done, folder, args.n))
            if done is None or set(ATTACKS) - set(done["attacks"]):
                print(f"attack {name}", flush=True)
                res = {"act": act, "lam": lam, "epochs": args.epochs, "seed": seed} | measure(folder, args.n,
                                                                                          seed, done)
                result.write_text(json.dumps(res, indent=1) + "\n")
            runs.append(json.loads(result.read_text()))
            print(json.dumps(runs[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(runs, indent=1) + "\n")
    text = report(runs, " ".join(sys.argv[1:] if argv is None else argv))
    (RESULTS / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
