"""What a study found: the trials table, the Pareto front plot, the report, and exported presets.

Imports ``study`` (to sleep the best trial again) and ``storage``; ``study``
never imports this module (the order of the package: ``storage.py``).
``load`` and ``storage_url`` live in ``storage.py`` and are importable from here too.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ..config import config_to_toml, from_mapping
from ..errors import SleepnetError
from ..evaluation import evaluate_model, headline
from ..evaluation.suites import quick_suite
from ..fsio import atomic_write, check_output, write_json
from ..hashing import weights_sha256
from ..state import optuna_quiet
from .objectives import measure
from .storage import load, storage_url
from .study import Tuner, TuneSettings

__all__ = ["best_within", "export_trial", "front", "load", "pareto_plot", "rows", "storage_url",
           "test_results", "write_report"]  # fmt: skip


def rows(study) -> list[dict]:
    """One row per trial: state, measures, why it stopped, its parameters and timing."""
    settings = study.user_attrs["settings"]
    obj = settings["objective"]
    out = []
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("measures", {})
        out.append({
            "trial": t.number, "state": t.state.name, obj: m.get(obj), "clean": m.get("clean"),
            "stopped": t.user_attrs.get("stopped", ""), "spikes": t.user_attrs.get("spikes"),
            "trial_s": t.user_attrs.get("trial_s"), "worker": t.user_attrs.get("worker", ""),
            "retry_of": t.system_attrs.get("failed_trial"), **t.params,
        })  # fmt: skip
    return out


def front(study) -> list:
    """Pareto-optimal complete trials (multi-objective), or the feasible trials best first (single)."""
    from optuna.trial import TrialState

    if len(study.directions) > 1:
        return sorted(study.best_trials, key=lambda t: -t.values[1])
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("constraint", [1])[0] <= 0]  # fmt: skip
    return sorted(done, key=lambda t: -t.values[0])[:10]


def best_within(study, max_drop: float):
    """The complete trial with the best objective whose clean accuracy is within ``max_drop``
    of the control's (on the validation split); None if there is none."""
    from optuna.trial import TrialState

    s = study.user_attrs["settings"]
    floor = study.user_attrs["baseline"]["control"]["clean"] - max_drop
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
          if t.user_attrs["measures"]["clean"] >= floor]  # fmt: skip
    m = lambda t: t.user_attrs["measures"]  # noqa: E731
    return max(ok, key=lambda t: (m(t)[s["objective"]], m(t)["clean"], -t.number), default=None)


def pareto_plot(study, path: Path) -> Path:
    """``pareto.png``: clean accuracy against the objective of every complete trial, on validation data.

    Marks the Pareto front (multi-objective studies), the control, the base preset and the
    clean-accuracy floor ``control - max_drop``. Returns ``path``.
    """
    from optuna.trial import TrialState

    from ..plots import save, subplots

    s = study.user_attrs["settings"]
    obj = s["objective"]
    base = study.user_attrs["baseline"]
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    fig, ax = subplots(figsize=(6.4, 4.6))
    if done:
        ax.scatter([t.user_attrs["measures"]["clean"] for t in done],
                   [t.user_attrs["measures"][obj] for t in done], s=14, c="0.65", label="trials")  # fmt: skip
    pts = sorted((t.user_attrs["measures"]["clean"], t.user_attrs["measures"][obj]) for t in front(study))
    if pts and len(study.directions) > 1:
        ax.plot(*zip(*pts), "-o", c="tab:red", ms=5, label="Pareto front")
    ax.scatter([base["control"]["clean"]], [base["control"][obj]], marker="*", s=160, c="k", label="control")
    ax.scatter([base["preset"]["clean"]], [base["preset"][obj]], marker="D", s=50, c="tab:blue",
               label=f"preset {s['preset']}")  # fmt: skip
    ax.axvline(base["control"]["clean"] - s["max_drop"], ls="--", c="0.4", lw=1,
               label=f"control - {100 * s['max_drop']:.0f} points")  # fmt: skip
    ax.set_xlabel("clean accuracy (validation)")
    ax.set_ylabel(f"{obj} (validation)")
    ax.set_title(f"{len(done)} complete trials of {len(study.trials)}")
    ax.legend(fontsize=8)
    return save(fig, path)


def test_results(study, data_dir: str | None = None) -> dict:
    """Control, preset and the best trial within the clean-accuracy budget, slept again from their
    configs and measured on the *test* set: the objective, and the quick suite's headline numbers
    (``audio-quick`` for waveforms)."""
    s = study.user_attrs["settings"]
    tuner = Tuner(TuneSettings(**s), data_dir)
    configs = {"preset": tuner.space.base}
    best = best_within(study, s["max_drop"])
    if best is not None:
        configs[f"trial {best.number}"] = from_mapping(best.user_attrs["config"], f"trial {best.number}")
    models = {"control": tuner.model}
    for name, config in configs.items():
        models[name] = tuner.sleep(config).model
    if best is not None and weights_sha256(models[f"trial {best.number}"]) != best.user_attrs[
            "weights_sha256"]:
        raise SleepnetError(f"trial {best.number} did not reproduce: its slept weights differ")
    out = {}
    for name, model in models.items():
        out[name] = headline(evaluate_model(model, tuner.data, tuner.loss, quick_suite(tuner.data)))
        ran = s["objective"] in out[name] or (s["objective"] == "fgsm" and not math.isnan(out[name][
            "fgsm_median_eps"]))  # what the quick suite measured already
        if not ran:
            out[name][s["objective"]] = measure(model, tuner.loss, tuner.data, s["objective"])[s["objective"]]
    return out


@optuna_quiet()
def write_report(study_name: str, url: str, out: Path, extra: dict | None = None, test: bool = False,
                 data_dir: str | None = None) -> dict:  # fmt: skip
    """``trials.csv``, ``pareto.png``, ``report.md`` and ``tune.json`` in ``out``; returns the summary.

    ``test``: also evaluate the control, the preset and the best trial on the test set."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SleepnetError(f"{out} is a file, not a folder for the report")
    check_output(out, overwrite=True)  # writable; an existing folder only if sleepnet's own
    study = load(study_name, url)
    out.mkdir(parents=True, exist_ok=True)
    s = study.user_attrs["settings"]
    base = study.user_attrs["baseline"]
    table = rows(study)
    _write_csv(table, out / "trials.csv")
    pareto_plot(study, out / "pareto.png")
    states = {}
    for r in table:
        states[r["state"]] = states.get(r["state"], 0) + 1
    times = [r["trial_s"] for r in table if r["trial_s"] is not None and r["state"] == "COMPLETE"]
    best = best_within(study, s["max_drop"])
    summary = {
        "study": study_name, "settings": s, "states": states, "baseline": base,
        "median_trial_s": float(np.median(times)) if times else None,
        "front": [{"trial": t.number, **t.user_attrs["measures"], "params": t.params} for t in front(study)],
        "best_within_max_drop": None if best is None else
        {"trial": best.number, **best.user_attrs["measures"], "params": best.params},
        "stopped": {r["trial"]: r["stopped"] for r in table if r["stopped"]},
    } | (extra or {})  # fmt: skip
    if test:
        summary["test"] = test_results(study, data_dir)
    write_json(out / "tune.json", summary)
    atomic_write(out / "report.md", _markdown(summary))
    return summary


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def _markdown(sm: dict) -> str:
    s, base, obj = sm["settings"], sm["baseline"], sm["settings"]["objective"]
    kind = "TPE, single objective with the clean-accuracy constraint" if s["single"] else \
        f"NSGA-II (population {s['population']}), {obj} and clean accuracy"  # fmt: skip
    lines = [f"# Tuning sleep: {obj}", "",
             f"- model: `{s['model']}`; base preset `{s['preset']}`; sampler: {kind}",
             f"- measured on {s['validation']} validation images from the training set (seed {s['seed']}); "
             "the test set is not used",
             f"- trials: {', '.join(f'{k.lower()} {v}' for k, v in sm['states'].items())}; median time of a "
             f"complete trial {_fmt(sm['median_trial_s'])} s"
             + (f"; wall time {sm['wall_s']:.0f} s with {sm['workers']} worker(s)" if "wall_s" in sm else ""),
             "", "| | clean | " + obj + " |", "|---|---|---|",
             f"| control (no sleep) | {_fmt(base['control']['clean'])} | {_fmt(base['control'][obj])} |",
             f"| preset {s['preset']} | {_fmt(base['preset']['clean'])} | "
             f"{_fmt(base['preset'][obj])} |"]  # fmt: skip
    b = sm["best_within_max_drop"]
    if b is not None:
        lines.append(f"| best trial within {100 * s['max_drop']:.0f} points (#{b['trial']}) | "
                     f"{_fmt(b['clean'])} | {_fmt(b[obj])} |")  # fmt: skip
    verdict = "no complete trial is within the clean-accuracy budget" if b is None else (
        f"trial {b['trial']} {'beats' if b[obj] > base['preset'][obj] else 'does not beat'} the preset on "
        f"{obj} ({_fmt(b[obj])} against {_fmt(base['preset'][obj])}; control {_fmt(base['control'][obj])}) "
        "at a clean cost of "
        f"{100 * (base['control']['clean'] - b['clean']):.2f} points")  # fmt: skip
    lines += ["", f"Verdict (validation): {verdict}.", "",
              "## Pareto front" if not s["single"] else "## Best trials",
              "", f"| trial | clean | {obj} | parameters |", "|---|---|---|---|"]  # fmt: skip
    for f in sm["front"]:
        params = ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in f["params"].items())
        lines.append(f"| {f['trial']} | {_fmt(f['clean'])} | {_fmt(f[obj])} | {params} |")
    if "test" in sm:
        keys = [k for k in next(iter(sm["test"].values())) if k != "clean_accuracy"]
        lines += ["", "## On the test set", "", "| | " + " | ".join(keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]  # fmt: skip
        for name, r in sm["test"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    if sm["stopped"]:
        lines += ["", "## Stopped early", ""]
        lines += [f"- trial {k}: {v}" for k, v in sm["stopped"].items()]
    lines += ["", "![Pareto front](pareto.png)", ""]
    return "\n".join(lines)


def _write_csv(table: list[dict], path: Path) -> None:
    keys: list[str] = []
    for r in table:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(table)
    atomic_write(path, buf.getvalue())


@optuna_quiet()
def export_trial(study_name: str, url: str, number: int, path: Path, overwrite: bool = False) -> Path:
    """Write trial ``number``'s sleep config as a preset TOML (``sleepnet sleep --config`` reads it)."""
    path = Path(path)
    check_output(path, overwrite, file=True)
    study = load(study_name, url)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise SleepnetError(f"study {study_name!r} has no trial {number} (it has 0..{len(trials) - 1})")
    t = trials[number]
    if "config" not in t.user_attrs:
        raise SleepnetError(f"trial {number} ({t.state.name}) never drew a config")
    measures = t.user_attrs.get("measures", {})
    config = from_mapping(t.user_attrs["config"] | {"name": f"{study_name}-trial{number}"}, f"trial {number}")
    header = (f"sleepnet tune: study {study_name!r}, trial {number} ({t.state.name})\n"
              f"validation measures: {measures or t.user_attrs.get('stopped', 'none')}\n"
              f"slept weights SHA-256: {t.user_attrs.get('weights_sha256')}")  # fmt: skip
    return atomic_write(path, config_to_toml(config, header))
