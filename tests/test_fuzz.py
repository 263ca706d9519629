"""Property-based tests (hypothesis): every loader and parser, fed anything, returns a result or raises the
project's own ``SleepnetError``, never a traceback of another kind.

Covered: IDX bytes, npz data sets, model folders (``model.json`` and ``model.safetensors``), TOML sleep
configs and ``--set`` items, experiment files, sleep records. Each property runs a bounded number of
examples (``FUZZ``) with a fixed seed (``derandomize``), so the suite is deterministic.
"""

from __future__ import annotations

import io
import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleepnet.config import apply_overrides, load_config, load_preset, parse_override
from sleepnet.data import load_npz, parse_idx
from sleepnet.errors import SleepnetError
from sleepnet.experiment import load_experiment
from sleepnet.models import build_mlp, load_model, save_model
from sleepnet.workflow import load_sleep_record

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12))  # fmt: skip
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner,
                                                                            max_size=4)),
                           max_leaves=12)  # fmt: skip
toml_keys = st.sampled_from(["preset", "max_rate", "inc", "dec", "beta", "alpha_scale", "T", "dt", "norm_w",
                             "input_mode", "image_shape", "cycle", "seed", "chunk", "name", "bogus",
                             "W_inh", "percentile", "window"])  # fmt: skip


def _toml_value(v) -> str:
    """``v`` as TOML text where TOML can say it (None as a bare word, which TOML refuses)."""
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _own(fn, *args):
    """Call ``fn``: its result, or None where it raised ``SleepnetError``; anything else fails the test."""
    try:
        return fn(*args)
    except SleepnetError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), repr(exc)
        return None


@FUZZ
@given(st.binary(max_size=64) | st.builds(lambda h, b: bytes([0, 0, 8, h % 4]) + b, st.integers(0, 255),
                                          st.binary(max_size=40)))  # fmt: skip
def test_idx_bytes(raw):
    out = _own(parse_idx, raw)
    assert out is None or out.dtype == np.uint8


arrays = st.one_of(
    st.builds(lambda n, d, fill: np.full((n, d), fill, np.float32), st.integers(0, 5), st.integers(1, 4),
              st.floats(width=32, allow_nan=True, allow_infinity=True)),
    st.builds(lambda n: np.arange(n) % 3, st.integers(0, 6)),
    st.builds(lambda n, v: np.full(n, v), st.integers(0, 6), st.floats(-3, 3)),
    st.builds(lambda n: np.array(["a"] * n), st.integers(0, 3)),
    st.builds(lambda n: np.zeros((n, 2, 2), bool), st.integers(0, 3)),
)  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "z"]), arrays, max_size=5),
       st.sampled_from(["whole", "cut", "bytes"]), st.binary(max_size=40))  # fmt: skip
def test_npz_datasets(parts, form, raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "d.npz"
        np.savez(path, **parts)
        if form == "cut":  # a copy that stopped short
            path.write_bytes(path.read_bytes()[: len(raw) * 7])
        elif form == "bytes":
            path.write_bytes(raw)
        data = _own(load_npz, path)
    if data is not None:
        assert np.isfinite(data.x_train).all() and (data.y_train >= 0).all() and len(data.x_test)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return save_model(build_mlp([6, 4, 3]), tmp_path_factory.mktemp("fuzz") / "m", {"kind": "trained"})


@FUZZ
@given(record=json_values, damage=st.sampled_from(["record", "weights", "both"]), raw=st.binary(max_size=64))
def test_model_folders(model_folder, record, damage, raw):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "m"
        folder.mkdir()
        good = json.loads((model_folder / "model.json").read_text())
        if damage in ("record", "both"):
            good = record if not isinstance(record, dict) else good | record
        (folder / "model.json").write_text(json.dumps(good))
        weights = (model_folder / "model.safetensors").read_bytes()
        if damage in ("weights", "both"):
            weights = weights[: len(raw)] + raw
        (folder / "model.safetensors").write_bytes(weights)
        _own(load_model, folder)


@FUZZ
@given(st.dictionaries(toml_keys, json_values, max_size=6), st.booleans())
def test_toml_configs(values, under_table):
    body = "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in values.items())
    text = ("[sleep]\n" + body) if under_table else body
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_text(text)
        _own(load_config, path, load_preset("patches"))


@FUZZ
@given(st.text(alphabet=string.printable, max_size=30))
def test_set_items(item):
    _own(parse_override, item)
    _own(apply_overrides, load_preset("patches"), [item])


EXPERIMENT_KEYS = ["dataset", "recipe", "hidden", "epochs", "seeds", "suite", "subsample", "workers",
                   "colour"]
experiment_tables = st.fixed_dictionaries({
    "experiment": st.dictionaries(st.sampled_from(EXPERIMENT_KEYS), json_values, max_size=7),
    "sleep": st.dictionaries(st.text(max_size=6), json_values, max_size=2),
    "defences": st.dictionaries(st.sampled_from(["distillation", "stochastic", "x"]), json_values,
                                max_size=2),
})  # fmt: skip


@FUZZ
@given(experiment_tables)
def test_experiment_files(tables):
    base = {"dataset": "patches", "recipe": "paper", "seeds": [0], "suite": "quick"}
    tables = dict(tables, experiment=base | tables["experiment"])
    text = "\n".join(f"[{name}]\n" + "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in t.items())
                     for name, t in tables.items())  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "e.toml"
        path.write_text(text)
        _own(load_experiment, path)


record_arrays = st.one_of(arrays, st.builds(np.asarray, st.integers(-3, 5)),
                          st.builds(np.asarray, st.floats()))  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(["spike_counts", "unit_counts", "sizes", "dt", "raster",
                                        "raster_start"]), record_arrays, max_size=6),
       st.binary(max_size=40), st.booleans())  # fmt: skip
def test_sleep_records(parts, raw, as_bytes):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        if as_bytes:
            (folder / "sleep_record.npz").write_bytes(raw)
        else:
            buf = io.BytesIO()
            np.savez(buf, **parts)
            (folder / "sleep_record.npz").write_bytes(buf.getvalue())
        _own(load_sleep_record, folder)
