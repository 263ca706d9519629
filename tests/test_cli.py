"""The command line: a happy path end to end, and bad input that must fail cleanly."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sleepnet.cli import COMMANDS, build_parser
from sleepnet.config import SleepConfig, toml_value
from sleepnet.models import load_model, save_model
from tests.conftest import run_cli


def assert_clean_failure(proc, match, out=None):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sleepnet: error:") and match in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_sleep_evaluate_plot_end_to_end(patches_model, tmp_path):
    slept = tmp_path / "slept"
    proc = run_cli("sleep", patches_model, "--preset", "patches", "--set", "T=4000", "-o", slept, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "slept 4000 steps" in proc.stdout
    meta = json.loads((slept / "model.json").read_text())
    assert meta["kind"] == "slept" and meta["parent"]["path"] == str(patches_model.resolve())
    assert meta["sleep"]["config"]["T"] == 4000 and meta["sleep"]["spikes"]["steps"] == 4000
    rec = np.load(slept / "sleep_record.npz")
    assert rec["spike_counts"].shape == (4000, 2)
    model, _ = load_model(slept)
    parent, _ = load_model(patches_model)
    assert not torch.equal(model[0].weight, parent[0].weight)

    ev = tmp_path / "eval"
    proc = run_cli("evaluate", patches_model, slept, "-o", ev, "-q")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((ev / "metrics.json").read_text())
    assert set(metrics["models"]) == {"patches", "slept"}
    for m in metrics["models"].values():
        assert 0.9 < m["results"]["clean_accuracy"] <= 1.0
        assert len(m["results"]["fgsm"]["accuracy"]) == 81
    for name in ("accuracy_vs_gaussian-noise", "accuracy_vs_gaussian-blur", "accuracy_vs_fgsm"):
        assert (ev / "figures" / f"{name}.png").stat().st_size > 1000

    proc = run_cli("plot", slept)
    assert proc.returncode == 0, proc.stderr
    for name in ("weights", "firing_rates", "raster"):
        assert (slept / "figures" / f"{name}.png").stat().st_size > 1000


def test_train_and_convert(tmp_path):
    out = tmp_path / "ann"
    proc = run_cli("train", "--dataset", "patches", "--hidden", "16", "--epochs", "1", "--seed", "3",
                   "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "model.json").read_text())
    assert meta["recipe"]["sizes"] == [100, 16, 4] and meta["seed"] == 3
    assert meta["dataset"]["name"] == "patches" and len(meta["dataset"]["sha256"]) == 64
    assert meta["metrics"]["test_accuracy"] > 0.5
    proc = run_cli("convert", out, "--json", tmp_path / "conv.json")
    assert proc.returncode == 0, proc.stderr
    conv = json.loads((tmp_path / "conv.json").read_text())
    assert conv["sizes"] == [100, 16, 4] and len(conv["factors"]) == 2
    assert "factor" in proc.stdout


def test_presets_command_lists_all_presets():
    proc = run_cli("presets")
    assert proc.returncode == 0
    for name in ("mnist-fgsm", "mnist-deepfool", "mnist-continual", "fashion-continual", "patches"):
        assert name in proc.stdout


# --- bad input ----------------------------------------------------------------------------------


def test_missing_model_folder(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("sleep", tmp_path / "nope", "--preset", "patches", "-o", out)
    assert_clean_failure(proc, "does not exist", out)


def test_corrupt_safetensors(patches_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(patches_model, bad)
    (bad / "model.safetensors").write_bytes(b"\x00\x01not a tensor file")
    out = tmp_path / "out"
    proc = run_cli("sleep", bad, "--preset", "patches", "-o", out)
    assert_clean_failure(proc, "not a valid safetensors file", out)


def test_model_with_bias(patches_model, tmp_path):
    meta = json.loads((patches_model / "model.json").read_text())
    torch.manual_seed(0)
    biased = nn.Sequential(nn.Linear(100, 4, bias=True), nn.ReLU())
    save_model(biased, tmp_path / "biased", {"dataset": meta["dataset"], "recipe": meta["recipe"]})
    out = tmp_path / "out"
    proc = run_cli("sleep", tmp_path / "biased", "--preset", "patches", "-o", out)
    assert_clean_failure(proc, "layer 0 (Linear) has a bias", out)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--preset", "patches", "--set", "bogus=1"], "unknown key 'bogus'"),
        (["--preset", "patches", "--set", "T=-5"], "T must be a positive number of steps"),
        (["--preset", "patches", "--set", "beta=[1, 2]"], "2 beta values"),
        ([], "needs --preset or --config"),
        (["--preset", "patches", "--backend", "gpu"], "invalid choice"),
    ],
)
def test_bad_sleep_parameters(patches_model, tmp_path, args, match):
    out = tmp_path / "out"
    proc = run_cli("sleep", patches_model, *args, "-o", out)
    assert_clean_failure(proc, match, out)


def test_dataset_hash_mismatch_in_model_record(patches_model, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(patches_model, other)
    meta = json.loads((other / "model.json").read_text())
    meta["dataset"]["sha256"] = "0" * 64
    (other / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    proc = run_cli("sleep", other, "--preset", "patches", "-o", out)
    assert_clean_failure(proc, "dataset hash mismatch", out)


def test_idx_directory_with_wrong_hash(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    for split in ("train", "t10k"):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(header + bytes(2 * 784))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 4]))
    proc = run_cli("data", "fetch", "mnist", "--data-dir", folder)
    assert_clean_failure(proc, "does not match mnist")


def test_existing_output_is_not_overwritten(patches_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = run_cli("sleep", patches_model, "--preset", "patches", "--set", "T=100", "-o", out)
    assert proc.returncode != 0 and "already exists" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious"


def test_bad_config_file(patches_model, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("this is = = not toml")
    out = tmp_path / "out"
    proc = run_cli("sleep", patches_model, "--config", cfg, "-o", out)
    assert_clean_failure(proc, "not valid TOML", out)


def test_own_model_without_a_dataset_record(tmp_path):
    torch.manual_seed(0)
    save_model(nn.Sequential(nn.Linear(100, 4, bias=False), nn.ReLU()), tmp_path / "own")
    out = tmp_path / "out"
    proc = run_cli("sleep", tmp_path / "own", "--preset", "patches", "--set", "T=200", "-o", out)
    assert_clean_failure(proc, "pass --dataset", out)
    proc = run_cli("sleep", tmp_path / "own", "--preset", "patches", "--set", "T=200",
                   "--dataset", "patches", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "model.json").read_text())["dataset"]["name"] == "patches"


def test_evaluate_paper_suite_quick(patches_model, tmp_path):
    out = tmp_path / "eval"
    proc = run_cli("evaluate", patches_model, "--suite", "paper", "--quick", "--subsample", "16",
                   "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "metrics.json").read_text())["models"]["patches"]["results"]
    assert res["subsample"]["n"] == 16 and "masking" in res
    assert "hopskipjump" in proc.stdout and "gradient" in proc.stdout
    proc = run_cli("evaluate", patches_model, "--suite", "paper", "--subsample", "0", "-o", out)
    assert_clean_failure(proc, "--subsample must be positive")


# --- the parser: commands, tune's subcommands, help ---------------------------------------------

COMMAND_NAMES = ("data", "import", "export", "train", "convert", "sleep", "evaluate", "analyze", "geometry",
                 "plot", "info", "presets", "run", "tune", "demo")  # fmt: skip


def _subparsers(parser):
    """{name: parser} of the commands under ``parser``."""
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def _expected_default(f) -> str:
    if f.default is dataclasses.MISSING:
        return "preset"
    return "unset" if f.default is None else toml_value(f.default)


def test_python_m_sleepnet_help_lists_all_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ")}
    assert set(COMMAND_NAMES) <= listed
    assert "tune-export" not in proc.stdout and "tune-report" not in proc.stdout
    assert "search sleep configs with Optuna" in proc.stdout and "fetch and verify datasets" in proc.stdout
    assert tuple(_subparsers(build_parser())) == COMMAND_NAMES == tuple(
        m.__name__.rsplit(".", 1)[1] for m in COMMANDS
    )


@pytest.mark.parametrize(
    "action, options",
    [("run", ["--objective", "--trials", "--storage", "--grace", "model"]),
     ("export", ["STUDY", "--trial", "--force", "the TOML file to write"]),
     ("report", ["STUDY", "--test", "report folder (default: STUDY, if a folder)"])],
)
def test_tune_actions_are_real_subcommands(action, options):
    proc = run_cli("tune", action, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: sleepnet tune {action} ")
    for option in options:
        assert option in proc.stdout
    assert "(default: sleepnet)" in proc.stdout  # --study
    tune = _subparsers(build_parser())["tune"]
    assert set(_subparsers(tune)) == {"run", "export", "report"}


def test_tune_without_an_action_word_is_tune_run():
    parser = build_parser()
    for argv in (["tune", "m", "-o", "out"], ["tune", "-o", "out", "m"], ["tune", "run", "m", "-o", "out"]):
        args = parser.parse_args(argv)
        assert (args.command, args.tune_command, args.model, args.output) == ("tune", "run", Path("m"),
                                                                              Path("out"))  # fmt: skip
        assert args.trials == 40 and args.objective == "fgsm" and args.study == "sleepnet"
    args = parser.parse_args(["tune", "export", "runs/t", "--trial", "7", "-o", "t.toml"])
    assert (args.tune_command, args.study_path, args.trial, args.force) == ("export", "runs/t", 7, False)
    args = parser.parse_args(["tune", "report", "runs/t", "--test"])
    assert (args.tune_command, args.study_path, args.test, args.output) == ("report", "runs/t", True, None)
    from sleepnet.cli import tune

    assert args.handler is tune.run


def test_sleep_backends_come_from_the_one_list():
    from sleepnet.backends import BACKENDS, DEFAULT

    sleep = _subparsers(build_parser())["sleep"]
    (backend,) = [a for a in sleep._actions if a.dest == "backend"]
    assert tuple(backend.choices) == BACKENDS.names() and backend.default == DEFAULT == "numba"
    assert "torch" in backend.choices


def _key_rows(text: str) -> dict[str, str]:
    """{key: its table row} for the rows of the sleep-config key table in ``text``."""
    names = {f.name for f in dataclasses.fields(SleepConfig)}
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in names and len(words) >= 4:
            assert words[0] not in rows, f"{words[0]} listed twice"
            rows[words[0]] = line
    return rows


def test_sleep_help_lists_every_config_key_with_its_default():
    proc = run_cli("sleep", "--help")
    assert proc.returncode == 0, proc.stderr
    epilog = proc.stdout.split("sleep-config keys", 1)[1]
    rows = _key_rows(epilog)
    fields = dataclasses.fields(SleepConfig)
    assert list(rows) == [f.name for f in fields]
    for f in fields:
        assert f" {_expected_default(f)} " in rows[f.name], rows[f.name]
    assert rows["decay"].split()[1:4] == ["float", "0.999", "(0,"] and "(0, 1]" in rows["decay"]
    assert rows["T"].split()[1:4] == ["int", "preset", ">"] and "> 0" in rows["T"]
    assert "sequential, mean, masked-mean" in rows["input_mode"]
    assert "one per weight layer" in rows["beta"] and ">= 0" in rows["inc"]
    assert "(default: numba)" in proc.stdout and "{numba,numpy,brian2,torch}" in proc.stdout


def test_presets_keys_prints_one_row_per_key():
    proc = run_cli("presets", "--keys")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    fields = dataclasses.fields(SleepConfig)
    assert lines[0].split()[:5] == ["key", "type", "default", "range", "meaning"]
    assert [line.split()[0] for line in lines[1:]] == [f.name for f in fields]
    assert all(f" {_expected_default(f)} " in line for f, line in zip(fields, lines[1:]))
    sleep_help = run_cli("sleep", "--help").stdout
    assert _key_rows(sleep_help) == {k: "  " + v for k, v in _key_rows(proc.stdout).items()}


def _defaulted_options(parser):
    for action in parser._actions:
        default = action.default
        if default is None or default is False or default == [] or default == "==SUPPRESS==":
            continue  # nothing to show (0 is a default to show, so no `in (None, False)`)
        if action.option_strings and action.help:
            yield action


def _all_parsers():
    for name, parser in _subparsers(build_parser()).items():
        if name == "tune":
            yield from ((f"tune {n}", p) for n, p in _subparsers(parser).items())
        yield name, parser


def test_every_help_shows_the_defaults():
    shown = {}
    for name, parser in _all_parsers():
        text = " ".join(parser.format_help().split())
        for action in _defaulted_options(parser):
            if "(default" not in action.help:
                assert f"(default: {action.default})" in text, (name, action.dest)
                shown.setdefault(name, []).append(action.dest)
        assert "(default: None)" not in text and "(default: False)" not in text, name
    assert set(shown) == {"train", "convert", "sleep", "evaluate", "analyze", "geometry", "run", "tune run",
                          "tune export", "tune report", "demo"}  # fmt: skip
    assert set(shown["tune run"]) >= {"objective", "trials", "max_drop", "seed", "workers", "grace"}
    proc = run_cli("train", "--help")
    assert proc.returncode == 0
    for text in ("(default: mnist)", "(default: paper)", "(default: 0)"):
        assert text in " ".join(proc.stdout.split())


@pytest.mark.parametrize("command", ["train", "convert", "sleep", "evaluate", "run", "demo"])
def test_device_option_on_every_torch_command(command):
    from sleepnet.cli.common import device

    argv = {"train": ["train"], "sleep": ["sleep", "m", "--preset", "patches"], "evaluate": ["evaluate", "m"],
            "run": ["run", "e.toml"], "demo": ["demo"], "convert": ["convert", "m"]}[command]  # fmt: skip
    out = [] if command == "convert" else ["-o", "x"]
    args = build_parser().parse_args(argv + out + ["--device", "cpu"])
    assert device(args) == torch.device("cpu")


def test_a_bad_device_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "ann"
    proc = run_cli("train", "--dataset", "patches", "--device", "tpu", "-o", out, "-q")
    assert proc.returncode == 2 and not out.exists()
    choices = "cpu, cuda, cuda:N, mps or auto (the first GPU if there is one, else cpu)"
    assert proc.stderr.strip() == f"sleepnet: error: --device: unknown device 'tpu' (choose {choices})"
    if not torch.cuda.is_available():
        proc = run_cli("evaluate", tmp_path / "missing", "--device", "cuda", "-o", tmp_path / "ev", "-q")
        assert proc.returncode == 2 and "has no CUDA GPU" in proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_sleep_with_the_torch_backend_equals_numba(tmp_path, patches_hidden_model):
    outs = {}
    for backend in ("numba", "torch"):
        out = tmp_path / backend
        proc = run_cli("sleep", patches_hidden_model, "--preset", "patches", "--set", "beta=[14.5, 10.0]",
                       "--backend", backend, "--device", "cpu", "-o", out, "-q")
        assert proc.returncode == 0, proc.stderr
        assert f"backend {backend}" in proc.stdout
        outs[backend] = load_model(out)
    spikes = outs["numba"][1]["sleep"]["spikes"]
    assert all(layer["total_spikes"] > 0 for layer in spikes["layers"]), spikes  # every layer fired
    assert outs["torch"][1]["sleep"]["spikes"] == spikes
    for a, b in zip(outs["torch"][0].parameters(), outs["numba"][0].parameters()):
        assert float((a - b).detach().abs().max()) <= 1e-6  # float64 within 1e-12, then float32


def test_evaluate_resumes_from_its_kept_measures(patches_model, tmp_path):
    """An evaluation stopped midway (here: a finished one cut back to half its measures, as Ctrl-C would
    leave it) continues from ``.OUT.partial``: the kept measures are reused, the rest computed, the
    results the same as an evaluation that ran through; ``--force`` over a finished one reuses them all."""
    import json
    import shutil

    out = tmp_path / "eval"
    one = {"OMP_NUM_THREADS": "1"}  # the thread count is in the measures' hashes: fixed, then changed
    proc = run_cli("evaluate", patches_model, "--suite", "quick", "-o", out, env=one)
    assert proc.returncode == 0, proc.stderr
    full = json.loads((out / "metrics.json").read_text())
    measures = sorted((out / "units").rglob("*.json"))
    assert [p.stem for p in measures] == ["clean", "fgsm", "gaussian-blur", "gaussian-noise"]
    partial = tmp_path / ".eval.partial"
    shutil.copytree(out / "units", partial / "units")
    for p in sorted((partial / "units").rglob("*.json"))[2:]:
        p.unlink()  # the interruption came after two of the four measures
    shutil.rmtree(out)
    proc = run_cli("evaluate", patches_model, "--suite", "quick", "-o", out, env=one)
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr and "reused 2 finished measures, computed 2" in proc.stderr
    assert json.loads((out / "metrics.json").read_text()) == full and not partial.exists()
    proc = run_cli("evaluate", patches_model, "--suite", "quick", "-o", out, "--force", env=one)
    assert proc.returncode == 0 and "reused 4 finished measures, computed 0" in proc.stderr, proc.stderr
    assert json.loads((out / "metrics.json").read_text()) == full
    # another thread count can round scores otherwise: nothing measured at the old one is taken
    proc = run_cli("evaluate", patches_model, "--suite", "quick", "-o", out, "--force",
                   env={"OMP_NUM_THREADS": "2"})  # fmt: skip
    assert proc.returncode == 0 and "reused" not in proc.stderr, proc.stderr
    assert proc.stderr.count("sleepnet: patches: ") == 4  # each of the 4 measures made again
