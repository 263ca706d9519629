"""``sleepnet geometry --manifolds FILE.npz --json OUT``: MFTMA of manifolds stored as an array."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_force, seed


def add_parser(subparsers):
    """Add ``geometry --manifolds FILE.npz [--kappa K] [--n-t N] [--seed S] --json OUT``."""
    p = add_command(subparsers, "geometry", "manifold capacity, radius and dimension (MFTMA) of manifolds "
                    "in an .npz file")  # fmt: skip
    p.add_argument("--manifolds", type=Path, required=True,
                   help="an .npz holding X of shape (P, N, M): P manifolds of M points in N dimensions")
    p.add_argument("--kappa", type=float, default=0.0, help="margin")
    p.add_argument("--n-t", type=int, default=200, help="Gaussian vectors per manifold")
    p.add_argument("--n-reps", type=int, default=10, help="random restarts of the centre-correlation removal")
    p.add_argument("--seed", type=seed, default=0, help="seeds every draw")
    p.add_argument("--simulated", action="store_true",
                   help="also the simulated capacity: random dichotomies checked for linear separability")
    p.add_argument("--json", type=Path, required=True, help="write the result to this file")
    add_force(p, "replace the JSON file if it exists")
    return p


def run(args) -> int:
    """Analyse ``args.manifolds`` into ``args.json``; prints the summary; returns 0."""
    from ..workflow import geometry_to_file

    res = geometry_to_file(args.manifolds, args.json, kappa=args.kappa, n_t=args.n_t, n_reps=args.n_reps,
                           seed=args.seed, simulated=args.simulated, overwrite=args.force)  # fmt: skip
    s = res["settings"]
    print(f"P={s['P']} manifolds, N={s['N']}, M={s['M']}, kappa={s['kappa']}: "
          f"capacity {res['capacity']:.4f}, radius {res['radius']:.4f}, dimension {res['dimension']:.3f}, "
          f"centre correlation {res['center_correlation']:.4f}, "
          f"participation ratio {res['participation_ratio']:.3f}")  # fmt: skip
    if "simulated" in res:
        sim = res["simulated"]["capacity"]
        print(f"simulated capacity: {'below P / rank' if sim is None else f'{sim:.4f}'}")
    print(f"-> {args.json}")
    return 0
