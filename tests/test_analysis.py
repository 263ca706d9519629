"""Analyses of networks: weight statistics, activation statistics, the input-output Jacobian, the CLI."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from sleepnet.analysis import Activations, Jacobian, Weights, analyze
from sleepnet.analysis.jacobian import jacobians
from sleepnet.errors import SleepnetError
from sleepnet.models import build_mlp, save_model
from tests.conftest import run_cli


def test_weight_kurtosis_is_fishers_excess_kurtosis_per_layer():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0], [1.0, -1.0]]))  # two-point: kurtosis -2
        model[2].weight.copy_(torch.tensor([[0.5, 0.5]]))  # constant: no spread, reported as 0
    layers = Weights().compute(model, np.zeros((1, 2)))["layers"]
    assert [(l["layer"], l["kurtosis"]) for l in layers] == [("Linear 0", -2.0), ("Linear 2", 0.0)]
    assert layers[0]["std"] == 1.0 and sum(layers[0]["histogram"]["counts"]) == 4
    rng = np.random.default_rng(0)
    lap = nn.Linear(400, 400, bias=False)
    with torch.no_grad():
        lap.weight.copy_(torch.as_tensor(rng.laplace(size=(400, 400))))
    kurt = Weights().compute(nn.Sequential(lap, nn.ReLU()), None)["layers"][0]["kurtosis"]
    assert abs(kurt - 3.0) < 0.15  # a Laplace distribution has excess kurtosis 3


def test_activation_fractions_are_counted_per_unit_and_image():
    relu = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    sig = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Sigmoid())
    for m in (relu, sig):
        with torch.no_grad():
            m[0].weight.copy_(torch.eye(2))
    x = np.array([[-10.0, 1.0], [-10.0, 10.0], [-10.0, 0.0], [2.0, -0.5]], dtype=np.float32)
    layers = Activations().compute(relu, x)["layers"]
    assert len(layers) == 1  # the readout's activation counted once
    r = layers[0]
    # unit 0 silent on 3 of 4 images, unit 1 on 2 of 4 (h <= 0); no unit silent on every image
    assert (r["silent"], r["saturated"], r["dead"], r["slope"]) == (5 / 8, 5 / 8, 0.0, 3 / 8)
    s = Activations().compute(sig, x)["layers"][0]
    # silent: sigmoid < 0.01 (h = -10, three times); saturated also > 0.99 (h = 10, once)
    assert (s["silent"], s["saturated"]) == (3 / 8, 4 / 8)
    assert s["dead"] == 0.0 and 0 < s["slope"] < 1


def test_jacobian_of_a_linear_readout_is_its_weight_matrix():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3, bias=False), nn.ReLU())
    x = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    res = Jacobian().compute(model, x)
    s = np.linalg.svd(model[0].weight.detach().double().numpy(), compute_uv=False)
    assert np.allclose(res["singular_values"], s) and np.isclose(res["top"], s[0])
    assert np.isclose(res["participation_ratio"], (s**2).sum() ** 2 / (s**4).sum())
    assert res["participation_ratio_std"] < 1e-12


def test_a_zero_jacobian_has_no_participation_ratio():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(torch.tensor([-10.0, 1.0]))  # unit 0 silent on images in [0, 1]^3
        model[2].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 0.0]]))  # only unit 0 reaches the logits
    res = Jacobian().compute(model, np.random.default_rng(0).random((4, 3)))
    assert res["zero_jacobian"] == 1.0 and res["top"] == 0.0 and np.isnan(res["participation_ratio"])


def test_jacobian_matches_finite_differences_in_float64():
    torch.manual_seed(1)
    model = build_mlp([5, 7, 3], dropout=0, act="sigmoid", bias=True).eval()
    x = np.random.default_rng(1).random((2, 5))
    J = jacobians(model, x)
    body = model[:-1].double()
    h = 1e-6
    for i in range(2):
        for j in range(5):
            up, down = x[i].copy(), x[i].copy()
            up[j] += h
            down[j] -= h
            diff = body(torch.as_tensor(up)[None]) - body(torch.as_tensor(down)[None])
            fd = diff[0].detach().numpy() / (2 * h)
            assert np.allclose(J[i, :, j], fd, atol=1e-8)


def test_a_stochastic_models_jacobian_is_the_mean_over_its_expected_predictions_draws():
    from sleepnet import noise

    torch.manual_seed(2)
    base = build_mlp([5, 8, 8, 3], dropout=0)
    model = noise.add_noise(base, "poisson:20").eval()
    x = np.random.default_rng(2).random((3, 5))
    res = Jacobian().compute(model, x)
    assert res["draws"] == noise.DRAWS and res["single_draw"]["top"] > 0
    J = jacobians(model, x)
    judge, body = model[:-1], copy.deepcopy(model[:-1]).double()
    xb = torch.as_tensor(x)
    with torch.no_grad(), noise.judging(judge):  # the expected prediction's draws
        fixed = [noise.draw(judge, xb.float()) for _ in range(noise.DRAWS)]
    with torch.no_grad():
        probs = sum(torch.softmax(noise.through(judge, xb.float(), d), 1) for d in fixed) / noise.DRAWS
        assert torch.equal(noise.expected_scores(judge, xb.float()), torch.log(probs.clamp_min(1e-30)))
    fixed = [[e.double() for e in d] for d in fixed]
    mean = lambda v: sum(noise.through(body, v, d) for d in fixed) / len(fixed)  # noqa: E731
    h = 1e-6
    for j in range(5):
        step = torch.zeros_like(xb)
        step[:, j] = h
        fd = ((mean(xb + step) - mean(xb - step)) / (2 * h)).detach().numpy()
        assert np.allclose(J[:, :, j], fd, atol=1e-7)
    assert not np.allclose(J, jacobians(base, x), atol=1e-3)  # the noise changes the map


def test_a_model_drawing_noise_outside_sleepnets_layers_has_no_jacobian():
    class Own(nn.Module):
        stochastic = True

        def forward(self, v):
            return v + torch.randn_like(v)

    model = nn.Sequential(nn.Linear(3, 2), Own(), nn.ReLU())
    with pytest.raises(SleepnetError, match="held fixed"):
        Jacobian().compute(model, np.zeros((1, 3)))


def test_analyze_runs_every_analysis_on_every_model_on_the_same_images():
    a, b = build_mlp([6, 4, 3], dropout=0), build_mlp([6, 4, 3], dropout=0)
    x = np.random.default_rng(0).random((20, 6), dtype=np.float32)
    res = analyze({"a": a, "b": b}, x, np.array([1, 5, 7]))
    assert res["indices"] == [1, 5, 7]
    alone = Jacobian().compute(b, x[[1, 5, 7]])  # on exactly those images
    assert res["models"]["b"]["jacobian"] == alone
    assert set(res["models"]) == {"a", "b"}
    assert set(res["models"]["a"]) == {"weights", "activations", "jacobian"}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, patches_hidden_model):
    other = tmp_path_factory.mktemp("an") / "relu"
    res = run_cli("train", "--dataset", "patches", "--recipe", "relu-mlp", "--hidden", "16", "--epochs", "2",
                  "--saturation", "0.05", "-o", other)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return patches_hidden_model, other


def test_analyze_cli_writes_json_and_figures(tmp_path, two_models):
    out, js = tmp_path / "an", tmp_path / "an.json"
    res = run_cli("analyze", *two_models, "--n", "50", "-o", out, "--json", js)
    assert res.returncode == 0, res.stderr
    doc = json.loads(js.read_text())
    assert doc == json.loads((out / "analysis.json").read_text())
    assert len(doc["indices"]) == 50 and set(doc["models"]) == {"patches-hidden", "relu"}
    for r in doc["models"].values():
        assert all("kurtosis" in layer for layer in r["weights"]["layers"])
        assert len(r["jacobian"]["singular_values"]) == 4 and r["jacobian"]["participation_ratio"] >= 1
    assert sorted(p.name for p in out.glob("*.png")) == ["activations.png", "jacobian.png", "weights.png"]


@pytest.mark.parametrize("args, match", [(["--n", "100000"], "more than the"), (["--n", "0"], "positive"),
                                         (["--only", "kurtosis"], "unknown analysis")])  # fmt: skip
def test_analyze_cli_refuses_bad_input_before_writing(tmp_path, two_models, args, match):
    out = tmp_path / "an"
    res = run_cli("analyze", *two_models, *args, "-o", out)
    assert res.returncode == 2 and match in res.stderr and res.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_analyze_cli_needs_the_models_dataset(tmp_path):
    folder = save_model(build_mlp([4, 2]), tmp_path / "m", {"dataset": {"name": "npz:/nowhere/data.npz"}})
    out = tmp_path / "an"
    res = run_cli("analyze", folder, "-o", out)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0 and not out.exists()


def test_analyze_cli_runs_every_analysis_on_a_stochastic_model(tmp_path, patches_hidden_model):
    from sleepnet import noise
    from sleepnet.models import load_model

    model, meta = load_model(patches_hidden_model)
    noisy = save_model(noise.add_noise(model, "gaussian:0.05"), tmp_path / "noisy", meta)
    res = run_cli("analyze", noisy, "--n", "20", "-o", tmp_path / "an", "--json", tmp_path / "an.json")
    assert res.returncode == 0, res.stderr
    jac = json.loads((tmp_path / "an.json").read_text())["models"]["noisy"]["jacobian"]
    assert jac["draws"] == noise.DRAWS and jac["top"] > 0 and jac["single_draw"]["top"] >= jac["top"] * 0.5
