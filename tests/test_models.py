import json

import pytest
import torch
from torch import nn

from sleepnet.converters import check_sequential
from sleepnet.errors import ConversionError, SleepnetError
from sleepnet.models import PaperDropout, build_mlp, load_model, save_model


def test_paper_dropout_masks_without_rescaling_in_training():
    torch.manual_seed(0)
    d = PaperDropout(0.2).train()
    x = torch.full((200, 500), 3.0)
    y = d(x)
    values = set(torch.unique(y).tolist())
    assert values == {0.0, 3.0}  # kept units are not scaled by 1 / 0.8
    assert (y == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_paper_dropout_scales_by_keep_probability_in_evaluation():
    d = PaperDropout(0.2).eval()
    x = torch.linspace(0, 1, 11)
    torch.testing.assert_close(d(x), x * 0.8)


def test_inverted_dropout_differs_from_paper_convention():
    model = build_mlp([4, 3, 2], dropout=0.2, dropout_convention="inverted").eval()
    assert isinstance(model[2], nn.Dropout)
    x = torch.ones(1, 3)
    torch.testing.assert_close(model[2](x), x)  # identity at evaluation


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_mlp([6, 5, 3])
    save_model(model, tmp_path / "m", {"seed": 3})
    loaded, meta = load_model(tmp_path / "m")
    assert meta["seed"] == 3 and meta["format"] == "sleepnet-model/4"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert isinstance(loaded[2], PaperDropout) and not loaded.training
    assert not list(tmp_path.glob(".*"))  # no temporary folder left


def test_save_refuses_to_overwrite_without_permission(tmp_path):
    model = build_mlp([3, 2])
    save_model(model, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    with pytest.raises(SleepnetError, match="already exists"):
        save_model(build_mlp([3, 2]), tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before


def test_failed_save_leaves_existing_folder_intact(tmp_path):
    model = build_mlp([3, 2])
    save_model(model, tmp_path / "m", {"tag": "old"})

    def boom(folder):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(model, tmp_path / "m", {"tag": "new"}, overwrite=True, extra=boom)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["tag"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    save_model(build_mlp([3, 2]), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(SleepnetError, match="not a valid safetensors"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    "layers, match",
    [
        ([nn.Linear(3, 2, bias=True), nn.ReLU()], "layer 0 \\(Linear\\) has a bias"),
        ([nn.Linear(3, 2, bias=False), nn.Sigmoid()], "layer 1 \\(Sigmoid\\): unsupported"),
        ([nn.Conv2d(1, 1, 3), nn.ReLU()], "layer 0 \\(Conv2d\\): convolution"),
        ([nn.Linear(3, 2, bias=False)], "not followed by a ReLU"),
        ([nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False), nn.ReLU()], "layer 0"),
        ([nn.Linear(3, 2, bias=False), nn.ReLU(), nn.BatchNorm1d(2)], "layer 2 \\(BatchNorm1d\\)"),
    ],
)
def test_conversion_refuses_unsupported_models_naming_the_layer(layers, match):
    with pytest.raises(ConversionError, match=match):
        check_sequential(nn.Sequential(*layers))


def test_conversion_accepts_flatten_and_both_dropouts():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(3, 3, bias=False), nn.ReLU(), PaperDropout(0.2),
                          nn.Linear(3, 2, bias=False), nn.ReLU())
    assert check_sequential(model) == [1, 4, 7]
