"""Typed specs: ``ExperimentSpec`` (experiment files), ``Suite`` and ``AttackSetting``, and the
registries they check names against. Every bad field is one ``SleepnetError`` line naming the file
and the key."""

import dataclasses
import pickle

import pytest

from sleepnet.config import load_preset
from sleepnet.errors import SleepnetError
from sleepnet.evaluation import SUITES, AttackSetting, Suite
from sleepnet.evaluation.distortions import DISTORTIONS
from sleepnet.evaluation.suites import FrozenMap
from sleepnet.experiment import ExperimentSpec, load_experiment
from sleepnet.registry import UnknownName
from sleepnet.training import RECIPES, get_recipe
from tests.test_experiment import TINY

DEFENCE_NAMES = ("adv-pgd, adv-fgsm, distillation, finetune-blur, finetune-noise, finetune-fgsm, saturation, "
                 "stochastic")


def _load(tmp_path, text):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path, load_experiment(path)


def test_the_tiny_experiment_file_as_a_spec(tmp_path):
    path, spec = _load(tmp_path, TINY)
    assert (spec.name, spec.dataset, spec.recipe, spec.suite) == ("exp", "patches", "paper", "paper")
    assert spec.hidden == () and spec.epochs == 2 and spec.seeds == (0, 1)
    assert spec.subsample == 8 and spec.workers is None
    assert spec.sleep["sleep-fgsm"] == load_preset("patches").replace(T=2000)
    assert dict(spec.defences["distillation"]) == {"epochs": 2}
    assert dict(spec.defences["finetune-noise"]) == {}
    # metrics.json keeps the dict load_experiment returned before, key for key and in order
    d = spec.to_dict()
    assert list(d) == ["name", "dataset", "recipe", "hidden", "epochs", "seeds", "suite", "subsample",
                       "workers", "defences", "sleep"]  # fmt: skip
    assert {k: v for k, v in d.items() if k != "sleep"} == {
        "name": "exp", "dataset": "patches", "recipe": "paper", "hidden": [], "epochs": 2, "seeds": [0, 1],
        "suite": "paper", "subsample": 8, "workers": None,
        "defences": {"distillation": {"epochs": 2}, "finetune-noise": {}}}  # fmt: skip
    assert d["sleep"] == {"sleep-fgsm": load_preset("patches").replace(T=2000).to_dict()}
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seeds = (3,)
    with pytest.raises(TypeError):
        spec.defences["distillation"]["epochs"] = 3


@pytest.mark.parametrize("old, new, message", [
    ("seeds = [0, 1]", 'seeds = "zero"',
     "[experiment] seeds must be a list of distinct integers from 0 to 2**32 - 1, got 'zero'"),
    ("seeds = [0, 1]", "seeds = [0, -1]",
     "[experiment] seeds must be a list of distinct integers from 0 to 2**32 - 1, got [0, -1]"),
    ("seeds = [0, 1]", "seeds = []",
     "[experiment] seeds must be a list of distinct integers from 0 to 2**32 - 1, got []"),
    ("seeds = [0, 1]", "seeds = [1, 1]",
     "[experiment] seeds must be a list of distinct integers from 0 to 2**32 - 1, got [1, 1]"),
    ('suite = "paper"', 'suite = "bogus"',
     "[experiment] suite: unknown suite 'bogus' (known: quick, paper, standard, audio, audio-quick)"),
    ('recipe = "paper"', 'recipe = "fancy"',
     "[experiment] recipe: unknown recipe 'fancy' (known: paper, standard, relu-mlp, sigmoid-mlp, cnn)"),
    ('dataset = "patches"', 'dataset = "cifar"',
     "[experiment] dataset: unknown dataset 'cifar' (known: mnist, fashion-mnist, patches, fsdd, fsdd-mel, "
     "npz:PATH)"),
    ("subsample = 8", "subsample = 0", "[experiment] subsample must be a positive integer, got 0"),
    ("subsample = 8", "subsample = 2.5", "[experiment] subsample must be a positive integer, got 2.5"),
    ("hidden = []", "hidden = [32, 0]",
     "[experiment] hidden must be a list of positive integers, got [32, 0]"),
    ("epochs = 2", "epochs = 0", "[experiment] epochs must be a positive integer, got 0"),
    ("epochs = 2", "epochs = 2\nworkers = 0", "[experiment] workers must be an integer >= 1, got 0"),
    ("epochs = 2", "epochs = 2\nworkers = true", "[experiment] workers must be an integer >= 1, got True"),
    ("finetune-noise = {}", "bogus-defence = {}",
     f"[defences] unknown defence 'bogus-defence' (known: {DEFENCE_NAMES})"),
    ("distillation = { epochs = 2 }", "distillation = { epoch = 2 }",
     "[defences] distillation: defence 'distillation' has no parameter 'epoch' "
     "(known: temperature, epochs, lr)"),
    ("distillation = { epochs = 2 }", "distillation = 2",
     "[defences] distillation must be a table of parameters, got 2"),
    ('{ preset = "patches", T = 2000 }', "{ T = 2000 }", "[sleep] sleep-fgsm needs a preset"),
    ('{ preset = "patches", T = 2000 }', '{ preset = "nope" }',
     "[sleep] sleep-fgsm: unknown preset 'nope' (known: "),
    ("T = 2000", "Tx = 2000", "[sleep] sleep-fgsm: unknown key 'Tx' (known: max_rate, inc, "),
    ("T = 2000", "T = -5", "[sleep] sleep-fgsm: T must be a positive number of steps, got -5"),
    ("sleep-fgsm =", "control =", "[sleep] 'control': a variant name must be letters, digits, "),
    ("sleep-fgsm =", "distillation =",
     "[defences] distillation: also the name of a [sleep] variant; every model needs its own name"),
])  # fmt: skip
def test_each_bad_field_is_one_error_naming_the_file_and_the_key(tmp_path, old, new, message):
    assert old in TINY
    path = tmp_path / "exp.toml"
    path.write_text(TINY.replace(old, new, 1))
    with pytest.raises(SleepnetError) as err:
        load_experiment(path)
    text = str(err.value)
    assert "\n" not in text
    if message.endswith(("(known: ", ", ")):
        assert text.startswith(f"{path}: {message}"), text
    else:
        assert text == f"{path}: {message}"


@pytest.mark.parametrize("old, new, message", [
    ("[defences]", "[defence]", "unknown table [defence] (known: experiment, sleep, defences)"),
    ("seeds", "sedes", "unknown [experiment] keys sedes (known: name, description, dataset, "),
    ("[experiment]", 'description = 3\n[experiment]', "unknown table [description] (known: "),
    ('dataset = "patches"', 'dataset = "patches"\ndescription = 3',
     "[experiment] description must be a string, got 3"),
])  # fmt: skip
def test_unknown_tables_and_keys(tmp_path, old, new, message):
    path = tmp_path / "exp.toml"
    path.write_text(TINY.replace(old, new, 1))
    with pytest.raises(SleepnetError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_a_spec_made_in_code_is_checked_too():
    spec = ExperimentSpec("x", seeds=[3], defences={"adv-pgd": {"eps": 0.2}})
    assert spec.seeds == (3,) and spec.suite == "paper"
    assert spec.to_dict()["defences"] == {"adv-pgd": {"eps": 0.2}}
    assert dataclasses.replace(spec, seeds=(1, 2)).seeds == (1, 2)
    with pytest.raises(SleepnetError) as err:
        dataclasses.replace(spec, seeds=(-1,))
    assert str(err.value) == ("experiment: [experiment] seeds must be a list of distinct integers from 0 "
                              "to 2**32 - 1, got (-1,)")  # fmt: skip
    with pytest.raises(SleepnetError, match=r"from 0 to 2\*\*32 - 1, got \(4294967296,\)"):
        dataclasses.replace(spec, seeds=(2**32,))
    with pytest.raises(SleepnetError, match=r"^a.toml: \[sleep\] v must be a SleepConfig, got \{\}$"):
        ExperimentSpec("x", sleep={"v": {}}, source="a.toml")


def test_suites_hold_the_paper_settings():
    assert SUITES.names() == ("quick", "paper", "standard", "audio", "audio-quick")
    assert isinstance(SUITES["paper"], Suite)
    quick, paper = SUITES["quick"], SUITES["paper"]
    assert quick.distortions == ("gaussian-noise", "gaussian-blur") and quick.attacks == ("fgsm",)
    assert quick.subsample_attacks == ()
    assert paper.distortions == ("gaussian-noise", "gaussian-blur", "salt-and-pepper")
    assert {s.label: (s.attack, s.n_images) for s in paper.subsample_attacks} == {
        "pgd-linf": ("pgd", 1000), "pgd-l2": ("pgd", 1000), "deepfool": ("deepfool", 1000),
        "jsma": ("jsma", 50), "cw-l2": ("cw-l2", 12), "boundary": ("boundary", 5),
        "hopskipjump": ("hopskipjump", 10)}  # fmt: skip
    quick_params = {s.label: dict(s.quick) for s in paper.subsample_attacks if s.quick}
    assert quick_params == {"pgd-linf": {"n_steps": 10}, "pgd-l2": {"n_steps": 10}, "jsma": {"max_iter": 30},
                            "cw-l2": {"binary_search_steps": 3, "max_iter": 50}, "boundary": {"max_iter": 50},
                            "hopskipjump": {"max_iter": 5, "max_eval": 500}}  # fmt: skip
    cw = paper.subsample_attacks[paper.labels.index("cw-l2")]
    assert cw.kwargs() == {"binary_search_steps": 9}
    assert cw.kwargs(quick=True) == {"binary_search_steps": 3, "max_iter": 50}
    assert paper.sizes(subsample=20, n_test=15) == {
        "pgd-linf": 15, "pgd-l2": 15, "deepfool": 15, "jsma": 15, "cw-l2": 12, "boundary": 5,
        "hopskipjump": 10}  # fmt: skip
    assert pickle.loads(pickle.dumps(paper)) == paper


def test_suite_and_attack_setting_reject_bad_names_and_sizes():
    with pytest.raises(SleepnetError) as err:
        Suite("mine", ("gaussian-noise",), ("fgsm", "bogus"))
    text = str(err.value)
    assert text.startswith("suite 'mine': unknown attack 'bogus' (known: ") and "fgsm" in text
    with pytest.raises(SleepnetError) as err:
        Suite("mine", ("fog",))
    assert str(err.value) == ("suite 'mine': unknown distortion 'fog' "
                              "(known: gaussian-noise, gaussian-blur, salt-and-pepper, white-noise, "
                              "babble, time-shift)")  # fmt: skip
    with pytest.raises(SleepnetError, match=r"^attack setting 'x': unknown attack 'bogus' \(known: .*pgd"):
        AttackSetting("x", "bogus")
    for n in (0, -3, 2.5):
        with pytest.raises(SleepnetError, match=rf"^attack setting 'x': n_images must be a positive integer, "
                                                rf"got {n}$"):  # fmt: skip
            AttackSetting("x", "pgd", {}, n)
    with pytest.raises(SleepnetError) as err:
        AttackSetting("x", "pgd", {"eps": 0.1}, 5, quick={"steps": 2})
    assert str(err.value).startswith("attack setting 'x': quick: attack 'pgd' has no parameter 'steps' "
                                     "(known: eps, norm, n_steps, ")  # fmt: skip
    twice = AttackSetting("fgsm", "pgd")
    with pytest.raises(SleepnetError, match=r"^suite 'mine': result name 'fgsm' is used twice$"):
        Suite("mine", (), ("fgsm",), (twice,))
    with pytest.raises(SleepnetError, match=r"^suite 'mine': distortions must be a list, got 'gaussian-"):
        Suite("mine", "gaussian-noise")
    setting = AttackSetting("x", "pgd", {"eps": 0.1}, 5)
    with pytest.raises(TypeError):
        setting.params["eps"] = 0.2
    assert setting.params == {"eps": 0.1}
    assert hash(setting) == hash(AttackSetting("x", "pgd", {"eps": 0.1}, 5))


def test_recipes_and_distortions_are_registries():
    assert RECIPES.names() == ("paper", "standard", "relu-mlp", "sigmoid-mlp", "cnn") and "paper" in RECIPES
    assert len(RECIPES) == 5
    assert get_recipe("standard", epochs=5).epochs == 5
    with pytest.raises(UnknownName) as err:
        get_recipe("fancy")
    assert str(err.value) == "unknown recipe 'fancy' (known: paper, standard, relu-mlp, sigmoid-mlp, cnn)"
    assert list(DISTORTIONS) == ["gaussian-noise", "gaussian-blur", "salt-and-pepper", "white-noise",
                                 "babble", "time-shift"]
    assert DISTORTIONS["gaussian-blur"].level_name == "sigma"
    with pytest.raises(UnknownName, match=r"^unknown distortion 'fog' \(known: gaussian-noise, "):
        DISTORTIONS.get("fog")
    assert FrozenMap({"a": 1}) == {"a": 1} and pickle.loads(pickle.dumps(FrozenMap({"a": 1}))) == {"a": 1}
