"""``sleepnet demo -o OUT``: train, sleep and evaluate on MNIST end to end."""

from __future__ import annotations

from .common import add_command, add_common, add_device, device, progress, seed


def add_parser(subparsers):
    """Add ``demo -o OUT``; returns its parser."""
    p = add_command(subparsers, "demo", "train, sleep and evaluate on MNIST end to end")
    p.add_argument("--seed", type=seed, default=0, help="seed of training, sleep and evaluation")
    p.add_argument("--preset", default="mnist-fgsm", help="the sleep preset")
    add_device(p, "training and evaluation")
    add_common(p, dataset=False)
    return p


def run(args) -> int:
    """Run the demo (``sleepnet.demo.run_demo``) and print its table and timings; returns 0."""
    from ..demo import run_demo, table

    metrics = run_demo(args.output, seed=args.seed, preset=args.preset, overwrite=args.force,
                       progress=progress(args), data_dir=args.data_dir, device=device(args))  # fmt: skip
    print(table(metrics))
    t = metrics["timings"]
    print(f"sleep: {t['sleep_simulation_s']:.2f} s simulated "
          f"({metrics['sleep']['steps_per_second']:.0f} steps/s); train {t['train_s']:.1f} s, "
          f"evaluate {t['evaluate_s']:.1f} s -> {args.output}")  # fmt: skip
    return 0
