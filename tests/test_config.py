import dataclasses

import pytest

from sleepnet.config import (
    SleepConfig,
    apply_overrides,
    config_keys,
    load_config,
    load_preset,
    preset_names,
)
from sleepnet.errors import SleepnetError

SPEC = {  # docs/algorithm.md §6: [max_rate, inc, dec, beta..., alpha_scale, T]
    "mnist-fgsm": (39.037119, 0.063997, 0.069220, (36.186585, 23.362736, 36.384713), 2.193698, 27105),
    "mnist-deepfool": (455.364521, 0.066056, 0.054991, (22.687400, 48.092672, 18.983305), 34.657870, 3365),
    "mnist-continual":
        (239.515363, 0.032064, 0.003344, (14.548273, 44.560317, 38.046326), 55.882454, 15000),
    "fashion-continual":
        (181.047258, 0.041001, 0.003344, (40.446884, 27.596929, 33.109393), 31.592987, 15000),
    "patches": (64.0, 0.0035, 0.0002, (1.045,), 4.25, 30000),
    # not from a paper: the tuner's trial 16 on the FSDD control (experiments/presets/fsdd.toml)
    "fsdd": (18.16972282360116, 0.34866771105797933, 0.014629095138877923,
             (94.9710550893263, 54.77376582356091, 44.0681210552048), 7.094604757185674, 9551),
}


@pytest.mark.parametrize("name", SPEC)
def test_presets_match_the_spec(name):
    c = load_preset(name)
    assert (c.max_rate, c.inc, c.dec, c.beta, c.alpha_scale, c.T) == SPEC[name]
    assert (c.dt, c.threshold, c.decay, c.w_inh, c.dc, c.norm_w) == (0.001, 1.0, 0.999, 0.0, 0.0, False)


def test_preset_list_and_input_modes():
    assert set(preset_names()) == set(SPEC)
    assert load_preset("mnist-fgsm").input_mode == "sequential"
    assert load_preset("mnist-continual").input_mode == "masked-mean"
    assert load_preset("patches").input_mode == "mean"


def test_overrides_and_aliases():
    c = apply_overrides(load_preset("mnist-fgsm"), ["inc=0.05", "W_inh=0.5", "beta=[1, 2, 3]",
                                                    "normW=true", "T=100"])
    assert (c.inc, c.w_inh, c.beta, c.norm_w, c.T) == (0.05, 0.5, (1.0, 2.0, 3.0), True, 100)


@pytest.mark.parametrize(
    "item, match",
    [("T=-5", "T must be a positive"), ("bogus=1", "unknown key 'bogus'"), ("inc", "key=value"),
     ("decay=1.5", "decay must be in"), ("input_mode=random", "input_mode must be one of"),
     ("beta=[1, -2, 3]", "beta must be positive"), ("T=2.5", "T must be an integer")],
)
def test_bad_overrides_are_refused(item, match):
    with pytest.raises(SleepnetError, match=match):
        apply_overrides(load_preset("mnist-fgsm"), [item])


def test_config_file_over_a_preset(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "mnist-deepfool"\n[sleep]\ninc = 0.01\nsilent_gaps = true\n')
    c = load_config(f)
    assert c.inc == 0.01 and c.silent_gaps and c.T == 3365
    f.write_text("[sleep]\ninc = 0.01\n")
    with pytest.raises(SleepnetError, match="missing keys"):
        load_config(f)


def test_unknown_preset():
    with pytest.raises(SleepnetError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_config_keys_list_every_field_with_type_default_and_range():
    rows = {r.name: r for r in config_keys()}
    assert list(rows) == [f.name for f in dataclasses.fields(SleepConfig)]
    assert tuple(rows["decay"]) == ("decay", "float", "0.999", "(0, 1]", "membrane decay per step")
    assert (rows["T"].type, rows["T"].default, rows["T"].range) == ("int", "preset", "> 0")
    assert (rows["beta"].type, rows["norm_w"].default, rows["percentile"].default) == (
        "list of floats", "false", "unset")
    assert rows["input_mode"].range == "sequential, mean, masked-mean"
    assert all(r.help and r.range for r in rows.values())


# (bad, good) values for each range text the key table shows
RANGE_PROBES = {
    "> 0": (0, 1), ">= 0": (-1, 0), "(0, 1]": (0.0, 1.0), "(0, 100]; unset: the max": (100.5, 100.0),
    "any number": (float("nan"), -3.5), "sequential, mean, masked-mean": ("random", "mean"),
}  # fmt: skip


def test_the_ranges_help_shows_are_the_ranges_validation_enforces():
    base = load_preset("patches")
    probed = set()
    for row in config_keys():
        if row.range not in RANGE_PROBES:
            continue
        bad, good = RANGE_PROBES[row.range]
        if row.type == "float" and isinstance(bad, int):
            bad, good = float(bad), float(good)
        with pytest.raises(SleepnetError, match=row.name if row.name not in ("chunk", "window") else "chunk"):
            base.replace(**{row.name: bad})
        assert getattr(base.replace(**{row.name: good}), row.name) == good
        probed.add(row.name)
    assert probed >= {"max_rate", "inc", "dec", "alpha_scale", "T", "dt", "threshold", "decay", "w_inh",
                      "dc", "gamma", "input_mode", "window", "percentile", "seed", "chunk", "raster_start",
                      "raster_steps", "snapshot_every"}  # fmt: skip


@pytest.mark.parametrize(
    "key, bad, message",
    [("max_rate", 0.0, "max_rate must be a positive number, got 0.0"),
     ("w_inh", -0.5, "w_inh must be a non-negative number, got -0.5"),
     ("dc", float("inf"), "dc must be a number, got inf"),
     ("window", 0, "chunk and window must be positive"),
     ("raster_steps", -1, "raster_start, raster_steps, snapshot_every and seed must be >= 0"),
     ("percentile", 0.0, "percentile must be in (0, 100], got 0.0"),
     ("seed", True, "seed must be an integer, got True"),
     ("beta", (1.0, 0.0), "beta must be positive numbers, one per weight layer, got (1.0, 0.0)")],
)
def test_validation_messages_are_unchanged(key, bad, message):
    with pytest.raises(SleepnetError) as err:
        load_preset("patches").replace(**{key: bad})
    assert str(err.value) == message
