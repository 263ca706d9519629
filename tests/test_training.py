import os

import numpy as np
import pytest
import torch

from sleepnet.data import make_patches
from sleepnet.losses import loss_fn
from sleepnet.models import build_mlp
from sleepnet.training import get_recipe, init_model, train


def test_paper_init_is_uniform_001():
    model = init_model(get_recipe("paper"), seed=0)
    w = model[0].weight
    assert w.abs().max().item() <= 0.01
    assert w.abs().max().item() > 0.0099
    assert w.std().item() == pytest.approx(0.02 / np.sqrt(12), rel=0.01)


def test_squared_loss_passes_gradient_through_the_output_relu():
    model = build_mlp([3, 2], dropout=0)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
    x = torch.tensor([[0.5, 0.0, 0.0]])
    y = torch.tensor([1])
    loss = loss_fn("squared", model, x, y)
    loss.backward()
    # out = relu([0.5, -0.5]) = [0.5, 0]; error at the pre-activation = out - onehot = [0.5, -1]
    # for unit 1 the pre-activation is negative, yet its gradient is -1 (straight through)
    expected = torch.tensor([[0.5 * 0.5, 0, 0], [-1.0 * 0.5, 0, 0]])
    torch.testing.assert_close(model[0].weight.grad, expected)
    assert loss.item() == pytest.approx(0.5 * (0.25 + 1.0))


def _small():
    return make_patches(n_train=100, n_test=40, seed=1)


def test_same_seed_gives_bit_identical_weights():
    recipe = get_recipe("paper", epochs=2, sizes=(100, 16, 4))
    a, _ = train(_small(), recipe, seed=5)
    b, _ = train(_small(), recipe, seed=5)
    c, _ = train(_small(), recipe, seed=6)
    for wa, wb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(wa, wb)
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize("recipe", ["paper", "standard"])
def test_recipes_learn_patches(recipe):
    model, record = train(make_patches(seed=0), get_recipe(recipe, sizes=(100, 32, 4)), seed=0)
    assert record["metrics"]["test_accuracy"] > 0.9
    assert record["recipe"]["name"] == recipe
    assert all(m.bias is None for m in model if isinstance(m, torch.nn.Linear))


@pytest.mark.skipif("avx2" not in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else True,
                    reason="needs an x86-64 CPU with AVX2")  # fmt: skip
def test_portable_mode_pins_the_cpu_kernels_before_the_libraries_load(tmp_path):
    """``SLEEPNET_PORTABLE=1`` (README, "Determinism"): torch runs its AVX2 kernels whatever the CPU offers,
    and the model record says which kernels made it."""
    import json
    import subprocess
    import sys

    code = ("import sleepnet, torch, numpy, os; print(torch.backends.cpu.get_cpu_capability(), "
            "os.environ['MKL_CBWR'], os.environ['OPENBLAS_CORETYPE'])")  # fmt: skip
    pinned = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE")
    env = {k: v for k, v in os.environ.items() if k not in pinned} | {"SLEEPNET_PORTABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == ["AVX2", "AVX2", "Haswell"]
    res = subprocess.run([sys.executable, "-m", "sleepnet", "train", "--dataset", "patches", "--hidden", "8",
                          "--epochs", "1", "-q", "-o", str(tmp_path / "m")], env=env, capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    versions = json.loads((tmp_path / "m" / "model.json").read_text())["versions"]
    assert versions["cpu_capability"] == "AVX2" and versions["portable"] is True
