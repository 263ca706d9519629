"""Stochastic layers: VOneNet's noise, seeding, the model folder, the recipe, the defence, and the
attacks that judge and query a stochastic model by its expected prediction."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from sleepnet import noise
from sleepnet.converters import check_sequential
from sleepnet.data import Dataset
from sleepnet.defences import DEFENCES
from sleepnet.errors import ConversionError, SleepnetError
from sleepnet.evaluation.attacks import ATTACKS, eot_default, stochastic
from sleepnet.evaluation.attacks.base import ExpectedScores
from sleepnet.models import build_mlp, load_model, save_model
from sleepnet.training import get_recipe, init_model
from tests.conftest import run_cli


def vonenet_noise_f(x: torch.Tensor, eps: torch.Tensor, gain: float, k: float = 0.35, b: float = 0.07):
    """VOneNet's ``noise_f`` (neuronal mode, ``vonenet/modules.py``) with fixed noise, on ``x`` scaled
    into spike counts by ``gain`` and back, step for step as it is written there."""
    x = x.clone() * gain
    x *= k
    x += b
    x += eps * torch.sqrt(torch.relu(x.clone()) + 10e-5)
    x -= b
    x /= k
    return torch.relu(x) / gain


def test_poisson_noise_is_vonenets_noise_at_the_chosen_gain():
    layer = noise.PoissonNoise(gain=25.0, seed=7)
    x = torch.rand(64, 30) * 2 - 0.5
    out = layer(x)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, vonenet_noise_f(x, eps, 25.0))


def test_poisson_variance_grows_with_the_mean_and_gaussian_does_not():
    x = torch.tensor([3.0, 12.0]).repeat(200_000, 1)
    var = noise.PoissonNoise(gain=10.0)(x).var(dim=0)
    kg = 0.35 * 10
    want = (kg * torch.tensor([3.0, 12.0]) + 0.07) / kg**2  # the relu cuts at 3 std and more: nothing
    torch.testing.assert_close(var, want, rtol=0.02, atol=0)
    g = noise.GaussianNoise(sigma=0.2)(x).var(dim=0)
    torch.testing.assert_close(g, torch.tensor([0.04, 0.04]), rtol=0.02, atol=0)


def test_noise_is_fresh_each_pass_seeded_and_independent_of_torchs_generator():
    layer = noise.GaussianNoise(0.5, seed=3)
    x = torch.ones(4, 5)
    first = layer(x)
    assert not torch.equal(first, layer(x))  # fresh noise each pass
    layer.restart()
    torch.manual_seed(99)  # other draws do not move it
    torch.randn(10)
    assert torch.equal(layer(x), first)
    with noise.seeded(nn.Sequential(layer), 5):
        inside = layer(x)
    assert not torch.equal(inside, first)
    after = layer(x)
    layer.restart()
    layer(x)
    assert torch.equal(layer(x), after)  # the block drew nothing of the layer's own stream


def test_a_float64_copy_draws_the_same_noise():
    """The masking checks' precision check attacks a float64 copy (``masking.float64_model``): its noise
    must be the float32 model's, or the check compares two judges, not two precisions (torch's float64
    stream differs from float32's for 16 elements and more)."""
    from sleepnet.evaluation.masking import float64_model

    torch.manual_seed(0)
    model = noise.add_noise(build_mlp([20, 32, 3]), "poisson:50", seed=4).eval()
    x = torch.rand(6, 20)
    wide = float64_model(model)
    noise.restart(model), noise.restart(wide)
    assert torch.allclose(model(x).double(), wide(x), atol=1e-5)


def test_a_noisy_model_saves_loads_and_copies_with_its_noise(tmp_path):
    model = noise.add_noise(build_mlp([6, 8, 8, 3], dropout=0), "poisson:25", seed=2).eval()
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "PoissonNoise", "Linear", "ReLU",
                                                 "PoissonNoise", "Linear", "ReLU"]  # fmt: skip
    x = torch.rand(5, 6)
    want = model(x)
    noise.restart(model)
    folder = save_model(model, tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "sleepnet-model/4"
    record = {"type": "poisson_noise", "gain": 25.0, "k": 0.35, "b": 0.07, "seed": 2001}
    assert meta["architecture"][2] == record
    loaded, _ = load_model(folder)
    assert stochastic(loaded) and eot_default(loaded) == 20
    torch.testing.assert_close(loaded(x), want)  # the same draws from the recorded seeds
    torch.testing.assert_close(copy.deepcopy(model)(x), want)  # a copy starts from its seed too


@pytest.mark.parametrize("spec, after, match", [
    ("poisson", (), "poisson:GAIN"), ("poisson:-1", (), "positive"), ("uniform:1", (), "poisson:GAIN"),
    ("gaussian:nan", (), "positive"), ("poisson:25", (3,), "hidden layers 1..2"),
    ("poisson:25", (1, 1), "each once"),
])  # fmt: skip
def test_bad_noise_specs_and_places_are_refused(spec, after, match):
    with pytest.raises(SleepnetError, match=match):
        noise.add_noise(build_mlp([6, 8, 8, 3]), spec, after)


def test_noise_is_refused_on_a_network_without_hidden_layers():
    with pytest.raises(SleepnetError, match="and the model has none"):
        noise.add_noise(build_mlp([6, 3]), "poisson:25")
    with pytest.raises(SleepnetError, match="and the network has none"):
        get_recipe("relu-mlp", sizes=(6, 3), noise="poisson:25")


def test_noise_goes_after_the_chosen_hidden_activations_and_not_twice():
    model = noise.add_noise(build_mlp([6, 8, 8, 3], dropout=0.2), "gaussian:0.1", after=(2,))
    assert isinstance(model[5], noise.GaussianNoise) and len(noise.stochastic_layers(model)) == 1
    with pytest.raises(SleepnetError, match="noise layers already"):
        noise.add_noise(model, "gaussian:0.1")


def test_a_recipe_with_noise_builds_a_noisy_network_and_checks_its_places():
    recipe = get_recipe("relu-mlp", sizes=(6, 8, 8, 3), noise="poisson:5", noise_after=(1,))
    model = init_model(recipe, seed=4)
    assert [type(m).__name__ for m in model][:3] == ["Linear", "ReLU", "PoissonNoise"]
    assert noise.stochastic_layers(model)[0].seed == 4001
    assert recipe.to_dict()["noise_after"] == [1]
    with pytest.raises(SleepnetError, match="hidden layers 1..2"):
        get_recipe("relu-mlp", sizes=(6, 8, 8, 3), noise="poisson:5", noise_after=(0,))
    with pytest.raises(SleepnetError, match="needs a noise"):
        get_recipe("relu-mlp", noise_after=(1,))


def test_sleep_refuses_a_stochastic_network():
    model = noise.add_noise(build_mlp([6, 8, 3], dropout=0), "poisson:25")
    with pytest.raises(ConversionError, match="a noise layer; sleep converts deterministic"):
        check_sequential(model)


def _data(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = np.clip(np.eye(k, d)[y] * 0.8 + 0.1 * rng.random((n, d)), 0, 1).astype(np.float32)
    return Dataset("toy", x, y, x, y, sha256="0" * 64)


def test_the_stochastic_defence_adds_noise_to_the_control_or_trains_with_it():
    data = _data()
    recipe = get_recipe("relu-mlp", sizes=(6, 8, 3), epochs=1)
    control = init_model(recipe, seed=0).eval()
    record = {"recipe": recipe.to_dict()}
    defence = DEFENCES["stochastic"](noise="gaussian:0.2", train=False)
    added, rec = defence.apply(control, record, data, seed=1)
    assert stochastic(added) and not stochastic(control)
    assert torch.equal(added[0].weight, control[0].weight)  # the control's weights, untouched
    assert rec["recipe"]["noise"] == "gaussian:0.2" and rec["defence"]["train"] is False
    trained, _ = DEFENCES["stochastic"](noise="poisson:25").apply(control, record, data, seed=1)
    assert stochastic(trained) and not torch.equal(trained[0].weight, control[0].weight)
    for bad, match in (({"noise": "poisson:0"}, "positive"), ({"train": "yes"}, "true or false"),
                       ({"after": 1}, "each once"), ({"after": [1, 1]}, "each once"),
                       ({"after": [0]}, "each once")):  # fmt: skip
        with pytest.raises(SleepnetError, match=match):
            DEFENCES["stochastic"](**bad)


def _noisy_classifier(sigma=2.0):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16, bias=False), nn.ReLU(), noise.GaussianNoise(sigma, seed=1),
                          nn.Linear(16, 3, bias=False), nn.ReLU()).eval()  # fmt: skip
    return model


def test_a_stochastic_model_is_judged_by_its_expected_prediction():
    model = _noisy_classifier()
    x = torch.rand(300, 6)
    attack = ATTACKS["pgd"](model, "cross-entropy")
    assert attack.draws == 20 and isinstance(attack.queried[0], ExpectedScores)
    noise.restart(model, shared=True, offset=noise.JUDGE_OFFSET)  # the judge: own seeds + offset, 20 passes
    with torch.no_grad():
        probs = sum(torch.softmax(model[:-1](x), 1) for _ in range(20)) / 20
    noise.restart(model)
    assert torch.equal(attack.classify(x), probs.argmax(1))
    assert torch.equal(attack.classify(x), attack.classify(x))  # common random numbers: a fixed judge
    once = attack.classify(x, once=True)
    assert not torch.equal(once, probs.argmax(1))  # a single pass disagrees: the noise is large
    assert not torch.equal(once, attack.classify(x, once=True))  # single passes draw on: they differ
    layer, ones = noise.stochastic_layers(model)[0], torch.ones(2, 16)
    layer.restart()
    stream = [layer(ones), layer(ones)]
    layer.restart()
    layer(ones)
    attack.classify(x)
    assert torch.equal(layer(ones), stream[1])  # the layer's own stream goes on as if nothing was drawn
    det = build_mlp([6, 4, 3], dropout=0)
    assert ATTACKS["pgd"](det, "cross-entropy").queried is det


def test_the_expected_prediction_of_an_image_does_not_depend_on_its_batch():
    model = _noisy_classifier()
    body = model[:-1]
    x = torch.rand(40, 6)
    whole = noise.expected_scores(body, x)
    alone = torch.cat([noise.expected_scores(body, x[i : i + 1]) for i in range(len(x))])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    shuffled = noise.expected_scores(body, x[order])
    torch.testing.assert_close(alone, whole, rtol=1e-6, atol=1e-7)  # a call of one row may round apart
    torch.testing.assert_close(shuffled, whole[order], rtol=1e-6, atol=1e-7)
    short = noise.expected_scores(body, x[:7])  # a shorter batch: the same draws (rounding aside)
    torch.testing.assert_close(short, whole[:7], rtol=1e-6, atol=1e-7)
    # each pass draws one noise for all rows: twenty fixed networks, and not one
    layer = noise.stochastic_layers(model)[0]
    with torch.no_grad(), noise.judging(body):
        drawn = [layer.eps(torch.zeros(3, 16)) for _ in range(2)]
    assert all(torch.equal(d[0], d[2]) for d in drawn) and not torch.equal(drawn[0], drawn[1])
    with noise.judging(body, draws=1):  # a single pass (the naive evaluation): one noise per row
        one = layer.eps(torch.zeros(3, 16))
        with noise.judging(body):  # nested: shared again inside, per row again after it
            assert layer._shared is True
        assert layer._shared is False
    assert not torch.equal(one[0], one[2])
    with noise.seeded(body, 0, shared=True):  # an attack holds the noise at its seed, shared or not ...
        with torch.no_grad(), noise.judging(body):  # ... and the judge inside it draws as anywhere
            assert torch.equal(layer.eps(torch.zeros(3, 16)), drawn[0])
        assert layer._shared is True
    assert layer._shared is False  # and afterwards as before


def test_query_attacks_query_the_expected_scores_of_a_stochastic_model():
    model = _noisy_classifier()
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    hsj = ATTACKS["hopskipjump-art"](model, "cross-entropy", max_iter=1, max_eval=20, init_eval=5)
    art = hsj.art(queried=True)
    noise.restart(model, 0)
    scores = art.predict(x)
    noise.restart(model, shared=True, offset=noise.JUDGE_OFFSET)
    with torch.no_grad():
        want = torch.log(sum(torch.softmax(model[:-1](torch.as_tensor(x)), 1) for _ in range(20)) / 20)
    np.testing.assert_allclose(scores, want.numpy(), rtol=1e-5, atol=1e-6)
    res = hsj.run(x, np.zeros(4, dtype=np.int64))
    assert res["draws"] == 20 and res["eot_samples"] == 1
    again = hsj.run(x, np.zeros(4, dtype=np.int64))  # a run holds the noise at the attack's seed
    assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)  # (NaN != NaN in ==)
    # ours, batched over images: scores x_0, x_1, x_2 plus noise, so a third of the cube is each class
    # and a random start is found (on the net above nearly every uniform image is class 2)
    thirds = nn.Sequential(nn.Linear(6, 6, bias=False), nn.ReLU(), noise.GaussianNoise(0.05, seed=1),
                           nn.Linear(6, 3, bias=False), nn.ReLU()).eval()  # fmt: skip
    with torch.no_grad():
        thirds[0].weight.copy_(torch.eye(6))
        thirds[3].weight.copy_(torch.eye(6)[:3])
    batched_hsj = ATTACKS["hopskipjump"](thirds, "cross-entropy", max_iter=1, max_eval=20, init_eval=5)
    for ours, per_image in ((batched_hsj, 5), (ATTACKS["boundary"](thirds, "cross-entropy", max_iter=3), 20)):
        seen = []
        ours.queried = _Recorded(ours.queried, seen)  # every query goes through the expected scores
        y = ours.predict(x)  # right clean, so every image is attacked
        res = ours.run(x, y)
        assert res["draws"] == 20 and res["clean_accuracy"] == 1.0 and res["success_rate"] > 0, ours.name
        assert max(seen) >= 2 * per_image, (ours.name, seen)  # the queries of several images in one call
        again = ours.run(x, y)
        assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)
        together = ours.generate(x, y)  # the judge draws one noise for all rows: batched equals alone
        for i in range(len(x)):
            np.testing.assert_array_equal(ours.generate(x[i : i + 1], y[i : i + 1])[0], together[i])


class _Recorded(torch.nn.Module):
    """``inner``, counting its calls in ``seen``."""

    def __init__(self, inner, seen):
        super().__init__()
        self.inner, self.seen = inner, seen

    def forward(self, x):
        self.seen.append(len(x))
        return self.inner(x)


def test_train_cli_with_noise_and_its_bad_input(tmp_path):
    out = tmp_path / "noisy"
    res = run_cli("train", "--dataset", "patches", "--recipe", "relu-mlp", "--hidden", "8,8", "--epochs", "1",
                  "--noise", "gaussian:0.1", "--noise-after", "2", "-o", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "model.json").read_text())
    assert [r["type"] for r in meta["architecture"]].count("gaussian_noise") == 1
    assert meta["recipe"]["noise"] == "gaussian:0.1" and meta["recipe"]["noise_after"] == [2]
    for args, match in ((["--noise", "poisson"], "poisson:GAIN"), (["--noise-after", "1"], "give --noise"),
                        (["--noise", "poisson:25", "--noise-after", "5"], "hidden layers 1..2"),
                        (["--noise", "poisson:25", "--noise-after", "a"], "layer numbers"),
                        (["--hidden", "", "--noise", "poisson:25"], "the network has none")):  # fmt: skip
        res = run_cli("train", "--dataset", "patches", "--recipe", "relu-mlp", "--hidden", "8,8", *args,
                      "-o", tmp_path / "bad")  # fmt: skip
        assert res.returncode == 2 and match in res.stderr and res.stderr.strip().count("\n") == 0
        assert not (tmp_path / "bad").exists()
    res = run_cli("sleep", out, "--preset", "mnist-fgsm", "-o", tmp_path / "slept")
    assert res.returncode == 1 and "noise layer" in res.stderr and not (tmp_path / "slept").exists()


def test_judge_by_single_draws_is_what_a_naive_evaluation_sees():
    model = _noisy_classifier()
    attack = ATTACKS["square"](model, eps=0.1, n_queries=10).judge_by(1)
    assert attack.draws == 1 and attack.queried is model
    x = torch.rand(300, 6)
    with torch.no_grad():
        expected = ATTACKS["square"](model, eps=0.1).classify(x)
    assert not torch.equal(attack.classify(x), expected)  # judged by one noisy pass, not the expectation
    assert ATTACKS["square"](model, eps=0.1).judge_by(5).draws == 5
    det = build_mlp([6, 4, 3], dropout=0)
    assert ATTACKS["pgd"](det, "cross-entropy").judge_by(7).draws == 1  # a deterministic model: one pass
    with pytest.raises(SleepnetError, match="draws must be"):
        ATTACKS["pgd"](det, "cross-entropy").judge_by(0)


def test_single_draws_evaluates_a_stochastic_model_as_a_naive_evaluation_does():
    from sleepnet.evaluation import evaluate_model
    from sleepnet.training import accuracy

    model = _noisy_classifier()
    x, y = torch.rand(300, 6), torch.randint(0, 3, (300,))
    with noise.single_draws():
        attack = ATTACKS["pgd"](model, "cross-entropy")
        assert attack.draws == 1 and attack.queried is model and eot_default(model) == 1
        acc = accuracy(model, x, y)
        with torch.no_grad(), noise.seeded(model, None, offset=noise.JUDGE_OFFSET):
            assert acc == int((model[:-1](x).argmax(1) == y).sum()) / len(y)  # one noisy pass, seeded
        assert accuracy(model, x, y) == acc  # the same pass again: a resumed run reads the same
        with noise.single_draws(False):  # nested: the outer setting comes back after the block
            assert eot_default(model) == 20
        assert eot_default(model) == 1
    assert ATTACKS["pgd"](model, "cross-entropy").draws == 20 and eot_default(model) == 20
    from sleepnet.data import load_dataset

    data = load_dataset("patches")
    torch.manual_seed(0)
    det = build_mlp([data.x_test.shape[1], 16, int(data.y_test.max()) + 1], dropout=0)
    model = noise.add_noise(det, "gaussian:0.5")
    seen: dict = {False: {}, True: {}}

    class Recorded:  # the inputs that identify each kept measure
        def __init__(self, eot):
            self.eot = eot

        def run(self, name, inputs, fn):
            seen[self.eot][name] = inputs
            return fn()

    naive = evaluate_model(model, data, "cross-entropy", "quick", eot=False, units=Recorded(False))
    full = evaluate_model(model, data, "cross-entropy", "quick", units=Recorded(True))
    # judged by the expected prediction, or by single draws from the same seeds (noise.judging): a
    # measure kept under other draws of either is not reused
    for eot in (True, False):
        assert seen[eot] and all({"judge": noise.JUDGE} in v for v in seen[eot].values())
    assert naive["single_draws"] is True and "single_draws" not in full
    assert naive["fgsm"] != full["fgsm"]  # single draws and gradients of one draw: another curve
    assert evaluate_model(det, data, "cross-entropy", "quick", eot=False) == evaluate_model(
        det, data, "cross-entropy", "quick")  # nothing changes for a deterministic model


def test_evaluate_cli_no_eot_attacks_and_judges_single_draws(tmp_path, patches_hidden_model):
    model, meta = load_model(patches_hidden_model)
    noisy = save_model(noise.add_noise(model, "gaussian:0.3"), tmp_path / "noisy", meta)
    runs = {}
    for flag in ((), ("--no-eot",)):
        out = tmp_path / f"pgd{len(flag)}.json"
        res = run_cli("evaluate", noisy, "--attack", "pgd", "--n", "20", "--eps", "0.1", *flag, "--json", out)
        assert res.returncode == 0, res.stderr
        runs[flag] = json.loads(out.read_text())
    naive, full = runs[("--no-eot",)], runs[()]
    assert (naive["eot_samples"], naive["draws"], naive["single_draws"]) == (1, 1, True)
    assert (full["eot_samples"], full["draws"]) == (20, 20) and "single_draws" not in full
    res = run_cli("evaluate", noisy, "--no-eot", "-o", tmp_path / "suite")
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "suite" / "metrics.json").read_text())
    assert doc["options"] == {"eot": False} and doc["models"]["noisy"]["results"]["single_draws"] is True


def test_eot_runs_the_layers_before_the_noise_once_with_the_same_gradient_and_scores():
    from sleepnet.losses import loss_fn

    torch.manual_seed(0)
    model = noise.add_noise(build_mlp([6, 16, 16, 3], dropout=0), "gaussian:0.3").eval()
    head, tail = noise.split(model[:-1])
    assert len(head) == 2 and isinstance(tail[0], noise.GaussianNoise)
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append(1))
    x, y = torch.rand(50, 6), torch.randint(0, 3, (50,))
    attack = ATTACKS["pgd"](model, "cross-entropy", eot_samples=7)
    noise.restart(model, 3)
    g = attack.gradient(x, y)
    assert len(calls) == 1  # one forward through the first layer for 7 draws
    noise.restart(model, 3)
    xb = x.clone().requires_grad_(True)
    want = sum(torch.autograd.grad(loss_fn("cross-entropy", model, xb, y, reduction="sum"), xb)[0]
               for _ in range(7)) / 7  # fmt: skip
    assert torch.allclose(g, want, rtol=1e-5, atol=1e-7) and not torch.equal(g, 0 * g)
    calls.clear()
    noise.restart(model, shared=True, offset=noise.JUDGE_OFFSET)  # the judge's draws
    with torch.no_grad():
        probs = sum(torch.softmax(model[:-1](x), 1) for _ in range(20)) / 20
    assert len(calls) == 20
    calls.clear()
    assert torch.equal(noise.expected_scores(model[:-1], x), torch.log(probs.clamp_min(1e-30)))  # bit for bit
    assert len(calls) == 1
    first = nn.Sequential(noise.GaussianNoise(0.3, seed=1), nn.Linear(6, 3, bias=False), nn.ReLU())
    assert len(noise.split(first[:-1])[0]) == 0  # noise first: nothing runs once
    noise.restart(first, 3)
    g = ATTACKS["pgd"](first, "cross-entropy", eot_samples=3).gradient(x, y)
    noise.restart(first, 3)
    xb = x.clone().requires_grad_(True)
    want = sum(torch.autograd.grad(loss_fn("cross-entropy", first, xb, y, reduction="sum"), xb)[0]
               for _ in range(3)) / 3  # fmt: skip
    assert torch.allclose(g, want, rtol=1e-5, atol=1e-7)


def test_autoattack_takes_its_rand_version_for_a_stochastic_model_unless_told():
    det = build_mlp([6, 8, 4], dropout=0)  # AutoAttack's targeted DLR needs 4 classes
    model = noise.add_noise(det, "gaussian:0.3")
    aa = ATTACKS["autoattack"]
    auto = aa(model)
    assert (auto.version, auto.parts, auto.eot_samples) == ("rand", ("apgd-ce", "apgd-dlr"), 20)
    assert aa(det).version == "standard" and aa(det).eot_samples == 1
    assert aa(model, version="standard").version == "standard"  # told: as told
    with noise.single_draws():  # the naive evaluation treats the model as deterministic
        assert aa(model).version == "standard" and aa(model).eot_samples == 1


def test_a_noisy_model_still_walks_with_torchs_module_apply():
    model = noise.add_noise(build_mlp([6, 8, 3], dropout=0), "poisson:25")
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))  # torch's Module.apply, not shadowed
    assert "PoissonNoise" in seen and seen[-1] == "Sequential"


def test_each_model_seed_has_its_own_judge():
    """The expected prediction's 20 networks follow from the model's noise seeds: the same weights with
    other noise seeds are judged by other draws (so a spread over training seeds includes the judge's),
    and the same seeds by the same draws, whatever was drawn before."""
    model, other = _noisy_classifier(), _noisy_classifier()
    noise.stochastic_layers(other)[0].seed = 2  # another model seed's layer
    x = torch.rand(50, 6)
    mine = noise.expected_scores(model[:-1], x)
    model(x)  # the layer's own stream moves on; the judge does not
    assert torch.equal(noise.expected_scores(model[:-1], x), mine)
    assert not torch.equal(noise.expected_scores(other[:-1], x), mine)
    with noise.seeded(model, 0):  # nor does an attack's seed
        assert torch.equal(noise.expected_scores(model[:-1], x), mine)


def _judged_toy(n_images: int = 100):
    """A small noisy network whose single passes often disagree with its expected prediction (a fifth
    of its images at sigma 0.3), and images labelled by that prediction."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), noise.GaussianNoise(sigma=0.3, seed=1),
                          nn.Linear(64, 10), nn.ReLU())  # fmt: skip
    with torch.no_grad():
        model[0].weight.mul_(3)
        model[3].weight.mul_(3)
    x = torch.rand(n_images, 16).numpy().astype(np.float32)
    return model, x, ATTACKS["pgd"](model, "cross-entropy").predict(x)


def test_attacks_that_decide_as_they_go_decide_by_the_judge_of_a_stochastic_model():
    """APGD (AutoAttack's rand version), DeepFool and CW decide on the model's outputs while they run:
    on single noisy passes, APGD left 0.23 robust at L-inf 0.3 where PGD with EOT left 0.04 (images a
    single pass misjudged came back clean), DeepFool stopped short of the judged boundary (0.52 robust
    at L2 1.0 against PGD's 0.02) and CW's minimal examples fooled the judge on 0 of 100 images. By the
    judge they are as strong as PGD with EOT, and what they return fools it."""
    model, x, y = _judged_toy()
    pgd = ATTACKS["pgd"](model, "cross-entropy", eps=0.3, n_steps=50)
    assert pgd.eot_samples == 20  # EOT by default, as every attack that takes it
    robust_pgd = (pgd.predict(pgd(x, y)) == y).mean()
    apgd = ATTACKS["apgd-ce"](model, eps=0.3, steps=50)
    assert apgd.eot_samples == 20
    adv = apgd(x, y)
    robust = apgd.predict(adv) == y
    assert robust.mean() <= robust_pgd + 0.02, (robust.mean(), robust_pgd)
    assert np.all(adv[robust] == x[robust])  # what it leaves unchanged the judge still gets right
    deepfool = ATTACKS["deepfool"](model, "cross-entropy")
    assert (deepfool.predict(deepfool(x, y)) != y).mean() >= 0.95
    cw = ATTACKS["cw-l2"](model, "cross-entropy", binary_search_steps=3, max_iter=100)
    adv = cw(x[:40], y[:40])
    found = np.any(adv != x[:40], axis=1)
    assert found.mean() >= 0.6 and np.all(cw.predict(adv[found]) != y[:40][found])
    # the attacks that take no EOT are not given it; a naive evaluation's attacks take single draws
    assert ATTACKS["square"](model).eot_samples == 1
    assert ATTACKS["deepfool-art"](model, "cross-entropy").eot_samples == 1  # ART: one draw a gradient
    assert ATTACKS["cw-l2-art"](model, "cross-entropy").eot_samples == 1
    for twin in ("deepfool-art", "cw-l2-art"):
        assert ATTACKS[twin](model, "cross-entropy", eot_samples=None).eot_samples == 1
        with pytest.raises(SleepnetError, match="takes one draw a gradient"):
            ATTACKS[twin](model, "cross-entropy", eot_samples=5)
    assert ATTACKS["fgsm"](model, "cross-entropy").eot_samples == 20
    with noise.single_draws():
        assert ATTACKS["pgd"](model, "cross-entropy").eot_samples == 1


def test_jsma_targets_and_follows_the_expected_scores_of_a_stochastic_model():
    """JSMA took its target from one noisy pass and its saliency from single-pass gradients: its target
    is now the second class of the expected scores, and ART attacks those scores."""
    from sleepnet.losses import logit_body

    model, x, y = _judged_toy(200)
    jsma = ATTACKS["jsma"](model, "cross-entropy", max_iter=20)
    expected = ExpectedScores(model, 20)(torch.from_numpy(x)).detach().numpy()
    assert np.array_equal(jsma.second_class(x), np.argsort(expected, axis=1)[:, -2])
    once = logit_body(model)(torch.from_numpy(x)).detach().numpy()
    assert not np.array_equal(np.argsort(once, axis=1)[:, -2], np.argsort(expected, axis=1)[:, -2])
    clf = jsma.art(queried=True)
    assert np.array_equal(clf.predict(x).argmax(1), expected.argmax(1))  # ART sees the expected scores
    asked = []
    jsma.art = lambda queried=False: asked.append(queried) or clf
    res = jsma.run(x[:20], y[:20])
    assert asked == [True] and res["success_rate"] > 0
