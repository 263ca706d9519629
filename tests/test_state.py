"""Settings changed for a block only (``sleepnet.state``), the one overwrite guard and atomic writer
(``sleepnet.fsio``), and the one hashing helper (``sleepnet.hashing``)."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sleepnet.errors import SleepnetError
from sleepnet.evaluation.attacks import ATTACKS, FGSM, HopSkipJumpArt
from sleepnet.fsio import atomic_write, check_output, write_json
from sleepnet.hashing import sha256_arrays, sha256_bytes, sha256_file, weights_sha256
from sleepnet.state import (
    changed,
    eval_mode,
    grads_kept,
    numpy_seeded,
    optuna_quiet,
    snapshot,
    weights_frozen,
)

# --- matplotlib ------------------------------------------------------------------------------


def test_importing_and_using_plots_leaves_matplotlib_backend_alone(tmp_path):
    """In a fresh interpreter: the import chooses no backend, and drawing keeps the one chosen."""
    script = textwrap.dedent("""
        import sys
        import matplotlib
        import numpy as np

        raw = lambda: dict.__getitem__(matplotlib.rcParams, "backend")
        first = raw()
        import sleepnet.plots as plots
        print("import kept it:", raw() is first)
        matplotlib.use("svg")
        plots.firing_rates(np.ones((40, 2)), [3, 2], 0.001, sys.argv[1])
        print("backend:", matplotlib.get_backend())
        print("pyplot:", "matplotlib.pyplot" in sys.modules)
    """)
    png = tmp_path / "figs" / "rates.png"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", script, str(png)], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["import kept it: True", "backend: svg", "pyplot: False"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(png.parent) == ["rates.png"]  # no temporary file left


# --- a model's training flags ----------------------------------------------------------------


def _dropout_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 10, bias=False), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(10, 3, bias=False), nn.ReLU())  # fmt: skip


def test_eval_mode_restores_every_modules_own_flag_even_on_error():
    model = _dropout_mlp().train()
    model[2].eval()  # mixed: one submodule already in evaluation mode
    flags = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model) as m:
            assert m is model and not any(k.training for k in model.modules())
            raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == flags == [True, True, True, False, True, True]


def test_fgsm_leaves_a_model_in_training_mode_in_training_mode():
    x = np.random.default_rng(0).random((30, 12)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 30)
    reference = FGSM(_dropout_mlp().eval(), "cross-entropy").run(x, y)

    model = _dropout_mlp().train()
    seen = []
    model[2].register_forward_hook(lambda mod, inp, out: seen.append(mod.training))
    res = FGSM(model, "cross-entropy").run(x, y)
    assert model.training and all(m.training for m in model.modules())
    assert seen and not any(seen)  # the dropout layer ran in evaluation mode, every time
    assert len(seen) == 2 + len(reference["eps"])  # the gradient, one prediction per eps, the clean one
    assert res == reference  # the numbers of the model in evaluation mode (no dropout noise)
    assert all(q.grad is None for q in model.parameters())


def test_grads_kept_puts_back_the_gradients_the_block_found():
    model = _dropout_mlp()
    model[0].weight.grad = torch.full_like(model[0].weight, 2.0)
    with grads_kept(model):
        model.zero_grad()
        model(torch.ones(4, 12)).sum().backward()
        assert model[3].weight.grad is not None
    assert model[3].weight.grad is None
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 2.0))


def test_weights_frozen_puts_back_each_parameters_flag_even_on_error():
    model = _dropout_mlp()
    model[3].weight.requires_grad_(False)  # mixed: one already frozen
    with pytest.raises(RuntimeError, match="inside"):
        with weights_frozen(model) as m:
            assert m is model and not any(q.requires_grad for q in model.parameters())
            raise RuntimeError("inside")
    assert [q.requires_grad for q in model.parameters()] == [True, False]


@pytest.mark.parametrize("name", ["pgd", "fab-t"])
def test_an_attack_runs_with_the_weights_frozen_and_leaves_their_flags_and_grads(name):
    """No gradient into the weights during an attack (FAB calls backward(): it would compute them), the
    same adversarial examples as on a model frozen by its owner, and every flag and .grad as before."""
    x = np.random.default_rng(0).random((20, 12)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 20)
    options = {"pgd": {"loss": "cross-entropy", "n_steps": 5}, "fab-t": {"norm": "2", "steps": 10}}[name]
    make = lambda m: ATTACKS[name](m, eps=0.3, **options)  # noqa: E731
    frozen = _dropout_mlp()
    for q in frozen.parameters():
        q.requires_grad_(False)
    reference = make(frozen).generate(x, y)

    model = _dropout_mlp()
    model[0].weight.grad = torch.full_like(model[0].weight, 2.0)
    seen = []
    model[0].register_forward_hook(lambda mod, inp, out: seen.append(mod.weight.requires_grad))
    adv = make(model).generate(x, y)
    assert seen and not any(seen)
    assert np.array_equal(adv, reference)
    assert all(q.requires_grad for q in model.parameters())
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 2.0))
    assert model[3].weight.grad is None


# --- numpy's RandomState patch ---------------------------------------------------------------


def test_numpy_seeded_fixes_unseeded_draws_and_restores_numpy_after_an_exception():
    np.random.seed(123)
    expected_next = np.random.random(3)
    np.random.seed(123)
    draws = []
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            with numpy_seeded(7):
                assert np.random.RandomState is not np.random.mtrand.RandomState
                draws.append(np.random.RandomState().randint(10**6, size=4))
                raise ValueError("boom")
        assert np.random.RandomState is np.random.mtrand.RandomState
    np.testing.assert_array_equal(draws[0], draws[1])  # an unseeded RandomState() is seeded by 7
    np.testing.assert_array_equal(np.random.random(3), expected_next)  # the caller's stream untouched


def test_a_failing_art_attack_still_restores_numpy(monkeypatch):
    from art.attacks.evasion import HopSkipJump as ArtHopSkipJump

    def fail(self, x, y=None, **kwargs):
        assert np.random.RandomState is not np.random.mtrand.RandomState  # patched during ART's call
        raise RuntimeError("ART failed")

    monkeypatch.setattr(ArtHopSkipJump, "generate", fail)
    model = _dropout_mlp().train()
    x = np.random.default_rng(0).random((2, 12)).astype(np.float32)
    with pytest.raises(RuntimeError, match="ART failed"):
        HopSkipJumpArt(model, "cross-entropy", max_iter=1, max_eval=200).run(x, np.array([0, 1]))
    assert np.random.RandomState is np.random.mtrand.RandomState
    assert all(m.training for m in model.modules())


# --- Optuna's log level, and the leak check itself -------------------------------------------


def test_optuna_quiet_restores_the_verbosity_even_on_error():
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        with pytest.raises(KeyError):
            with optuna_quiet():
                assert optuna.logging.get_verbosity() == optuna.logging.ERROR
                raise KeyError("x")
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(before)


def test_snapshot_names_what_changed():
    before = snapshot()
    assert before["numpy RandomState is the original class"] is True
    n = torch.get_num_threads()
    torch.set_num_threads(n + 1)
    try:
        after = snapshot()
    finally:
        torch.set_num_threads(n)
    assert changed(before, after) == [f"torch threads: {n} -> {n + 1}"]
    assert changed(before, snapshot()) == []


# --- one overwrite guard, one atomic writer ---------------------------------------------------


def test_check_output(tmp_path):
    target = tmp_path / "out"
    check_output(target)  # nothing there: fine
    target.mkdir()
    with pytest.raises(SleepnetError) as err:
        check_output(target)
    assert str(err.value) == f"{target} already exists (use --force to replace it)"
    check_output(target, overwrite=True)  # empty: replaceable
    (target / "thesis.tex").write_text("years of work")
    with pytest.raises(SleepnetError, match="sleepnet did not write"):
        check_output(target, overwrite=True)
    (target / ".sleepnet").write_text("{}")
    check_output(target, overwrite=True)  # marked: sleepnet's own
    with pytest.raises(SleepnetError, match="would overwrite the input"):
        check_output(target / "sub", overwrite=True, inputs=[target])
    with pytest.raises(SleepnetError, match="is a file"):
        check_output(target / "thesis.tex", overwrite=True)
    with pytest.raises(SleepnetError, match="is a folder, not a file"):
        check_output(target, overwrite=True, file=True)


@pytest.mark.parametrize("mask, files, folders", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                  (0o077, 0o600, 0o700)])  # fmt: skip
def test_outputs_follow_the_umask(tmp_path, mask, files, folders):
    """A lab's shared folder: files and folders get the modes the umask gives, whatever wrote them
    (``tempfile`` makes 0700 folders, safetensors 0600 files)."""
    import stat

    import torch

    from sleepnet.models import build_mlp, save_model

    old = os.umask(mask)
    try:
        torch.manual_seed(0)
        folder = save_model(build_mlp([4, 3]), tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == folders
    for p in folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == files, p.name


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "new" / "a.txt"
    assert atomic_write(path, "héllo\n") == path  # the folder is made
    assert path.read_bytes() == "héllo\n".encode()
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["a.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        atomic_write(path, 12345)  # fails while writing the temporary file
    with pytest.raises(TypeError, match="cannot write object"):
        write_json(path, {"new": object()})  # fails before any file is made

    def no_rename(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        write_json(path, {"new": 2})  # fails at the rename
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_atomic_dir_never_replaces_an_output_that_appeared_or_changed_while_it_ran(tmp_path):
    """Checked before the rename as before the work: another command's output that appeared meanwhile
    (no --force) or a folder sleepnet did not write put in place of its own (--force) stays as it is,
    and the finished result is kept and named in the one-line error."""
    from sleepnet.fsio import atomic_dir

    out = tmp_path / "out"
    with pytest.raises(SleepnetError, match="already exists") as err:
        with atomic_dir(out) as tmp:
            (tmp / "result.txt").write_text("mine")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
    assert (out / "theirs.txt").read_text() == "theirs" and not (out / "result.txt").exists()
    kept = Path(str(err.value).split("the finished result is in ")[1].rstrip(")"))
    assert (kept / "result.txt").read_text() == "mine" and "\n" not in str(err.value)
    (out / ".sleepnet").write_text("{}")  # now sleepnet's: --force replaces it, unless it changes hands
    with pytest.raises(SleepnetError, match="did not write"):
        with atomic_dir(out, overwrite=True) as tmp:
            (out / ".sleepnet").unlink()
    assert (out / "theirs.txt").is_file()
    (out / ".sleepnet").write_text("{}")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "result.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [".sleepnet", "result.txt"]


def test_resumable_dir_is_locked_and_goes_on_without_the_lock_where_the_file_system_refuses_it(
        tmp_path, monkeypatch):  # fmt: skip
    """A second command on the same output is refused in one line while the first holds it; a file
    system without flock (NFS: ENOLCK) is worked on with a warning instead of a traceback."""
    import errno
    import fcntl

    from sleepnet.progress import LOG
    from sleepnet.units import resumable_dir

    out = tmp_path / "out"
    with resumable_dir(out) as work:
        with pytest.raises(SleepnetError, match="another sleepnet command is writing"):
            with resumable_dir(out):
                pass
        (work / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a"
    warned = []
    monkeypatch.setattr(LOG, "warning", lambda msg, *a: warned.append(msg % a))

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with resumable_dir(tmp_path / "nfs") as work:
        (work / "b.txt").write_text("b")
    assert (tmp_path / "nfs" / "b.txt").read_text() == "b"
    assert len(warned) == 1 and "No locks available" in warned[0] and "without the lock" in warned[0]


def test_units_take_a_measure_from_where_it_is_kept_and_keep_its_time_and_the_durable_copy_current(tmp_path):
    """A measure is taken from the work folder, else the --keep copy, else an --also folder; the copy is
    written where it lacks the measure and never rewritten where it holds it; the time it took when it
    was made is kept (``kept_seconds``), a measure made now is timed (``seconds``)."""
    from sleepnet.units import Units

    calls = []

    def measure():
        calls.append(1)
        return {"accuracy": 0.5}

    keep, also = tmp_path / "keep", tmp_path / "also"
    keep.mkdir(), also.mkdir()
    made = Units(tmp_path / "a", "context", keep=keep)
    assert made.run("clean", [1], measure) == {"accuracy": 0.5} and len(calls) == 1
    (copy,) = keep.iterdir()
    took = json.loads(copy.read_text())["seconds"]
    assert made.seconds == {"clean": took} and made.kept_seconds == {} and made.done == 1
    # from the work folder, the copy gone: the copy is written again
    copy.rename(also / copy.name)
    again = Units(tmp_path / "a", "context", keep=keep)
    assert again.run("clean", [1], measure) == {"accuracy": 0.5} and len(calls) == 1
    assert again.kept_seconds == {"clean": took} and again.seconds == {} and again.reused == 1
    assert (keep / copy.name).read_bytes() == (also / copy.name).read_bytes()
    # from the work folder, the copy there: not rewritten
    before = (keep / copy.name).stat().st_mtime_ns
    Units(tmp_path / "a", "context", keep=keep).run("clean", [1], measure)
    assert (keep / copy.name).stat().st_mtime_ns == before and len(calls) == 1
    # from the copy: taken, not rewritten
    before = (keep / copy.name).stat().st_mtime_ns
    fresh = Units(tmp_path / "b", "context", keep=keep)
    assert fresh.run("clean", [1], measure) == {"accuracy": 0.5} and len(calls) == 1
    assert (keep / copy.name).stat().st_mtime_ns == before and fresh.kept_seconds == {"clean": took}
    # from an --also folder only: the copy is written
    (keep / copy.name).unlink()
    other = Units(tmp_path / "c", "context", keep=keep, also=[also])
    assert other.run("clean", [1], measure) == {"accuracy": 0.5} and len(calls) == 1
    assert (keep / copy.name).is_file() and other.kept_seconds == {"clean": took}
    # other inputs: made again
    assert other.run("clean", [2], measure) == {"accuracy": 0.5} and len(calls) == 2


# --- one hashing helper ----------------------------------------------------------------------


def test_hashes_are_those_of_hashlib_on_the_same_bytes(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not C-contiguous
    b = np.array([True, False])
    assert sha256_arrays([a, b], prefix="p:") == hashlib.sha256(b"p:" + a.tobytes() + b.tobytes()).hexdigest()
    assert sha256_bytes("ab", b"cd") == hashlib.sha256(b"abcd").hexdigest()
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(3 << 20))  # more than one block
    assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2).double())
    expect = hashlib.sha256(b"".join(t.detach().numpy().astype(np.float32).tobytes()
                                     for t in model.state_dict().values())).hexdigest()  # fmt: skip
    assert weights_sha256(model) == expect


def test_interrupts_in_a_deferred_block_take_effect_when_it_ends():
    import signal

    from sleepnet.state import interrupts_deferred

    # Python's own Ctrl-C handler for the test: a process started in the background has SIGINT
    # ignored, and brian2, once it has run, chains its handler to whatever was there (an ignored
    # SIGINT it then tries to call)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT)
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                signal.raise_signal(signal.SIGINT)  # recorded, not raised here
                reached.append("end of block")
        assert reached == ["end of block"]
        assert signal.getsignal(signal.SIGINT) is before
        with interrupts_deferred():
            reached.append("quiet")
        assert reached == ["end of block", "quiet"]  # no signal: nothing raised
    finally:
        signal.signal(signal.SIGINT, outer)
