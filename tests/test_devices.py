"""Devices: names resolved up front, models and data where they are asked to be; GPU tests skip cleanly."""

import numpy as np
import pytest
import torch

from sleepnet.devices import model_device, resolve_device
from sleepnet.errors import SleepnetError
from sleepnet.models import build_mlp
from sleepnet.training import accuracy

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def test_resolve_device_names():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    assert resolve_device("auto").type == ("cuda" if CUDA else "mps" if mps else "cpu")
    if CUDA:
        assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
    with pytest.raises(SleepnetError, match="unknown device 'gpu' \\(choose cpu, cuda, cuda:N, mps or auto"):
        resolve_device("gpu")


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(SleepnetError, match="has no CUDA GPU"):
        resolve_device("cuda:0")


def test_accuracy_leaves_the_model_where_and_as_it_was():
    torch.manual_seed(0)
    model = build_mlp([4, 3], dropout=0.0).train()
    x = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    y = np.zeros(50, dtype=np.int64)
    acc = accuracy(model, x, y, device="cpu")
    pred = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    assert acc == pytest.approx(float(np.mean(pred == 0)))
    model.train()
    accuracy(model, x, y)
    assert model.training and model_device(model) == torch.device("cpu")


@pytest.mark.gpu
@gpu
def test_torch_sleep_on_cuda_equals_numba():
    """The torch sleep backend on the GPU gives the CPU's spikes and weights to 1e-12."""
    from sleepnet.sleep_phase import run_sleep
    from tests.conftest import active_params, random_network, random_spikes

    w, s, p = random_network(0), random_spikes(0, 300, 60), active_params(w_inh=0.1)
    kw = dict(alpha=p.alpha, beta=p.beta, inc=p.inc, dec=p.dec, w_inh=p.w_inh)
    cpu = run_sleep(w, s, backend="numba", **kw)
    for dense in (True, False):
        gpu_out = run_sleep(w, s, backend="torch", backend_options={"device": "cuda", "dense": dense}, **kw)
        np.testing.assert_array_equal(cpu.spike_counts, gpu_out.spike_counts)
        assert max(np.abs(a - b).max() for a, b in zip(cpu.weights, gpu_out.weights)) <= 1e-12


def _tiny_model():
    torch.manual_seed(0)
    model = build_mlp([6, 5, 3], dropout=0.0)
    x = torch.rand(40, 6)
    y = model.eval()(x).argmax(1)  # the model's own labels: every image correct, so attacks have work
    return model, x, y


def test_attacks_take_and_return_tensors():
    from sleepnet.evaluation.attacks import ATTACKS

    model, x, y = _tiny_model()
    pgd = ATTACKS["pgd"](model, "cross-entropy", eps=0.3, n_steps=5, device="cpu")
    adv = pgd(x, y)
    assert isinstance(adv, torch.Tensor) and adv.device == x.device and adv.shape == x.shape
    np.testing.assert_array_equal(adv.numpy(), pgd(x.numpy(), y.numpy()))
    assert float((adv - x).abs().max()) <= 0.3 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert (model(adv).argmax(1) != y).any()  # the attack found something to break
    assert pgd.run(x, y) == pgd.run(x.numpy(), y.numpy())
    calls = []
    real = pgd.generate
    pgd.generate = lambda *a: calls.append(1) or real(*a)  # the tensor path must not go through the host
    pgd(x, y)
    assert calls == []
    fgsm = ATTACKS["fgsm"](model, "cross-entropy")
    res = fgsm.run(x, y)
    assert res == fgsm.run(x.numpy(), y.numpy()) and 0.0 < res["median_eps"] <= 0.4


@pytest.mark.gpu
@gpu
def test_attack_suite_on_cuda_matches_cpu():
    """Every registered attack runs on a CUDA model; the gradient attacks agree with the CPU's."""
    from sleepnet.evaluation.attacks import ATTACKS

    model, x, y = _tiny_model()
    cpu = ATTACKS["fgsm"](model, "cross-entropy").run(x, y)
    model_gpu = build_mlp([6, 5, 3], dropout=0.0)
    model_gpu.load_state_dict(model.state_dict())
    model_gpu.to("cuda")
    gpu_res = ATTACKS["fgsm"](model_gpu, "cross-entropy").run(x.cuda(), y.cuda())
    assert abs(gpu_res["median_eps"] - cpu["median_eps"]) <= 0.005
    quick = {"boundary": {"max_iter": 5}, "boundary-art": {"max_iter": 5},
             "hopskipjump": {"max_iter": 2, "max_eval": 100},
             "cw-l2": {"binary_search_steps": 2, "max_iter": 20}, "cw-l2-art": {"binary_search_steps": 1,
             "max_iter": 10}, "jsma": {"max_iter": 10}, "pgd": {"n_steps": 5}}  # fmt: skip
    for name in ATTACKS:
        res = ATTACKS[name](model_gpu, "cross-entropy", **quick.get(name, {})).run(x[:8].cuda(), y[:8].cuda())
        if name != "fgsm":
            assert res["n"] == 8 and res["clean_accuracy"] == 1.0, (name, res)
            assert 0.0 <= res["accuracy"] <= 1.0 and 0.0 <= res["success_rate"] <= 1.0, (name, res)
        assert next(model_gpu.parameters()).device.type == "cuda"


@pytest.mark.gpu
@gpu
def test_demo_path_on_cuda(tmp_path):
    """Train, sleep (torch backend on the GPU) and evaluate a Patches network on CUDA."""
    from sleepnet.config import load_preset
    from sleepnet.data import load_dataset
    from sleepnet.evaluation import evaluate_model
    from sleepnet.sleep_phase import sleep
    from sleepnet.training import train

    data = load_dataset("patches")
    model, record = train(data, "paper", seed=0, device="cuda")
    assert record["metrics"]["device"].startswith("cuda") and model_device(model).type == "cuda"
    result = sleep(model, load_preset("patches"), data.x_train, backend="torch")
    assert model_device(result.model).type == "cuda" and result.output.backend == "torch"
    out = evaluate_model(result.model, data, "squared", "quick", device="cuda")
    assert 0.0 <= out["clean_accuracy"] <= 1.0 and "fgsm" in out
    cpu = sleep(model.cpu(), load_preset("patches"), data.x_train, backend="numba")
    np.testing.assert_array_equal(cpu.output.spike_counts, result.output.spike_counts)
