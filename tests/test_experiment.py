"""`sleepnet run`: a tiny experiment end to end, and a report with every section."""

import csv
import json
import re
from pathlib import Path

import pytest

from sleepnet.errors import SleepnetError
from sleepnet.report import write_report
from sleepnet.threads import cores
from tests.conftest import run_cli
from tests.test_cli import assert_clean_failure

TINY = """
[experiment]
dataset = "patches"
recipe = "paper"
hidden = []
epochs = 2
seeds = [0, 1]
suite = "paper"
subsample = 8

[sleep]
sleep-fgsm = { preset = "patches", T = 2000 }

[defences]
distillation = { epochs = 2 }
finetune-noise = {}
"""


def test_tiny_experiment_writes_metrics_csv_report_and_figures(tmp_path):
    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY)
    out = tmp_path / "run"
    proc = run_cli("run", exp, "--quick", "-o", out, "-q", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_seed"]) == {"0", "1"}
    agg = metrics["aggregate"]
    assert set(agg) == {"control", "sleep-fgsm", "distillation", "finetune-noise"}
    clean = agg["sleep-fgsm"]["clean_accuracy"]
    assert len(clean["values"]) == 2
    p = clean["p_vs_control"]
    assert 0.0 <= p <= 1.0 or p != p  # a p-value, or nan where the paired differences are constant
    report = (out / "report.md").read_text()
    for section in ("## Setup", "## The paper's table next to ours", "## All models",
                    "## Gradient-masking checks", "## Timing", "## Figures"):
        assert section in report
    assert "| sleep-fgsm |" in report and "| FGSM median epsilon | 0.0175 | 0.2025 |" in report
    # where the evaluation's time went: every measure of every model, summed in the report
    measure_s = metrics["timing"]["measure_s"]
    assert set(measure_s) == {f"seed{s}/{m}" for s in (0, 1) for m in agg}
    assert {"clean", "fgsm", "deepfool", "masking"} <= set(measure_s["seed0/control"])
    assert "measure_s" not in metrics["per_seed"]["0"]["control"]
    assert "- where the evaluation's time went (each measure summed over models" in report
    # each attack's robust accuracy at its budgets, saying its loss and images
    per_attack = report.split("## Robust accuracy per attack")[1].split("## Gradient-masking checks")[0]
    assert "pgd-linf (Linf, loss cross-entropy, 8 images):" in per_attack
    assert "deepfool (L2, loss none (DeepFool: linearised class scores), 8 images):" in per_attack
    assert "DeepFool median perturbation" not in report  # the paper's MNIST rows are MNIST's only
    other = dict(metrics, dataset=dict(metrics["dataset"], name="fashion-mnist"))
    (tmp_path / "other").mkdir()
    write_report(other, tmp_path / "other")
    text = (tmp_path / "other" / "report.md").read_text()
    assert "The paper reports no numbers for fashion-mnist" in text and "| 0.0175 |" not in text
    # the masking verdicts are said in today's words, from the checks, not from lines stored with them
    from sleepnet.evaluation.masking import WORDS

    flagged = json.loads(json.dumps(metrics))
    flagged["per_seed"]["0"]["control"]["masking"].update(
        gradient_free=dict(flagged["per_seed"]["0"]["control"]["masking"]["gradient_free"], ok=False),
        warnings=["words of an older version"], masked=True)
    (tmp_path / "flagged").mkdir()
    write_report(flagged, tmp_path / "flagged")
    checks = (tmp_path / "flagged" / "report.md").read_text().split("## Gradient-masking checks")[1]
    assert f"seeds. {WORDS['gradient_free']}." in checks  # (its flag count is the aggregate's, not edited)
    assert "older version" not in checks and "A flag names" not in checks  # no worst case to point to
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["model"] for r in rows} == set(agg) and len(rows) > 40
    for fig in ("accuracy_vs_fgsm", "accuracy_vs_gaussian-noise", "accuracy_vs_gaussian-blur"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    for seed in (0, 1):
        assert (out / f"seed{seed}" / "distillation" / "model.safetensors").is_file()
    timing = metrics["timing"]
    assert timing["workers"] == 2 and set(timing["train_s"]) == {"0", "1"}
    assert timing["cores"] == cores() and timing["train_threads"] == max(1, cores() - 2)
    assert f"with 2 evaluation worker(s) on {cores()} core" in (out / "report.md").read_text()
    assert len(timing["evaluate_s"]) == 8 and timing["total_s"] > max(timing["evaluate_s"].values())
    sizes = metrics["per_seed"]["0"]["control"]["subsample"]["sizes"]
    assert sizes["pgd-linf"] == 8 and sizes["boundary"] == 5  # PGD capped by subsample = 8

    # one worker, in this process: the same numbers, but for the decision-based attacks, whose
    # accept/reject walk near the boundary turns the float rounding of 1 vs 2 torch threads into
    # different trajectories
    serial = tmp_path / "serial"
    proc = run_cli("run", exp, "--quick", "-o", serial, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((serial / "metrics.json").read_text())
    assert again["timing"]["workers"] == 1
    for model, table in agg.items():
        for key, cell in table.items():
            if key.startswith(("boundary", "hopskipjump", "masking")):
                continue
            assert again["aggregate"][model][key]["values"] == pytest.approx(cell["values"], abs=1e-6,
                                                                           nan_ok=True), (model, key)


def test_bad_experiment_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("finetune-noise", "bogus-defence"))
    out = tmp_path / "run"
    assert_clean_failure(run_cli("run", bad, "-o", out), "unknown defence 'bogus-defence'", out)
    bad.write_text(TINY.replace("seeds", "sedes"))
    assert_clean_failure(run_cli("run", bad, "-o", out), "unknown [experiment] keys sedes", out)
    # caught when the file is read, before any training
    bad.write_text(TINY.replace('suite = "paper"', 'suite = "bogus"'))
    assert_clean_failure(run_cli("run", bad, "-o", out),
                         f"{bad}: [experiment] suite: unknown suite 'bogus' "
                         "(known: quick, paper, standard, audio, audio-quick)",
                         out)
    bad.write_text(TINY.replace("seeds = [0, 1]", 'seeds = "zero"'))
    assert_clean_failure(run_cli("run", bad, "-o", out),
                         f"{bad}: [experiment] seeds must be a list of distinct integers from 0 to "
                         "2**32 - 1, got 'zero'",
                         out)  # fmt: skip
    for added, said in (("workers = 0", "workers must be an integer >= 1, got 0"),
                        ('analyses = ["weights", "bogus"]', "analyses: unknown analysis 'bogus'"),
                        ('analyses = "weights"', "analyses must be a list of distinct analysis names"),
                        ("analysis_images = 0", "analysis_images must be a positive integer, got 0")):
        bad.write_text(TINY.replace("subsample = 8", "subsample = 8\n" + added))
        assert_clean_failure(run_cli("run", bad, "-o", out), f"{bad}: [experiment] {said}", out)
    assert_clean_failure(run_cli("run", tmp_path / "none.toml", "-o", out), "does not exist", out)
    good = tmp_path / "good.toml"
    good.write_text(TINY)
    assert_clean_failure(run_cli("run", good, "--seeds", "a,b", "-o", out), "--seeds expects integers", out)
    assert_clean_failure(run_cli("run", good, "--seeds", "-1", "-o", out), "integers from 0 to 2**32 - 1",
                         out)  # fmt: skip


RESUMABLE = """
[experiment]
dataset = "patches"
recipe = "paper"
hidden = [16]
epochs = 2
seeds = [0, 1, 2]
suite = "quick"

[sleep]
a = { preset = "patches", beta = [1, 1], T = 2000 }
b = { preset = "patches", beta = [2, 2], T = 2000 }
"""


def _without_timing(metrics: dict) -> dict:
    """``metrics`` less what a clock measured (the timing section, each model's ``evaluate_s``)."""
    per_seed = {s: {m: {k: v for k, v in r.items() if k != "evaluate_s"} for m, r in models.items()}
                for s, models in metrics["per_seed"].items()}  # fmt: skip
    return {k: v for k, v in metrics.items() if k != "timing"} | {"per_seed": per_seed}


def test_an_interrupted_run_resumes_where_it_stopped_with_identical_results(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    exp = tmp_path / "e.toml"
    exp.write_text(RESUMABLE)
    full = tmp_path / "full"
    proc = run_cli("run", exp, "-o", full, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sleepnet", "run", str(exp), "-o", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_unit = tmp_path / ".run.partial" / "units" / "seed0" / "control" / "clean.json"
    deadline = time.time() + 120
    while not first_unit.exists() and time.time() < deadline:  # 9 models trained; evaluation has begun
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not out.exists() and (tmp_path / ".run.partial" / "seed2" / "b" / "model.json").is_file()
    done = {p.relative_to(tmp_path) for p in (tmp_path / ".run.partial" / "units").rglob("*.json")}
    assert 1 <= len(done) < 9 * 4  # clean, noise, blur, FGSM for each of 9 models: some, not all
    took = {}  # each finished measure's time, as its unit file records it
    for p in done:
        seconds = json.loads((tmp_path / p).read_text())["seconds"]
        took.setdefault(f"{p.parts[-3]}/{p.parts[-2]}", {})[p.stem] = seconds
    proc = run_cli("run", exp, "-o", out, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr
    reused = f"reused 9 of 9 models and {len(done)} of 36 measures from an earlier run"
    assert reused in proc.stderr, proc.stderr
    assert "train (paper)" not in proc.stderr and "sleep (numba)" not in proc.stderr  # nothing retrained
    assert not (tmp_path / ".run.partial").exists()
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert _without_timing(a) == _without_timing(b)
    # the report says its times are the resumed run's only
    assert b["timing"]["reused"] == {"models": 9, "models_of": 9, "measures": len(done), "measures_of": 36}
    said = f"- resumed: 9 of 9 models and {len(done)} of 36 measures were reused"
    assert said in (out / "report.md").read_text()
    # where the time went counts the measures made before the interruption at the time they took then
    assert {k: v for k, v in b["timing"]["kept_measure_s"].items() if v} == took
    assert sum(map(len, b["timing"]["measure_s"].values())) == 36 - len(done)
    said = f"{len(done)} of its 36 measures made by an earlier run, at the time they took then)"
    assert said in (out / "report.md").read_text()
    seconds = sum(v for per in (b["timing"]["measure_s"], took) for t in per.values() for v in t.values())
    threads = b["timing"]["eval_threads"]  # --workers 1: this process's torch threads
    assert threads >= 1 and f"; {seconds * threads / 3600:.1f} core-hours in all ({threads} thread" \
        in (out / "report.md").read_text()
    # a report of a run from before the reused measures' times were recorded says all its times are its own
    before = ("kept_measure_s", "eval_threads")
    old = dict(b, timing={k: v for k, v in b["timing"].items() if k not in before})
    (tmp_path / "old").mkdir()
    text = write_report(old, tmp_path / "old").read_text()
    assert "were reused from an earlier run; the times above are only this run's" in text
    assert "made by an earlier run" not in text and "worker-hours in all" in text
    assert a["timing"]["reused"]["models"] == 0 and "- resumed" not in (full / "report.md").read_text()
    # a changed file redoes exactly what changed: sleep b's T, so b's three models and their measures
    exp.write_text(RESUMABLE.replace("beta = [2, 2], T = 2000", "beta = [2, 2], T = 2500"))
    proc = run_cli("run", exp, "-o", out, "--workers", "1", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "reused 6 of 9 models and 24 of 36 measures" in proc.stderr, proc.stderr
    assert proc.stderr.count("sleep (numba)") == 3 and "train (paper)" not in proc.stderr


def _files(folder: Path) -> dict:
    """Every file under ``folder``: its bytes' hash, mode and inode."""
    import hashlib

    return {f.relative_to(folder): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mode,
                                    f.stat().st_ino) for f in folder.rglob("*") if f.is_file()}  # fmt: skip


def test_reuse_takes_another_experiments_models_and_measures_where_they_are_the_same_units(tmp_path):
    """``--reuse OTHER``: a model another experiment holds under any name (same data, recipe, seed, sleep
    settings) is taken with its measures, from a finished output or a running one's ``.partial``;
    a model of the same name but other settings, and what differs, is made here; OTHER is untouched."""
    import shutil

    one_seed = RESUMABLE.replace("seeds = [0, 1, 2]", "seeds = [0]")
    first = tmp_path / "first.toml"
    first.write_text(one_seed)
    a = tmp_path / "a"
    proc = run_cli("run", first, "-o", a, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    before = _files(a)
    # the same control, sleep "a" renamed "same", and a "b" of other settings than a's "b"
    second = tmp_path / "second.toml"
    second.write_text(one_seed.split("[sleep]")[0] + "[sleep]\nsame = { preset = \"patches\", beta = [1, 1], "
                      "T = 2000 }\nb = { preset = \"patches\", beta = [3, 3], T = 2000 }\n")  # fmt: skip
    running = tmp_path / ".elsewhere.partial"  # as a run still going leaves it, with a model being written
    shutil.copytree(a, running)
    shutil.copytree(running / "seed0" / "a", running / "seed0" / ".b.1234.tmp")
    # from a running source (its .partial)
    out = tmp_path / "from-running"
    proc = run_cli("run", second, "-o", out, "--workers", "1", "--reuse", tmp_path / "elsewhere")
    assert proc.returncode == 0, proc.stderr
    assert "reused 2 of 3 models and 8 of 12 measures from an earlier run or --reuse" in proc.stderr
    assert "train (paper)" not in proc.stderr and proc.stderr.count("sleep (numba)") == 1  # b only
    assert f"seed0/same: the model a of {running}" in proc.stderr
    mine, theirs = (json.loads((d / "metrics.json").read_text())["per_seed"]["0"] for d in (out, a))
    for name, other in (("control", "control"), ("same", "a")):
        assert {k: v for k, v in mine[name].items() if k != "evaluate_s"} == \
            {k: v for k, v in theirs[other].items() if k != "evaluate_s"}
    assert json.loads((out / "seed0" / "b" / "model.json").read_text())["sleep"] != \
        json.loads((a / "seed0" / "b" / "model.json").read_text())["sleep"]  # made here, not taken
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timing"]["reused_from"] == [str(tmp_path / "elsewhere")]
    assert "(`--reuse`); the wall time and the times per seed and per model above are only this run's" \
        in (out / "report.md").read_text()
    # copies, never links: the same bytes, other files
    taken = out / "seed0" / "same" / "model.safetensors"
    assert taken.read_bytes() == (a / "seed0" / "a" / "model.safetensors").read_bytes()
    assert not taken.samefile(a / "seed0" / "a" / "model.safetensors")
    # from a finished output, a file of another suite: the models are taken, their measures copied and
    # then computed again over the copies; OTHER is untouched, byte for byte, mode for mode
    third = tmp_path / "third.toml"
    third.write_text(second.read_text().replace('suite = "quick"', 'suite = "paper"\nsubsample = 4'))
    proc = run_cli("run", third, "-o", tmp_path / "paper", "--quick", "--workers", "1", "--reuse", a)
    assert proc.returncode == 0, proc.stderr
    assert "reused 2 of 3 models and 0 of" in proc.stderr, proc.stderr
    assert _files(a) == before
    # a source that finishes while this run goes on is found where it is then
    from sleepnet.experiment import _source_dir

    assert _source_dir(tmp_path / "elsewhere") == running
    running.rename(tmp_path / "elsewhere")
    assert _source_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    # (resume, using the same first run) a model folder a kill left half-removed, its weights only, is
    # made again, not refused as "a folder sleepnet did not write" on every resume
    shutil.copytree(a, tmp_path / ".half.partial")
    for name in ("model.json", ".sleepnet"):
        (tmp_path / ".half.partial" / "seed0" / "b" / name).unlink()
    proc = run_cli("run", first, "-o", tmp_path / "half", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "reused 2 of 3 models" in proc.stderr and proc.stderr.count("sleep (numba)") == 1
    out = tmp_path / "bad"
    assert_clean_failure(run_cli("run", second, "-o", out, "--reuse", tmp_path / "nowhere"),
                         "--reuse " + str(tmp_path / "nowhere") + ": no experiment output there", out)
    assert_clean_failure(run_cli("run", second, "-o", out, "--reuse", out),
                         "that is this run's own output", out)


def _as_kept(units: Path) -> dict:
    """The measures of a run's ``units/`` as ``--keep`` names them (``NAME.HASH.json``), each less the
    ``weights`` stamp a kept copy adds (a unit taken from a copy holds it too)."""
    out = {}
    for p in units.rglob("*.json"):
        unit = json.loads(p.read_bytes())
        unit.pop("weights", None)
        out[p.relative_to(units).with_name(f"{p.stem}.{unit['inputs'][:16]}.json")] = unit
    return out


def _copies(keep: Path) -> tuple[dict, dict]:
    """A ``--keep`` folder's measures (each less its ``weights`` stamp, which must name the weights of a
    model record beside it) and its model records, by path."""
    units, models = {}, {}
    for p in keep.rglob("*.json"):
        (models if p.name.startswith("model.") else units)[p.relative_to(keep)] = json.loads(p.read_bytes())
    for path, unit in units.items():
        weights = unit.pop("weights")
        assert (keep / path.parent / f"model.{weights[:16]}.json").is_file(), path
    return units, models


def test_keep_holds_every_measure_and_a_run_on_a_fresh_machine_resumes_from_it(tmp_path, monkeypatch):
    """``--keep DIR``: each measure is copied there as it is finished; a run with nothing but that copy
    (its output folder gone, as on a machine that did not outlive it) makes its models again and takes
    every measure whose model came out with the same weights, and only those, adding the new ones
    beside the old; another file's run takes them with ``--reuse DIR`` under other names; a bad --keep
    is refused before any work, nothing written."""
    from sleepnet import hashing
    from sleepnet.experiment import run_experiment
    from sleepnet.progress import LOG

    exp = tmp_path / "e.toml"
    exp.write_text(RESUMABLE.replace("seeds = [0, 1, 2]", "seeds = [0]"))
    keep = tmp_path / "repo" / "units"
    first = tmp_path / "first"
    proc = run_cli("run", exp, "-o", first, "--workers", "1", "--keep", keep)
    assert proc.returncode == 0, proc.stderr
    kept, models = _copies(keep)
    assert kept == _as_kept(first / "units")
    assert len(kept) == 12  # clean, noise, blur, FGSM of 3 models
    assert sorted(p.parent.name for p in models) == ["a", "b", "control"]  # which weights they are of
    for path, record in models.items():
        assert record["unit"] == json.loads((first / path.parent / "model.json").read_text())["unit"]
        assert path.name == f"model.{record['weights'][:16]}.json"
    # a new machine: the output is gone, the copy is all there is
    second = tmp_path / "second"
    proc = run_cli("run", exp, "-o", second, "--workers", "1", "--keep", keep)
    assert proc.returncode == 0, proc.stderr
    assert "reused 0 of 3 models and 12 of 12 measures from an earlier run or --keep" in proc.stderr
    assert _without_timing(json.loads((first / "metrics.json").read_text())) == \
        _without_timing(json.loads((second / "metrics.json").read_text()))
    assert _as_kept(second / "units") == kept
    # another experiment file, its sleep variant renamed: --reuse takes the copy's measures wherever
    # their inputs match (control and "same"), under any name; "b" of other settings is measured here
    other = tmp_path / "other.toml"
    other.write_text(exp.read_text().split("[sleep]")[0] + "[sleep]\nsame = { preset = \"patches\", "
                     "beta = [1, 1], T = 2000 }\nb = { preset = \"patches\", beta = [3, 3], T = 2000 }\n")
    proc = run_cli("run", other, "-o", tmp_path / "other", "--workers", "1", "--reuse", keep)
    assert proc.returncode == 0, proc.stderr
    assert "reused 0 of 3 models and 8 of 12 measures" in proc.stderr, proc.stderr
    assert _copies(keep)[0] == kept  # read, never written
    # a model that came out with other weights (another CPU's rounding) is measured again, and its
    # measures are kept beside the old ones, which stay as they were
    real = hashing.weights_sha256
    monkeypatch.setattr(hashing, "weights_sha256", lambda m: real(m)[::-1])  # other bits, another hash
    warned = []
    monkeypatch.setattr(LOG, "warning", lambda msg, *a: warned.append(msg % a))
    metrics = run_experiment(exp, tmp_path / "third", progress=False, workers=1, keep=keep)
    assert metrics["timing"]["reused"]["measures"] == 0
    now, models = _copies(keep)
    assert now == kept | _as_kept(tmp_path / "third" / "units") and len(now) == 24 and len(models) == 6
    said = [w for w in warned if "other weights than the --keep copy's" in w]
    assert sorted(w.split()[0] for w in said) == ["seed0/a", "seed0/b", "seed0/control"], warned
    # refused before any work, nothing written: in one line from the command line (the empty path: argparse
    # would read Path("") as "."), the rest in process (no interpreter start each)
    out = tmp_path / "fourth"
    assert_clean_failure(run_cli("run", exp, "-o", out, "--workers", "1", "--keep", ""), "an empty path", out)
    (tmp_path / "file").write_text("x")
    for bad, said in ((out / "units", "inside this run's output"),
                      (tmp_path / ".fourth.partial" / "k", "inside this run's output"),
                      (tmp_path / "file", "is a file, not a folder"),
                      (first, "an output sleepnet wrote"),
                      (first / "seed0" / "control", "an output sleepnet wrote"),
                      (first / "units" / "k", "that is in an output sleepnet wrote"),
                      (tmp_path / "file" / "k", "is a file")):  # fmt: skip
        with pytest.raises(SleepnetError, match=said):
            run_experiment(exp, out, progress=False, workers=1, keep=bad)
        assert not out.exists() and not (tmp_path / ".fourth.partial").exists()
    assert not any((first / "seed0" / "control").glob("*.*.json"))


def test_keep_says_when_its_copy_holds_a_model_made_otherwise(tmp_path, monkeypatch):
    """``_record_weights``: nothing said for a model the copy records, or one it has never seen; a warning
    for the same unit with other weights, and for a name whose recorded units all differ (thread counts)."""
    from sleepnet.experiment import _record_weights
    from sleepnet.progress import LOG

    warned = []
    monkeypatch.setattr(LOG, "warning", lambda msg, *a: warned.append(msg % a))
    folder = tmp_path / "seed0" / "control"
    _record_weights(folder, "u1", "a" * 64, "seed0/control")
    _record_weights(folder, "u1", "a" * 64, "seed0/control")
    assert warned == [] and json.loads((folder / f"model.{'a' * 16}.json").read_text()) == {
        "unit": "u1", "weights": "a" * 64}
    _record_weights(folder, "u1", "b" * 64, "seed0/control")
    assert len(warned) == 1 and "other weights than the --keep copy's of the same unit" in warned[0]
    _record_weights(folder, "u2", "c" * 64, "seed0/control")
    assert len(warned) == 2 and "another unit than the --keep copy's" in warned[1]
    assert len(list(folder.glob("model.*.json"))) == 3


def test_models_runs_only_the_named_models_and_a_run_of_the_whole_file_takes_their_measures(tmp_path):
    """``--models``: the control and the named models only; they are the same units as in the whole file
    (a later whole run takes their measures from the --keep copy); over a folder holding others, those
    and other seeds' (``--seeds``) are kept; a name the file lacks, a repeated one: one line, nothing
    written."""
    exp = tmp_path / "e.toml"
    exp.write_text(RESUMABLE.replace("seeds = [0, 1, 2]", "seeds = [0]"))
    keep = tmp_path / "kept"
    part = tmp_path / "part"
    proc = run_cli("run", exp, "-o", part, "--workers", "1", "--models", "a", "--keep", keep)
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads((part / "metrics.json").read_text())["per_seed"]["0"]) == ["control", "a"]
    assert proc.stderr.count("sleep (numba)") == 1
    proc = run_cli("run", exp, "-o", tmp_path / "whole", "--workers", "1", "--keep", keep)
    assert proc.returncode == 0, proc.stderr
    assert "reused 0 of 3 models and 8 of 12 measures" in proc.stderr, proc.stderr
    # over a whole run's folder (--force, or a resume), the file's other models are kept, not pruned
    proc = run_cli("run", exp, "-o", tmp_path / "whole", "--workers", "1", "--models", "a", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "whole" / "seed0" / "b" / "model.json").is_file()
    assert (tmp_path / "whole" / "units" / "seed0" / "b").is_dir()
    # and its other seeds: --seeds 1 over it reports seed 1 alone and keeps seed 0's work
    proc = run_cli("run", exp, "-o", tmp_path / "whole", "--workers", "1", "--models", "a", "--seeds", "1",
                   "--force")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads((tmp_path / "whole" / "metrics.json").read_text())["per_seed"]) == ["1"]
    assert (tmp_path / "whole" / "seed0" / "b" / "model.json").is_file()
    assert (tmp_path / "whole" / "units" / "seed0" / "control").is_dir()
    out = tmp_path / "bad"
    assert_clean_failure(run_cli("run", exp, "-o", out, "--models", "a,zzz"), "--models: zzz not in", out)
    assert_clean_failure(run_cli("run", exp, "-o", out, "--models", "a,a"), "distinct model names", out)


def test_a_tiny_experiment_with_the_standard_suite_reports_budgets_and_a_verdict(tmp_path):
    """The standard suite end to end: experiment, aggregate, report (review of issue 12: the report
    and the headline read results the standard suite did not have)."""
    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY.replace('suite = "paper"', 'suite = "standard"').replace(
        'distillation = { epochs = 2 }\nfinetune-noise = {}\n', ""))
    out = tmp_path / "run"
    proc = run_cli("run", exp, "--quick", "-o", out, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    agg = metrics["aggregate"]
    want = {"worst-linf.robust@0.1", "worst-l2.robust@1.5", "autoattack-linf.robust@0.05"}
    assert want <= set(agg["control"])
    report = (out / "report.md").read_text()
    assert "## Robust accuracy at budgets" in report and "## Verdict" in report
    assert "**sleep-fgsm**:" in report.split("## Verdict")[1]
    assert "loss cross-entropy+dlr-targeted+none (FAB)+margin" in report
    # per seed, McNemar over the same images beside the t-test over seeds, in the table and the verdict
    assert "| sleep-fgsm | 0 |" in report and "| sleep-fgsm | 1 |" in report
    assert " Per seed, over the same images" in report.split("## Verdict")[1]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml")),
                         ids=lambda p: p.name)  # fmt: skip
def test_every_committed_experiment_file_is_valid(path):
    from sleepnet.experiment import load_experiment

    spec = load_experiment(path)  # every field and every defence's parameters checked
    assert spec.seeds and spec.name


def test_an_experiment_runs_the_saturation_defence_on_its_own_recipe_and_every_analysis(tmp_path):
    exp = tmp_path / "sat.toml"
    entry = 'sigmoid-sat = { defence = "saturation", recipe = "sigmoid-mlp", lam = 0.01, epochs = 2 }\n'
    head = TINY.replace("seeds = [0, 1]", "seeds = [0]").split("[sleep]")[0].replace(
        "subsample = 8", 'subsample = 8\nanalyses = ["weights", "activations", "jacobian", "geometry"]\n'
        "analysis_images = 60")  # fmt: skip
    twin = 'sigmoid-mlp = { defence = "saturation", recipe = "sigmoid-mlp", lam = 0.0, epochs = 2 }\n'
    out = tmp_path / "run"
    # first without analyses; then with them, every measure made before taken as it was (their hashes
    # do not hold the analyses)
    exp.write_text(head.split("analyses")[0] + "\n[defences]\n" + entry + twin)
    proc = run_cli("run", exp, "--quick", "-o", out, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    before = json.loads((out / "metrics.json").read_text())["timing"]["reused"]["measures_of"]
    exp.write_text(head + "[defences]\n" + entry + twin)
    proc = run_cli("run", exp, "--quick", "-o", out, "-q", "--workers", "1", "--force")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timing"]["reused"] == {"models": 3, "models_of": 3, "measures": before,
                                           "measures_of": before + 3 * 4}  # fmt: skip
    assert set(metrics["aggregate"]) == {"control", "sigmoid-sat", "sigmoid-mlp"}
    # every analysis of every model, kept as its measures, compared in the report
    assert metrics["experiment"]["analyses"] == ["weights", "activations", "jacobian", "geometry"]
    for name in ("control", "sigmoid-sat"):
        res = metrics["per_seed"]["0"][name]["analyses"]
        assert set(res) == {"weights", "activations", "jacobian", "geometry"}
        assert res["geometry"]["settings"]["m"] == 50
        kept = sorted(p.name for p in (out / "units" / "seed0" / name).glob("analysis-*.json"))
        assert kept == [f"analysis-{a}.json" for a in ("activations", "geometry", "jacobian", "weights")]
    agg = metrics["aggregate"]
    kurtosis = metrics["per_seed"]["0"]["sigmoid-sat"]["analyses"]["weights"]["layers"][0]["kurtosis"]
    assert agg["sigmoid-sat"]["weights.kurtosis@1"]["values"] == [kurtosis]
    assert {"jacobian.top", "geometry.class.capacity@0", "activations.saturated@1"} <= set(agg["control"])
    report = (out / "report.md").read_text()
    assert "## Analyses" in report and "on the first 60 test images" in report
    assert "| sigmoid-sat | " + f"{kurtosis:.2f} |" in report  # one seed: the value alone
    assert "MFTMA capacity of the class-adv manifolds per layer" in report
    separation = metrics["per_seed"]["0"]["sigmoid-sat"]["analyses"]["geometry"]["separation"]
    assert agg["sigmoid-sat"]["geometry.separation@1"]["values"] == [separation[1]]
    assert "Separation of clean and adversarial exemplar manifolds per layer" in report
    assert "on a stochastic model's own noise draws" not in report  # no stochastic model
    assert (out / "figures" / "analysis" / "geometry.png").is_file()
    assert "![jacobian](figures/analysis/jacobian.png)" in report
    # the saturation claims: the saturated model against its lambda-0 twin (the paper suite: no worst case)
    claims = report.split("## The saturation claims, one by one")[1].split("## Analyses")[0]
    assert "**sigmoid-sat** (lambda 0.01) against **sigmoid-mlp**:" in claims
    assert "| resists iterative attacks | not measured | no worst case at L-inf 0.1 in the metrics" in claims
    assert "| highly kurtotic weights | " in claims and "excess kurtosis, weight layer 1: " in claims
    # run again over it: every measure, the analyses with them, taken from it
    proc = run_cli("run", exp, "--quick", "-o", out, "-q", "--workers", "1", "--force")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((out / "metrics.json").read_text())
    assert again["timing"]["reused"]["measures"] == again["timing"]["reused"]["measures_of"]
    assert again["per_seed"]["0"]["control"]["analyses"] == metrics["per_seed"]["0"]["control"]["analyses"]
    record = json.loads((out / "seed0" / "sigmoid-sat" / "model.json").read_text())
    assert record["recipe"]["name"] == "sigmoid-mlp" and record["recipe"]["saturation"] == 0.01
    assert record["defence"] == {"name": "saturation", "lam": 0.01, "schedule": "linear:0.5", "epochs": 2,
                                 "recipe": "sigmoid-mlp"}  # fmt: skip
    checks = metrics["per_seed"]["0"]["sigmoid-sat"]["masking"]
    assert {"precision", "loss_choice"} <= set(checks)


def test_a_first_pass_makes_only_the_measures_named_and_the_run_without_it_the_rest(tmp_path):
    """``--only-measures``: those measures of every model and seed, kept, no report, the work folder left;
    the same command without it takes them and makes the rest and the report."""
    exp = tmp_path / "first.toml"
    exp.write_text('[experiment]\ndataset = "patches"\nrecipe = "paper"\nhidden = [8]\nepochs = 1\n'
                   'seeds = [0, 1]\nsuite = "quick"\nanalyses = ["weights", "jacobian"]\n\n[defences]\n'
                   'noisy = { defence = "stochastic", noise = "gaussian:0.3", train = false }\n')  # fmt: skip
    out, keep = tmp_path / "run", tmp_path / "keep"
    proc = run_cli("run", exp, "-o", out, "-q", "--workers", "2", "--keep", keep,
                   "--only-measures", "clean,fgsm,analysis-weights")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # 2 seeds x 2 models x 3 measures made; left: per model the 2 distortions and the jacobian, and per
    # seed the stochastic model's clean accuracy over draws (4 x 3 + 2)
    assert "first pass: 12 measures made, 0 kept from before, 14 left" in proc.stdout
    assert not out.exists() and (tmp_path / ".run.partial").is_dir()
    for seed in (0, 1):
        for name in ("control", "noisy"):
            made = sorted(f.name.split(".")[0] for f in (keep / f"seed{seed}" / name).glob("*.json")
                          if not f.name.startswith("model."))  # fmt: skip
            assert made == ["analysis-weights", "clean", "fgsm"], (seed, name, made)
    # the same --workers: the evaluation's thread count is in every measure's hash
    proc = run_cli("run", exp, "-o", out, "-q", "--workers", "2", "--keep", keep, "-v")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timing"]["reused"]["measures"] == 12 and metrics["timing"]["reused"]["measures_of"] == 26
    runs = metrics["per_seed"]["1"]
    assert runs["noisy"]["gaussian-blur"]["accuracy"] and runs["noisy"]["analyses"]["jacobian"]
    assert runs["noisy"]["clean_over_draws"] and (out / "report.md").is_file()


def test_without_eot_evaluates_each_stochastic_model_a_second_time_naively(tmp_path):
    exp = tmp_path / "eot.toml"
    exp.write_text('[experiment]\ndataset = "patches"\nrecipe = "paper"\nhidden = [8]\nepochs = 1\n'
                   'seeds = [0]\nsuite = "quick"\nwithout_eot = true\nanalyses = ["weights"]\n\n[defences]\n'
                   'noisy = { defence = "stochastic", noise = "gaussian:0.3", train = false }\n')  # fmt: skip
    out = tmp_path / "run"
    proc = run_cli("run", exp, "-o", out, "-q", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["aggregate"]) == {"control", "noisy", "noisy-no-eot"}  # a deterministic control: once
    runs = metrics["per_seed"]["0"]
    assert metrics["experiment"]["without_eot"] is True
    assert runs["noisy-no-eot"]["single_draws"] is True and "single_draws" not in runs["noisy"]
    assert runs["noisy-no-eot"]["fgsm"] != runs["noisy"]["fgsm"]
    report = (out / "report.md").read_text()
    assert "| noisy-no-eot |" in report
    # the stochastic findings: the quick suite has no worst case, the file no geometry: nothing to say
    assert "## The stochastic findings, one by one" not in report
    # analysed once: not again for the naive evaluation
    assert runs["noisy"]["analyses"]["weights"] and "analyses" not in runs["noisy-no-eot"]
    assert not list((out / "units" / "seed0" / "noisy-no-eot").glob("analysis-*"))
    assert sorted(p.name for p in (out / "units" / "seed0").iterdir()) == ["control", "noisy", "noisy-no-eot"]


def test_rand_autoattack_gives_every_side_autoattacks_rand_version(tmp_path):
    """``rand_autoattack = true``: the deterministic control and the naive pass get AutoAttack's rand
    version (EOT 1) as a measure of its own, the stochastic model (whose AutoAttack is the rand version
    with EOT) does not, and the stochastic findings compare the rand versions and Square."""
    exp = tmp_path / "rand.toml"
    exp.write_text('[experiment]\ndataset = "patches"\nrecipe = "paper"\nhidden = [8]\nepochs = 1\n'
                   'seeds = [0]\nsuite = "standard"\nsubsample = 20\nwithout_eot = true\n'
                   'rand_autoattack = true\n\n[defences]\n'
                   'noisy = { defence = "stochastic", noise = "gaussian:0.3", train = false }\n')  # fmt: skip
    out = tmp_path / "run"
    proc = run_cli("run", exp, "-o", out, "-q", "--workers", "1", "--quick")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    runs = metrics["per_seed"]["0"]
    assert metrics["experiment"]["rand_autoattack"] is True
    for name in ("control", "noisy-no-eot"):
        rand = runs[name]["autoattack-rand-linf"]
        assert rand["settings"]["version"] == "rand" and rand["eot_samples"] == 1 and rand["n"] == 20
        assert runs[name]["autoattack-linf"]["settings"]["version"] == "standard"
        assert runs[name]["robust"]["inf"]["attacks"] == ["autoattack-linf", "square-linf"]  # the suite's
    assert "autoattack-rand-linf" not in runs["noisy"]
    assert runs["noisy"]["autoattack-linf"]["settings"]["version"] == "rand"
    assert runs["noisy"]["autoattack-linf"]["eot_samples"] > 1
    report = (out / "report.md").read_text()
    assert "| noisy | noise at test time makes the network robust |" in report
    like = "worst case (AutoAttack's rand version + Square, 20 images) at L-inf 0.1, control -> model"
    assert like in report


def test_paired_statistics_against_hand_computed_values():
    """The two tests every multi-seed table uses: the paired t-test over seeds and the exact McNemar
    test over images, checked against values worked by hand."""
    import numpy as np

    from sleepnet.report import mcnemar, paired_p, seed_cell

    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3) = 3.4641, 2 dof -> p 0.0742
    assert paired_p([0.6, 0.7, 0.8], [0.5, 0.5, 0.5]) == pytest.approx(0.07417, abs=1e-4)
    assert np.isnan(paired_p([0.6], [0.5]))  # one seed: no test
    assert paired_p([0.6, 0.7], [0.5, 0.6]) == 0.0  # the same gain every seed: no spread
    assert np.isnan(paired_p([0.5, 0.6], [0.5, 0.6]))
    # differences of opposite signs at float-rounding size are no difference; a real one of 1e-6 is tested
    assert np.isnan(paired_p([2e-12, -3e-10, 0.0], [0.0, 0.0, 0.0]))
    assert 0 < paired_p([0.5 + 1e-6, 0.5, 0.5 + 3e-6], [0.5, 0.5, 0.5]) < 1
    # the same difference up to float rounding (0.1 +- 4e-17): no spread either, not p = 1e-16
    assert paired_p([0.1 + 0.2, 0.7, 0.4], [0.2, 0.6, 0.3]) == 0.0
    assert seed_cell({0: 0.1 + 0.2, 1: 0.7, 2: 0.4}, {0: 0.2, 1: 0.6, 2: 0.3}) == \
        "0.467 ± 0.208 (the same difference every seed)"
    # the cell of a table over seeds: p over the seeds both have (seed 3 has no baseline)
    assert seed_cell({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.5}) == "0.700 ± 0.100 (p=0.074)"
    # seed 3 has no baseline: the mean is over 4 seeds, the test over the 3 both have, and says so
    cell = seed_cell({0: 0.6, 1: 0.7, 2: 0.8, 3: 0.9}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert cell == "0.750 ± 0.129 (p=0.074, 3 seeds)"
    assert seed_cell({0: 0.6}) == "0.600"  # one seed: no spread to give
    assert seed_cell({0: 0.6, 1: 0.7}, {0: 0.6, 1: 0.7}) == "0.650 ± 0.071"  # no difference: no p
    a = np.array([True] * 7 + [False] * 3 + [True] * 5)
    b = np.array([False] * 7 + [True] * 3 + [True] * 5)
    # 7 for a only, 3 for b only: two-sided binomial p of 3 or fewer of 10 = 2 * 176 / 1024
    assert mcnemar(a, b) == (7, 3, pytest.approx(0.34375))
    assert mcnemar(b, b) == (0, 0, 1.0)


def test_a_seed_without_a_value_is_said_and_the_same_difference_in_two_seeds_is_no_verdict():
    """A report cell over seeds says how many seeds its mean holds where some lack a finite value (an
    attack that broke no image has no median norm), gives one seed's value alone, not with a spread of
    0; and the verdict does not call the same difference in 2 seeds (p = 0: no spread to test, one
    image each) significant, as it does over 3."""
    import numpy as np

    from sleepnet.report import _fmt, _verdict, aggregate, significant

    def runs(ctrl, sleep):  # Boundary's median relative L2: nan where it broke no image
        return {m: {"clean_accuracy": 0.9, "boundary": {"median_rel_l2": v}} for m, v in
                (("control", ctrl), ("sleep", sleep))}  # fmt: skip

    agg = aggregate({0: runs(0.1, float("nan")), 1: runs(0.2, 0.06), 2: runs(0.3, 0.08)})
    cell = agg["sleep"]["boundary.median_rel_l2"]
    assert cell["n"] == 2 and np.isnan(cell["p_vs_control"])
    assert _fmt(cell) == "0.070 ± 0.014 [2 of 3 seeds]"
    one = aggregate({0: runs(0.1, 0.2)})["sleep"]["boundary.median_rel_l2"]
    assert _fmt(one) == "0.200" and np.isnan(one["std"])
    assert _fmt(agg["control"]["boundary.median_rel_l2"]) == "0.200 ± 0.100"

    def verdict(ctrl, sleep):
        worst = lambda v: {"clean_accuracy": 0.9, "robust": {"inf": {"robust_accuracy": {"0.1": v}}}}  # noqa: E731
        agg = aggregate({s: {"control": worst(c), "sleep": worst(v)}
                         for s, (c, v) in enumerate(zip(ctrl, sleep))})  # fmt: skip
        return _verdict(agg, ["control", "sleep"], ["worst-linf.robust@0.1"])[0]

    assert "not more robust" in verdict([0.100, 0.200], [0.101, 0.201])
    assert "more robust than the control at Linf 0.1 (+0.001, the same difference every seed)" in \
        verdict([0.100, 0.200, 0.300], [0.101, 0.201, 0.301])
    assert significant(0.01, 2) and not significant(0.0, 2) and significant(0.0, 3)
    assert not significant(float("nan"), 3) and not significant(0.06, 3)


def test_the_worst_case_header_names_the_models_attacked_otherwise():
    """A stochastic model's worst case is AutoAttack's rand version with EOT: the section's list of
    attacks says so, beside the control's, instead of giving the control's alone."""
    from sleepnet.report import _attack_lines, _robust_lines, aggregate

    def run(loss, eot):
        return {"clean_accuracy": 0.9, "autoattack-linf": {"loss": loss, "eot_samples": eot, "n": 4,
                                                           "robust_accuracy": {"0.1": 0.4}},
                "robust": {"inf": {"attacks": ["autoattack-linf"], "n": 4, "budgets": [0.1],
                                   "robust_accuracy": {"0.1": 0.4}}}}  # fmt: skip

    per_seed = {"0": {"control": run("ce+dlr-t", 1), "noisy": run("ce+dlr", 20), "sleep": run("ce+dlr-t", 1)}}
    lines = _robust_lines(aggregate(per_seed), ["control", "noisy", "sleep"], {"per_seed": per_seed})
    assert "- Linf: autoattack-linf (loss ce+dlr-t); 4 test images (control, sleep)" in lines
    assert "- Linf: autoattack-linf (loss ce+dlr, EOT 20); 4 test images (noisy)" in lines
    same = {"0": {"control": run("ce", 1), "sleep": run("ce", 1)}}
    assert "- Linf: autoattack-linf (loss ce); 4 test images" in _robust_lines(
        aggregate(same), ["control", "sleep"], {"per_seed": same})
    # every seed is read, not the first alone: a model missing from seed 0, one attacked otherwise in a seed
    later = {"0": {"control": run("ce", 1)},
             "1": {"control": run("ce", 1), "noisy": run("ce+dlr", 20)},
             "2": {"control": run("ce", 20), "noisy": run("ce+dlr", 20)}}  # fmt: skip
    lines = _robust_lines(aggregate(later), ["control", "noisy"], {"per_seed": later})
    assert "- Linf: autoattack-linf (loss ce+dlr, EOT 20); 4 test images (noisy)" in lines
    assert "- Linf: autoattack-linf (loss ce); 4 test images (control (seeds 0, 1))" in lines
    assert "- Linf: autoattack-linf (loss ce, EOT 20); 4 test images (control (seed 2))" in lines
    attacks = _attack_lines(aggregate(later), ["control", "noisy"], {"per_seed": later})
    assert "autoattack-linf (loss ce, 4 images (seeds 0, 1) / loss ce, EOT 20, 4 images (seed 2)):" in attacks
    assert "Attacked otherwise: noisy: loss ce+dlr, EOT 20, 4 images." in attacks
    # compared seed by seed: a model missing from the seed where the control was attacked otherwise is not
    # "attacked otherwise"; one that differs in one seed of its two is, with that seed named
    later["0"]["noisy"] = run("ce", 1)
    later["2"] = {"control": run("ce", 20), "noisy": run("ce+dlr", 20), "sleep": run("ce", 1)}
    later["1"]["sleep"] = run("ce", 1)
    attacks = _attack_lines(aggregate(later), ["control", "noisy", "sleep"], {"per_seed": later})
    assert ("Attacked otherwise: noisy: loss ce+dlr, EOT 20, 4 images (seeds 1, 2); sleep: loss ce, "
            "4 images (seed 2).") in attacks
    del later["2"]["sleep"]
    attacks = _attack_lines(aggregate(later), ["control", "noisy", "sleep"], {"per_seed": later})
    assert "Attacked otherwise: noisy: loss ce+dlr, EOT 20, 4 images (seeds 1, 2)." in attacks


def test_mean_curves_average_the_seeds_that_hold_a_curve_at_its_levels_and_say_how_many():
    from sleepnet.report import mean_curves

    def curve(levels, acc):
        return {"clean_accuracy": 0.9, "gaussian-noise": {"variance": levels, "accuracy": acc}}

    per_seed = {0: {"control": curve([0, 1], [0.9, 0.5]), "sleep": curve([0, 1], [0.8, 0.4])},
                1: {"control": curve([0, 1], [0.7, 0.3]), "sleep": curve([0, 2], [0.0, 0.0])},
                2: {"control": curve([0, 1], [0.8, 0.4])}}  # fmt: skip
    out = mean_curves(per_seed)
    assert out["control"]["gaussian-noise"]["accuracy"] == pytest.approx([0.8, 0.4])
    assert "label" not in out["control"]["gaussian-noise"]
    sleep = out["sleep"]["gaussian-noise"]  # seed 1's other levels are not averaged in; seed 2 lacks it
    assert sleep["accuracy"] == [0.8, 0.4] and sleep["label"] == "sleep (1 of 3 seeds)"


def test_the_verdict_gives_per_seed_mcnemar_tests_on_the_worst_case_over_the_same_images():
    """Beside the paired t-test over seeds, each seed's exact McNemar test of a model against its control
    on the worst case per image (the smallest norm any attack of the norm's worst case found), at each
    budget, with how many survive a Holm correction; a seed whose norms are not kept, or whose images
    differ, is not tested, and is named."""
    from sleepnet.report import _mcnemar_lines, _seed_words, holm, seed_mcnemar

    def run(a, b):  # two attacks' per-image norms (None: not broken), L-inf
        return {"robust": {"inf": {"attacks": ["aa", "sq"]}}, "aa": {"norms": a}, "sq": {"norms": b}}

    far = [None] * 10
    control = run([0.05] * 10, far)  # broken within 0.1 everywhere
    # seed 0: the model keeps 9 images at 0.1 where square breaks one more (0.08): 0/9, p = 2/512;
    # seed 1: it keeps 2 (0/2, p = 0.5); seed 2: no norms kept (an old record); seed 3: 5 images only;
    # seed 4: as many images, but other ones
    model0 = run(far, [0.08] + [None] * 9)
    model1 = run([0.05] * 8 + [None] * 2, far)
    unkept = {"robust": {"inf": {"attacks": ["aa"]}}, "aa": {}}
    other = run(far, far) | {"subsample": {"n": 10, "seed": 1}}
    metrics = {"per_seed": {"0": {"control": control, "m": model0}, "1": {"control": control, "m": model1},
                            "2": {"control": control, "m": unkept}, "4": {"control": control, "m": other},
                            "3": {"control": control, "m": run([None] * 5, [None] * 5)}}}  # fmt: skip
    keys = ["worst-linf.robust@0.03", "worst-linf.robust@0.1"]
    tests = seed_mcnemar(metrics, ["control", "m"], keys)
    assert tests["m"]["worst-linf.robust@0.1"] == {"0": (0, 9, pytest.approx(2 / 512)), "1": (0, 2, 0.5),
                                                   "2": None, "3": None, "4": None}  # fmt: skip
    assert tests["m"]["worst-linf.robust@0.03"]["0"] == (0, 0, 1.0)
    rows = _mcnemar_lines(tests, keys)
    assert "| m | 0 | 0/0 (p=1) | 0/9 (**p=0.0039**) |" in rows
    assert "| m | 1 | 0/0 (p=1) | 0/2 (p=0.5) |" in rows and not any(r.startswith("| m | 2") for r in rows)
    assert rows[-1].endswith("other images): m (seeds 2, 3, 4).")
    # 4 tests: 0.0039 < 0.05 / 4 survives Holm
    assert _seed_words(tests["m"]) == " Per seed, over the same images (McNemar p < 0.05, uncorrected): " \
        "more robust at Linf 0.1 in 1 of 2 seeds (seeds 2, 3, 4 could not be tested); 1 of these 1 survive " \
        "a Holm correction over its 4 tests."
    said = _seed_words({keys[1]: {"0": (9, 0, 0.004)}, keys[0]: {str(s): (0, 0, 1.0) for s in range(19)}})
    assert "less robust at Linf 0.1 in 1 of 1 seeds; 0 of these 1 survive a Holm correction over its 20 " \
           "tests" in said  # 0.004 >= 0.05 / 20
    said = _seed_words({keys[1]: {"0": (0, 2, 0.5)}})
    assert said.endswith("no difference at McNemar p < 0.05 at any budget.")
    assert _seed_words({keys[1]: {"0": None}}) == ""
    # Holm, worked by hand: sorted 0.01 < 0.05/4, 0.015 < 0.05/3, 0.03 >= 0.05/2 stops (0.04 with it)
    assert holm([0.03, 0.01, 0.04, 0.015]) == [False, True, False, True]
    assert holm([0.001, 0.001]) == [True, True] and holm([]) == []


def test_the_per_attack_section_names_a_model_attacked_otherwise(tmp_path):
    """FSDD's stochastic model met AutoAttack's rand version (EOT 20): its rows must not sit under the
    control's standard-version header unsaid (the committed metrics)."""
    from pathlib import Path

    from sleepnet.report import aggregate, write_report

    metrics = json.loads((Path(__file__).parents[1] / "experiments/results/fsdd/metrics.json").read_text())
    assert "measure_s" not in metrics["timing"]  # a run from before measure_s: no timing line, no error
    write_report(metrics, tmp_path)
    report = (tmp_path / "report.md").read_text()
    section = report.split("## Robust accuracy per attack")[1].split("## Robust accuracy at budgets")[0]
    assert "autoattack-linf (Linf, loss cross-entropy+dlr-targeted+none (FAB)+margin, 100 images):" in section
    assert "Attacked otherwise: poisson-170: Linf, loss cross-entropy+dlr, EOT 20, 100 images." in section
    assert "fgsm (" not in section and "worst-" not in section
    assert "where the evaluation's time went" not in report
    # the worst case at budgets drawn, mean and spread over the seeds (robust accuracy against the budget)
    assert "![robust_vs_linf](figures/robust_vs_linf.png)" in report
    assert (tmp_path / "figures" / "robust_vs_linf.png").stat().st_size > 0
    # a seed that lacks a model (a run stopped part way): the report is of the seeds that hold it
    del metrics["per_seed"]["0"]["poisson-170"]
    write_report(metrics | {"aggregate": aggregate(metrics["per_seed"])}, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Attacked otherwise: poisson-170: Linf, loss cross-entropy+dlr, EOT 20, 100 images." in report
    assert "| poisson-170 |" in report and "[2 of 3 seeds]" in report


def test_seeds_are_parsed_alike_by_the_cli_and_the_experiment_scripts_and_grouped_over_seeds():
    """``--seeds`` of ``sleepnet run`` and of every script in ``experiments/`` (one line, prefixed with
    the script's name), and the grouping of the scripts' tables over seeds."""
    from sleepnet.cli.common import parse_seeds
    from sleepnet.errors import UsageError
    from sleepnet.report import seed_groups

    assert parse_seeds("2,0,1") == parse_seeds("2,0,1,", "prog") == [2, 0, 1]
    assert parse_seeds(None) is None
    span = "integers from 0 to 2**32 - 1"
    for bad, problem in (("", span), ("a", "integers like 0,1,2"), ("0,-1", span), ("0,4294967296", span),
                         ("1,1", "distinct seeds")):  # fmt: skip
        message = re.escape(f"--seeds expects {problem}, got {bad!r}")
        with pytest.raises(SystemExit, match=f"^prog: {message}$"):
            parse_seeds(bad, "prog")
        with pytest.raises(UsageError, match=f"^{message}$"):
            parse_seeds(bad)
    runs = [{"act": a, "lam": lam, "seed": s} for a, lam, s in
            (("relu", 0.0, 0), ("relu", 0.0, 1), ("relu", 0.1, 1), ("relu", 0.1, 0), ("relu", 1.0, 0),
             ("relu", 0.5, 0), ("relu", 0.5, 1), ("tanh", 0.1, 0), ("tanh", 0.1, 1))]  # fmt: skip
    groups = seed_groups(runs, lambda r: (r["act"], r["lam"]), lambda k: (k[0], 0.0) if k[1] else None)
    assert [k for k, _, _ in groups] == [("relu", 0.0), ("relu", 0.1), ("relu", 0.5), ("tanh", 0.1)]
    by_key = {k: (seeds, base) for k, seeds, base in groups}  # lambda 1.0 ran under one seed: left out
    assert sorted(by_key[("relu", 0.1)][0]) == [0, 1] and by_key[("relu", 0.1)][0][1] is runs[2]
    assert by_key[("relu", 0.1)][1] == {0: runs[0], 1: runs[1]}
    assert by_key[("relu", 0.0)][1] == {} and by_key[("tanh", 0.1)][1] == {}  # no baseline ran


def test_cores_counts_the_cores_this_process_may_run_on(monkeypatch):
    """Under ``taskset`` or a cgroup's cpuset a process runs on fewer cores than the machine has: the
    "one per core" defaults and the reports count those."""
    import os

    from sleepnet import threads

    monkeypatch.setattr(threads, "cpu_quota", lambda: None)  # the machine's own quota: below
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert cores() == 1
    monkeypatch.delattr(os, "sched_getaffinity")  # a platform without affinity (macOS)
    assert cores() == (os.cpu_count() or 1)


def test_cpu_quota_reads_cgroup_v2_and_v1_and_cores_rounds_it_up(tmp_path, monkeypatch):
    """A container's ``--cpus 1.5`` is a quota, not an affinity: ``cores`` counts 2 of the 4 cores it may
    run on; the smallest quota of a cgroup and its ancestors holds; none, "max" or -1 is no quota."""
    import os

    from sleepnet import threads

    def tree(lines: str, files: dict) -> tuple:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        root.mkdir()
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        (root / "cgroup").write_text(lines)
        return root / "fs", root / "cgroup"

    v2 = tree("0::/box/job\n", {"fs/cpu.max": "max 100000\n", "fs/box/cpu.max": "150000 100000\n",
                                "fs/box/job/cpu.max": "400000 100000\n"})  # fmt: skip
    assert threads.cpu_quota(*v2) == 1.5
    assert threads.cpu_quota(*tree("0::/\n", {"fs/cpu.max": "max 100000\n"})) is None
    v1_files = {"fs/cpu,cpuacct/x/cpu.cfs_quota_us": "150000", "fs/cpu,cpuacct/x/cpu.cfs_period_us": "100000"}
    v1 = tree("4:memory:/x\n3:cpu,cpuacct:/x\n", v1_files)
    assert threads.cpu_quota(*v1) == 1.5
    v1_own = {"fs/cpu/cpu.cfs_quota_us": "200000", "fs/cpu/cpu.cfs_period_us": "100000",
              "fs/cpu/x/cpu.cfs_quota_us": "50000", "fs/cpu/x/cpu.cfs_period_us": "100000"}  # fmt: skip
    assert threads.cpu_quota(*tree("2:cpu:/x\n", v1_own)) == 0.5  # its own folder, the smaller of two
    # a container: its cgroup's path is not mounted under its own root, whose cpu.max is its quota
    assert threads.cpu_quota(*tree("0::/docker/abc\n", {"fs/cpu.max": "200000 100000\n"})) == 2.0
    hybrid = tree("1:name=systemd:/\n0::/u\n", {"fs/unified/u/cpu.max": "50000 100000\n"})
    assert threads.cpu_quota(*hybrid) == 0.5
    odd = tree("", {})
    odd[1].write_bytes(b"0::/\xff\n")  # a cgroup name that is not UTF-8
    assert threads.cpu_quota(*odd) is None
    unlimited = {"fs/cpu/cpu.cfs_quota_us": "-1\n", "fs/cpu/cpu.cfs_period_us": "100000\n"}
    assert threads.cpu_quota(*tree("1:cpu:/\n", unlimited)) is None
    assert threads.cpu_quota(*tree("0::/\n", {"fs/cpu.max": "garbled\n"})) is None
    assert threads.cpu_quota(tmp_path / "none", tmp_path / "none") is None  # not Linux

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "cpu_quota", lambda: 1.5)
    assert cores() == 2
    monkeypatch.setattr(threads, "cpu_quota", lambda: 0.25)
    assert cores() == 1
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    assert cores() == 4
