"""``sleepnet run EXPERIMENT -o OUT``: an experiment file end to end (control, sleep, defences, report)."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_common, add_device, device, parse_seeds, progress


def add_parser(subparsers):
    """Add ``run EXPERIMENT -o OUT``; returns its parser."""
    p = add_command(subparsers, "run", "an experiment file: control, sleep, defences, seeds, report")
    p.add_argument("experiment", type=Path, help="the experiment TOML file")
    p.add_argument("--quick", action="store_true", help="CI-sized attack settings")
    p.add_argument("--workers", type=int,
                   help="evaluation processes (default: the file's, else one per core)")  # fmt: skip
    p.add_argument("--seeds", help="run these seeds instead of the file's, e.g. 0 or 0,1")
    p.add_argument("--models", help="only these of the file's models, e.g. control,sleep-fgsm (the control "
                                    "is always made and measured)")  # fmt: skip
    p.add_argument("--reuse", type=Path, action="append", default=[], metavar="OTHER",
                   help="another experiment's output (finished, or running: its .OTHER.partial): take its "
                        "models and measures where they are the same units; or another run's --keep copy: "
                        "take its measures where they are the same units (repeatable)")  # fmt: skip
    p.add_argument("--keep", metavar="DIR",  # a str: an empty one is refused, not taken as "."
                   help="copy every measure into DIR as it is finished, and take the measures there where "
                        "they are the same units: a durable copy (e.g. in a repository) from which a run "
                        "resumes on another machine, its models made again")  # fmt: skip
    p.add_argument("--only-measures", metavar="MEASURES",
                   help="a first pass: make only these measures of every model and seed, e.g. "
                        "clean,autoattack-linf,analysis-geometry, keep them and stop without a report; "
                        "the same command without it makes the rest and the report")  # fmt: skip
    add_device(p, "training, defences and evaluation")
    add_common(p, dataset=False)
    return p


def run(args) -> int:
    """Run the experiment file end to end (``sleepnet.experiment.run_experiment``); returns 0."""
    from ..experiment import run_experiment

    out = run_experiment(args.experiment, args.output, quick=args.quick, overwrite=args.force,
                         progress=progress(args), data_dir=args.data_dir, workers=args.workers,
                         seeds=parse_seeds(args.seeds), device=device(args), reuse=args.reuse,
                         keep=args.keep, models=None if args.models is None else args.models.split(","),
                         measures=None if args.only_measures is None else args.only_measures.split(","))
    if "first_pass" in out:
        counts = out["first_pass"]
        print(f"first pass: {counts['done']} measures made, {counts['reused']} kept from before, "
              f"{counts['left']} left: the same command without --only-measures makes them and the report")
    else:
        print(f"-> {args.output}/report.md, metrics.json, results.csv, figures/")
    return 0
