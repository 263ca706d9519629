"""``sleepnet run EXPERIMENT.toml``: control, sleep variants and baseline defences over seeds, one report.

An experiment file::

    [experiment]
    dataset = "mnist"          # as for `sleepnet train`
    recipe = "paper"
    hidden = [1200, 1200]      # optional: the recipe's hidden sizes otherwise
    seeds = [0, 1, 2]
    suite = "paper"            # or "quick"
    subsample = 1000           # paper suite: at most this many test images per iterative attack
    workers = 2                # evaluation processes (default: one per core)

    [sleep]                    # name = {preset = ..., any sleep key = value}
    sleep-fgsm = { preset = "mnist-fgsm" }

    [defences]                 # name = {parameters}; names from sleepnet.defences.DEFENCES
    distillation = {}

For every seed: train the control, sleep it with each variant, train each
defence from it, and evaluate them all on the same test images (in worker
processes, while the next seed trains). Then
aggregate over seeds (mean, std, paired t-test of each model against the
control) and write ``metrics.json``, ``results.csv``, ``report.md`` and
``figures/`` into the output folder, atomically.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tomllib

from .config import apply_overrides, load_preset, toml_value
from .errors import SleepnetError
from .fsio import atomic_dir, write_json
from .threads import pinned

KNOWN = {"dataset", "recipe", "hidden", "seeds", "suite", "subsample", "epochs", "name", "description",
         "workers"}


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
        overrides = [f"{k}={toml_value(v)}" for k, v in entry.items()]
        sleeps[name] = apply_overrides(load_preset(preset), overrides)
    return {
        "name": exp.get("name", path.stem), "dataset": exp.get("dataset", "mnist"),
        "recipe": exp.get("recipe", "paper"), "hidden": exp.get("hidden"), "epochs": exp.get("epochs"),
        "seeds": [int(s) for s in exp.get("seeds", [0])], "suite": exp.get("suite", "paper"),
        "subsample": int(exp.get("subsample", 1000)), "workers": exp.get("workers"), "sleep": sleeps,
        "defences": {k: dict(v) for k, v in spec.get("defences", {}).items()},
    }  # fmt: skip


def run_experiment(path: Path, out: Path, *, quick: bool = False, overwrite: bool = False,
                   progress: bool = True, data_dir: str | None = None,
                   workers: int | None = None, seeds: list[int] | None = None) -> dict:  # fmt: skip
    """Run the experiment of ``path`` into ``out``; returns the metrics.

    Each model is saved as soon as it is trained (or slept) and evaluated by
    ``workers`` processes (default: the experiment's ``workers``, else one per
    core), each with ``cores // workers`` torch threads, while the next models
    train: the decision-based attacks gain little from a second thread and
    almost 2x from a second process. Results do not depend on the number of
    workers beyond float rounding in torch's threaded matrix products (which
    the decision-based attacks, walking along the boundary, can amplify).
    With a pool, training runs on ``cores - workers`` torch threads (at least
    one): torch's threads wait on each other, and with two training threads
    beside two busy workers on two cores, a seed of the MNIST experiment took
    21 to 33 minutes to train, against about 8 on one thread. Training's float rounding, and
    so its weights, can depend on that thread count (``sleepnet train`` uses
    torch's default).
    ``seeds`` replaces the file's seeds.
    """
    import torch

    from .data import load_dataset
    from .defences import DEFENCES
    from .models import save_model
    from .report import aggregate, write_report
    from .sleep_phase import sleep
    from .training import get_recipe, train
    from .workflow import activation_record

    exp = load_experiment(path)
    if seeds is not None:
        exp["seeds"] = list(seeds)
    if Path(out).exists() and not overwrite:
        raise SleepnetError(f"{out} already exists (use --force to replace it)")
    workers = int(workers or exp["workers"] or os.cpu_count() or 1)
    if workers < 1:
        raise SleepnetError(f"workers must be at least 1, got {workers}")
    data = load_dataset(exp["dataset"], data_dir)
    recipe = get_recipe(exp["recipe"], epochs=exp["epochs"])
    if exp["hidden"] is not None:
        recipe = get_recipe(exp["recipe"], epochs=exp["epochs"],
                            sizes=(recipe.sizes[0], *exp["hidden"], recipe.sizes[-1]))  # fmt: skip
    options = {"subsample": exp["subsample"], "quick": quick} if exp["suite"] == "paper" else {}
    cores = os.cpu_count() or 1
    train_threads = max(1, cores - workers) if workers > 1 else torch.get_num_threads()
    timing = {"train_s": {}, "workers": workers, "train_threads": train_threads}
    t_all = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp, Evaluator(exp, data_dir, options, workers) as ev, \
            pinned(train_threads):  # fmt: skip
        for seed in _bar(exp["seeds"], progress, "train"):
            t0 = time.perf_counter()
            control, record = train(data, recipe, seed=seed, progress=progress)
            record["activation_max"] = activation_record(control, data)
            ev.submit(seed, "control", save_model(control, tmp / f"seed{seed}" / "control", record))
            for name, config in exp["sleep"].items():
                result = sleep(control, config.replace(seed=seed), data.x_train, progress=progress,
                               max_activation=np.asarray(record["activation_max"]["values"]))  # fmt: skip
                folder = save_model(result.model, tmp / f"seed{seed}" / name,
                                    {"kind": "slept", "recipe": record["recipe"], "dataset": data.record(),
                                     "seed": seed, "sleep": result.summary()})  # fmt: skip
                ev.submit(seed, name, folder)
            for name, params in exp["defences"].items():
                model, rec = DEFENCES[name](**params).apply(control, record, data, seed)
                ev.submit(seed, name, save_model(model, tmp / f"seed{seed}" / name, rec))
            timing["train_s"][str(seed)] = time.perf_counter() - t0
        results = ev.results(progress)
        timing["total_s"] = time.perf_counter() - t_all
        timing["evaluate_s"] = {f"seed{k[0]}/{k[1]}": r["evaluate_s"] for k, r in results.items()}
        per_seed = {seed: {name: res for (s, name), res in results.items() if s == seed}
                    for seed in exp["seeds"]}  # fmt: skip
        metrics = {
            "experiment": {k: v for k, v in exp.items() if k not in ("sleep",)}
            | {"sleep": {k: c.to_dict() for k, c in exp["sleep"].items()}, "quick": quick},
            "dataset": data.record(),
            "timing": timing,
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "aggregate": aggregate(per_seed),
        }
        write_json(tmp / "metrics.json", metrics)
        write_report(metrics, tmp)
    return metrics


_WORKER: dict = {}


def _worker_init(dataset: str, data_dir: str | None, threads: int | None) -> None:
    import torch

    from .data import load_dataset

    if threads is not None:
        torch.set_num_threads(threads)
    _WORKER["data"] = load_dataset(dataset, data_dir)


def _evaluate_one(job: tuple, suite: str, seed: int, options: dict) -> tuple:
    from .evaluation import evaluate_model
    from .models import load_model

    key, folder = job
    model, record = load_model(folder)
    t0 = time.perf_counter()
    res = evaluate_model(model, _WORKER["data"], record["recipe"]["loss"], suite, seed, **options)
    return key, res | {"evaluate_s": time.perf_counter() - t0}


class Evaluator:
    """Evaluates saved models as they come: in this process (``workers=1``) or in a pool of
    ``workers`` processes that works while the next models train."""

    def __init__(self, exp: dict, data_dir, options: dict, workers: int) -> None:
        self.exp, self.data_dir, self.options, self.workers = exp, data_dir, options, workers
        self.pending: list = []  # (key, folder) or futures
        self.pool = None

    def __enter__(self) -> Evaluator:
        if self.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            init = (self.exp["dataset"], self.data_dir, threads)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                            initializer=_worker_init, initargs=init)  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is None:
            return
        if exc[0] is not None:  # interrupted or failed: stop the workers now, not after their jobs
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=exc[0] is not None)

    def submit(self, seed: int, name: str, folder: Path) -> None:
        task = ((seed, name), str(folder))
        if self.pool is None:
            self.pending.append(task)
        else:
            self.pending.append(self.pool.submit(_evaluate_one, task, self.exp["suite"], seed, self.options))

    def results(self, progress: bool) -> dict:
        """``{(seed, name): results}`` in the order the models were submitted."""
        bar = _bar(None, progress, "evaluate", total=len(self.pending))
        out = {}
        if self.pool is None:
            _worker_init(self.exp["dataset"], self.data_dir, None)
            for task in self.pending:
                key, res = _evaluate_one(task, self.exp["suite"], task[0][0], self.options)
                out[key] = res
                bar.update(1)
        else:
            from concurrent.futures import as_completed

            done = dict(fut.result() for fut in _updating(as_completed(self.pending), bar))
            out = {key: done[key] for key in (f.result()[0] for f in self.pending)}
        bar.close()
        return out


def _updating(items, bar):
    for item in items:
        bar.update(1)
        yield item


def _bar(items, enabled, desc, total=None):
    from tqdm.auto import tqdm

    if items is None:
        return tqdm(total=total, desc=desc, leave=False, disable=not enabled)
    return tqdm(items, desc=desc, leave=False) if enabled else items
