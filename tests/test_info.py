"""`sleepnet info` and the warning when sleep leaves a layer mostly silent."""

import json

from sleepnet.stats import firing_warnings
from tests.conftest import run_cli


def test_firing_warnings_name_each_layer_sleep_left_mostly_silent():
    spikes = {"steps": 1000, "layers": [{"units": 784, "total_spikes": 90000, "fraction_active": 0.8},
                                        {"units": 1200, "total_spikes": 35, "fraction_active": 0.02},
                                        {"units": 1200, "total_spikes": 0, "fraction_active": 0.0},
                                        {"units": 10, "total_spikes": 10, "fraction_active": 0.5},
                                        {"units": 1200, "total_spikes": 899, "fraction_active": 0.642},
                                        {"units": 10, "total_spikes": 2,
                                         "fraction_active": 0.2}]}  # fmt: skip
    lines = firing_warnings(spikes)
    # layer 3: half its units fired; layer 4: fewer spikes than units, but 64% of them fired (each spike
    # moves its unit's whole row: mnist-deepfool's first layer, which costs 32 points of accuracy);
    # the input is never judged
    assert len(lines) == 3
    assert lines[0] == ("sleep left layer 1 (1200 units) mostly silent: it fired 35 times in 1000 steps, "
                        "24 of its units ever, so the plasticity rule left the incoming weights of the other "
                        "1176 unchanged; try `sleepnet tune`, a larger alpha_scale or a smaller "
                        "beta[0]")  # fmt: skip
    assert "layer 2 (1200 units) mostly silent: it never fired in 1000 steps, so the plasticity rule left " \
        "the incoming weights of all its units unchanged" in lines[1] and "beta[1]" in lines[1]
    assert "layer 5 (10 units) mostly silent: it fired 2 times in 1000 steps, 2 of its units ever" in lines[2]
    assert "of the other 8 unchanged" in lines[2]
    assert firing_warnings({"steps": 10, "layers": [{"units": 4, "total_spikes": 0}]}) == []


def test_a_sleep_that_leaves_layers_silent_warns_and_records_it_and_info_shows_it(patches_hidden_model,
                                                                                   tmp_path):
    out = tmp_path / "slept"
    res = run_cli("sleep", patches_hidden_model, "--preset", "patches", "--set", "beta=[50,50]", "--set",
                  "T=300",
                  "-q", "-o", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    warned = [line for line in res.stderr.splitlines() if line.startswith("sleepnet: sleep left layer")]
    first = "layer 1 (32 units) mostly silent: it fired 6 times in 300 steps, 6 of its units ever"
    assert len(warned) == 2 and first in warned[0], res.stderr
    assert "layer 2 (4 units) mostly silent: it never fired in 300 steps" in warned[1], res.stderr
    record = json.loads((out / "model.json").read_text())
    layers = [w.split(" (")[0] for w in record["sleep"]["warnings"]]
    assert layers == ["sleep left layer 1", "sleep left layer 2"]
    res = run_cli("info", out, "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["kind"] == "slept" and d["parameters"] == 100 * 32 + 32 * 4
    assert d["architecture"].startswith("linear 100->32 (no bias), relu")
    assert d["dataset"]["name"] == "patches" and len(d["dataset"]["sha256"]) == 64
    assert d["lineage"] == [{"path": str(patches_hidden_model), "kind": "trained", "matches": True}]
    assert d["sleep"]["spikes"][1:] == [6, 0] and d["sleep"]["steps"] == 300
    assert d["sleep"]["warnings"] == record["sleep"]["warnings"]
    assert "test_accuracy" in d["metrics"]
    text = run_cli("info", out).stdout
    assert "sleep.warnings" in text and "lineage[0].matches" in text and "e3f2d00296a92f6c..." in text


def test_info_on_an_evaluation_and_on_a_folder_that_is_not_sleepnets(patches_model, tmp_path):
    ev = tmp_path / "eval"
    assert run_cli("evaluate", patches_model, "-o", ev, "-q").returncode == 0
    d = json.loads(run_cli("info", ev, "--json").stdout)
    assert d["kind"] == "evaluation" and d["suite"] == "quick" and set(d["models"]) == {"patches"}
    partial = tmp_path / ".unfinished.partial"
    (partial / "units" / "seed0" / "control").mkdir(parents=True)
    (partial / "units" / "seed0" / "control" / "clean.json").write_text("{}")
    d = json.loads(run_cli("info", tmp_path / "unfinished", "--json").stdout)
    assert d["kind"] == "unfinished" and d["units_kept"] == 1 and d["models_kept"] == 0
    other = tmp_path / "other"
    other.mkdir()
    res = run_cli("info", other)
    assert res.returncode == 1 and res.stderr.strip().endswith("not a sleepnet folder")
