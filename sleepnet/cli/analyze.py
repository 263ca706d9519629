"""``sleepnet analyze MODEL... -o DIR [--geometry]``: weight, activation, Jacobian and geometry
analyses, models side by side."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_common


def add_parser(subparsers):
    """Add ``analyze MODEL... -o DIR [--json FILE] [--n N] [--only NAMES]``; returns its parser."""
    p = add_command(subparsers, "analyze", "weight, activation and Jacobian statistics, models side by side")
    p.add_argument("models", nargs="+", type=Path, help="model folders (one dataset)")
    p.add_argument("--n", type=int, default=500, help="test images (the first N of the fixed permutation)")
    p.add_argument("--only", help="comma-separated analyses (default: all): weights, activations, jacobian")
    p.add_argument("--json", type=Path, help="also write the result to this file")
    p.add_argument("--geometry", action="store_true",
                   help="also the representation geometry per layer (MFTMA of class and exemplar manifolds, "
                   "clean and adversarial; minutes per model)")  # fmt: skip
    p.add_argument("--draws", type=int, help="noise draws per exemplar manifold of a stochastic model "
                   "(default: 50, the images per class manifold)")  # fmt: skip
    add_common(p)
    return p


def run(args) -> int:
    """Analyse ``args.models`` into ``args.output``; prints a table per model; returns 0."""
    from ..workflow import analyze_to_folder

    only = tuple(s for s in args.only.split(",") if s) if args.only else None
    res = analyze_to_folder(args.models, args.output, n=args.n, json_path=args.json, analyses=only,
                            data_dir=args.data_dir, dataset=args.dataset, overwrite=args.force,
                            geometry=args.geometry, draws=args.draws)  # fmt: skip
    for label, r in res["models"].items():
        print(f"{label}:")
        for layer in (r.get("weights") or {}).get("layers", []):
            print(f"  {layer['layer']:<12} weights std {layer['std']:.4f} kurtosis {layer['kurtosis']:8.2f}")
        for layer in (r.get("activations") or {}).get("layers", []):
            print(f"  {layer['layer']:<16} saturated {layer['saturated']:.3f} dead {layer['dead']:.3f}")
        if "jacobian" in r:
            j = r["jacobian"]
            print(f"  jacobian: top singular value {j['top']:.4g}, participation ratio "
                  f"{j['participation_ratio']:.2f}")  # fmt: skip
        if "geometry" in r:
            g = r["geometry"]
            for kind, res in g["manifolds"].items():
                print(f"  geometry {kind:<19} capacity " + " ".join(f"{v:.3f}" for v in res["capacity"]))
            for key in ("separation", "separation_draws"):
                if key in g:
                    print(f"  geometry clean/adv {key:<16} d' "
                          + " ".join("-" if v is None else f"{v:.2f}" for v in g[key]))  # fmt: skip
    print(f"-> {args.output}")
    return 0
