"""Bad input through the command line, one subprocess per case (``docs/design.md``, "Errors").

Every case asserts the exit status (2: the command line itself, 1: the rest), exactly one
line on stderr (``sleepnet: error: ...``, naming the problem), and that the working folder,
the case's inputs included, is byte for byte as it was: nothing written, nothing half-written,
nothing removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

SLEEP = ("sleep", "m", "--preset", "patches", "--set", "beta=[1,1]", "--set", "T=100", "-q")
EXPERIMENT = """[experiment]
dataset = "patches"
recipe = "{recipe}"
hidden = []
epochs = 1
seeds = {seeds}
suite = "{suite}"
{extra}
[sleep]
{sleep}
"""


def _npz(path: Path, n: int = 40, side: int = 10, **changes) -> None:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((n, side, side)).astype(np.float32), "y_train": rng.integers(0, 4, n),
              "x_test": rng.random((n // 2, side, side)).astype(np.float32),
              "y_test": rng.integers(0, 4, n // 2)}  # fmt: skip
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _experiment(path: Path, seeds="[0]", suite="quick", extra="", sleep='a = { preset = "patches" }',
                recipe="paper"):  # fmt: skip
    path.write_text(EXPERIMENT.format(seeds=seeds, suite=suite, extra=extra, sleep=sleep, recipe=recipe))


def _edit_record(folder: Path, **changes) -> None:
    record = json.loads((folder / "model.json").read_text())
    record.update(changes)
    (folder / "model.json").write_text(json.dumps(record))


def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    first = next(iter(state))
    state[first][0, 0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))


def _wrong_shape(folder: Path) -> None:
    record = json.loads((folder / "model.json").read_text())
    record["architecture"][0]["out"] = 31
    record["architecture"][3]["in"] = 31
    (folder / "model.json").write_text(json.dumps(record))


def _idx_garbage(folder: Path) -> None:
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (folder / name).write_bytes(b"not an idx file")


def _truncated(path: Path) -> None:
    _npz(path)
    path.write_bytes(path.read_bytes()[:200])


def _npy_as_npz(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros((3, 3)))


def _move_into(src: Path, folder: Path) -> None:
    folder.mkdir()
    shutil.move(src, folder / src.name)


def _foreign(folder: Path) -> None:
    folder.mkdir()
    (folder / "notes.txt").write_text("a thesis draft")


#: (id, arguments, setup(workdir), exit status, words the message must hold)
CASES = [
    # --- sleep settings: --set and config files --------------------------------------------
    ("set-bool-False", (*SLEEP, "--set", "norm_w=False", "-o", "out"), None, 2,
     "norm_w must be true or false"),
    ("set-bool-yes", (*SLEEP, "--set", "silent_gaps=yes", "-o", "out"), None, 2, "true or false"),
    ("set-bool-1", (*SLEEP, "--set", "cycle=1", "-o", "out"), None, 2, "cycle must be true or false"),
    ("set-shape-text", (*SLEEP, "--set", "image_shape=abc", "-o", "out"), None, 2, "image_shape"),
    ("set-shape-zero", (*SLEEP, "--set", "image_shape=[0,3]", "-o", "out"), None, 2, "two positive integers"),
    ("set-shape-float", (*SLEEP, "--set", "image_shape=[2.5,4]", "-o", "out"), None, 2, "image_shape"),
    ("set-T-text", (*SLEEP, "--set", "T=abc", "-o", "out"), None, 2, "T must be an integer"),
    ("set-T-negative", (*SLEEP, "--set", "T=-5", "-o", "out"), None, 2, "T must be a positive"),
    ("set-T-fraction", (*SLEEP, "--set", "T=2.5", "-o", "out"), None, 2, "T must be an integer"),
    ("set-inc-negative", (*SLEEP, "--set", "inc=-1", "-o", "out"), None, 2, "inc must be a non-negative"),
    ("set-decay-2", (*SLEEP, "--set", "decay=2", "-o", "out"), None, 2, "decay must be in (0, 1]"),
    ("set-max-rate-nan", (*SLEEP, "--set", "max_rate=nan", "-o", "out"), None, 2,
     "max_rate must be a positive"),
    ("set-unknown-key", (*SLEEP, "--set", "bogus=1", "-o", "out"), None, 2, "unknown key 'bogus'"),
    ("set-no-equals", (*SLEEP, "--set", "inc", "-o", "out"), None, 2, "key=value"),
    ("set-beta-text", (*SLEEP, "--set", 'beta="12"', "-o", "out"), None, 2, "beta must be a list of numbers"),
    ("set-beta-bool", (*SLEEP, "--set", "beta=[true,1]", "-o", "out"), None, 2, "beta must be a list"),
    ("set-input-mode", (*SLEEP, "--set", "input_mode=sideways", "-o", "out"), None, 2,
     "input_mode must be one"),
    ("set-name-number", (*SLEEP, "--set", "name=3", "-o", "out"), None, 2, "name must be text"),
    ("beta-length", ("sleep", "m", "--preset", "patches", "--set", "T=100", "-o", "out"), None, 1,
     "beta values but the network has 2"),
    ("preset-unknown", ("sleep", "m", "--preset", "nope", "-o", "out"), None, 2, "unknown preset 'nope'"),
    ("config-missing", ("sleep", "m", "--config", "nope.toml", "-o", "out"), None, 1, "does not exist"),
    ("config-bad-toml", ("sleep", "m", "--config", "c.toml", "-o", "out"),
     lambda d: (d / "c.toml").write_text("this is = = not toml"), 1, "not valid TOML"),
    ("config-unknown-key", ("sleep", "m", "--config", "c.toml", "-o", "out"),
     lambda d: (d / "c.toml").write_text('preset = "patches"\n[sleep]\nbogus = 1\n'), 1,
     "unknown key 'bogus'"),
    ("config-bool-string", ("sleep", "m", "--config", "c.toml", "-o", "out"),
     lambda d: (d / "c.toml").write_text('preset = "patches"\n[sleep]\nnorm_w = "false"\n'), 1,
     "norm_w must be true or false"),
    ("config-sleep-not-table", ("sleep", "m", "--config", "c.toml", "-o", "out"),
     lambda d: (d / "c.toml").write_text("sleep = 3\n"), 1, "[sleep] must be a table"),
    # --- data arrays -----------------------------------------------------------------------
    ("npz-nan", ("train", "--dataset", "npz:d.npz", "--hidden", "8", "--epochs", "1", "-q", "-o", "out"),
     lambda d: _npz(d / "d.npz", x_train=np.full((40, 10, 10), np.nan, np.float32)), 1, "must be finite"),
    ("npz-float-labels", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", y_train=np.full(40, 1.5)), 1, "whole-number class labels"),
    ("npz-unequal", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", y_train=np.zeros(30, np.int64)), 1, "one label per image"),
    ("npz-empty", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", n=0), 1, "at least one image"),
    ("npz-negative-label", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", y_test=np.full(20, -1)), 1, "negative label"),
    ("npz-missing-key", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", y_test=None), 1, "x_train, y_train, x_test, y_test"),
    ("npz-not-npz", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: (d / "d.npz").write_text("hello"), 1, "is not an npz"),
    ("npz-out-of-range", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", x_test=np.full((20, 10, 10), 3.0, np.float32)), 1, "must lie in [0, 1]"),
    ("npz-sizes-differ", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npz(d / "d.npz", x_test=np.zeros((20, 12, 12), np.float32)), 1, "differ in size"),
    ("npz-truncated", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _truncated(d / "d.npz"), 1, "is not an npz"),
    ("npz-is-npy", ("train", "--dataset", "npz:d.npz", "--epochs", "1", "-o", "out"),
     lambda d: _npy_as_npz(d / "d.npz"), 1, "is not an npz"),
    ("npz-absent", ("train", "--dataset", "npz:nothing.npz", "--epochs", "1", "-o", "out"), None, 1,
     "does not exist"),
    ("dataset-unknown", ("train", "--dataset", "cifar", "-o", "out"), None, 2, "unknown dataset 'cifar'"),
    ("idx-garbage", ("train", "--dataset", "mnist", "--data-dir", "idx", "-o", "out"),
     lambda d: _idx_garbage(d / "idx"), 1, "idx"),
    ("data-dir-absent", ("train", "--dataset", "mnist", "--data-dir", "nowhere", "-o", "out"), None, 1,
     "does not exist"),
    # --- model folders and records ---------------------------------------------------------
    ("model-absent", ("sleep", "nowhere", "--preset", "patches", "-o", "out"), None, 1, "does not exist"),
    ("model-json-broken", (*SLEEP, "-o", "out"), lambda d: (d / "m" / "model.json").write_text("{"), 1,
     "not valid JSON"),
    ("model-format", (*SLEEP, "-o", "out"), lambda d: _edit_record(d / "m", format="sleepnet-model/99"), 1,
     "not a sleepnet model record"),
    ("model-nan-weights", (*SLEEP, "-o", "out"), lambda d: _nan_weights(d / "m"), 1, "NaN or infinite"),
    ("model-shape-mismatch", (*SLEEP, "-o", "out"), lambda d: _wrong_shape(d / "m"), 1,
     "does not match its architecture"),
    ("model-no-weights", (*SLEEP, "-o", "out"), lambda d: (d / "m" / "model.safetensors").unlink(), 1,
     "does not exist"),
    ("model-weights-corrupt", (*SLEEP, "-o", "out"),
     lambda d: (d / "m" / "model.safetensors").write_bytes(b"\x00" * 20), 1, "not a valid safetensors"),
    ("model-other-input-size", ("evaluate", "m", "--dataset", "npz:d.npz", "-o", "out", "-q"),
     lambda d: _npz(d / "d.npz", side=12), 1, "takes 100 features but"),
    ("model-other-classes", ("evaluate", "m", "--dataset", "npz:d.npz", "-o", "out", "-q"),
     lambda d: _npz(d / "d.npz", y_train=np.arange(40) % 7), 1, "4 outputs but"),
    ("sleep-record-corrupt", ("plot", "s", "-o", "out"), lambda d: _slept(d, b"garbage"), 1, "is damaged"),
    ("manifolds-not-npz", ("geometry", "--manifolds", "x.npz", "--json", "g.json"),
     lambda d: (d / "x.npz").write_text("hello"), 1, "x.npz"),
    # --- output paths ----------------------------------------------------------------------
    ("out-exists", (*SLEEP, "-o", "out"), lambda d: _foreign(d / "out"), 1, "already exists"),
    ("out-is-input", (*SLEEP, "-o", "m", "--force"), None, 1, "would overwrite the input m"),
    ("out-inside-input", (*SLEEP, "-o", "m/sub", "--force"), None, 1, "would overwrite the input"),
    ("out-holds-input", ("sleep", "w/m", "--preset", "patches", "-o", "w", "--force"),
     lambda d: _move_into(d / "m", d / "w"), 1, "would overwrite the input"),
    ("out-plain-file-force", (*SLEEP, "-o", "f.txt", "--force"), lambda d: (d / "f.txt").write_text("x"), 1,
     "is a file"),
    ("out-foreign-force", (*SLEEP, "-o", "out", "--force"), lambda d: _foreign(d / "out"), 1,
     "sleepnet did not write"),
    ("out-under-file", (*SLEEP, "-o", "f.txt/out"), lambda d: (d / "f.txt").write_text("x"), 1, "is a file"),
    ("out-unwritable", (*SLEEP, "-o", "/proc/sleepnet/out"), None, 1, "not writable"),
    ("evaluate-out-exists", ("evaluate", "m", "-o", "out", "-q"), lambda d: _foreign(d / "out"), 1,
     "already exists"),
    ("train-out-file", ("train", "--dataset", "patches", "-o", "f.txt"),
     lambda d: (d / "f.txt").write_text("x"),
     1, "already exists"),
    ("attack-json-folder", ("evaluate", "m", "--attack", "fgsm", "--eps", "0.1", "--json", "out", "--force"),
     lambda d: (d / "out").mkdir(), 1, "is a folder"),
    ("convert-json-is-model", ("convert", "m", "--json", "m"), None, 1, "would overwrite the input"),
    ("analyze-json-in-model", ("analyze", "m", "-o", "out", "--json", "m/a.json"), None, 1,
     "would overwrite the input"),
    # --- the command line itself -----------------------------------------------------------
    ("unknown-command", ("fly",), None, 2, "invalid choice"),
    ("unknown-option", ("train", "--colour", "red", "-o", "out"), None, 2, "unrecognized arguments"),
    ("epochs-text", ("train", "--epochs", "abc", "-o", "out"), None, 2, "invalid int value"),
    ("hidden-text", ("train", "--hidden", "a,b", "-o", "out"), None, 2, "--hidden expects sizes"),
    ("hidden-zero", ("train", "--hidden", "0", "-o", "out"), None, 2, "must be positive"),
    ("device-unknown", ("train", "--device", "tpu", "-o", "out"), None, 2, "unknown device 'tpu'"),
    ("backend-unknown", (*SLEEP, "--backend", "fpga", "-o", "out"), None, 2, "invalid choice"),
    ("evaluate-no-out", ("evaluate", "m"), None, 2, "needs -o OUT"),
    ("evaluate-eps-text", ("evaluate", "m", "--attack", "fgsm", "--eps", "big", "--json", "a.json"), None, 2,
     "--eps expects numbers"),
    ("evaluate-subsample-0", ("evaluate", "m", "--suite", "paper", "--subsample", "0", "-o", "out"), None, 2,
     "--subsample must be positive"),
    ("eot-samples-0", ("evaluate", "m", "--attack", "pgd", "--eps", "0.1", "--eot-samples", "0", "--json",
                       "a.json"), None, 2, "eot_samples must be an integer >= 1"),
    ("draws-1", ("analyze", "m", "--geometry", "--draws", "1", "-o", "out"), None, 2, "--draws must be"),
    ("log-is-folder", (*SLEEP, "-o", "out", "--log", "."), None, 1, "is a folder"),
    ("log-in-model", (*SLEEP, "-o", "out", "--log", "m/model.json"), None, 1, "a folder sleepnet writes"),
    ("tune-trials-0", ("tune", "m", "--trials", "0", "-o", "out"), None, 2, "at least 1"),
    ("run-seeds-text", ("run", "e.toml", "--seeds", "zero", "-o", "out"),
     lambda d: _experiment(d / "e.toml"), 2,
     "--seeds expects integers"),
    ("run-seeds-repeated", ("run", "e.toml", "--seeds", "0,0", "-o", "out"),
     lambda d: _experiment(d / "e.toml"), 2,
     "--seeds expects distinct seeds"),
    ("run-only-measures-unknown", ("run", "e.toml", "--only-measures", "clean,autoattack-linf", "-o", "out"),
     lambda d: _experiment(d / "e.toml"), 1, "--only-measures: autoattack-linf not measured by"),
    ("run-only-measures-no-draws", ("run", "e.toml", "--only-measures", "clean-over-draws", "-o", "out"),
     lambda d: _experiment(d / "e.toml"), 1, "--only-measures: clean-over-draws not measured by"),
    ("run-only-measures-repeated", ("run", "e.toml", "--only-measures", "clean,clean", "-o", "out"),
     lambda d: _experiment(d / "e.toml"), 1, "--only-measures needs distinct measure names"),
    ("run-only-measures-masking", ("run", "e.toml", "--only-measures", "clean,masking", "-o", "out"),
     lambda d: _experiment(d / "e.toml", suite="standard"), 1, "masking needs hopskipjump"),
    # --- experiment files --------------------------------------------------------------------
    ("run-workers-0", ("run", "e.toml", "--workers", "0", "-o", "out"), lambda d: _experiment(d / "e.toml"),
     2,
     "workers must be at least 1"),
    ("experiment-seeds-text", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", seeds='"zero"'),
     1, "seeds must be a list of distinct integers from 0 to 2**32 - 1"),
    ("experiment-suite", ("run", "e.toml", "-o", "out"), lambda d: _experiment(d / "e.toml", suite="bogus"),
     1,
     "unknown suite 'bogus'"),
    ("experiment-sleep-key", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml",
     sleep='a = { preset = "patches", bogus = 3 }'), 1, "unknown key 'bogus'"),
    ("experiment-sleep-value", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", sleep="a = 3"), 1, "must be a table"),
    # a sleep variant that cannot sleep the control: refused before the control is trained
    ("experiment-sleep-T", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", sleep='a = { preset = "patches", input_mode = "sequential", '
                                               'T = 100000 }'),  # fmt: skip
     1, "[sleep] a: sequential input needs T <= "),
    ("experiment-sleep-beta", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", sleep='a = { preset = "patches", beta = [1.0, 1.0, 1.0] }'),
     1, "[sleep] a: 3 beta values but the network has 1 weight layers"),
    ("experiment-sleep-recipe", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", recipe="relu-mlp"), 1, "the recipe 'relu-mlp' cannot sleep"),
    ("experiment-without-eot", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", extra='without_eot = "yes"'), 1,
     "without_eot must be true or false"),
    ("experiment-rand-autoattack", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", extra="rand_autoattack = 1"), 1,
     "rand_autoattack must be true or false, got 1"),
    ("run-only-measures-rand-off", ("run", "e.toml", "--only-measures", "autoattack-rand-linf", "-o", "out"),
     lambda d: _experiment(d / "e.toml", suite="standard"), 1,
     "--only-measures: autoattack-rand-linf not measured by"),
    ("experiment-no-eot-name", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", extra="without_eot = true",
                           sleep='a-no-eot = { preset = "patches" }'), 1, "rename 'a-no-eot'"),  # fmt: skip
    ("evaluate-no-eot-rand", ("evaluate", "m", "--attack", "autoattack", "--no-eot", "--version", "rand",
                              "--json", "a.json"), None, 2, "cannot go with --version rand"),  # fmt: skip
    ("evaluate-no-eot-eot", ("evaluate", "m", "--attack", "pgd", "--no-eot", "--eot-samples", "5", "--json",
                             "a.json"), None, 2, "cannot go with --eot-samples 5"),  # fmt: skip
    ("experiment-key", ("run", "e.toml", "-o", "out"),
     lambda d: _experiment(d / "e.toml", extra="colour = 1"),
     1, "unknown [experiment] keys colour"),
    ("experiment-toml", ("run", "e.toml", "-o", "out"), lambda d: (d / "e.toml").write_text("[experiment"), 1,
     "e.toml"),
    ("experiment-absent", ("run", "none.toml", "-o", "out"), None, 1, "none.toml"),
    ("experiment-is-output", ("run", "e.toml", "-o", "e.toml", "--force"),
     lambda d: _experiment(d / "e.toml"),
     1, "would overwrite the input"),
    # --- tune ------------------------------------------------------------------------------------
    ("tune-preset", ("tune", "m", "--preset", "nope", "-o", "out"), None, 2, "unknown preset 'nope'"),
    ("tune-objective", ("tune", "m", "--objective", "nope", "-o", "out"), None, 2, "unknown objective"),
    ("tune-space-absent", ("tune", "m", "--space", "none.toml", "-o", "out"), None, 1, "does not exist"),
    ("tune-out-file", ("tune", "m", "-o", "f.txt"), lambda d: (d / "f.txt").write_text("x"), 1,
     "not a study folder"),
]


def _slept(d: Path, record: bytes) -> None:
    """A sleep output folder ``s`` (a copy of the model) whose sleep record is ``record``."""
    shutil.copytree(d / "m", d / "s")
    (d / "s" / "sleep_record.npz").write_bytes(record)


def _tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: (kind, mode, SHA-256 of a file's bytes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), digest)
    return out


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_everything_as_it_was(case, patches_hidden_model, tmp_path):
    name, args, setup, status, words = case
    shutil.copytree(patches_hidden_model, tmp_path / "m")
    if setup is not None:
        setup(tmp_path)
    before = _tree(tmp_path)
    proc = run_cli(*args, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("sleepnet: error: "), proc.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and "SLEEPNET_DEBUG" not in lines[0], lines[0]
    assert _tree(tmp_path) == before, f"{name}: the folder changed"
