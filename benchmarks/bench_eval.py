"""Evaluation cost: seconds per attack per 1000 test images on the paper network, side by side.

    python benchmarks/bench_eval.py                    # 1000 images, every attack once
    python benchmarks/bench_eval.py --n 200 --repeat 3 # medians of 3 runs on 200 images

The model is the MNIST paper network 784-1200-1200-10 (paper recipe, seed 0,
``runs/bench/ann``, trained if missing). Each attack runs at one budget (L-inf
0.1, L2 1.5; the decision attacks and DeepFool give their whole curve in one
run) on the first ``--n`` test images of the fixed permutation, on
``--threads`` torch threads; the table gives the median wall time of
``--repeat`` runs, that time scaled to 1000 images, and robust accuracy (so a
fast attack that does nothing shows). Scaling to 1000 images is linear; Square
and the decision attacks have a per-query overhead, so for them measure at
``--n 1000``. Results go to ``benchmarks/results/eval_cpu.txt`` with
``--save`` (``eval_cpu-<names>.txt`` with ``--only``). ``hopskipjump`` and
``boundary`` are ours, batched over images; ``hopskipjump-art`` and
``boundary-art`` are ART's, one image at a time, with the same settings.
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

from sleepnet.data import load_dataset
from sleepnet.evaluation import subsample_indices
from sleepnet.evaluation.curve import attack_curve
from sleepnet.models import load_model
from sleepnet.workflow import train_to_folder

ROOT = Path(__file__).resolve().parents[1]

#: (label, attack, norm, budgets, settings): the standard suite's attacks and the paper suite's
ROWS = (
    ("fgsm (L-inf, 1 step)", "fgsm", "inf", (0.1,), {}),
    ("pgd L-inf 40 steps", "pgd", "inf", (0.1,), {"n_steps": 40}),
    ("apgd-ce L-inf 100", "apgd-ce", "inf", (0.1,), {}),
    ("apgd-t L-inf 9x100", "apgd-t", "inf", (0.1,), {}),
    ("fab-t L-inf 9x100", "fab-t", "inf", (0.1,), {}),
    ("square L-inf 5000 q", "square", "inf", (0.1,), {}),
    ("autoattack L-inf", "autoattack", "inf", (0.1,), {}),
    ("autoattack L2", "autoattack", "2", (1.5,), {}),
    ("deepfool (curve)", "deepfool", "2", (1.5,), {}),
    ("cw-l2 9x1000 (curve)", "cw-l2", "2", (1.5,), {"binary_search_steps": 9}),
    ("hopskipjump 20 it (curve)", "hopskipjump", "2", (1.5,), {"max_iter": 20, "max_eval": 1000}),
    ("hopskipjump-art (ART's)", "hopskipjump-art", "2", (1.5,), {"max_iter": 20, "max_eval": 1000}),
    ("boundary 1000 it (curve)", "boundary", "2", (1.5,), {"max_iter": 1000}),
    ("boundary-art (ART's)", "boundary-art", "2", (1.5,), {"max_iter": 1000}),
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", help="comma-separated attack names")
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = ROOT / "runs" / "bench" / "ann"
    if not model_dir.exists():
        train_to_folder("mnist", "paper", 0, model_dir, progress=False)
    model, _ = load_model(model_dir)
    data = load_dataset("mnist")
    idx = subsample_indices(len(data.x_test), args.n)
    x, y = data.x_test[idx], data.y_test[idx]
    only = set(args.only.split(",")) if args.only else None
    lines = [f"# evaluation cost, paper network, {args.n} images, {args.threads} torch thread(s), "
             f"median of {args.repeat}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
             f"{'attack':28}{'s (median)':>12}{'s / 1000 img':>14}{'robust acc.':>13}"]  # fmt: skip
    print("\n".join(lines), flush=True)
    for label, name, norm, budgets, settings in ROWS:
        if only and name not in only:
            continue
        times, res = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = attack_curve(model, x, y, name, norm, budgets, image_shape=(1, 28, 28), **settings)
            times.append(time.perf_counter() - t)
        med = float(np.median(times))
        acc = next(iter(res["robust_accuracy"].values()))
        line = f"{label:28}{med:>12.1f}{med * 1000 / args.n:>14.0f}{acc:>13.3f}"
        lines.append(line)
        print(line, flush=True)
    if args.save:
        out = ROOT / "benchmarks" / "results" / (f"eval_cpu-{'-'.join(sorted(only))}.txt" if only
                                                   else "eval_cpu.txt")  # fmt: skip
        out.write_text("\n".join(lines) + "\n")
        print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
