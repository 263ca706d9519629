"""The ``sleepnet`` command line (``sleepnet --help``).

Bad input gets one line on stderr (``sleepnet: error: ...``) and exit status 2,
never a traceback; set ``SLEEPNET_DEBUG=1`` to see the traceback of an
unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from .errors import SleepnetError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise SleepnetError(f"{self.prog}: {message}")


def _common(p: argparse.ArgumentParser, out: bool = True, dataset: bool = True) -> None:
    p.add_argument("--data-dir", help="folder of IDX files to use instead of the default data source")
    if dataset:
        p.add_argument("--dataset", help="the model's dataset, if its record names none "
                       "(mnist, fashion-mnist, patches, npz:PATH)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    if out:
        p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
        p.add_argument("--force", action="store_true", help="replace the output folder if it exists")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sleepnet", description="Sleep-like plasticity for bias-free ReLU networks.")
    parser.add_argument("--version", action="version", version=f"sleepnet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("data", help="fetch and verify datasets")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("dataset", choices=["mnist", "fashion-mnist"])
    p.add_argument("--data-dir", help="verify this folder of IDX files instead")

    p = sub.add_parser("train", help="train a bias-free ReLU network")
    p.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, patches or npz:PATH")
    p.add_argument("--recipe", default="paper", help="paper (the ICLR 2020 recipe) or standard")
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--hidden", help="hidden layer sizes, e.g. 1200,1200 (the recipe's); '' for none")
    p.add_argument("--seed", type=int, default=0)
    _common(p, dataset=False)

    p = sub.add_parser("convert", help="scale factors and summary of the spiking network")
    p.add_argument("model", type=Path)
    p.add_argument("--percentile", type=float, help="use this activation percentile, not the max")
    p.add_argument("--json", type=Path, help="also write the conversion record to this file")
    _common(p, out=False)

    p = sub.add_parser("sleep", help="run a sleep phase on a model folder")
    p.add_argument("model", type=Path)
    p.add_argument("--preset", help="a published preset (see `sleepnet presets`)")
    p.add_argument("--config", type=Path, help="a TOML config (over the preset, if both)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set inc=0.05 --set 'beta=[1,2,3]'")
    p.add_argument("--backend", default="numba", choices=["numba", "numpy", "brian2"])
    _common(p)

    p = sub.add_parser("evaluate", help="robustness of one or more model folders")
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--suite", default="quick", help="quick, or paper (all attacks and the "
                   "gradient-masking checks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--subsample", type=int, default=1000,
                   help="paper suite: test images for the iterative attacks (default 1000)")
    p.add_argument("--quick", action="store_true", help="paper suite: CI-sized attack settings")
    _common(p)

    p = sub.add_parser("plot", help="figures of a slept model or an evaluation folder")
    p.add_argument("folder", type=Path)
    p.add_argument("-o", "--output", type=Path, help="figure folder (default FOLDER/figures)")

    sub.add_parser("presets", help="list the sleep presets")

    p = sub.add_parser("run", help="an experiment file: control, sleep, defences, seeds, report")
    p.add_argument("experiment", type=Path)
    p.add_argument("--quick", action="store_true", help="CI-sized attack settings")
    p.add_argument("--workers", type=int,
                   help="evaluation processes (default: the file's, else one per core)")
    p.add_argument("--seeds", help="run these seeds instead of the file's, e.g. 0 or 0,1")
    _common(p, dataset=False)

    p = sub.add_parser("tune", help="search sleep configs with Optuna (multi-objective by default)")
    p.add_argument("model", type=Path)
    p.add_argument("--objective", default="fgsm", help="fgsm, noise, blur, pgd or boundary (robustness "
                   "measure to maximise beside clean accuracy)")
    p.add_argument("--trials", type=int, default=40, help="finished trials the study should hold")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--preset", help="the preset the search space is centred on "
                   "(default: mnist-fgsm, or patches for a Patches model)")
    p.add_argument("--space", type=Path, help="TOML file with a [space] table over the default ranges")
    p.add_argument("--single", action="store_true",
                   help="TPE on the objective alone, with the clean-accuracy constraint")
    p.add_argument("--max-drop", type=float, default=0.02, help="clean-accuracy budget (default 0.02)")
    p.add_argument("--validation", type=int, default=2000, help="validation images from the training set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--collapse", type=float, default=0.2,
                   help="stop a trial whose clean accuracy falls this far below the control's")
    p.add_argument("--runaway-hz", type=float, default=200.0,
                   help="stop a trial where a layer's mean rate exceeds this")
    p.add_argument("--population", type=int, default=16, help="NSGA-II population size")
    p.add_argument("--all-layers", action="store_true",
                   help="stop a trial where any layer stays silent (default: where hidden layer 1 does)")
    p.add_argument("--storage", help="database URL shared by workers on many machines "
                   "(default: sqlite in the output folder)")
    p.add_argument("--study", default="sleepnet", help="study name in the storage")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between worker heartbeats")
    p.add_argument("--grace", type=int, default=60,
                   help="seconds without a heartbeat before a trial is failed and retried")
    p.add_argument("--data-dir", help="folder of IDX files to use instead of the default data source")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-trial lines")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output folder (holds study.db unless --storage; resumed if it exists)")

    p = sub.add_parser("tune-export", help="`sleepnet tune export STUDY --trial N -o FILE`: "
                       "a trial's config as a preset TOML")
    p.add_argument("study_path", metavar="STUDY", help="the tuning output folder, or a storage URL")
    p.add_argument("--study", default="sleepnet", help="study name in the storage")
    p.add_argument("--trial", type=int, required=True)
    p.add_argument("-o", "--output", required=True, type=Path, help="the TOML file to write")
    p.add_argument("--force", action="store_true", help="replace the file if it exists")

    p = sub.add_parser("tune-report", help="`sleepnet tune report STUDY`: Pareto front, trials table, "
                       "and with --test the chosen configs on the test set")
    p.add_argument("study_path", metavar="STUDY", help="the tuning output folder, or a storage URL")
    p.add_argument("--study", default="sleepnet", help="study name in the storage")
    p.add_argument("--test", action="store_true", help="evaluate control, preset and the best trial "
                   "within the clean-accuracy budget on the test set (quick suite)")
    p.add_argument("--data-dir", help="folder of IDX files to use instead of the default data source")
    p.add_argument("-o", "--output", type=Path, help="report folder (default: STUDY, if a folder)")

    p = sub.add_parser("demo", help="train, sleep and evaluate on MNIST end to end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="mnist-fgsm")
    _common(p, dataset=False)
    return parser


def _suite_options(args) -> dict:
    if args.subsample <= 0:
        raise SleepnetError(f"--subsample must be positive, got {args.subsample}")
    return {"subsample": args.subsample, "quick": args.quick} if args.suite == "paper" else {}


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SleepnetError(f"--seeds expects integers like 0,1,2, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise SleepnetError(f"--seeds expects non-negative integers, got {text!r}")
    return seeds


def _hidden(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SleepnetError(f"--hidden expects sizes like 1200,1200, got {text!r}") from None
    if any(n <= 0 for n in sizes):
        raise SleepnetError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def _version() -> str:
    from . import __version__

    return __version__


def _sleep_config(args):
    from .config import apply_overrides, load_config, load_preset

    if args.preset is None and args.config is None:
        raise SleepnetError("sleep needs --preset or --config")
    config = load_preset(args.preset) if args.preset else None
    if args.config:
        config = load_config(args.config, base=config)
    return apply_overrides(config, args.set)


def run(args) -> int:
    from . import workflow

    progress = not getattr(args, "quiet", False)
    cmd = args.command
    if cmd == "data":
        from .data import fetch_mnist, load_dataset

        if args.dataset == "mnist" and not args.data_dir:
            fetch_mnist(quiet=True)
        data = load_dataset(args.dataset, args.data_dir)
        print(f"{data.name}: {len(data.x_train)} train, {len(data.x_test)} test images verified "
              f"(sha256 {data.sha256[:16]}...)")  # fmt: skip
    elif cmd == "train":
        rec = workflow.train_to_folder(args.dataset, args.recipe, args.seed, args.output,
                                       epochs=args.epochs, hidden=_hidden(args.hidden),
                                       data_dir=args.data_dir,
                                       overwrite=args.force, progress=progress)  # fmt: skip
        m = rec["metrics"]
        print(f"trained {args.recipe} on {args.dataset}: test accuracy {m['test_accuracy']:.4f} "
              f"in {m['train_time_s']:.1f} s -> {args.output}")  # fmt: skip
    elif cmd == "convert":
        _convert(args)
    elif cmd == "sleep":
        config = _sleep_config(args)
        rec = workflow.sleep_to_folder(args.model, config, args.output, backend=args.backend,
                                       data_dir=args.data_dir, overwrite=args.force,
                                       progress=progress, dataset=args.dataset)  # fmt: skip
        _print_sleep(rec, args.output)
    elif cmd == "evaluate":
        metrics = workflow.evaluate_to_folder(args.models, args.output, suite=args.suite,
                                              seed=args.seed, data_dir=args.data_dir,
                                              overwrite=args.force, progress=progress,
                                              dataset=args.dataset,
                                              **_suite_options(args))  # fmt: skip
        from .demo import attack_table, table

        print(table(metrics))
        if args.suite == "paper":
            print(attack_table(metrics))
        print(f"-> {args.output}/metrics.json")
    elif cmd == "plot":
        for path in workflow.plot_folder(args.folder, args.output):
            print(path)
    elif cmd == "run":
        from .experiment import run_experiment

        run_experiment(args.experiment, args.output, quick=args.quick, overwrite=args.force,
                       progress=progress, data_dir=args.data_dir, workers=args.workers,
                       seeds=_seeds(args.seeds))  # fmt: skip
        print(f"-> {args.output}/report.md, metrics.json, results.csv, figures/")
    elif cmd == "presets":
        from .config import load_preset, preset_names

        for name in preset_names():
            c = load_preset(name)
            print(f"{name:20} T={c.T:<6} input={c.input_mode:12} {c.description}")
    elif cmd.startswith("tune"):
        _tune(args, progress)
    elif cmd == "demo":
        from .demo import run_demo, table

        metrics = run_demo(args.output, seed=args.seed, preset=args.preset, overwrite=args.force,
                           progress=progress, data_dir=args.data_dir)  # fmt: skip
        print(table(metrics))
        t = metrics["timings"]
        print(f"sleep: {t['sleep_simulation_s']:.2f} s simulated "
              f"({metrics['sleep']['steps_per_second']:.0f} steps/s); train {t['train_s']:.1f} s, "
              f"evaluate {t['evaluate_s']:.1f} s -> {args.output}")  # fmt: skip
    return 0


def _tune(args, progress: bool) -> None:
    from . import tuning
    from .tuning.report import storage_url

    if args.command == "tune-export":
        path = tuning.export_trial(args.study, storage_url(args.study_path), args.trial, args.output,
                                   overwrite=args.force)  # fmt: skip
        print(f"trial {args.trial} -> {path} (sleepnet sleep MODEL --config {path} -o OUT)")
        return
    if args.command == "tune-report":
        out = args.output or (None if "://" in args.study_path else Path(args.study_path))
        if out is None:
            raise SleepnetError("tune report on a storage URL needs -o FOLDER")
        summary = tuning.write_report(args.study, storage_url(args.study_path), out, test=args.test,
                                      data_dir=args.data_dir)  # fmt: skip
        print(f"{sum(summary['states'].values())} trials -> {out}/report.md, pareto.png, trials.csv")
        return
    preset = args.preset
    if preset is None:
        from .models import load_model

        _, meta = load_model(args.model)
        preset = "patches" if (meta.get("dataset") or {}).get("name") == "patches" else "mnist-fgsm"
    space = tuning.read_space(args.space) if args.space else {}
    settings = tuning.TuneSettings(
        model=str(args.model.resolve()), objective=args.objective, preset=preset, space=space,
        single=args.single, max_drop=args.max_drop, validation=args.validation, seed=args.seed,
        collapse=args.collapse, runaway_hz=args.runaway_hz, population=args.population,
        all_layers=args.all_layers)  # fmt: skip
    try:
        summary = tuning.tune(settings, args.output, args.trials, workers=args.workers, storage=args.storage,
                              study_name=args.study, heartbeat=args.heartbeat, grace=args.grace,
                              data_dir=args.data_dir, progress=progress)  # fmt: skip
    except KeyboardInterrupt:
        print(f"sleepnet: finished trials are kept in study {args.study!r}; the same command resumes it",
              file=sys.stderr)  # fmt: skip
        raise
    states = ", ".join(f"{k.lower()} {v}" for k, v in summary["states"].items())
    print(f"study {args.study}: {states}; report -> {args.output}/report.md")


def _convert(args) -> None:
    from .converters import from_torch
    from .fsio import write_json
    from .models import load_model
    from .workflow import dataset_for

    model, meta = load_model(args.model)
    data = dataset_for(meta, args.data_dir, args.dataset)
    net = from_torch(model, data.x_train, args.percentile)
    summary = net.summary()
    print(f"spiking network {'-'.join(map(str, net.sizes))}, activation statistic "
          f"{summary['activation_statistic']}")  # fmt: skip
    print(f"{'layer':>6}{'max weight':>14}{'max activation':>16}{'factor':>12}")
    for l in range(len(net.weights)):
        print(f"{l:>6}{net.max_weight[l]:>14.6f}{net.max_activation[l]:>16.6f}{net.factors[l]:>12.6f}")
    if args.json:
        write_json(args.json, summary)


def _print_sleep(rec: dict, out: Path) -> None:
    s = rec["sleep"]
    rates = ", ".join(f"{layer['mean_rate_hz']:.3g}" for layer in s["spikes"]["layers"])
    print(f"slept {s['spikes']['steps']} steps in {s['wall_time_s']:.2f} s "
          f"({s['steps_per_second']:.0f} steps/s, backend {s['backend']}; "
          f"{s['compile_time_s']:.2f} s compiling or loading the kernel)")  # fmt: skip
    print(f"mean rates per layer (Hz, input first): {rates}")
    print(f"test accuracy {rec['metrics']['parent_test_accuracy']:.4f} -> "
          f"{rec['metrics']['test_accuracy']:.4f}; -> {out}")  # fmt: skip


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)  # `kill`: unwind like Ctrl-C, so temporary folders go
    if argv[:1] == ["tune"] and argv[1:2] in (["export"], ["report"]):
        argv = [f"tune-{argv[1]}", *argv[2:]]  # `sleepnet tune export ...` is the tune-export command
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except SleepnetError as exc:
        print(f"sleepnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sleepnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: still one line, unless debugging
        if os.environ.get("SLEEPNET_DEBUG"):
            raise
        print(f"sleepnet: error: {type(exc).__name__}: {exc} (SLEEPNET_DEBUG=1 shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
