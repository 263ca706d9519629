"""Run the reference MFTMA (schung039/neural_manifolds_replicaMFT @ d56eda1,
mftma/manifold_analysis_correlation.py, copied unchanged next to this file as
mftma_reference.py) on one data set.

Run with the reference's own environment (docs/geometry.md says how to make it: Python 3.11,
numpy 1.26.4, scipy 1.13.1, cvxopt 1.3.3, autograd 1.9.1, pymanopt 0.2.4), never sleepnet's:
    REF/venv/bin/python benchmarks/run_mftma_reference.py IN.npz OUT.json \
        --ref-dir REF --kappa 0 --n-t 200 --seed 0 [--n-reps 10]
where REF/mftma_reference.py is the reference file, copied unchanged.

IN.npz must hold X of shape (P, N, M) (P manifolds, N dims, M points).
OUT.json gets the per-manifold arrays (a_Mfull_vec, R_M_vec, D_M_vec),
res_coeff0, KK, summaries (capacity = 1/mean(1/a), radius = mean(R),
dimension = mean(D)) and the wall time of the manifold_analysis_corr call
(data loading and imports excluded).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run reference MFTMA on X of an npz file.")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--kappa", type=float, default=0.0)
    ap.add_argument("--n-t", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-reps", type=int, default=10)
    ap.add_argument("--key", default="X", help="npz key of the (P, N, M) array")
    ap.add_argument("--ref-dir", default=HERE, help="folder holding mftma_reference.py")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    # pymanopt 0.2.4 imports scipy.misc.comb, removed from recent scipy.
    import scipy.misc
    import scipy.special
    scipy.misc.comb = scipy.special.comb
    sys.path.insert(0, args.ref_dir)
    import mftma_reference as ref

    X = np.asarray(np.load(args.input)[args.key], dtype=np.float64)
    if X.ndim != 3:
        raise SystemExit(f"expected X of shape (P, N, M), got {X.shape}")
    P = X.shape[0]

    np.random.seed(args.seed)
    t0 = time.perf_counter()
    a, R, D, res0, KK = ref.manifold_analysis_corr(
        [X[i] for i in range(P)], args.kappa, args.n_t, n_reps=args.n_reps)
    wall = time.perf_counter() - t0
    a, R, D = (np.asarray(v, float) for v in (a, R, D))

    out = {
        "input": os.path.abspath(args.input),
        "shape": list(X.shape),
        "kappa": args.kappa, "n_t": args.n_t, "n_reps": args.n_reps, "seed": args.seed,
        "a_Mfull_vec": a.tolist(), "R_M_vec": R.tolist(), "D_M_vec": D.tolist(),
        "res_coeff0": float(res0), "KK": int(KK),
        "capacity": float(1.0 / np.mean(1.0 / a)),
        "radius": float(np.mean(R)),
        "dimension": float(np.mean(D)),
        "wall_s": wall,
    }
    with open(args.output, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"capacity {out['capacity']:.6f} radius {out['radius']:.6f} "
          f"dimension {out['dimension']:.6f} res_coeff0 {out['res_coeff0']:.6f} "
          f"KK {out['KK']} wall {wall:.2f}s")


if __name__ == "__main__":
    main()
