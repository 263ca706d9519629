"""The pure parts of the experiment scripts (``experiments/*.py``), which the suite does not run."""

import importlib.util
import shutil
from pathlib import Path

from scipy.stats import ttest_rel

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(lam, seed, clean, aa):
    return {"act": "sigmoid", "lam": lam, "epochs": 5, "seed": seed, "n": 500, "clean": clean,
            "fgsm32-ce@0.1": 0.1, "pgd64-margin@0.1": 0.05, "square@0.1": 0.1, "autoattack@0.1": aa,
            "autoattack@0.2": 0.0}  # fmt: skip


def test_saturation_sweep_over_seeds_gives_means_and_paired_tests_against_lambda_0():
    sweep = _script("saturation_sweep")
    base = [_run(0.0, s, c, a) for s, c, a in ((0, 0.97, 0.03), (1, 0.96, 0.05), (2, 0.98, 0.04))]
    sat = [_run(0.1, s, c, a) for s, c, a in ((0, 0.94, 0.19), (1, 0.95, 0.15), (2, 0.93, 0.20))]
    alone = [_run(1e-3, 0, 0.97, 0.1)]  # one seed: no row over seeds
    lines = sweep.over_seeds(base + sat + alone)
    rows = {line.split(" | ")[1]: line.split(" | ") for line in lines if line.startswith("| sigmoid")}
    assert set(rows) == {"0", "0.1"} and rows["0.1"][3] == "0,1,2"
    col = 4 + sweep.SEED_COLUMNS.index("autoattack@0.1")
    p = ttest_rel([0.19, 0.15, 0.20], [0.03, 0.05, 0.04]).pvalue
    assert rows["0.1"][col] == f"0.180 ± 0.026 (p={p:.2g})"
    assert rows["0"][col] == "0.040 ± 0.010"  # lambda 0 is the baseline: no test against itself
    assert rows["0.1"][4 + sweep.SEED_COLUMNS.index("autoattack-l2@1.0")] == "-"  # not measured
    assert sweep.over_seeds(alone) == []


def _second_order_run(lam, seed, worst_at_2):
    from sleepnet.evaluation.robust import key

    so = _script("second_order")
    acc = {key(b): 0.5 for b in so.BUDGETS}
    return {"act": "sigmoid", "lam": lam, "epochs": 5, "seed": seed, "n": 100, "clean": 0.95 + 0.01 * seed,
            "attacks": {label: {"robust_accuracy": acc} for label in so.ATTACKS},
            "worst": acc | {key(2.0): worst_at_2}}  # fmt: skip


def test_second_order_measures_again_what_an_older_attack_version_made():
    """A kept HopSkipJump result without today's implementation (made before its starts from another
    class) is dropped, to be measured again; the others are kept with their norms."""
    so = _script("second_order")
    done = _second_order_run(0.0, 0, 0.1) | {"norms": {label: [None] for label in so.ATTACKS}}
    kept = so.current(done)
    assert set(kept["attacks"]) == set(kept["norms"]) == set(so.ATTACKS) - {"hopskipjump"}
    done["attacks"]["hopskipjump"]["implementation"] = so._implementation("hopskipjump")
    assert set(so.current(done)["attacks"]) == set(so.ATTACKS) and so.current(None) is None


def test_second_order_keeps_results_only_of_the_weights_in_the_folder(patches_hidden_model):
    """A model folder trained again may hold other weights: kept results are taken only where the
    weights' digest is the one they name or, for one kept before results named it, where the clean
    accuracy and DeepFool's norms (no draws) come out the same."""
    from sleepnet.evaluation import subsample_indices
    from sleepnet.evaluation.attacks import ATTACKS
    from sleepnet.hashing import weights_sha256
    from sleepnet.training import accuracy
    from sleepnet.workflow import load_with_data

    so = _script("second_order")
    model, _, data = load_with_data(patches_hidden_model)
    idx = subsample_indices(len(data.x_test), 20)
    norms = ATTACKS["deepfool"](model, "cross-entropy").run(data.x_test[idx], data.y_test[idx])["norms"]
    assert any(v is not None and v > 0 for v in norms)  # something to compare
    old = {"clean": accuracy(model, data.x_test, data.y_test), "norms": {"deepfool": norms}}
    assert so.of_these_weights(old, patches_hidden_model, 20) is old
    moved = [v * 1.01 if v else v for v in norms]
    assert so.of_these_weights(old | {"norms": {"deepfool": moved}}, patches_hidden_model, 20) is None
    assert so.of_these_weights(old | {"clean": old["clean"] - 0.01}, patches_hidden_model, 20) is None
    named = old | {"weights": weights_sha256(model)}
    assert so.of_these_weights(named, patches_hidden_model, 20) is named
    assert so.of_these_weights(named | {"weights": "0" * 64}, patches_hidden_model, 20) is None
    assert so.of_these_weights(None, patches_hidden_model, 20) is None


def test_second_order_over_seeds_tests_each_attack_and_the_worst_case_against_lambda_0():
    so = _script("second_order")
    base = [_second_order_run(0.0, s, w) for s, w in ((0, 0.00), (1, 0.02), (2, 0.01))]
    sat = [_second_order_run(0.1, s, w) for s, w in ((0, 0.20), (1, 0.15), (2, 0.22))]
    lines = so.over_seeds(base + sat + [_second_order_run(1e-3, 0, 0.1)])
    rows = {(c[1], c[3]): c for c in (line.split(" | ") for line in lines if line.startswith("| sigmoid"))}
    assert {lam for lam, _ in rows} == {"0", "0.1"}  # lambda 1e-3 ran under one seed: no row
    assert {label for _, label in rows} == {*so.ATTACKS, "worst of all"}
    worst = rows[("0.1", "worst of all")]
    p = ttest_rel([0.20, 0.15, 0.22], [0.00, 0.02, 0.01]).pvalue
    assert worst[-1] == f"0.190 ± 0.036 (p={p:.2g}) |"  # L2 2.0, the last column
    assert worst[4] == "0.960 ± 0.010"  # clean: the same on both, so no p
    assert rows[("0", "worst of all")][-1] == "0.010 ± 0.010 |"  # the baseline is not tested against itself
    assert so.over_seeds(base[:1] + sat[:1]) == []


def test_stochastic_mnist_refuses_a_record_judged_by_other_draws(tmp_path):
    import pytest

    from sleepnet.noise import JUDGE

    sm = _script("stochastic_mnist")
    sizes = (500, 100, 100)
    record = {"n": 500, "autoattack": {"n": 100}, "square": {"n": 100}, "stochastic": True, "judge": JUDGE}
    sm.check_record(record, tmp_path / "r.json", sizes)
    sm.check_record(record | {"stochastic": False, "judge": None}, tmp_path / "r.json", sizes)
    for stale in ({"judge": "shared-rows-1"}, {"judge": None}):
        with pytest.raises(SystemExit, match="judged by other draws of the expected prediction"):
            sm.check_record(record | stale, tmp_path / "r.json", sizes)
    old = {k: v for k, v in record.items() if k != "judge"}  # measured before the draws were named
    with pytest.raises(SystemExit, match="before they were named"):
        sm.check_record(old, tmp_path / "r.json", sizes)
    with pytest.raises(SystemExit, match="other sizes"):
        sm.check_record(record, tmp_path / "r.json", (500, 1000, 100))


def _kept_unit(folder: Path, name: str, result, tag: str = "0123456789abcdef",
               weights: str = "aa" * 32) -> None:  # fmt: skip
    import json

    folder.mkdir(parents=True, exist_ok=True)
    unit = {"inputs": tag * 4, "result": result, "weights": weights}
    (folder / f"{name}.{tag}.json").write_text(json.dumps(unit))


def test_kept_table_reads_a_keep_folder_with_robust_accuracy_and_mcnemar_against_the_control(
    tmp_path, capsys
):
    """``experiments/kept_table.py``: per seed, clean accuracy and each budgeted measure at each budget,
    the McNemar test over the same images against the control; a measure kept twice is refused."""
    import pytest
    from scipy.stats import binomtest

    kt = _script("kept_table")
    # 10 images: the control robust at 0.1 on 2, the other model on 8 (6 only it, none only the control)
    control = [0.0, 0.05, 0.2, 0.2] + [0.05] * 6
    sleep = [0.0, 0.05, 0.2, 0.2] + [None] * 6
    for model, norms, clean in (("control", control, 0.9468), ("sleep-fgsm", sleep, 0.9424)):
        _kept_unit(tmp_path / "seed0" / model, "clean", clean)
        _kept_unit(tmp_path / "seed0" / model, "autoattack-linf", {
            "budgets": [0.05, 0.1], "norms": norms, "n": 10, "loss": "cross-entropy",
            "robust_accuracy": {"0.05": sum(n is None or n > 0.05 for n in norms) / 10,
                                "0.1": sum(n is None or n > 0.1 for n in norms) / 10}})  # fmt: skip
    lines = kt.seed_table(tmp_path / "seed0")
    assert lines[0] == "| seed0 | control | sleep-fgsm |"
    assert lines[2] == "| clean accuracy (test set) | 0.9468 | 0.9424 |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[3:]}
    p = binomtest(6, 6, 0.5).pvalue  # the 6 images robust only after sleep
    assert rows["autoattack-linf 0.1 (10 images; cross-entropy)"] == ["0.200", f"0.800 (p={p:.2g}) |"]
    assert rows["autoattack-linf 0.05 (10 images; cross-entropy)"] == ["0.200", f"0.800 (p={p:.2g}) |"]
    # a model whose copy was made otherwise (a stochastic model's AutoAttack: another loss, EOT 20) is
    # named in the label, not hidden behind the control's settings
    _kept_unit(tmp_path / "seedX" / "control", "autoattack-linf", {
        "budgets": [0.1], "norms": control, "n": 10, "loss": "cross-entropy",
        "robust_accuracy": {"0.1": 0.2}})  # fmt: skip
    _kept_unit(tmp_path / "seedX" / "noisy", "autoattack-linf", {
        "budgets": [0.1], "norms": sleep, "n": 10, "loss": "cross-entropy+dlr", "eot_samples": 20,
        "robust_accuracy": {"0.1": 0.8}})  # fmt: skip
    label = kt.seed_table(tmp_path / "seedX")[3].split(" | ")[0][2:]
    assert label == "autoattack-linf 0.1 (10 images; cross-entropy / 10 images; cross-entropy+dlr; EOT 20)"
    # over seeds: a second seed with the control and the same measure; a third with the control only
    assert kt.over_seeds([tmp_path / "seed0"]) == []  # one seed: nothing over seeds
    for seed, clean, robust in ((1, (0.95, 0.94), (0.3, 0.5)), (2, (0.945, None), (0.25, None))):
        for model, c, r in zip(("control", "sleep-fgsm"), clean, robust):
            if c is not None:
                _kept_unit(tmp_path / f"seed{seed}" / model, "clean", c)
                _kept_unit(tmp_path / f"seed{seed}" / model, "autoattack-linf", {
                    "budgets": [0.1], "norms": [None] * 10, "n": 10, "loss": "cross-entropy",
                    "robust_accuracy": {"0.1": r}})  # fmt: skip
    lines = kt.over_seeds([tmp_path / f"seed{s}" for s in (0, 1, 2)])
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:]}
    p = ttest_rel([0.8, 0.5], [0.2, 0.3]).pvalue  # seeds 0 and 1, which both models hold
    assert rows["autoattack-linf 0.1 (10 images; cross-entropy)"] == [
        "0.250 ± 0.050 [seeds 0,1,2]", f"0.650 ± 0.212 (p={p:.2g}) [seeds 0,1] |"]
    assert rows["clean accuracy (test set)"][0] == "0.947 ± 0.003 [seeds 0,1,2]"
    # a second run kept the same measure of a model of other weights: --weights picks, else one line
    _kept_unit(tmp_path / "seed0" / "control", "clean", 0.5, tag="fedcba9876543210", weights="bb" * 32)
    with pytest.raises(SystemExit, match="holds measures of models of weights "
                                         "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb"):  # fmt: skip
        kt.seed_table(tmp_path / "seed0")
    assert kt.seed_table(tmp_path / "seed0", ["aaaa"])[2] == "| clean accuracy (test set) | 0.9468 | 0.9424 |"
    # the other weights have no AutoAttack kept: the control's cell is empty, not the first weights' figure
    lines = kt.seed_table(tmp_path / "seed0", ["bbbb"])
    assert lines[2] == "| clean accuracy (test set) | 0.5000 | 0.9424 |"
    assert not any(line.split(" | ")[1] in ("0.200", "0.200 |") for line in lines[3:]), lines
    err = capsys.readouterr().err
    assert "autoattack-linf kept only of other weights than bbbbbbbbbbbbbbbb: left out" in err
    # a folder whose measures are each kept once but of two weights is refused too
    (tmp_path / "seed0" / "control" / "clean.fedcba9876543210.json").unlink()
    _kept_unit(tmp_path / "seed0" / "control", "gaussian-noise", {"accuracy": [0.9]}, tag="fedcba9876543210",
               weights="bb" * 32)  # fmt: skip
    with pytest.raises(SystemExit, match="holds measures of models of weights"):
        kt.seed_table(tmp_path / "seed0")
    # two versions of one measure of the same weights (an attack's older version): which is current is
    # not in the files, so neither is shown
    _kept_unit(tmp_path / "seed1" / "control", "clean", 0.7, tag="1111111111111111")
    with pytest.raises(SystemExit, match="holds 2 versions of clean of the same weights"):
        kt.seed_table(tmp_path / "seed1")


def test_kept_table_tests_every_model_against_the_one_asked(tmp_path, capsys):
    """``--against MODEL``: MODEL comes first and every other model is tested against it, per seed
    (McNemar) and over seeds (paired t); a MODEL no seed holds is one line and a non-zero exit."""
    import pytest
    from scipy.stats import binomtest

    kt = _script("kept_table")
    # 10 images at 0.1: sleep robust on 8 (6 only it), the control on 2, a defence on 5 (3 only sleep)
    norms = {"control": [0.05] * 8 + [None] * 2, "sleep-fgsm": [0.05] * 2 + [None] * 8,
             "finetune": [0.05] * 5 + [None] * 5}  # fmt: skip
    robust = {"control": (0.2, 0.3), "sleep-fgsm": (0.8, 0.6), "finetune": (0.5, 0.2)}
    for seed in (0, 1):
        for model, n in norms.items():
            _kept_unit(tmp_path / f"seed{seed}" / model, "clean", 0.9)
            _kept_unit(tmp_path / f"seed{seed}" / model, "autoattack-linf", {
                "budgets": [0.1], "norms": n, "n": 10, "loss": "cross-entropy",
                "robust_accuracy": {"0.1": robust[model][seed]}})  # fmt: skip
    lines = kt.seed_table(tmp_path / "seed0", against="sleep-fgsm")
    assert lines[0] == "| seed0 | sleep-fgsm | control | finetune |"
    row = lines[3].split(" | ")[1:]
    assert row == ["0.800", f"0.200 (p={binomtest(0, 6, 0.5).pvalue:.2g})",
                   f"0.500 (p={binomtest(0, 3, 0.5).pvalue:.2g}) |"]  # fmt: skip
    lines = kt.over_seeds([tmp_path / "seed0", tmp_path / "seed1"], against="sleep-fgsm")
    assert "paired t-test against sleep-fgsm" in lines[0]
    cells = lines[3].split(" | ")[1:]
    p = ttest_rel([0.5, 0.2], [0.8, 0.6]).pvalue
    assert cells[0] == "0.700 ± 0.141 [seeds 0,1]" and cells[2] == f"0.350 ± 0.212 (p={p:.2g}) [seeds 0,1] |"
    with pytest.raises(SystemExit, match="--against sleep-deepfool: no such model in the seeds shown "
                                         "\\(seed0, seed1\\)"):  # fmt: skip
        kt.main([str(tmp_path), "--against", "sleep-deepfool"])
    assert capsys.readouterr().out == ""  # nothing printed before the refusal
    # without --against, a folder with no control still prints (the control is only the default)
    for model in ("control", "finetune"):
        shutil.rmtree(tmp_path / "seed0" / model)
    assert kt.main([str(tmp_path), "--seeds", "0"]) == 0
    assert capsys.readouterr().out.startswith("| seed0 | sleep-fgsm |")


def test_long_runs_refuses_an_unknown_step_before_any_work(tmp_path):
    """``experiments/long_runs.sh``: every step name is checked before the first run starts."""
    import subprocess

    script = str(EXPERIMENTS / "long_runs.sh")
    proc = subprocess.run(["bash", script, "core", "bogus"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PY": "/bin/false"}, timeout=30)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    said = "long_runs.sh: unknown step 'bogus' (core, standard, saturation, stochastic)"
    assert proc.stderr.strip() == said
    assert subprocess.run(["bash", "-n", str(EXPERIMENTS / "long_runs.sh")]).returncode == 0


FAKE_SLEEPNET = """#!/bin/bash
# stands for `python -m sleepnet run FILE -o OUT ...`: says what it was asked, makes OUT's report files;
# `python -c CHECK` (does this tree's sleepnet import?) is REAL_PY's answer, or yes
[ "$1" = -c ] && exec "${REAL_PY:-true}" "$@"
out=$6
echo "$*" >> calls.txt
echo "$0" >> invoked.txt
[[ " $* " != *" --only-measures "* ]] || exit 0  # a first pass: no report
if [ -n "${HANG:-}" ] && [[ $out == *$HANG ]]; then
    trap 'kill $nap; echo terminated >> calls.txt; exit 143' TERM
    sleep 30 &
    nap=$!
    wait $nap
fi
mkdir -p "$out/figures"
for f in report.md metrics.json results.csv; do echo "$out" > "$out/$f"; done
touch "$out/figures/made.png"
"""


def test_long_runs_runs_finished_steps_again_over_their_runs_and_stops_its_run_on_sigterm(tmp_path):
    """``long_runs.sh`` run again runs a step finished here again over its finished run (``--force``:
    the measures reused, the report rebuilt, so an edited file or newer code is not answered with the
    old report), replaces the copied figures instead of merging into them, and SIGTERM to it reaches
    the run (which keeps what is done) instead of leaving it running."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    (tmp_path / "experiments").mkdir()
    script = shutil.copy(EXPERIMENTS / "long_runs.sh", tmp_path / "experiments" / "long_runs.sh")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_SLEEPNET)
    fake.chmod(0o755)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.symlink_to(fake)  # as a venv's python is a link to its interpreter
    env = {"PATH": "/usr/bin:/bin", "PY": "venv/bin/python", "RESULTS": str(tmp_path / "results")}
    done = subprocess.run(["bash", script, "core"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # called through the link, not the interpreter it points to (which would not be the venv's)
    assert (tmp_path / "invoked.txt").read_text() == f"{venv_python}\n"
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == [f"-m sleepnet run experiments/standard_mnist.toml -o runs/core --workers 2 --keep "
                     f"{tmp_path}/results/standard_mnist/units --models control,sleep-fgsm"]  # fmt: skip
    copied = tmp_path / "results" / "standard_mnist_core"
    assert (copied / "metrics.json").read_text() == "runs/core\n"
    (copied / "figures" / "a-model-no-longer-run.png").touch()
    (copied / ".new-1").mkdir()  # what a run stopped mid-copy leaves
    proc = subprocess.Popen(["bash", script, "core", "standard"], cwd=tmp_path, text=True,
                            env=env | {"HANG": "standard"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while len((tmp_path / "calls.txt").read_text().splitlines()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the fake run's trap is set
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 143
    assert "(again over the finished run)" in out and "== standard:" in out
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(calls) == 4 and calls[1] == calls[0].replace(" --models", " --force --models")
    assert "-o runs/standard" in calls[2] and calls[3] == "terminated"
    assert sorted(p.name for p in (copied / "figures").iterdir()) == ["made.png"]
    assert not list(copied.glob(".new-*"))
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(venv_python) not in ps, "the run outlived the script"
    assert not os.path.exists(tmp_path / "runs" / "standard")


def test_long_runs_starts_the_stochastic_step_with_a_first_pass_unless_it_finished_here(tmp_path):
    """The stochastic step: a first pass (``--only-measures``, no report to copy), then the whole run; run
    again over a finished run, no first pass (the run with --force makes whatever is new)."""
    import shutil
    import subprocess

    (tmp_path / "experiments").mkdir()
    script = shutil.copy(EXPERIMENTS / "long_runs.sh", tmp_path / "experiments" / "long_runs.sh")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_SLEEPNET)
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PY": str(fake), "RESULTS": str(tmp_path / "results")}
    for _ in range(2):
        done = subprocess.run(["bash", script, "stochastic"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
    results = tmp_path / "results"
    keep, std = results / "stochastic_mnist_suite" / "units", results / "standard_mnist"
    whole = (f"-m sleepnet run experiments/stochastic_mnist.toml -o runs/stochastic --workers 2 --keep {keep}"
             f"{{}} --reuse {std}/units")  # fmt: skip
    assert (tmp_path / "calls.txt").read_text().splitlines() == [
        whole.format(" --only-measures clean,clean-over-draws,autoattack-linf,autoattack-rand-linf,"
                     "analysis-geometry"),
        whole.format(""), whole.format(" --force")]  # fmt: skip
    assert (results / "stochastic_mnist_suite" / "metrics.json").read_text() == "runs/stochastic\n"
    # measures the file has (a name it lacks would stop the step in one line, but days later than here)
    from sleepnet.experiment import first_pass, load_experiment

    first_pass(load_experiment(EXPERIMENTS / "stochastic_mnist.toml"), first_measures(tmp_path / "calls.txt"))


def first_measures(calls: Path) -> list[str]:
    """The measures of the first call's ``--only-measures``."""
    args = calls.read_text().splitlines()[0].split()
    return args[args.index("--only-measures") + 1].split(",")


def test_long_runs_from_a_worktree_links_the_installed_packages_into_its_sleepnet(tmp_path):
    """A worktree is not installed: ``python -m sleepnet`` there imports its ``sleepnet/``, which lacks
    ``kernels``, ``converters`` and ``presets`` (mapped from other folders by pyproject.toml); the script
    links them in, checks that this tree's are imported, and only then runs."""
    import os
    import shutil
    import subprocess
    import sys

    root = EXPERIMENTS.parent
    for part in ("sleepnet", "kernels", "converters", "experiments/presets"):
        shutil.copytree(root / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    script = shutil.copy(EXPERIMENTS / "long_runs.sh", tmp_path / "experiments" / "long_runs.sh")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_SLEEPNET)
    fake.chmod(0o755)
    broken = tmp_path / "broken-python"  # a Python that cannot import sleepnet: refused, no links made
    broken.write_text("#!/bin/sh\necho Traceback >&2\n"
                      "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")  # fmt: skip
    broken.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PY": str(fake), "REAL_PY": str(broken)}
    refused = subprocess.run(["bash", script, "core"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "calls.txt").exists()
    assert refused.stderr.strip() == (f"long_runs.sh: {fake} does not import sleepnet from {tmp_path}: "
                                      "ModuleNotFoundError: No module named 'torch'")  # fmt: skip
    assert not any(p.is_symlink() for p in (tmp_path / "sleepnet").iterdir())
    # one that lacks this tree's kernels, then (linked) cannot import torch: the links it made are removed
    broken.write_text("#!/bin/sh\n[ -L sleepnet/kernels ] || "
                      "{ echo \"No module named 'sleepnet.kernels'\"; exit 3; }\n"
                      "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")  # fmt: skip
    refused = subprocess.run(["bash", script, "core"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "calls.txt").exists()
    assert refused.stderr.strip().endswith(": ModuleNotFoundError: No module named 'torch'")
    assert not any(p.is_symlink() for p in (tmp_path / "sleepnet").iterdir())
    env["REAL_PY"] = sys.executable  # this checkout's Python: sleepnet installed from another tree
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(["bash", script, "core"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    links = {p.name: str(p.readlink()) for p in (tmp_path / "sleepnet").iterdir() if p.is_symlink()}
    assert links == {"kernels": "../kernels", "converters": "../converters",
                     "presets": "../experiments/presets"}
    assert (tmp_path / "calls.txt").read_text().startswith("-m sleepnet run experiments/standard_mnist.toml")
    (tmp_path / "calls.txt").unlink()
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "sleepnet" / "kernels").unlink()  # this tree's kernels not found: refused, nothing run
    (tmp_path / "sleepnet" / "kernels").symlink_to("../nowhere")
    refused = subprocess.run(["bash", script, "core"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "calls.txt").exists()
    import sleepnet.kernels

    said = f"sleepnet.kernels is imported from {os.path.realpath(sleepnet.kernels.__file__)}"  # the installed
    assert refused.stderr.strip() == f"long_runs.sh: {fake} does not import sleepnet from {tmp_path}: {said}"


def test_tradeoff_bins_every_trial_by_clean_accuracy_with_the_best_robust_in_each():
    """``experiments/tradeoff_mnist.py``: the report's trials table counts each complete trial in its
    clean-accuracy bin once (bins half-open) and names the most robust, its gain over the control."""
    tm = _script("tradeoff_mnist")
    trials = [(0, 0.945, 0.56), (1, 0.941, 0.58), (2, 0.90, 0.50), (3, 0.85, 0.40), (4, 0.7, 0.1)]
    rows = {r.split(" | ")[0][2:]: r.split(" | ")[1:] for r in tm.binned(trials, (0.947, 0.53))}
    assert rows["below 0.80"] == ["1", "0.100 (trial 4, clean 0.7000)", "-0.430 |"]
    assert rows["0.80-0.85"] == ["0", "-", "- |"]
    assert rows["0.85-0.90"] == ["1", "0.400 (trial 3, clean 0.8500)", "-0.130 |"]
    assert rows["0.90-0.92"][0] == "1"  # 0.90 falls in the bin it opens
    assert rows["0.94-1.00"] == ["2", "0.580 (trial 1, clean 0.9410)", "+0.050 |"]
