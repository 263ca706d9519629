import numpy as np
import pytest

from sleepnet.kernels import g, g_logistic, normalize_columns


def test_g_is_the_reference_logistic_form_and_the_tanh_form():
    w = np.linspace(-0.05, 0.05, 2001)
    np.testing.assert_allclose(g(w), g_logistic(w), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g(w), 1 - np.tanh(500 * w), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "w, expected", [(0.0, 1.0), (-0.01, 2.0 - 2 * 4.5397868702434395e-05), (0.01, 9.0795e-05)]
)
def test_g_values_quoted_in_the_spec(w, expected):
    assert g(w) == pytest.approx(expected, rel=1e-4)


def test_g_saturates_without_warnings():
    with np.errstate(all="raise"):
        assert g(-5.0) == 2.0
        assert g(5.0) == 0.0


def test_normalize_columns_restores_each_columns_range():
    old = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, -1.0]])
    new = np.array([[0.0, 4.0], [1.0, 0.0], [0.5, 2.0]])
    out = normalize_columns(new, old, gamma=1.0)
    # column 0: range 1 -> 2, scale 2; column 1: range 4 -> 4, scale 1
    np.testing.assert_allclose(out, [[0.0, 4.0], [2.0, 0.0], [1.0, 2.0]])
    out_gamma = normalize_columns(new, old, gamma=0.5)
    np.testing.assert_allclose(out_gamma, 0.5 * out)


def test_normalize_columns_leaves_a_flat_column_alone():
    old = np.array([[1.0], [2.0]])
    new = np.array([[3.0], [3.0]])
    np.testing.assert_array_equal(normalize_columns(new, old), new)
