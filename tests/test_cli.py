"""The command line: a happy path end to end, and bad input that must fail cleanly."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

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
