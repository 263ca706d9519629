"""MFTMA: sleepnet's port against the reference code (schung039/neural_manifolds_replicaMFT @ d56eda1),
side by side in one run, on the same data.

    python benchmarks/bench_geometry.py [--repeat 3] [--reference-python PY --reference-dir REF] [--save]

Ours runs its linear algebra on one BLAS thread whatever the environment says
(``threadpoolctl``; the matrices are small, and a second thread only added overhead: 0.62 s
against 0.29 s before it was pinned). ``OPENBLAS_NUM_THREADS`` set for the command holds for the
reference, which runs in a child process; the table says which.

The data: P = 10 manifolds of M = 50 points in N = 1200 dimensions (centres N(0, 1), points
centre + N(0, 1), ``np.random.seed(0)``), kappa 0, n_t 200, n_reps 10: the issue's size. Ours
runs ``--repeat`` times in this process (seeds 0, 1, ...); the reference, if its environment is
given (``--reference-python``, the python of a venv with its pins; ``--reference-dir``, the
folder holding its ``mftma_reference.py``; ``docs/geometry.md``), as many times through
``benchmarks/run_mftma_reference.py``, timing its ``manifold_analysis_corr`` call alone. The
table gives median seconds, the ratio, and each one's capacity, radius and dimension
(means over the runs). ``--save`` writes it to ``benchmarks/results/geometry_cpu.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sleepnet.geometry import manifold_analysis

ROOT = Path(__file__).resolve().parents[1]


def data() -> np.ndarray:
    """``(10, 1200, 50)``: 10 Gaussian clouds around Gaussian centres."""
    np.random.seed(0)
    return np.stack([np.random.randn(1200, 1) + np.random.randn(1200, 50) for _ in range(10)])


def ours(x: np.ndarray, repeat: int) -> tuple[list[float], list[dict]]:
    times, results = [], []
    for seed in range(repeat):
        start = time.perf_counter()
        results.append(manifold_analysis(x, 0.0, 200, seed=seed, n_reps=10))
        times.append(time.perf_counter() - start)
    return times, results


def reference(x: np.ndarray, repeat: int, python: str, ref_dir: str) -> tuple[list[float], list[dict]]:
    times, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "x.npz"
        np.savez(src, X=x)
        for seed in range(repeat):
            out = Path(tmp) / f"ref-{seed}.json"
            subprocess.run([python, str(ROOT / "benchmarks" / "run_mftma_reference.py"), str(src), str(out),
                            "--ref-dir", ref_dir, "--seed", str(seed)], check=True,
                           capture_output=True)  # fmt: skip
            res = json.loads(out.read_text())
            times.append(res["wall_s"])
            results.append(res)
    return times, results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--reference-python", help="python of the reference's environment")
    p.add_argument("--reference-dir", help="folder holding the reference's mftma_reference.py")
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    x = data()
    rows = [("sleepnet", *ours(x, args.repeat))]
    if args.reference_python:
        rows.append(("reference", *reference(x, args.repeat, args.reference_python,
                                             args.reference_dir or str(ROOT / "benchmarks"))))  # fmt: skip
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    lines = [f"MFTMA, P=10 N=1200 M=50 n_t=200 n_reps=10 kappa=0; {platform.machine()}, "
             f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={blas}, Python {sys.version.split()[0]}; "
             f"median of {args.repeat} runs",
             f"{'code':<10} {'median s':>9} {'runs s':>30} {'capacity':>9} {'radius':>8} {'dimension':>9}"]
    for name, times, res in rows:
        cap = np.mean([r["capacity"] for r in res])
        rad = np.mean([r["radius"] for r in res])
        dim = np.mean([r["dimension"] for r in res])
        runs = " ".join(f"{t:.2f}" for t in times)
        lines.append(f"{name:<10} {np.median(times):9.2f} {runs:>30} {cap:9.4f} {rad:8.4f} {dim:9.3f}")
    if len(rows) == 2:
        ratio = np.median(rows[1][1]) / np.median(rows[0][1])
        lines.append(f"speed-up (reference / sleepnet, medians): {ratio:.1f}x")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.save:
        (ROOT / "benchmarks" / "results" / "geometry_cpu.txt").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
