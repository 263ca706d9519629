"""``sleepnet evaluate MODEL... -o OUT``: robustness of one or more model folders; or one attack
on one model, ``sleepnet evaluate MODEL --attack NAME --norm inf|2 --eps E[,E...] --json FILE``."""

from __future__ import annotations

from pathlib import Path

from ..errors import SleepnetError, UsageError
from .common import add_command, add_common, add_device, device, progress, seed

EPILOG = """One attack: robust accuracy at each budget (an image counts only if classified correctly
clean and not fooled within the budget) on the first N test images of a fixed permutation:

  sleepnet evaluate runs/demo/sleep --attack autoattack --norm inf --eps 0.05,0.1 --n 1000 --json aa.json

Attacks: autoattack (with --version standard|rand), apgd-ce, apgd-dlr, apgd-t, fab-t, square, pgd,
fgsm (L-inf); deepfool, cw-l2, lbfgs (second-order), boundary, hopskipjump (minimal L2: one run
gives every budget)."""


def add_parser(subparsers):
    """Add ``evaluate MODEL... -o OUT`` (and its one-attack form); returns its parser."""
    p = add_command(subparsers, "evaluate", "robustness of one or more model folders", epilog=EPILOG)
    p.add_argument("models", nargs="+", type=Path, help="model folders")
    p.add_argument("--suite", default="quick", help="quick; paper (the sleep paper's attacks and the "
                   "gradient-masking checks); standard (AutoAttack, Square, HopSkipJump at the "
                   "default budgets); audio, audio-quick (waveform models: docs/audio.md)")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="seed of the noise draws and the attacks")
    p.add_argument("--subsample", type=int, default=1000,
                   help="paper and standard suites: at most this many test images per attack")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="paper and standard suites: CI-sized settings")
    p.add_argument("--no-eot", action="store_true", help="evaluate stochastic models naively, to show what "
                   "EOT changes: single noisy passes judged, gradients of one draw (docs/stochastic.md §4)")
    g = p.add_argument_group("one attack (instead of a suite)")
    g.add_argument("--attack", help="the attack to run (see below)")
    g.add_argument("--norm", choices=("inf", "2"), default="inf", help="the threat model's norm")
    g.add_argument("--eps", help="budgets, comma-separated (default: 0.05,0.1,0.2,0.3 for inf, "
                   "0.5,1,1.5,2 for 2)")  # fmt: skip
    g.add_argument("--n", type=int, default=1000, help="test images")
    g.add_argument("--eot-samples", type=int, help="forward passes per gradient (default: the model's "
                   "record, else 20 for a stochastic model and 1 otherwise)")  # fmt: skip
    g.add_argument("--loss", default="cross-entropy", help="the loss pgd and fgsm ascend; also margin, "
                   "dlr, squared (the paper's)")  # fmt: skip
    g.add_argument("--version", help="autoattack: standard or rand (default: rand for a stochastic model, "
                   "as AutoAttack prescribes for randomized defences; standard otherwise and with --no-eot)")
    g.add_argument("--json", type=Path, help="where the result goes (JSON)")
    add_device(p, "the evaluation")
    add_common(p, out=False)
    p.add_argument("-o", "--output", type=Path, help="output folder (suites)")
    p.add_argument("--force", action="store_true", help="replace the output if it exists")
    return p


def suite_options(args) -> dict:
    """The paper and standard suites' ``subsample`` and ``quick`` (nothing for the quick suite), and
    ``eot=False`` for ``--no-eot``."""
    if args.subsample <= 0:
        raise UsageError(f"--subsample must be positive, got {args.subsample}")
    options = {"subsample": args.subsample, "quick": args.quick} if args.suite != "quick" else {}
    return options | ({"eot": False} if args.no_eot else {})


def parse_eps(text: str | None, norm: str) -> tuple[float, ...]:
    """``--eps 0.05,0.1``: finite numbers >= 0; the default budgets of ``norm`` if not given."""
    from ..evaluation.robust import DEFAULT_BUDGETS, check_budgets

    if text is None:
        return DEFAULT_BUDGETS[norm]
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise UsageError(f"--eps expects numbers like 0.05,0.1, got {text!r}") from None
    try:
        return check_budgets(values)
    except SleepnetError as e:
        raise UsageError(f"--eps {text}: {e}") from None


def run_attack(args) -> int:
    """One attack on one model into ``--json``; prints the curve; returns 0."""
    from ..workflow import attack_to_file

    if len(args.models) != 1:
        raise UsageError("--attack takes one model folder")
    if args.json is None:
        raise UsageError("--attack needs --json FILE for the result")
    if args.no_eot and args.version == "rand":
        raise UsageError("--no-eot evaluates without EOT: it cannot go with --version rand (EOT 20)")
    if args.no_eot and args.eot_samples not in (None, 1):
        raise UsageError(f"--no-eot takes gradients of one draw: it cannot go with "
                         f"--eot-samples {args.eot_samples}")
    params = {"version": args.version} if args.attack == "autoattack" and args.version else {}
    res = attack_to_file(args.models[0], args.json, attack=args.attack, norm=args.norm,
                         eps=parse_eps(args.eps, args.norm), n=args.n, eot_samples=args.eot_samples,
                         loss=args.loss, seed=args.seed, data_dir=args.data_dir, dataset=args.dataset,
                         overwrite=args.force, device=device(args), single_draws=args.no_eot,
                         **params)  # fmt: skip
    naive = ", single draws" if res.get("single_draws") else ""
    print(f"{res['attack']} (L{res['norm']}, loss {res['loss']}, {res['n']} images, "
          f"EOT {res['eot_samples']}{naive}): clean {res['clean_accuracy']:.3f}")  # fmt: skip
    for eps, acc in res["robust_accuracy"].items():
        print(f"  eps {eps:>6}  robust accuracy {acc:.3f}")
    print(f"-> {args.json}")
    return 0


def run(args) -> int:
    """Evaluate the model folders into ``args.output`` and print the tables; returns 0."""
    if args.attack is not None:
        return run_attack(args)
    from ..demo import attack_table, robust_table, table
    from ..workflow import evaluate_to_folder

    if args.output is None:
        raise UsageError("evaluate needs -o OUT (or --attack NAME --json FILE)")
    metrics = evaluate_to_folder(args.models, args.output, suite=args.suite, seed=args.seed,
                                 data_dir=args.data_dir, overwrite=args.force, progress=progress(args),
                                 dataset=args.dataset, device=device(args),
                                 **suite_options(args))  # fmt: skip
    print(table(metrics))
    if args.suite == "paper":
        print(attack_table(metrics))
    elif args.suite != "quick":
        print(robust_table(metrics))
    print(f"-> {args.output}/metrics.json")
    return 0
