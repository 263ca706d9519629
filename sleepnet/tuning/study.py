"""``sleepnet tune``: an Optuna study of sleep configs, on local worker processes or many machines.

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
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SleepnetError
from ..threads import pin

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
        return asdict(self)

    def identity(self) -> dict:
        """What must match between workers (the model by content, not by path)."""
        d = self.to_dict()
        d["model"] = _file_sha256(Path(self.model) / "model.safetensors")
        return d


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise SleepnetError(f"{path.parent} is not a model folder (no {path.name})") from None


def weights_sha256(model) -> str:
    """SHA-256 of the model's weights, layer by layer, as float32 bytes."""
    h = hashlib.sha256()
    for t in model.state_dict().values():
        h.update(t.detach().cpu().numpy().astype(np.float32).tobytes())
    return h.hexdigest()


def storage_for(url: str, heartbeat: int = 10, grace: int = 60):
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, whatever SQLAlchemy's default
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial; errors stop the run
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    except ImportError as exc:
        raise SleepnetError(f"the storage {url.split(':')[0]} needs a driver: {exc}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: bad URL, server down
        first = str(exc).splitlines()[0]
        raise SleepnetError(f"cannot open the study storage {_redact(url)}: {first}") from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def sampler_for(settings: TuneSettings, worker: int):
    import optuna

    seed = settings.seed + worker
    if settings.single:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, constraints_func=_constraint)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=settings.population)


def _constraint(trial) -> list[float]:
    return list(trial.user_attrs.get("constraint", [1.0]))


def directions(settings: TuneSettings) -> list[str]:
    return ["maximize"] if settings.single else ["maximize", "maximize"]


class Tuner:
    """The state one worker needs: the model, the data, the validation split and the space."""

    def __init__(self, settings: TuneSettings, data_dir: str | None = None) -> None:
        from ..config import load_preset
        from ..models import load_model
        from ..workflow import cached_maxima, dataset_for, model_loss
        from .objectives import OBJECTIVES, validation_set
        from .space import build_space

        if settings.objective not in OBJECTIVES:
            raise SleepnetError(f"unknown objective {settings.objective!r} (known: {', '.join(OBJECTIVES)})")
        self.settings = settings
        self.model, self.meta = load_model(settings.model)
        self.data = dataset_for(self.meta, data_dir)
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
        from .objectives import measure

        return measure(model, self.loss, self.val, self.settings.objective)

    def sleep(self, config):
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
        import optuna

        s = self.settings
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
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
    from .space import SearchSpace

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


def open_study(settings: TuneSettings, storage_url: str, study_name: str, *, heartbeat: int = 10,
               grace: int = 60, data_dir: str | None = None, create: bool = True,
               tuner: Tuner | None = None):  # fmt: skip
    """Load the study, or create it (with its baseline and the preset as the first trial)."""
    import optuna

    storage = storage_for(storage_url, heartbeat, grace)
    identity = settings.identity()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        if not create:
            raise SleepnetError(f"no study {study_name!r} in {_redact(storage_url)}") from None
        study = None
    if study is not None:
        theirs = study.user_attrs.get("identity")
        if theirs is not None and theirs != identity:
            diff = sorted(k for k in identity if identity[k] != theirs.get(k))
            raise SleepnetError(f"study {study_name!r} exists with other settings ({', '.join(diff)} "
                                "differ): "
                                "use the same settings to resume, or another --study / output folder")
        if "baseline" in study.user_attrs:
            return study
    tuner = tuner or Tuner(settings, data_dir)
    baseline = tuner.baseline()
    if study is None:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=directions(settings),
                                    load_if_exists=True)  # fmt: skip
    if "identity" not in study.user_attrs:
        study.set_user_attr("identity", identity)
        study.set_user_attr("settings", settings.to_dict())
        study.set_user_attr("space", tuner.space.describe())
        study.enqueue_trial(tuner.space.base_values(), user_attrs={"enqueued": "base preset"})
    study.set_user_attr("baseline", baseline)
    return study


def run_worker(settings: TuneSettings, storage_url: str, study_name: str, n_trials: int, worker: int = 0,
               threads: int | None = None, heartbeat: int = 10, grace: int = 60,
               data_dir: str | None = None, progress: bool = False,
               tuner: Tuner | None = None) -> int:  # fmt: skip
    """Run trials until the study holds ``n_trials`` finished ones; returns how many this worker ran."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if threads is not None:
        pin(threads)
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
    import sys

    m = trial.user_attrs.get("measures")
    what = ", ".join(f"{k} {v:.4g}" for k, v in m.items()) if m else trial.user_attrs.get("stopped", "")
    seconds = trial.user_attrs.get("trial_s", float("nan"))
    print(f"trial {trial.number} {trial.state.name.lower()}: {what} ({seconds:.1f} s)", file=sys.stderr,
          flush=True)  # fmt: skip


def _worker_main(args: tuple) -> int:
    return run_worker(*args)


def tune(settings: TuneSettings, out: Path, n_trials: int, *, workers: int = 1, storage: str | None = None,
         study_name: str = STUDY_NAME, heartbeat: int = 10, grace: int = 60,
         data_dir: str | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Run (or resume) a study to ``n_trials`` finished trials with ``workers`` local processes,
    then write its report into ``out``."""
    from .report import write_report

    if n_trials < 1 or workers < 1:
        raise SleepnetError("--trials and --workers must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    t0 = time.perf_counter()
    # one worker runs here and shares the model and data it loads with the baseline
    tuner = Tuner(settings, data_dir) if workers == 1 else None
    open_study(settings, url, study_name, heartbeat=heartbeat, grace=grace, data_dir=data_dir, tuner=tuner)
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers)
    args = [(settings, url, study_name, n_trials, w, threads, heartbeat, grace, data_dir, progress)
            for w in range(workers)]  # fmt: skip
    if workers == 1:
        run_worker(*args[0], tuner=tuner)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_worker_main, args))
    elapsed = time.perf_counter() - t0
    return write_report(study_name, url, out, extra={"wall_s": elapsed, "workers": workers})
