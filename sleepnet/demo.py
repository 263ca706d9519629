"""``make demo``: the main job end to end on MNIST, into one folder.

fetch MNIST -> train (paper recipe) -> sleep (preset ``mnist-fgsm``) ->
quick evaluation of both -> ``metrics.json``, ``figures/*.png`` and a table.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .config import load_preset
from .evaluation.masking import failed_lines
from .fsio import atomic_dir, read_json, write_json
from .workflow import evaluate_to_folder, plot_folder, sleep_to_folder, train_to_folder


def run_demo(out: Path, seed: int = 0, preset: str = "mnist-fgsm", overwrite: bool = False,
             progress: bool = True, data_dir: str | None = None, device=None) -> dict:  # fmt: skip
    """Write ``out/{control,sleep}`` model folders, ``out/metrics.json`` and ``out/figures``.

    Training, scale factors and evaluation run on ``device`` (default cpu); sleep on Numba.
    """
    from .data import fetch_mnist

    out = Path(out)
    times = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        t = time.perf_counter()
        if data_dir is None:
            fetch_mnist(quiet=not progress)
        times["fetch_s"] = time.perf_counter() - t
        t = time.perf_counter()
        train_to_folder("mnist", "paper", seed, tmp / "control", data_dir=data_dir, progress=progress,
                        device=device)  # fmt: skip
        times["train_s"] = time.perf_counter() - t
        t = time.perf_counter()
        config = load_preset(preset).replace(seed=seed)
        slept = sleep_to_folder(tmp / "control", config, tmp / "sleep", data_dir=data_dir,
                                progress=progress, parent_path=out / "control", device=device)  # fmt: skip
        times["sleep_total_s"] = time.perf_counter() - t
        times["sleep_simulation_s"] = slept["sleep"]["wall_time_s"]
        t = time.perf_counter()
        evaluate_to_folder([tmp / "control", tmp / "sleep"], tmp / "eval", seed=seed,
                           data_dir=data_dir, progress=progress, device=device)  # fmt: skip
        times["evaluate_s"] = time.perf_counter() - t
        metrics = read_json(tmp / "eval" / "metrics.json")
        shutil.move(str(tmp / "eval" / "figures"), str(tmp / "figures"))
        shutil.rmtree(tmp / "eval")
        plot_folder(tmp / "sleep", tmp / "figures", parent=tmp / "control")
        metrics["sleep"] = {k: slept["sleep"][k] for k in ("config", "conversion", "spikes",
                                                           "weight_change", "steps_per_second")}  # fmt: skip
        metrics["timings"] = times
        for name in metrics["models"]:
            metrics["models"][name]["path"] = str(out / name)
        write_json(tmp / "metrics.json", metrics)
    return metrics


def table(metrics: dict) -> str:
    """The demo's text table: clean, noise, blur accuracy and FGSM median epsilon per model."""
    rows = [("clean accuracy", "clean", "{:.4f}"), ("noise (mean acc, var 0-0.9)", "noise", "{:.4f}"),
            ("blur (mean acc, sigma 0-4)", "blur", "{:.4f}"),
            ("FGSM median eps", "fgsm_median_eps", "{:.3f}")]  # fmt: skip
    names = list(metrics["models"])
    lines = [f"{'':30}" + "".join(f"{n:>12}" for n in names)]
    for label, key, fmt in rows:
        vals = "".join(f"{fmt.format(metrics['models'][n]['summary'][key]):>12}" for n in names)
        lines.append(f"{label:30}{vals}")
    return "\n".join(lines)


def robust_table(metrics: dict) -> str:
    """Per model: worst-case robust accuracy at each budget of each norm (the standard suite)."""
    names = list(metrics["models"])
    first = metrics["models"][names[0]]["results"].get("robust", {})
    lines = []
    for norm, r in first.items():
        budgets = list(r["robust_accuracy"])
        lines.append(f"robust accuracy, L{norm}, worst case over {', '.join(r['attacks'])} ({r['n']} images)")
        lines.append(f"{'model':22}" + "".join(f"{'eps ' + e:>12}" for e in budgets))
        for n in names:
            acc = metrics["models"][n]["results"]["robust"][norm]["robust_accuracy"]
            lines.append(f"{n:22}" + "".join(f"{acc[e]:>12.3f}" for e in budgets))
    return "\n".join(lines)


def attack_table(metrics: dict) -> str:
    """Per attack and model: success rate, median relative L2 perturbation, accuracy; masking verdict."""
    from .report import ATTACKS

    names = list(metrics["models"])
    lines = [f"{'attack (subsample)':22}" + "".join(f"{n:>30}" for n in names),
             f"{'':22}" + "".join(f"{'success  med.L2  accuracy':>30}" for _ in names)]  # fmt: skip
    for row in ATTACKS:
        cells = []
        for n in names:
            r = metrics["models"][n]["results"].get(row)
            cells.append(f"{r['success_rate']:>9.3f}{r['median_rel_l2']:>8.4f}{r['accuracy']:>10.3f}"
                         if r else f"{'-':>27}")  # fmt: skip
        lines.append(f"{row:22}" + "".join(f"{c:>30}" for c in cells))
    for n in names:
        m = metrics["models"][n]["results"].get("masking")
        if m is not None:
            verdict = "; ".join(failed_lines(m)) if m["masked"] else "no sign of gradient masking"
            lines.append(f"{n}: {verdict}")
    return "\n".join(lines)
