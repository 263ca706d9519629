"""Cost of the saturation defence and of ``analyze``, side by side with their baselines.

    python benchmarks/bench_saturation.py [--repeat 3] [--threads 2] [--save]

Two tables, medians of ``--repeat`` runs on ``--threads`` torch threads:

1. training one epoch of MNIST (60000 images) for ``relu-mlp`` and ``sigmoid-mlp``
   without and with the saturation penalty (lambda 1e-2): the penalty's cost is the
   ratio (the issue's bound: at most 2x);
2. ``analysis.analyze`` of one MLP (the paper network, ``runs/bench/ann``, trained if
   missing) on 500 test images, every analysis, and each analysis alone (bound: 30 s).

Results go to ``benchmarks/results/saturation_cpu.txt`` with ``--save``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sleepnet.analysis import ANALYSES, analyze
from sleepnet.data import load_dataset
from sleepnet.evaluation import subsample_indices
from sleepnet.models import load_model
from sleepnet.training import fit, get_recipe, init_model
from sleepnet.workflow import train_to_folder

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        lines = bench(args)
    finally:
        torch.set_num_threads(previous)
    if args.save:
        out = ROOT / "benchmarks" / "results" / "saturation_cpu.txt"
        out.write_text("\n".join(lines) + "\n")
        print(f"-> {out}")
    return 0


def bench(args) -> list[str]:
    data = load_dataset("mnist")
    lines = [f"# saturation defence and analyze, {args.threads} torch thread(s), median of {args.repeat}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "",
             f"{'training, 1 epoch of MNIST':34}{'plain s':>10}{'penalty s':>11}{'ratio':>8}"]  # fmt: skip
    print("\n".join(lines), flush=True)
    for name in ("relu-mlp", "sigmoid-mlp"):
        row = []
        for lam in (0.0, 1e-2):
            recipe = get_recipe(name, epochs=1, saturation=lam)
            row.append(median_time(lambda r=recipe: fit(init_model(r, 0), r, data.x_train, data.y_train, 0),
                                   args.repeat))  # fmt: skip
        lines.append(f"{name:34}{row[0]:>10.1f}{row[1]:>11.1f}{row[1] / row[0]:>8.2f}")
        print(lines[-1], flush=True)
    model_dir = ROOT / "runs" / "bench" / "ann"
    if not model_dir.exists():
        train_to_folder("mnist", "paper", 0, model_dir, progress=False)
    model, _ = load_model(model_dir)
    idx = subsample_indices(len(data.x_test), 500)
    lines += ["", f"{'analyze, paper MLP, 500 images':34}{'s':>10}"]
    for names in [None] + [(n,) for n in ANALYSES.names()]:
        t = median_time(lambda ns=names: analyze({"m": model}, data.x_test, idx, ns), args.repeat)
        lines.append(f"{'every analysis' if names is None else names[0]:34}{t:>10.1f}")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    sys.exit(main())
