"""``sleepnet train -o OUT``: train a network (a recipe of ``sleepnet.training``) into a model folder."""

from __future__ import annotations

from ..errors import UsageError
from .common import add_command, add_common, add_device, device, parse_hidden, progress, seed


def add_parser(subparsers):
    """Add ``train -o OUT``; returns its parser."""
    p = add_command(subparsers, "train", "train a network (MLP or CNN) from a recipe")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist, patches, fsdd, fsdd-mel or npz:PATH")  # fmt: skip
    p.add_argument("--recipe", default="paper",
                   help="paper (the ICLR 2020 recipe), standard, relu-mlp, sigmoid-mlp or cnn")  # fmt: skip
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--hidden", help="hidden layer sizes, e.g. 1200,1200 (the recipe's); '' for none")
    p.add_argument("--saturation", type=float, metavar="LAMBDA",
                   help="train with the saturation penalty of Nayebi & Ganguli at this lambda (>= 0)")
    p.add_argument("--schedule", help="the penalty's annealing: constant or linear:F (default linear:0.5)")
    p.add_argument("--noise", help="noise layers on at test time (Dapello et al.): poisson:GAIN or "
                   "gaussian:SIGMA, after every hidden layer (or those of --noise-after)")  # fmt: skip
    p.add_argument("--noise-after", help="comma-separated hidden layers (from 1) the noise follows")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the initial weights, the shuffling and the dropout masks")  # fmt: skip
    add_device(p, "training")
    add_common(p, dataset=False)
    return p


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """``"1,2"`` -> ``(1, 2)``; None for None; one clear error for anything but integers."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--noise-after must be comma-separated layer numbers, got {text!r}") from None


def run(args) -> int:
    """Train a model folder into ``args.output`` and print its test accuracy; returns 0."""
    from .. import workflow

    rec = workflow.train_to_folder(args.dataset, args.recipe, args.seed, args.output,
                                   epochs=args.epochs, hidden=parse_hidden(args.hidden),
                                   data_dir=args.data_dir, overwrite=args.force,
                                   progress=progress(args), device=device(args),
                                   saturation=args.saturation, schedule=args.schedule,
                                   noise=args.noise, noise_after=parse_layers(args.noise_after))  # fmt: skip
    m = rec["metrics"]
    print(f"trained {args.recipe} on {args.dataset}: test accuracy {m['test_accuracy']:.4f} "
          f"in {m['train_time_s']:.1f} s -> {args.output}")  # fmt: skip
    return 0
