"""Scale factors on a network small enough to work out by hand (docs/algorithm.md §2)."""

import numpy as np
import pytest
import torch
from torch import nn

from sleepnet.converters import from_torch, scale_factors, to_torch
from sleepnet.models import PaperDropout


def _net(dropout=None):
    layers = [nn.Linear(2, 2, bias=False), nn.ReLU()]
    if dropout is not None:
        layers.append(dropout)
    layers += [nn.Linear(2, 1, bias=False), nn.ReLU()]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, 0.25], [1.0, -1.0]]))
        model[-2].weight.copy_(torch.tensor([[0.5, 0.5]]))
    return model


X = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)


def test_factors_by_hand_with_the_chained_ratio():
    # layer 0: h = relu([0.75, 0]), relu([0.5, 1]), relu([0.25, 0]) -> max act 1.0, max W 1.0
    #   m_0 = 1.0, applied_0 = 1.0 / 1 = 1.0, factor_0 = 1.0
    # layer 1: out = 0.375, 0.75, 0.125 -> max act 0.75, max W 0.5 -> m_1 = 0.75
    #   applied_1 = 0.75 / applied_0 = 0.75, factor_1 = 4/3
    net = from_torch(_net(), X)
    np.testing.assert_allclose(net.max_activation, [1.0, 0.75])
    np.testing.assert_allclose(net.max_weight, [1.0, 0.5])
    np.testing.assert_allclose(net.factors, [1.0, 4.0 / 3.0])


def test_chained_ratio_differs_from_the_textbook_ratio():
    # m = [2, 3, 4]: chained applied = 2, 3/2, 4/(3/2) = 8/3; textbook would be 2, 3/2, 4/3
    weights = [np.full((1, 1), 0.1)] * 3
    factors, _ = scale_factors(weights, np.array([2.0, 3.0, 4.0]))
    np.testing.assert_allclose(factors, [1 / 2, 2 / 3, 3 / 8])


def test_weight_max_wins_when_larger_than_activations():
    factors, max_w = scale_factors([np.array([[3.0, -5.0]])], np.array([0.5]))
    assert max_w[0] == 3.0 and factors[0] == pytest.approx(1 / 3)


def test_paper_dropout_scaling_enters_the_hidden_activation():
    net = from_torch(_net(PaperDropout(0.2)), X)
    # hidden activations are multiplied by 0.8 in evaluation: max act 0.8, but max W is 1.0
    np.testing.assert_allclose(net.max_activation, [0.8, 0.75 * 0.8])
    np.testing.assert_allclose(net.factors, [1.0, 1.0 / 0.6])


def test_percentile_uses_positive_activations():
    net = from_torch(_net(), X, percentile=50)
    # positive hidden activations: 0.75, 0.5, 1.0, 0.25 -> median 0.625; outputs 0.375, 0.75, 0.125
    np.testing.assert_allclose(net.max_activation, [0.625, 0.375])


def test_to_torch_round_trip_rounds_once():
    model = _net()
    w = [np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[1 / 3, 2 / 3]])]
    back = to_torch(model, w)
    assert back[2].weight.dtype == torch.float32
    np.testing.assert_array_equal(back[2].weight.detach().numpy(), np.float32([[1 / 3, 2 / 3]]))
    assert model[0].weight[0, 0].item() == 0.5  # the original is untouched
