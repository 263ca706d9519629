"""Gradient-masking checks: a healthy model passes, a model with dead gradients is flagged."""

import numpy as np
import torch
from torch import nn

from sleepnet.evaluation.masking import gradient_norms, loss_choice, masking_checks, unbounded
from sleepnet.losses import loss_from_scores
from tests.test_attacks import linear_case


def test_margin_loss_is_the_logit_margin():
    z = torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, -1.0]])
    y = torch.tensor([0, 2])
    assert loss_from_scores("margin", z, y, reduction="sum").item() == (1.0 - 2.0) + (3.0 + 1.0)


def test_a_linear_model_passes_every_check():
    model, x, y, _, _ = linear_case(6, n=6)
    model.train()
    res = masking_checks(model, "cross-entropy", x, y, free_kwargs={"max_iter": 10, "max_eval": 1000})
    assert all(m.training for m in model.modules())  # checked in evaluation mode, handed back as it came
    assert not res["masked"], res["warnings"]
    assert res["unbounded"]["accuracy"] == 0.0
    assert res["gradient_norms"]["share_zero"] == 0.0
    assert res["gradient_free"]["free_to_gradient"] > 0.8


def _dead_model():
    """A hidden layer that is silent around the data: zero gradients, constant output."""
    model = nn.Sequential(nn.Linear(20, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False),
                          nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
        model[0].weight[0, :10] = 1.0  # unit 0 wakes only if the first half outweighs 3x the rest
        model[0].weight[0, 10:] = -3.0
        model[2].weight.copy_(torch.tensor([[0.0] * 8, [1.0] + [0.0] * 7]))
    return model


def test_dead_gradients_are_flagged():
    model = _dead_model()
    x = np.random.default_rng(0).uniform(0.2, 0.4, (10, 20)).astype(np.float32)
    y = np.zeros(10, dtype=np.int64)  # all-zero output: argmax is class 0, the right answer
    g = gradient_norms(model, "cross-entropy", x, y)
    assert g["share_zero"] == 1.0 and not g["ok"]
    u = unbounded(model, "cross-entropy", x, y)
    assert u["accuracy"] == 1.0 and not u["ok"]
    lc = loss_choice(model, "cross-entropy", x, y)
    assert lc["accuracy_training_loss"] == 1.0
    res = masking_checks(model, "cross-entropy", x, y, free_kwargs={"max_iter": 10, "max_eval": 1000})
    assert res["masked"] and any("exactly zero" in w for w in res["warnings"])
