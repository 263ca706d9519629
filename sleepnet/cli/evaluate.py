"""``sleepnet evaluate MODEL... -o OUT``: robustness of one or more model folders."""

from __future__ import annotations

from pathlib import Path

from ..errors import SleepnetError
from .common import add_command, add_common, add_device, device, progress


def add_parser(subparsers):
    """Add ``evaluate MODEL... -o OUT``; returns its parser."""
    p = add_command(subparsers, "evaluate", "robustness of one or more model folders")
    p.add_argument("models", nargs="+", type=Path, help="model folders")
    p.add_argument("--suite", default="quick", help="quick, or paper (all attacks and the "
                   "gradient-masking checks)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--subsample", type=int, default=1000,
                   help="paper suite: test images for the iterative attacks")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="paper suite: CI-sized attack settings")
    add_device(p, "the evaluation")
    add_common(p)
    return p


def suite_options(args) -> dict:
    """The paper suite's ``subsample`` and ``quick``; nothing for the quick suite."""
    if args.subsample <= 0:
        raise SleepnetError(f"--subsample must be positive, got {args.subsample}")
    return {"subsample": args.subsample, "quick": args.quick} if args.suite == "paper" else {}


def run(args) -> int:
    """Evaluate the model folders into ``args.output`` and print the tables; returns 0."""
    from ..demo import attack_table, table
    from ..workflow import evaluate_to_folder

    metrics = evaluate_to_folder(args.models, args.output, suite=args.suite, seed=args.seed,
                                 data_dir=args.data_dir, overwrite=args.force, progress=progress(args),
                                 dataset=args.dataset, device=device(args),
                                 **suite_options(args))  # fmt: skip
    print(table(metrics))
    if args.suite == "paper":
        print(attack_table(metrics))
    print(f"-> {args.output}/metrics.json")
    return 0
