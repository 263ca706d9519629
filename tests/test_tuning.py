"""`sleepnet tune`: search space, a tiny local study end to end, export and bit-for-bit reproduction,
resumption, early stopping and bad input."""

import csv
import json

import numpy as np
import optuna
import pytest

from sleepnet.config import INPUT_MODES, load_preset
from sleepnet.errors import SleepnetError
from sleepnet.models import load_model
from sleepnet.tuning import build_space, validation_indices
from sleepnet.tuning.report import load, storage_url
from sleepnet.tuning.space import Range
from sleepnet.tuning.study import Tuner, TuneSettings, weights_sha256
from tests.conftest import run_cli
from tests.test_cli import assert_clean_failure

TRIALS = ("--validation", "400", "--population", "4")


def _tuning_imports(source: str) -> set[str]:
    """The tuning modules a module's source imports, anywhere in it (in functions too)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:  # from .study import X; from . import study
                out |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif node.level == 0 and module.startswith("sleepnet.tuning"):
                rest = module.split(".")[2:]
                out |= {rest[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("sleepnet.tuning.")}
    return out


def test_tuning_modules_import_each_other_one_way_only():
    """storage <- space, objectives <- study <- report <- run: none imports one to its right,
    at module level or inside a function, where an import would hide a cycle."""
    from pathlib import Path

    import sleepnet.tuning

    order = ["storage", "space", "objectives", "study", "report", "run"]
    folder = Path(sleepnet.tuning.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(order + ["__init__"])
    found = {name: _tuning_imports((folder / f"{name}.py").read_text()) for name in order}
    for name, imported in found.items():
        assert all(order.index(m) < order.index(name) for m in imported), (name, imported)
    assert found["study"] == {"storage", "space", "objectives"}
    assert found["report"] == {"storage", "study", "objectives"}
    assert _tuning_imports("def f():\n    from .report import load\n") == {"report"}  # the check sees these


def test_default_space_brackets_the_preset_on_log_scales():
    base = load_preset("mnist-fgsm")
    space = build_space(base)
    assert space.params["inc"] == Range(base.inc * 0.1, base.inc * 10)
    assert space.params["max_rate"] == Range(base.max_rate / 4, base.max_rate * 16)
    assert space.params["alpha_scale"] == Range(base.alpha_scale / 4, base.alpha_scale * 16)
    assert space.params["T"] == Range(round(base.T / 4), round(base.T * 4))
    assert [space.params[f"beta_{l}"].low for l in (1, 2, 3)] == pytest.approx([b / 4 for b in base.beta])
    assert space.params["input_mode"] == INPUT_MODES
    assert space.base_values()["beta_2"] == base.beta[1]
    config = space.config({"beta_2": 5.0, "T": 1000.0, "inc": 0.5})
    assert config.beta == (base.beta[0], 5.0, base.beta[2]) and config.T == 1000 and config.inc == 0.5


def test_space_table_overrides_fixes_and_drops_keys():
    base = load_preset("mnist-fgsm")
    space = build_space(base, {"inc": {"low": 0.01, "high": 0.02, "log": False}, "beta_2": 7.0,
                               "input_mode": ["mean"], "max_rate": False})  # fmt: skip
    assert space.params["inc"] == Range(0.01, 0.02, False)
    assert space.params["beta_2"] == 7.0 and space.params["input_mode"] == ("mean",)
    assert "max_rate" not in space.params

    class Fixed:  # a trial that always takes the low end or the first choice
        def suggest_float(self, name, low, high, log):
            return low

        def suggest_int(self, name, low, high, log):
            return low

        def suggest_categorical(self, name, choices):
            return choices[0]

    config = space.suggest(Fixed())
    assert config.inc == 0.01 and config.beta[1] == 7.0 and config.input_mode == "mean"
    assert config.max_rate == base.max_rate
    for bad, msg in (({"bogus": 1}, "cannot be searched"), ({"inc": {"low": 2, "high": 1}}, "low < high"),
                     ({"inc": {"low": 0, "high": 1}}, "needs low > 0"), ({"beta_4": 1.0}, "cannot be"),
                     ({"T": -5}, "T must be a positive")):  # fmt: skip
        with pytest.raises(SleepnetError, match=msg):
            build_space(base, bad)


def test_validation_split_is_seeded_and_inside_the_training_set():
    a = validation_indices(60000, 2000, 0)
    assert len(np.unique(a)) == 2000 and a.max() < 60000
    assert np.array_equal(a, validation_indices(60000, 2000, 0))
    assert not np.array_equal(a, validation_indices(60000, 2000, 1))
    with pytest.raises(SleepnetError, match="validation size"):
        validation_indices(100, 101)


def test_a_boundary_study_names_the_attack_implementation(patches_model):
    # ART's Boundary ran as ``boundary`` before ours: a study begun with it is not resumed with ours
    ours = TuneSettings(str(patches_model), objective="boundary").identity()
    assert ours["implementation"] == "sleepnet-batched-2"
    assert "implementation" not in TuneSettings(str(patches_model), objective="fgsm").identity()
    from sleepnet.evaluation.attacks import ATTACKS
    from sleepnet.tuning.objectives import ATTACK_OF, OBJECTIVES

    assert set(ATTACK_OF) <= set(OBJECTIVES) and set(ATTACK_OF.values()) <= set(ATTACKS)  # no misspelt name


def test_a_study_of_a_stochastic_model_names_its_noise_judge_and_eot(patches_hidden_model, tmp_path):
    """Noise layers hold no weights: two noise scales on one network share the weights file, and a study
    begun when its attacks took one noisy pass (before ``eot_default``) must not be resumed with 20."""
    from sleepnet.hashing import sha256_file
    from sleepnet.models import load_model, save_model
    from sleepnet.noise import JUDGE, add_noise

    model, meta = load_model(patches_hidden_model)
    ids = {}
    for spec in ("gaussian:0.1", "gaussian:0.2"):
        save_model(add_noise(model, spec), tmp_path / spec, meta)
        ids[spec] = TuneSettings(str(tmp_path / spec), objective="pgd").identity()
    a, b = ids.values()
    assert a["model"] == b["model"] and a != b  # the same weights file, told apart by the noise
    assert a["stochastic"]["judge"] == JUDGE and a["stochastic"]["eot_samples"] == 20
    assert a["stochastic"]["layers"][0][1]["sigma"] == 0.1
    plain = TuneSettings(str(patches_hidden_model))  # deterministic: as before
    weights = sha256_file(patches_hidden_model / "model.safetensors")
    assert plain.identity() == plain.to_dict() | {"model": weights}


def test_a_study_created_meanwhile_by_another_process_is_checked_or_taken_over(patches_model, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    """Two ``tune`` processes opening a new study at once: the one that did not create it checks the
    creator's settings (it skipped the check and joined a study of other settings), a study whose
    creator stopped before recording them is taken over, the preset queued unless the creator had queued
    it; a creator queues it before it records the identity."""
    import optuna

    from sleepnet.tuning.study import directions, open_study

    settings = TuneSettings(str(patches_model), preset="patches", validation=400, population=4)
    other = TuneSettings(str(patches_model), preset="patches", validation=400, population=8)
    url = f"sqlite:///{tmp_path / 'race.db'}"
    real_load = optuna.load_study
    calls = []

    def load_late(**kwargs):  # the first look finds nothing: the other process creates it just after
        calls.append(1)
        if len(calls) == 1:
            raise KeyError(kwargs["study_name"])
        return real_load(**kwargs)

    storage = optuna.storages.RDBStorage(url)
    theirs = optuna.create_study(study_name="a", storage=storage, directions=directions(other))
    theirs.set_user_attr("identity", other.identity())
    monkeypatch.setattr(optuna, "load_study", load_late)
    with pytest.raises(SleepnetError, match=r"study 'a' exists with other settings \(population differ\)"):
        open_study(settings, url, "a")
    calls.clear()
    optuna.create_study(study_name="b", storage=storage, directions=directions(settings))  # creator stopped
    study = open_study(settings, url, "b", wait_s=0.5)
    assert study.user_attrs["identity"] == settings.identity() and "baseline" in study.user_attrs
    assert [t.user_attrs["enqueued"] for t in study.trials] == ["base preset"]
    assert len(open_study(settings, url, "b").trials) == 1  # opened again: nothing queued twice
    # the creator queues the preset before it records the identity: a process that finds the identity
    # (and so never queues the preset) finds the preset queued
    calls.clear()
    monkeypatch.setattr(optuna, "load_study", real_load)
    order = []
    for method in ("enqueue_trial", "set_user_attr"):
        real = getattr(optuna.Study, method)
        def logged(self, *a, real=real, method=method, **k):
            order.append(a[0] if method == "set_user_attr" else method)
            return real(self, *a, **k)

        monkeypatch.setattr(optuna.Study, method, logged)
    open_study(settings, url, "c")
    assert order.index("enqueue_trial") < order.index("identity"), order
    # a creator that stopped after queueing the preset: the one that takes over does not queue it again
    monkeypatch.undo()
    stopped = optuna.create_study(study_name="d", storage=storage, directions=directions(settings))
    stopped.enqueue_trial({}, user_attrs={"enqueued": "base preset"})
    study = open_study(settings, url, "d", wait_s=0.5)
    assert [t.user_attrs["enqueued"] for t in study.trials] == ["base preset"]
    assert study.user_attrs["identity"] == settings.identity()
    # two taking over at once can both queue it: the second copy stops at once, the first runs
    study.enqueue_trial({}, user_attrs={"enqueued": "base preset"})
    from sleepnet.tuning.study import run_worker

    run_worker(settings, url, "d", n_trials=2)  # the two queued trials
    first, second = optuna.load_study(study_name="d", storage=url).trials
    assert first.state.name in ("COMPLETE", "PRUNED") and "the base preset again" not in str(first.user_attrs)
    assert second.state.name == "PRUNED"
    assert second.user_attrs["stopped"] == "the base preset again: trial 0 runs it"


def test_tiny_study_runs_exports_and_reproduces_bit_for_bit(patches_model, tmp_path):
    out = tmp_path / "tune"
    proc = run_cli("tune", patches_model, "--trials", "6", *TRIALS, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "trial 0" in proc.stderr  # one line per trial
    study = load("sleepnet", storage_url(out))
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6 and len(study.directions) == 2
    assert study.trials[0].user_attrs["enqueued"] == "base preset"
    summary = json.loads((out / "tune.json").read_text())
    assert summary["settings"]["objective"] == "fgsm" and summary["median_trial_s"] > 0
    assert summary["baseline"]["control"]["clean"] > 0.9
    assert summary["front"], "a Pareto front from complete trials"
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [int(r["trial"]) for r in rows] == list(range(len(study.trials)))
    assert (out / "pareto.png").stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "## Pareto front" in report and "Verdict (validation)" in report

    best = summary["front"][0]["trial"]
    trial = study.trials[best]
    preset = tmp_path / "best.toml"
    proc = run_cli("tune", "export", out, "--trial", best, "-o", preset)
    assert proc.returncode == 0, proc.stderr
    slept = tmp_path / "slept"
    proc = run_cli("sleep", patches_model, "--config", preset, "-o", slept, "-q")
    assert proc.returncode == 0, proc.stderr
    model, _ = load_model(slept)
    assert weights_sha256(model) == trial.user_attrs["weights_sha256"]
    tuner = Tuner(TuneSettings(**summary["settings"]))
    assert tuner.measure(model) == trial.user_attrs["measures"]  # the same numbers, exactly
    assert list(trial.values) == [trial.user_attrs["measures"]["fgsm"], trial.user_attrs["measures"]["clean"]]

    # resume: the same command with more trials keeps every earlier trial as it was
    proc = run_cli("tune", patches_model, "--trials", "8", *TRIALS, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    again = load("sleepnet", storage_url(out))
    assert len([t for t in again.trials if t.state.name in ("COMPLETE", "PRUNED")]) == 8
    for old in study.trials:
        assert again.trials[old.number].values == old.values
        assert again.trials[old.number].params == old.params

    # other settings on the same study: refused, nothing changed
    proc = run_cli("tune", patches_model, "--trials", "9", "--validation", "300", "--population", "4",
                   "-o", out)  # fmt: skip
    assert_clean_failure(proc, "exists with other settings (validation differ)")
    assert len(load("sleepnet", storage_url(out)).trials) == len(again.trials)

    # the report on the test set re-sleeps the best trial and checks its weights
    proc = run_cli("tune", "report", out, "--test")
    assert proc.returncode == 0, proc.stderr
    test = json.loads((out / "tune.json").read_text())["test"]
    assert set(test) >= {"control", "preset"} and all(0 <= r["clean"] <= 1 for r in test.values())
    assert "## On the test set" in (out / "report.md").read_text()


@pytest.mark.parametrize("space, reason", [
    ("[space]\nalpha_scale = 1e-4\n", "no spikes in layer 1"),
    ("[space]\nalpha_scale = 50.0\nmax_rate = 400.0\ninput_mode = ['mean']\nT = 5000\ninc = 0.0\ndec = 0.0\n",
     "runaway spiking: layer 1"),
])  # fmt: skip
def test_hopeless_trials_stop_early_with_their_reason(patches_model, tmp_path, space, reason):
    toml = tmp_path / "space.toml"
    toml.write_text(space)
    out = tmp_path / "tune"
    proc = run_cli("tune", patches_model, "--trials", "3", *TRIALS, "--space", toml, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    study = load("sleepnet", storage_url(out))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 3
    assert all(t.user_attrs["stopped"].startswith(reason) for t in study.trials)
    assert "measures" not in study.trials[0].user_attrs  # stopped before the robustness measure
    assert reason in (out / "report.md").read_text()


def test_single_objective_uses_tpe_with_the_clean_constraint(patches_model, tmp_path):
    out = tmp_path / "tune"
    proc = run_cli("tune", patches_model, "--single", "--objective", "noise", "--trials", "4", *TRIALS,
                   "-o", out, "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    study = load("sleepnet", storage_url(out))
    assert len(study.directions) == 1
    control = study.user_attrs["baseline"]["control"]["clean"]
    for t in study.trials:
        if t.state.name == "COMPLETE":
            m = t.user_attrs["measures"]
            assert t.values == [m["noise"]]
            assert t.user_attrs["constraint"][0] == pytest.approx(control - 0.02 - m["clean"])


def test_bad_tune_input_gets_one_line(patches_model, tmp_path):
    out = tmp_path / "tune"
    assert_clean_failure(run_cli("tune", patches_model, "--objective", "speed", "-o", out),
                         "unknown objective 'speed'")  # fmt: skip
    assert_clean_failure(run_cli("tune", patches_model, "--preset", "mnist-fgsm", "-o", out),
                         "3 beta values, the model 1 weight layers")  # fmt: skip
    assert_clean_failure(run_cli("tune", tmp_path / "nope", "-o", out), "nope")
    bad = tmp_path / "space.toml"
    bad.write_text("[space]\nwarp = 3\n")
    assert_clean_failure(run_cli("tune", patches_model, "--space", bad, "-o", out),
                         "'warp' cannot be searched")  # fmt: skip
    assert_clean_failure(run_cli("tune", "export", tmp_path, "--trial", "0", "-o", tmp_path / "x.toml"),
                         "holds no study.db")  # fmt: skip
    assert_clean_failure(run_cli("tune", patches_model, "--storage", "postgresql://nobody@127.0.0.1:1/none",
                                 "-o", out), "cannot open the study storage")  # fmt: skip


def _wait_for_trials(proc, out, complete: int, running: bool = False, seconds: float = 180) -> None:
    """Until the study of ``tune -o out`` (run by ``proc``) has ``complete`` complete trials (and, with
    ``running``, one running last), or ``proc`` ends, or ``seconds`` pass."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if (out / "study.db").exists():
            try:
                trials = load("sleepnet", storage_url(out)).trials
            except SleepnetError:
                trials = []
            if sum(t.state.name == "COMPLETE" for t in trials) >= complete and \
                    (not running or trials[-1].state.name == "RUNNING"):  # fmt: skip
                return
        time.sleep(0.1)


def test_interrupted_study_keeps_its_trials_and_resumes(patches_model, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "tune"
    space = tmp_path / "space.toml"  # sleeps of about a second, so that Ctrl-C lands inside a trial
    space.write_text("[space]\nT = { low = 250000, high = 400000 }\ninput_mode = ['mean']\n")
    cmd = [sys.executable, "-m", "sleepnet", "tune", str(patches_model), "--trials", "6", *TRIALS,
           "--space", str(space), "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_trials(proc, out, complete=2, running=True)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "kept in study 'sleepnet'; the same command resumes it" in err and "Traceback" not in err
    study = load("sleepnet", storage_url(out))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") >= 2 and "RUNNING" not in states  # the interrupted trial: FAIL
    kept = {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}
    proc = run_cli("tune", patches_model, "--trials", "6", *TRIALS, "--space", space, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    again = load("sleepnet", storage_url(out))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in again.trials) == 6
    assert {n: again.trials[n].values for n in kept} == kept


def test_sigterm_to_a_tune_with_workers_stops_them_too(patches_model, tmp_path):
    """``kill`` of the parent alone: its worker processes stop with it (they ran on to the last trial,
    the parent waiting for them)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "tune"
    space = tmp_path / "space.toml"  # sleeps of about a second
    space.write_text("[space]\nT = { low = 250000, high = 400000 }\ninput_mode = ['mean']\n")
    cmd = [sys.executable, "-m", "sleepnet", "tune", str(patches_model), "--trials", "40", *TRIALS,
           "--space", str(space), "--workers", "2", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: killed whole if the test fails
    try:
        _wait_for_trials(proc, out, complete=2, seconds=300)
        proc.send_signal(signal.SIGTERM)  # to the parent only, as `kill PID` does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err, err
    count = len(load("sleepnet", storage_url(out)).trials)
    time.sleep(3)  # a worker still running would start or finish trials meanwhile
    study = load("sleepnet", storage_url(out))
    assert len(study.trials) == count < 40, [t.state.name for t in study.trials]
    assert sum(t.state.name == "COMPLETE" for t in study.trials) >= 2


def _open_storage(urls: list[str], barrier, results) -> None:
    """A worker that opens (so creates) each storage of ``urls`` the moment every other worker does."""
    from sleepnet.tuning.storage import storage_for

    for url in urls:
        barrier.wait()
        try:
            storage_for(url)
            results.put((url, "ok"))
        except Exception as exc:  # the race's error, reported rather than lost in a child's traceback
            results.put((url, f"{type(exc).__name__}: {exc}"))


def open_at_once(urls: list[str]) -> None:
    """The same 4 processes released together onto each storage of ``urls`` in turn (one start each: a
    spawned process imports torch); each must open it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(4, timeout=180), ctx.Queue()
    procs = [ctx.Process(target=_open_storage, args=(urls, barrier, results), daemon=True) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        got = sorted(results.get(timeout=180) for _ in range(4 * len(urls)))
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    for url in urls:
        assert [r for u, r in got if u == url] == ["ok"] * 4, got


def test_several_processes_create_one_sqlite_storage_at_once(tmp_path):
    open_at_once([f"sqlite:///{tmp_path / f'study{attempt}.db'}" for attempt in range(3)])


def test_a_creator_starting_between_the_two_looks_still_makes_the_opener_wait(tmp_path, monkeypatch):
    """The race CI met (``table studies already exists``): another process makes the lock file and the
    database just after this one's first look. Whatever it looked at first, it must take the lock."""
    import fcntl
    from pathlib import Path

    from sleepnet.tuning.storage import creation_lock

    db, lock = tmp_path / "study.db", tmp_path / "study.db.lock"
    looks, real_exists = [], Path.exists

    def exists(path):
        seen = real_exists(path)
        if path in (db, lock):
            looks.append(path.name)
            if len(looks) == 1:  # the other creator: lock file first, then the database
                lock.touch()
                db.touch()
        return seen

    monkeypatch.setattr(Path, "exists", exists)
    with creation_lock(f"sqlite:///{db}"):
        monkeypatch.setattr(Path, "exists", real_exists)
        with open(lock, "a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert looks, "creation_lock never looked at the database or its lock file"
