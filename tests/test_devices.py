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
    assert resolve_device("auto").type == ("cuda" if CUDA else resolve_device("auto").type)
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
def test_training_and_sleep_on_cuda(patches_model):
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
