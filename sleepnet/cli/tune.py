"""``sleepnet tune {run,export,report}``: search sleep configs with Optuna, export a trial, report.

``sleepnet tune MODEL -o OUT ...``, without an action word, is ``sleepnet tune run
MODEL -o OUT ...`` (``rewrite_argv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError
from .common import add_command, add_data_dir, add_force, add_output, add_quiet, progress, seed

ACTIONS = ("run", "export", "report")


def rewrite_argv(argv: list[str]) -> list[str]:
    """``tune MODEL ...`` -> ``tune run MODEL ...``: any word after ``tune`` but an action or -h."""
    if argv[:1] == ["tune"] and len(argv) > 1 and argv[1] not in (*ACTIONS, "-h", "--help"):
        return ["tune", "run", *argv[1:]]
    return argv


def add_parser(subparsers):
    """Add ``tune`` and its actions ``run``, ``export`` and ``report``; returns the ``tune`` parser."""
    summary = "search sleep configs with Optuna (multi-objective by default)"
    p = add_command(subparsers, "tune", summary, description=f"{summary}, export a trial, report a "
                    "study. `sleepnet tune MODEL ...` is `sleepnet tune run MODEL ...`.")  # fmt: skip
    sub = p.add_subparsers(dest="tune_command", required=True, metavar="{run,export,report}")
    p_run = add_command(sub, "run", "search sleep configs for MODEL (also: `sleepnet tune MODEL ...`)")
    _search_options(p_run)
    _worker_options(p_run)
    _add_export(sub)
    _add_report(sub)
    return p


def _search_options(p) -> None:
    p.add_argument("model", type=Path, help="the model folder to tune sleep for")
    p.add_argument("--objective", default="fgsm", help="fgsm, noise, blur, pgd, apgd, boundary, or for "
                   "spoken digits white-noise or babble (robustness measure to maximise beside clean "
                   "accuracy)")  # fmt: skip
    p.add_argument("--trials", type=int, default=40, help="finished trials the study should hold")
    p.add_argument("--preset", help="the preset the search space is centred on "
                   "(default: mnist-fgsm; patches for a Patches model, fsdd for spoken digits)")  # fmt: skip
    p.add_argument("--space", type=Path, help="TOML file with a [space] table over the default ranges")
    p.add_argument("--single", action="store_true",
                   help="TPE on the objective alone, with the clean-accuracy constraint")  # fmt: skip
    p.add_argument("--max-drop", type=float, default=0.02, help="clean-accuracy budget")
    p.add_argument("--validation", type=int, default=2000, help="validation images from the training set")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the validation split, the sleep runs and the samplers")  # fmt: skip
    p.add_argument("--collapse", type=float, default=0.2,
                   help="stop a trial whose clean accuracy falls this far below the control's")  # fmt: skip
    p.add_argument("--runaway-hz", type=float, default=200.0,
                   help="stop a trial where a layer's mean rate exceeds this")  # fmt: skip
    p.add_argument("--population", type=int, default=16, help="NSGA-II population size")
    p.add_argument("--all-layers", action="store_true", help="stop a trial where any layer stays silent "
                   "(default: where hidden layer 1 does)")  # fmt: skip


def _worker_options(p) -> None:
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--storage", help="database URL shared by workers on many machines "
                   "(default: sqlite in the output folder)")  # fmt: skip
    p.add_argument("--study", default="sleepnet", help="study name in the storage")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between worker heartbeats")
    p.add_argument("--grace", type=int, default=60,
                   help="seconds without a heartbeat before a trial is failed and retried")  # fmt: skip
    add_data_dir(p)
    add_quiet(p, help="no per-trial lines")
    add_output(p, help="output folder (holds study.db unless --storage; resumed if it exists)")


def _add_study(p) -> None:
    """``STUDY`` (a folder or storage URL) and ``--study NAME``: which study to read."""
    p.add_argument("study_path", metavar="STUDY", help="the tuning output folder, or a storage URL")
    p.add_argument("--study", default="sleepnet", help="study name in the storage")


def _add_export(sub) -> None:
    p = add_command(sub, "export", "a trial's config as a preset TOML "
                    "(`sleepnet tune export STUDY --trial N -o FILE`)")  # fmt: skip
    _add_study(p)
    p.add_argument("--trial", type=int, required=True, help="the trial's number")
    add_output(p, help="the TOML file to write")
    add_force(p, help="replace the file if it exists")


def _add_report(sub) -> None:
    p = add_command(sub, "report", "Pareto front, trials table, and with --test the chosen configs "
                    "on the test set (`sleepnet tune report STUDY`)")  # fmt: skip
    _add_study(p)
    p.add_argument("--test", action="store_true", help="evaluate control, preset and the best trial "
                   "within the clean-accuracy budget on the test set (quick suite)")  # fmt: skip
    add_data_dir(p)
    add_output(p, help="report folder (default: STUDY, if a folder)", required=False)


def run(args) -> int:
    """Run ``tune run``, ``tune export`` or ``tune report`` as ``args.tune_command`` says; returns 0."""
    {"run": _search, "export": _export, "report": _report}[args.tune_command](args)
    return 0


def _export(args) -> None:
    from .. import tuning
    from ..tuning.report import storage_url

    path = tuning.export_trial(args.study, storage_url(args.study_path), args.trial, args.output,
                               overwrite=args.force)  # fmt: skip
    print(f"trial {args.trial} -> {path} (sleepnet sleep MODEL --config {path} -o OUT)")


def _report(args) -> None:
    from .. import tuning
    from ..tuning.report import storage_url

    out = args.output or (None if "://" in args.study_path else Path(args.study_path))
    if out is None:
        raise UsageError("tune report on a storage URL needs -o FOLDER")
    summary = tuning.write_report(args.study, storage_url(args.study_path), out, test=args.test,
                                  data_dir=args.data_dir)  # fmt: skip
    print(f"{sum(summary['states'].values())} trials -> {out}/report.md, pareto.png, trials.csv")


def _default_preset(model: Path) -> str:
    """mnist-fgsm, patches for a model trained on Patches, fsdd for spoken digits."""
    from ..audio.fsdd import KINDS
    from ..models import load_model

    _, meta = load_model(model)
    name = str((meta.get("dataset") or {}).get("name", ""))
    if name == "patches":
        return "patches"
    return "fsdd" if name.split(":")[0] in KINDS else "mnist-fgsm"


def _search(args) -> None:
    from .. import tuning

    settings = tuning.TuneSettings(
        model=str(args.model.resolve()), objective=args.objective,
        preset=_default_preset(args.model) if args.preset is None else args.preset,
        space=tuning.read_space(args.space) if args.space else {}, single=args.single,
        max_drop=args.max_drop, validation=args.validation, seed=args.seed, collapse=args.collapse,
        runaway_hz=args.runaway_hz, population=args.population, all_layers=args.all_layers)  # fmt: skip
    try:
        summary = tuning.tune(settings, args.output, args.trials, workers=args.workers, storage=args.storage,
                              study_name=args.study, heartbeat=args.heartbeat, grace=args.grace,
                              data_dir=args.data_dir, progress=progress(args))  # fmt: skip
    except KeyboardInterrupt:
        print(f"sleepnet: finished trials are kept in study {args.study!r}; the same command resumes it",
              file=sys.stderr)  # fmt: skip
        raise
    states = ", ".join(f"{k.lower()} {v}" for k, v in summary["states"].items())
    print(f"study {args.study}: {states}; report -> {args.output}/report.md")
