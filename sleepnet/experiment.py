"""``sleepnet run EXPERIMENT.toml``: control, sleep variants and baseline defences over seeds, one report.

An experiment file::

    [experiment]
    dataset = "mnist"          # as for `sleepnet train`
    recipe = "paper"
    hidden = [1200, 1200]      # optional: the recipe's hidden sizes otherwise
    seeds = [0, 1, 2]
    suite = "paper"            # or "quick"
    subsample = 1000           # paper suite: test images for the iterative attacks

    [sleep]                    # name = {preset = ..., any sleep key = value}
    sleep-fgsm = { preset = "mnist-fgsm" }

    [defences]                 # name = {parameters}; names from sleepnet.defences.DEFENCES
    distillation = {}

For every seed: train the control, sleep it with each variant, train each
defence from it, and evaluate them all on the same test images. Then
aggregate over seeds (mean, std, paired t-test of each model against the
control) and write ``metrics.json``, ``results.csv``, ``report.md`` and
``figures/`` into the output folder, atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tomllib

from .config import apply_overrides, load_preset
from .errors import SleepnetError
from .fsio import atomic_dir, write_json

KNOWN = {"dataset", "recipe", "hidden", "seeds", "suite", "subsample", "epochs", "name", "description"}


def load_experiment(path: Path) -> dict:
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SleepnetError(f"experiment file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SleepnetError(f"{path} is not valid TOML ({exc})") from None
    exp = spec.get("experiment")
    if not isinstance(exp, dict):
        raise SleepnetError(f"{path} has no [experiment] table")
    unknown = set(exp) - KNOWN
    if unknown:
        raise SleepnetError(f"{path}: unknown [experiment] keys {', '.join(sorted(unknown))}")
    from .defences import DEFENCES

    for name in spec.get("defences", {}):
        if name not in DEFENCES:
            raise SleepnetError(f"{path}: unknown defence {name!r} (known: {', '.join(DEFENCES)})")
    sleeps = {}
    for name, entry in spec.get("sleep", {}).items():
        entry = dict(entry)
        if "preset" not in entry:
            raise SleepnetError(f"{path}: sleep variant {name!r} needs a preset")
        preset = entry.pop("preset")
        sleeps[name] = apply_overrides(load_preset(preset), [f"{k}={_toml(v)}" for k, v in entry.items()])
    return {
        "name": exp.get("name", path.stem), "dataset": exp.get("dataset", "mnist"),
        "recipe": exp.get("recipe", "paper"), "hidden": exp.get("hidden"), "epochs": exp.get("epochs"),
        "seeds": [int(s) for s in exp.get("seeds", [0])], "suite": exp.get("suite", "paper"),
        "subsample": int(exp.get("subsample", 1000)), "sleep": sleeps,
        "defences": {k: dict(v) for k, v in spec.get("defences", {}).items()},
    }  # fmt: skip


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)


def run_experiment(path: Path, out: Path, *, quick: bool = False, overwrite: bool = False,
                   progress: bool = True, data_dir: str | None = None) -> dict:  # fmt: skip
    """Run the experiment of ``path`` into ``out``; returns the metrics."""
    from .data import load_dataset
    from .defences import DEFENCES
    from .evaluation import evaluate
    from .models import save_model
    from .report import aggregate, write_report
    from .sleep_phase import sleep
    from .training import get_recipe, train
    from .workflow import activation_record

    exp = load_experiment(path)
    if Path(out).exists() and not overwrite:
        raise SleepnetError(f"{out} already exists (use --force to replace it)")
    data = load_dataset(exp["dataset"], data_dir)
    recipe = get_recipe(exp["recipe"], epochs=exp["epochs"])
    if exp["hidden"] is not None:
        recipe = get_recipe(exp["recipe"], epochs=exp["epochs"],
                            sizes=(recipe.sizes[0], *exp["hidden"], recipe.sizes[-1]))  # fmt: skip
    per_seed = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for seed in _bar(exp["seeds"], progress, "seeds"):
            models, losses = {}, {}
            control, record = train(data, recipe, seed=seed, progress=progress)
            record["activation_max"] = activation_record(control, data)
            save_model(control, tmp / f"seed{seed}" / "control", record)
            models["control"], losses["control"] = control, record["recipe"]["loss"]
            for name, config in exp["sleep"].items():
                result = sleep(control, config.replace(seed=seed), data.x_train, progress=progress,
                               max_activation=np.asarray(record["activation_max"]["values"]))  # fmt: skip
                save_model(result.model, tmp / f"seed{seed}" / name,
                           {"kind": "slept", "recipe": record["recipe"], "dataset": data.record(),
                            "seed": seed, "sleep": result.summary()})  # fmt: skip
                models[name], losses[name] = result.model, record["recipe"]["loss"]
            for name, params in exp["defences"].items():
                model, rec = DEFENCES[name](**params).apply(control, record, data, seed)
                save_model(model, tmp / f"seed{seed}" / name, rec)
                models[name], losses[name] = model, rec["recipe"]["loss"]
            options = {"subsample": exp["subsample"], "quick": quick} if exp["suite"] == "paper" else {}
            per_seed[seed] = evaluate(models, data, losses, exp["suite"], seed, progress, **options)
        metrics = {
            "experiment": {k: v for k, v in exp.items() if k not in ("sleep",)}
            | {"sleep": {k: c.to_dict() for k, c in exp["sleep"].items()}, "quick": quick},
            "dataset": data.record(),
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "aggregate": aggregate(per_seed),
        }
        write_json(tmp / "metrics.json", metrics)
        write_report(metrics, tmp)
    return metrics


def _bar(items, enabled, desc):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)
