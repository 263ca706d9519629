"""The trials of ``sleepnet tune``: an Optuna study of sleep configs, run by workers on one or many machines.

Storage: by default a SQLite file, ``OUT/study.db``; or any database URL
Optuna's RDBStorage takes (``postgresql://user@host/db``), which lets
workers on many machines share one study. Either way workers send a
heartbeat (``heartbeat`` seconds); a trial whose worker stopped beating for
``grace`` seconds is marked failed by the next worker to start a trial and
retried (up to twice) with the same parameters.

Samplers: NSGA-II (multi-objective: robustness and clean accuracy, both
maximised) by default; TPE with the constraint ``clean >= control clean -
max_drop`` when ``single=True``. Sampler seeds are ``seed + worker index``:
with one worker a study is reproducible; with several the order in which
workers finish decides what the sampler sees, so the trials differ from run
to run, but each trial's numbers depend only on its parameters.

A trial: draw a config, sleep the model on its training set (numba backend,
``seed`` fixed), and stop the trial early, as *pruned* with the reason in its
``stopped`` attribute, when the first hidden layer never spikes (then no
weight can change; with ``all_layers``, when any layer never spikes), a layer
spikes at more than ``runaway_hz`` on average, or clean validation accuracy
falls more than ``collapse`` below the control's; otherwise measure the
objective. A silent upper layer is not hopeless by default: on our MNIST
paper network the published ``mnist-fgsm`` preset fires hidden layer 1 only,
and still improves noise and blur accuracy significantly.

``tune`` (``run.py``) runs the workers, then writes the report (``report.py``);
this module imports neither (the order of the package: ``storage.py``).
Optuna logs at ERROR only while ``open_study`` and ``run_worker`` run, and a
worker's thread counts are pinned for its own trials only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SleepnetError
from ..hashing import sha256_file, weights_sha256
from ..state import optuna_quiet
from ..threads import pinned
from .objectives import OBJECTIVES, implementation, measure, validation_set
from .space import SearchSpace, build_space
from .storage import redact, storage_for

__all__ = ["STUDY_NAME", "TuneSettings", "Tuner", "directions", "open_study", "run_worker", "sampler_for",
           "weights_sha256"]  # fmt: skip

STUDY_NAME = "sleepnet"


@dataclass(frozen=True)
class TuneSettings:
    """Everything that defines a study; workers joining a study must agree on all of it."""

    model: str
    objective: str = "fgsm"
    preset: str = "mnist-fgsm"
    space: dict = field(default_factory=dict)  # a [space] table over the default ranges
    single: bool = False  # TPE on the objective alone, with the clean-accuracy constraint
    max_drop: float = 0.02  # the constraint: clean >= control clean - max_drop
    validation: int = 2000
    seed: int = 0
    collapse: float = 0.2  # prune when clean < control clean - collapse
    runaway_hz: float = 200.0  # prune when a layer's mean rate exceeds this
    all_layers: bool = False  # prune when any layer is silent (default: when the first hidden layer is)
    population: int = 16  # NSGA-II population size

    def to_dict(self) -> dict:
        """The settings as a plain dict (stored with the study)."""
        return asdict(self)

    def identity(self) -> dict:
        """What must match between workers (the model by content, not by path); where the objective's
        attack names its implementation (``objectives.implementation``), that too, so a study begun
        with ART's Boundary (which ran under that name before ours) is not resumed with ours. A stochastic
        model adds its noise layers (they hold no weights: the weights file does not tell one noise scale
        from another), the judge's version (``noise.JUDGE``) and the EOT its objective attacks with, so a
        study begun when attacks took one noisy pass is not resumed with 20."""
        d = self.to_dict()
        d["model"] = _file_sha256(Path(self.model) / "model.safetensors")
        impl = implementation(self.objective)
        if impl is not None:
            d["implementation"] = impl
        layers = _noise_layers(Path(self.model))
        if layers:
            from ..evaluation.attacks.base import EOT_STOCHASTIC
            from ..noise import JUDGE

            d["stochastic"] = {"layers": layers, "judge": JUDGE, "eot_samples": EOT_STOCHASTIC}
        return d


def _noise_layers(folder: Path) -> list:
    """The noise layers of the model folder's architecture, with their places (none where the record
    cannot be read: loading the model says why)."""
    from ..fsio import read_json
    from ..models import NOISE_LAYERS

    try:
        arch = read_json(folder / "model.json").get("architecture", [])
    except (SleepnetError, OSError, AttributeError):
        return []
    return [[i, r] for i, r in enumerate(arch) if isinstance(r, dict) and r.get("type") in NOISE_LAYERS]


def _file_sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        raise SleepnetError(f"{path.parent} is not a model folder (no {path.name})") from None


def sampler_for(settings: TuneSettings, worker: int):
    """The Optuna sampler of ``worker``: NSGA-II, or TPE with the clean-accuracy constraint if ``single``.

    Seeded with ``settings.seed + worker``.
    """
    import optuna

    seed = settings.seed + worker
    if settings.single:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, constraints_func=_constraint)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=settings.population)


def _constraint(trial) -> list[float]:
    return list(trial.user_attrs.get("constraint", [1.0]))


def directions(settings: TuneSettings) -> list[str]:
    """The study's directions: the objective, and clean accuracy unless ``single``; all maximised."""
    return ["maximize"] if settings.single else ["maximize", "maximize"]


class Tuner:
    """The state one worker needs: the model, the data, the validation split and the space."""

    def __init__(self, settings: TuneSettings, data_dir: str | None = None) -> None:
        from ..config import load_preset
        from ..workflow import cached_maxima, load_with_data, model_loss

        OBJECTIVES.get(settings.objective)  # an unknown name: one error naming the known ones
        self.settings = settings
        self.model, self.meta, self.data = load_with_data(settings.model, data_dir)
        self.loss = model_loss(self.meta)
        self.val = validation_set(self.data, settings.validation, settings.seed)
        # cycle: sequential input wraps around the training set when a trial's T exceeds it
        base = load_preset(settings.preset).replace(seed=settings.seed, cycle=True)
        self.space = _fitting(build_space(base, settings.space, "space"), self.data.x_train[:2])
        n_layers = len([m for m in self.model if hasattr(m, "weight")])
        if len(base.beta) != n_layers:
            raise SleepnetError(f"preset {settings.preset!r} has {len(base.beta)} beta values, the model "
                                f"{n_layers} weight layers: pick a preset for this architecture")  # fmt: skip
        self.maxima = cached_maxima(self.meta, self.data, base)

    def measure(self, model) -> dict:
        """``{"clean": ..., objective: ...}`` of ``model`` on the validation split."""
        return measure(model, self.loss, self.val, self.settings.objective)

    def sleep(self, config):
        """``sleep_phase.sleep`` of the control with ``config`` on the training set (cached maxima)."""
        from ..sleep_phase import sleep

        return sleep(self.model, config, self.data.x_train, max_activation=self.maxima)

    def baseline(self) -> dict:
        """The control (no sleep) and the base preset, measured like a trial (never pruned)."""
        t0 = time.perf_counter()
        result = self.sleep(self.space.base)
        return {"control": self.measure(self.model),
                "preset": self.measure(result.model) | {"spikes": _layer_spikes(result.summary())},
                "preset_config": self.space.base.to_dict(), "seconds": time.perf_counter() - t0}  # fmt: skip

    def objective(self, trial, control_clean: float):
        """Run one Optuna ``trial``: draw a config, sleep, prune or measure (module docstring).

        Parameters
        ----------
        trial : optuna.Trial
            The trial; its user attributes get the config, spikes, weights hash, timings and measures.
        control_clean : float
            The control's clean validation accuracy, for the collapse check and the constraint.

        Returns
        -------
        float or (float, float)
            The objective, and with two objectives the clean accuracy too; ``optuna.TrialPruned`` if stopped.
        """
        import optuna

        s = self.settings
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if trial.user_attrs.get("enqueued") == "base preset":  # queued twice? (open_study: two processes
            # taking over a crashed creator at once can both queue it) the first runs it, the others stop
            first = min(t.number for t in trial.study.get_trials(deepcopy=False)
                        if t.user_attrs.get("enqueued") == "base preset")  # fmt: skip
            if first != trial.number:
                trial.set_user_attr("stopped", f"the base preset again: trial {first} runs it")
                raise optuna.TrialPruned(f"the base preset again (trial {first})")
        t0 = time.perf_counter()
        config = self.space.suggest(trial)
        trial.set_user_attr("config", config.to_dict())
        try:
            result = self.sleep(config)
        except SleepnetError as exc:  # a config the data cannot take: nothing to learn from it
            trial.set_user_attr("stopped", f"invalid config: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        summary = result.summary()
        spikes = _layer_spikes(summary)
        rates = [layer["mean_rate_hz"] for layer in summary["spikes"]["layers"][1:]]
        trial.set_user_attr("spikes", spikes)
        trial.set_user_attr("weights_sha256", weights_sha256(result.model))
        trial.set_user_attr("sleep_s", summary["wall_time_s"])
        reason = None
        silent = [l + 1 for l, n in enumerate(spikes) if n == 0]
        if silent and (s.all_layers or silent[0] == 1):
            reason = f"no spikes in layer {silent[0]}"
        elif max(rates) > s.runaway_hz:
            layer = int(np.argmax(rates)) + 1
            reason = f"runaway spiking: layer {layer} at {rates[layer - 1]:.0f} Hz"
        if reason is None:
            from ..training import accuracy

            clean = accuracy(result.model, self.val.x_test, self.val.y_test)
            if clean < control_clean - s.collapse:
                reason = f"clean accuracy collapsed: {clean:.4f} against the control's {control_clean:.4f}"
        if reason is not None:
            trial.set_user_attr("stopped", reason)
            trial.set_user_attr("trial_s", time.perf_counter() - t0)
            raise optuna.TrialPruned(reason)
        values = self.measure(result.model)
        trial.set_user_attr("measures", values)
        trial.set_user_attr("constraint", [control_clean - s.max_drop - values["clean"]])
        trial.set_user_attr("trial_s", time.perf_counter() - t0)
        robust = values[s.objective]
        return robust if s.single else (robust, values["clean"])


def _fitting(space, x):
    """``space`` without the input modes this data cannot use (masked-mean on images smaller
    than its window)."""
    from ..inputs import SleepInput

    modes = space.params.get("input_mode")
    if not isinstance(modes, tuple):
        return space
    ok = []
    for mode in modes:
        try:
            SleepInput(space.base.replace(input_mode=mode), x)
            ok.append(mode)
        except SleepnetError:
            pass
    if not ok:
        raise SleepnetError(f"none of the input modes {', '.join(modes)} fits this data")
    return SearchSpace(space.base, space.params | {"input_mode": tuple(ok)})


def _layer_spikes(summary: dict) -> list[int]:
    """Total spikes of each layer above the input."""
    return [layer["total_spikes"] for layer in summary["spikes"]["layers"][1:]]


@optuna_quiet()
def open_study(settings: TuneSettings, storage_url: str, study_name: str, *, heartbeat: int = 10,
               grace: int = 60, data_dir: str | None = None, create: bool = True,
               tuner: Tuner | None = None, wait_s: float = 10.0):  # fmt: skip
    """Load the study, or create it (with its baseline and the preset as the first trial).

    Several processes may open a new study at once (``sleepnet tune`` in several terminals or
    array tasks): the one whose ``create_study`` succeeds records the settings' identity and
    queues the preset; every other one waits up to ``wait_s`` for that identity and refuses in
    one line if it differs from its own. A study whose creator stopped before recording it is
    taken over (the preset queued unless the creator had queued it)."""
    import optuna

    storage = storage_for(storage_url, heartbeat, grace)
    identity = settings.identity()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        if not create:
            raise SleepnetError(f"no study {study_name!r} in {redact(storage_url)}") from None
        study = None
    baseline = None
    created = False
    if study is None:
        tuner = tuner or Tuner(settings, data_dir)
        baseline = tuner.baseline()  # before creating: the others wait for the identity only a moment
        try:
            study = optuna.create_study(study_name=study_name, storage=storage,
                                        directions=directions(settings))  # fmt: skip
            created = True
        except optuna.exceptions.DuplicatedStudyError:  # another process created it meanwhile
            study = optuna.load_study(study_name=study_name, storage=storage)
    theirs = None if created else _recorded_identity(study, wait_s)
    if theirs is not None and theirs != identity:
        diff = sorted(k for k in identity if identity[k] != theirs.get(k))
        raise SleepnetError(f"study {study_name!r} exists with other settings ({', '.join(diff)} differ): "
                            "use the same settings to resume, or another --study / output folder")
    if theirs is not None and "baseline" in study.user_attrs:
        return study
    tuner = tuner or Tuner(settings, data_dir)
    if theirs is None:  # created here, or its creator stopped before saying what it is
        # the preset before the identity: a recorded identity means the preset is queued, so the processes
        # that find one never queue it (two taking over one crashed creator in the same instant can
        # still both queue it: the second copy stops at once, Tuner.objective)
        if not any(t.user_attrs.get("enqueued") == "base preset" for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial(tuner.space.base_values(), user_attrs={"enqueued": "base preset"})
        study.set_user_attr("identity", identity)
        study.set_user_attr("settings", settings.to_dict())
        study.set_user_attr("space", tuner.space.describe())
    study.set_user_attr("baseline", baseline if baseline is not None else tuner.baseline())
    return study


def _recorded_identity(study, wait_s: float) -> dict | None:
    """The identity the study's creator recorded, waiting up to ``wait_s`` for it; None if none came."""
    deadline = time.monotonic() + wait_s
    while (theirs := study.user_attrs.get("identity")) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return theirs


def run_worker(settings: TuneSettings, storage_url: str, study_name: str, n_trials: int, worker: int = 0,
               threads: int | None = None, heartbeat: int = 10, grace: int = 60,
               data_dir: str | None = None, progress: bool = False,
               tuner: Tuner | None = None) -> int:  # fmt: skip
    """Run trials until the study holds ``n_trials`` finished ones; returns how many this worker ran.

    ``threads``: torch and Numba on that many threads for this worker's trials, then as they were."""
    with pinned(threads) if threads is not None else contextlib.nullcontext(), optuna_quiet():
        return _trials(settings, storage_url, study_name, n_trials, worker, heartbeat, grace, data_dir,
                       progress, tuner)  # fmt: skip


def _trials(settings: TuneSettings, storage_url: str, study_name: str, n_trials: int, worker: int,
            heartbeat: int, grace: int, data_dir: str | None, progress: bool, tuner: Tuner | None) -> int:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    storage = storage_for(storage_url, heartbeat, grace)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler_for(settings, worker))
    tuner = tuner or Tuner(settings, data_dir)
    control_clean = study.user_attrs["baseline"]["control"]["clean"]
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    if len(study.get_trials(deepcopy=False, states=finished)) >= n_trials:
        return 0
    before = len(study.get_trials(deepcopy=False))
    callbacks = [MaxTrialsCallback(n_trials, states=finished)] + ([_print_trial] if progress else [])
    study.optimize(lambda t: tuner.objective(t, control_clean), catch=(), callbacks=callbacks)
    return len(study.get_trials(deepcopy=False)) - before


def _print_trial(study, trial) -> None:
    m = trial.user_attrs.get("measures")
    what = ", ".join(f"{k} {v:.4g}" for k, v in m.items()) if m else trial.user_attrs.get("stopped", "")
    seconds = trial.user_attrs.get("trial_s", float("nan"))
    print(f"trial {trial.number} {trial.state.name.lower()}: {what} ({seconds:.1f} s)", file=sys.stderr,
          flush=True)  # fmt: skip
