"""What a run has measured so far, from its ``--keep`` copy: robust accuracy at every budget, per seed.

    python experiments/kept_table.py experiments/results/standard_mnist/units [--seeds 0,1] [--against M]

``sleepnet run EXPERIMENT --keep DIR`` copies each measure into ``DIR/seed<S>/<model>/`` as it is
finished (``NAME.HASH.json``); the experiment's report exists only when every model of every seed is
done. This prints, for each seed, a Markdown table of what is there: clean accuracy (the test set), then
each budgeted attack (AutoAttack, Square, HopSkipJump, ...: the measures that give robust accuracy at
budgets) at each budget, one column per model, each cell the robust accuracy on the measure's images
with, beside the control, the exact McNemar test over the same images (``sleepnet.report.mcnemar``:
images robust for one model and not the other); then, once some measure is kept for two seeds, the mean
± std over the seeds that hold it, with the paired t-test against the control over the seeds both hold
(``sleepnet.report.seed_cell``). ``--against MODEL`` tests every model against MODEL instead of the
control (a defence against sleep, say), in both tables; MODEL comes first. Where two runs kept the same
measure of models of different weights (another machine trained them again), ``--weights`` picks which
(each kept copy names its model's weights; ``model.HASH.json`` beside them); without it, one line naming
them. Two versions of one measure of the same weights (made by an older attack version, or under
other settings) are refused in one line: which is current is not in the files. The README's
standard-suite defences tested against sleep are this output with
``--against sleep-fgsm``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kept(folder: Path, weights=()) -> dict[str, dict]:
    """``{measure: result}`` of one model's kept measures. Where two runs kept the same measure of models
    of different weights (each copy's ``weights`` stamp), ``weights`` (hash prefixes) picks one; one
    clear error, naming the weights, where it does not."""
    versions: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        name = path.name.split(".")[0]
        if name != "model":  # which weights the measures are of, not a measure
            versions.setdefault(name, []).append(json.loads(path.read_text()))
    # the folder's measures are of one model only if they carry one weights stamp: where they carry
    # several (even each measure one), every measure shown is of the weights picked, and a measure
    # kept only of the others is left out (said on stderr), never shown beside them in one column
    stamps = sorted({str(u.get("weights", "unstamped")) for units in versions.values() for u in units})
    picked = [t for t in stamps if any(t.startswith(w) for w in weights)]
    if len(stamps) > 1 and len(picked) != 1:
        raise SystemExit(f"kept_table: {folder} holds measures of models of weights "
                         f"{', '.join(t[:16] for t in stamps)} (model.*.json beside them): pass --weights "
                         "with the one to show")  # fmt: skip
    out, left = {}, []
    for name, units in versions.items():
        units = [u for u in units if str(u.get("weights", "unstamped")) in (picked or stamps)]
        if len(units) > 1:  # of one model, made from other inputs (another attack version, other settings)
            raise SystemExit(f"kept_table: {folder} holds {len(units)} versions of {name} of the same "
                             "weights (other inputs: an older attack, other settings): remove the stale "
                             "ones (git rm)")  # fmt: skip
        if units:
            out[name] = units[0]["result"]
        else:
            left.append(name)
    if left:
        print(f"kept_table: {folder}: {', '.join(sorted(left))} kept only of other weights than "
              f"{picked[0][:16]}: left out", file=sys.stderr)  # fmt: skip
    return out


def robust_flags(result: dict, eps: float) -> np.ndarray:
    """Per image, robust at ``eps``: the found norm exceeds the budget (None: nothing found)."""
    from sleepnet.evaluation.robust import limit, norms_from_json

    return norms_from_json(result["norms"]) > limit(eps)


def _models(seed_dir: Path, against: str = "control") -> list[str]:
    """The model folders of one seed, ``against`` (the one every other is tested against) first."""
    return sorted((d.name for d in seed_dir.iterdir() if d.is_dir()), key=lambda m: (m != against, m))


def _rows(measures: dict[str, dict]) -> list[tuple[str, float, str]]:
    """``(measure, eps, label)`` of every budgeted measure any model holds, at each of its budgets."""
    from sleepnet.evaluation.robust import key

    rows = []
    names = sorted({n for ms in measures.values() for n, r in ms.items()
                    if isinstance(r, dict) and "budgets" in r and "norms" in r})  # fmt: skip
    for name in names:
        held = [ms[name] for ms in measures.values() if name in ms]
        # every setting the models' copies were made with (a stochastic model's AutoAttack: another loss,
        # with EOT), not the first model's alone
        about = " / ".join(sorted({_about(r) for r in held}))
        budgets = sorted({float(e) for r in held for e in r["budgets"]})
        rows += [(name, eps, f"{name} {key(eps)} ({about})") for eps in budgets]
    return rows


def _about(result: dict) -> str:
    """``n images; loss``, with ``EOT k`` where the attack averaged ``k`` > 1 passes."""
    eot = result.get("eot_samples") or 1
    return f"{result['n']} images; {result['loss']}" + (f"; EOT {eot}" if eot > 1 else "")


def seed_table(seed_dir: Path, weights=(), against: str = "control") -> list[str]:
    """The Markdown table of one seed's kept measures, McNemar against ``against`` (module docstring); []
    if none is kept."""
    from sleepnet.evaluation.robust import key
    from sleepnet.report import mcnemar

    models = _models(seed_dir, against)
    measures = {m: kept(seed_dir / m, weights) for m in models}
    if not any(measures.values()):
        return []
    lines = [f"| {seed_dir.name} | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    clean = ["-" if (c := measures[m].get("clean")) is None else f"{c:.4f}" for m in models]
    lines.append("| clean accuracy (test set) | " + " | ".join(clean) + " |")
    control = measures.get(against, {})
    for name, eps, label in _rows(measures):
        cells = []
        for m in models:
            res = measures[m].get(name)
            if res is None or key(eps) not in res["robust_accuracy"]:
                cells.append("-")
                continue
            cell = f"{res['robust_accuracy'][key(eps)]:.3f}"
            same = name in control and control[name]["n"] == res["n"]
            if m != against and same and key(eps) in control[name]["robust_accuracy"]:
                _, _, p = mcnemar(robust_flags(res, eps), robust_flags(control[name], eps))
                cell += f" (p={p:.2g})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def over_seeds(seed_dirs: list[Path], weights=(), against: str = "control") -> list[str]:
    """Mean ± std over the seeds that hold each measure, with the paired t-test against ``against`` over
    the seeds both hold (``report.seed_cell``); [] unless some measure is kept for two seeds or more."""
    from sleepnet.evaluation.robust import key
    from sleepnet.report import seed_cell

    data = {int(d.name[4:]): {m: kept(d / m, weights) for m in _models(d, against)} for d in seed_dirs}
    models = sorted({m for ms in data.values() for m in ms}, key=lambda m: (m != against, m))
    flat = {f"{s}/{m}": ms for s, per in data.items() for m, ms in per.items()}
    whom = "the control" if against == "control" else against
    lines = [f"| over seeds (mean ± std; p: paired t-test against {whom}) | " + " | ".join(models) + " |",
             "|---" * (len(models) + 1) + "|"]  # fmt: skip
    several = False
    for name, eps, label in [("clean", None, "clean accuracy (test set)"), *_rows(flat)]:
        def values(m, name=name, eps=eps):
            got = {s: per[m][name] for s, per in data.items() if name in per.get(m, {})}
            if eps is None:
                return got
            acc = {s: r["robust_accuracy"] for s, r in got.items()}
            return {s: a[key(eps)] for s, a in acc.items() if key(eps) in a}

        base = values(against)
        cells = []
        for m in models:
            vals = values(m)
            several |= len(vals) > 1
            cell = "-" if not vals else seed_cell(vals, base if m != against else None)
            cells.append(cell + (f" [seeds {','.join(map(str, sorted(vals)))}]" if vals else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines if several else []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a --keep folder (seed<S>/<model>/NAME.HASH.json)")
    parser.add_argument("--seeds", help="only these seeds, e.g. 0 or 0,1")
    parser.add_argument("--against", help="the model every other is tested against (default: control)")
    parser.add_argument("--weights", default="", help="where two runs kept a measure of models of "
                        "different weights: the weights hash prefixes to show, e.g. 0134790d,93bf3830")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"kept_table: {args.folder} is not a folder")
    seeds = sorted((d for d in args.folder.glob("seed*") if d.is_dir() and d.name[4:].isdigit()),
                   key=lambda d: int(d.name[4:]))  # fmt: skip
    weights = [w for w in args.weights.split(",") if w]
    if args.seeds:
        from sleepnet.cli.common import parse_seeds

        wanted = {f"seed{s}" for s in parse_seeds(args.seeds, "kept_table")}
        seeds = [d for d in seeds if d.name in wanted]
    against = args.against or "control"
    if args.against and seeds and not any((d / against).is_dir() for d in seeds):
        shown = ", ".join(d.name for d in seeds)
        raise SystemExit(f"kept_table: --against {against}: no such model in the seeds shown ({shown})")
    tables = [lines for d in seeds if (lines := seed_table(d, weights, against))]
    if not tables:
        raise SystemExit(f"kept_table: no kept measures in {args.folder}")
    tables += [lines] if (lines := over_seeds(seeds, weights, against)) else []
    print("\n\n".join("\n".join(t) for t in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
