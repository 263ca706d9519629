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


def _saturated_model():
    """One sigmoid unit driven to h ~ 27 by the data: its slope e^-27 ~ 2e-12 is exactly 0 in float32
    (``1 - sigmoid(h)`` rounds to 0 past h ~ 17) and not in float64 (which holds out to h ~ 36).
    200 inputs: PGD's random start moves h by about 2 (std), not out of that window."""
    model = nn.Sequential(nn.Linear(200, 1), nn.Sigmoid(), nn.Linear(1, 2)).eval()
    with torch.no_grad():
        model[0].weight.fill_(540.0 / 200)  # h = 540 (mean(x) - 0.5)
        model[0].bias.fill_(-270.0)
        model[2].weight.copy_(torch.tensor([[10.0], [0.0]]))
        model[2].bias.copy_(torch.tensor([-5.0, 0.0]))  # class 0 while the unit is on
    return model


def test_float64_margin_attack_breaks_what_float32_gradients_cannot_see():
    from sleepnet.evaluation.masking import float64_model, precision

    model = _saturated_model()
    x = np.random.default_rng(0).uniform(0.545, 0.555, (10, 200)).astype(np.float32)
    y = np.zeros(10, dtype=np.int64)
    assert gradient_norms(model, "cross-entropy", x, y)["share_zero"] == 1.0
    wide = float64_model(model)
    assert torch.equal(wide(torch.as_tensor(x)).argmax(1), model(torch.as_tensor(x)).argmax(1))
    res = precision(model, x, y, eps=0.1)
    # eps 0.1 lowers mean(x) by 0.1, h from ~27 to ~-27: every image breaks once the sign is known;
    # float32 has no gradient with either loss, so the fault is the precision, not the loss
    assert res["accuracy_float32_margin"] == 1.0 and res["accuracy_float64_margin"] == 0.0 and not res["ok"]
    assert loss_choice(model, "cross-entropy", x, y)["accuracy_margin_loss"] == 1.0


def test_lbfgs_in_float64_breaks_the_saturated_unit_that_float32_cannot_see():
    from sleepnet.evaluation.attacks import ATTACKS

    model = _saturated_model()
    x = np.random.default_rng(0).uniform(0.545, 0.555, (4, 200)).astype(np.float32)
    y = np.zeros(4, dtype=np.int64)
    wide = ATTACKS["lbfgs"](model).run(x, y)
    narrow = ATTACKS["lbfgs"](model, precision="float32").run(x, y)
    assert narrow["success_rate"] == 0.0 and wide["success_rate"] == 1.0
    # the smallest flip lowers mean(x) below 0.5: about 0.05 * sqrt(200) = 0.71 in L2
    assert all(0.70 < n < 1.2 for n in wide["norms"])


def test_square_after_gradients_uses_the_suites_square_when_autoattack_has_none():
    from sleepnet.evaluation.masking import square_after_gradients

    standard = {"n": 100, "settings": {"parts": ["apgd-ce", "apgd-t", "fab-t", "square"]},
                "breakdown": {"0.1": {"apgd-ce": 40, "square": 2}, "0.2": {"apgd-ce": 50, "square": 0}}}
    assert square_after_gradients(standard, None) == {"share": 0.02, "ok": False,
                                                      "from": "AutoAttack's Square part"}
    rand = {"n": 4, "budgets": [0.1, 0.2], "settings": {"parts": ["apgd-ce", "apgd-dlr"]},
            "norms": [0.05, None, 0.15, 0.0]}  # robust at 0.1: images 1, 2; at 0.2: image 1
    square = {"n": 4, "norms": [0.05, 0.15, 0.08, 0.0]}  # AA-robust ones it breaks: 2 at 0.1, 1 at 0.2
    res = square_after_gradients(rand, square)
    assert res["share"] == (1 + 1) / 4 and res["ok"] is False and res["from"] == "the suite's Square run"
    assert square_after_gradients(rand, None)["ok"] is None
    # on 5 images the Square run's first 4 are not AutoAttack's 4 (sorted subsets of one permutation)
    other = square_after_gradients(rand, {"n": 5, "norms": [0.05, 0.15, 0.08, 0.0, 0.01]})
    assert other["ok"] is None and other["from"] == "the suite's Square run, on 5 images, not AutoAttack's 4"


def test_failed_lines_come_from_the_checks_not_from_the_stored_lines():
    from sleepnet.evaluation.masking import WORDS, failed_lines

    checks = {"unbounded": {"ok": True}, "gradient_free": {"ok": False}, "precision": {"ok": False},
              "square_after_gradients_linf": {"ok": False}, "square_after_gradients_l2": {"ok": None},
              "free_vs_gradient": {"ok": True}, "warnings": ["words of an older version"], "masked": True}
    assert failed_lines(checks) == [WORDS["gradient_free"], WORDS["precision"],
                                    WORDS["square_after_gradients"] + " (Linf)"]
    assert failed_lines({"unbounded": {"ok": True}}) == [] and failed_lines({}) == []
