"""zerodl.functions: the book's activation and loss functions (chapters 3-4).

Expected values are the book's printed numbers, hand calculations (exact
fractions) or float64/`math` references written here, never the library again.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from zerodl.functions import (
    cross_entropy_error,
    relu,
    sigmoid,
    softmax,
    sum_squared_error,
)

# The book's two example outputs (section 4.2): "2" is the correct class.
Y_GOOD = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]   # 0.6 on the right class
Y_BAD = [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]    # 0.6 on class 7
T_ONEHOT = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
T_LABEL = 2


def _sse_exact(y, t):
    """0.5 * sum (y - t)^2 in exact rational arithmetic."""
    return float(Fraction(1, 2) * sum((Fraction(str(a)) - Fraction(b)) ** 2 for a, b in zip(y, t)))


# --- sum of squared errors -------------------------------------------------------

def test_sse_book_examples():
    assert sum_squared_error(np.array(Y_GOOD), np.array(T_ONEHOT)) == pytest.approx(0.0975, abs=1e-15)
    assert sum_squared_error(np.array(Y_BAD), np.array(T_ONEHOT)) == pytest.approx(0.5975, abs=1e-15)


def test_sse_matches_exact_fractions():
    # Hand: (0.1² + 0.05² + 0.4² + 0.05² + 0.1² + 0.1²) / 2 = 0.195 / 2
    assert _sse_exact(Y_GOOD, T_ONEHOT) == 0.0975
    for y in (Y_GOOD, Y_BAD):
        assert sum_squared_error(y, T_ONEHOT) == pytest.approx(_sse_exact(y, T_ONEHOT), abs=1e-15)


# --- cross entropy ------------------------------------------------------------------

@pytest.mark.parametrize("t", [np.array(T_ONEHOT), T_LABEL, np.array(T_LABEL)], ids=["onehot", "int", "0d"])
def test_cee_book_examples(t):
    # The book prints 0.51082545709933802 and 2.3025840929945458.
    good = cross_entropy_error(np.array(Y_GOOD), t)
    bad = cross_entropy_error(np.array(Y_BAD), t)
    assert good == pytest.approx(0.510825457099338, rel=1e-12)
    assert good == pytest.approx(-math.log(0.6 + 1e-7), rel=1e-14)
    assert bad == pytest.approx(2.3025840929945458, rel=1e-12)
    assert bad == pytest.approx(-math.log(0.1 + 1e-7), rel=1e-14)


def test_cee_zero_probability_is_finite():
    # y = 0 on the true class: -log(0 + 1e-7) = 7 ln 10, not inf.
    y = np.array(Y_GOOD)
    assert cross_entropy_error(y, 3) == pytest.approx(7 * math.log(10), rel=1e-12)


def test_cee_batch_is_mean_of_samples():
    y = np.array([Y_GOOD, Y_BAD, [0.25, 0.25, 0.5, 0, 0, 0, 0, 0, 0, 0]])
    labels = np.array([2, 2, 0])
    onehot = np.eye(10)[labels]
    expected = (-math.log(0.6 + 1e-7) - math.log(0.1 + 1e-7) - math.log(0.25 + 1e-7)) / 3
    assert cross_entropy_error(y, labels) == pytest.approx(expected, rel=1e-14)
    assert cross_entropy_error(y, onehot) == pytest.approx(expected, rel=1e-14)
    per_sample = [cross_entropy_error(y[i], labels[i]) for i in range(3)]
    assert cross_entropy_error(y, labels) == pytest.approx(sum(per_sample) / 3, rel=1e-14)


def test_cee_batch_of_one_equals_single_sample():
    y = np.array([Y_BAD])
    assert cross_entropy_error(y, np.array([2])) == pytest.approx(-math.log(0.1 + 1e-7), rel=1e-14)
    assert cross_entropy_error(y, np.array([T_ONEHOT])) == pytest.approx(-math.log(0.1 + 1e-7), rel=1e-14)


# --- softmax --------------------------------------------------------------------------

def _softmax_ref(row):
    """Python floats: exp(a - max) / sum, term by term with fsum."""
    m = max(row)
    e = [math.exp(a - m) for a in row]
    s = math.fsum(e)
    return [v / s for v in e]


def test_softmax_book_example():
    # Section 3.5: softmax([0.3, 2.9, 4.0]) = [0.01821127, 0.24519181, 0.73659691]
    y = softmax(np.array([0.3, 2.9, 4.0]))
    np.testing.assert_allclose(y, [0.01821127, 0.24519181, 0.73659691], atol=5e-9)
    np.testing.assert_allclose(y, _softmax_ref([0.3, 2.9, 4.0]), rtol=1e-14)
    assert y.sum() == pytest.approx(1.0, abs=1e-15)


def test_softmax_book_overflow_example():
    # Section 3.5.2: the naive formula gives nan for [1010, 1000, 990]; the book's fix
    # prints [9.99954600e-01, 4.53978686e-05, 2.06106005e-09].
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = softmax(np.array([1010.0, 1000.0, 990.0]))
    np.testing.assert_allclose(y, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-8)


@pytest.mark.filterwarnings("error")
def test_softmax_extreme_logits_exact():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])
        np.testing.assert_array_equal(softmax(np.array([-1000.0, -1000.0])), [0.5, 0.5])
        # e^-1000 underflows to 0: exactly [1, 0]
        np.testing.assert_array_equal(softmax(np.array([1000.0, 0.0])), [1.0, 0.0])
        np.testing.assert_array_equal(softmax(np.array([1000.0, -1000.0])), [1.0, 0.0])
        y = softmax(np.array([[1000.0, 1000.0, -1000.0], [-1000.0, 0.0, 1000.0]]))
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_softmax_rows_of_a_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=3.0, size=(5, 7))
    y = softmax(x)
    assert y.shape == (5, 7)
    np.testing.assert_allclose(y.sum(axis=1), np.ones(5), atol=1e-15)
    for i in range(5):
        np.testing.assert_allclose(y[i], _softmax_ref(list(x[i])), rtol=1e-13)
        # each row equals the 1-D softmax of that row
        np.testing.assert_allclose(y[i], softmax(x[i]), rtol=1e-15)


def test_softmax_shift_invariant():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6))
    for c in (-700.0, -5.0, 5.0, 700.0):
        np.testing.assert_allclose(softmax(x + c), softmax(x), rtol=1e-12, atol=1e-300)
    # a different shift per row changes nothing either
    np.testing.assert_allclose(softmax(x + np.array([[1e3], [-1e3], [0.0]])), softmax(x), rtol=1e-12)


def test_softmax_float32_stays_float32():
    y = softmax(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0], _softmax_ref([1.0, 2.0, 3.0]), rtol=1e-6)


def test_sigmoid_book_example_and_reference():
    x = np.array([-1.0, 1.0, 2.0])
    y = sigmoid(x)
    np.testing.assert_allclose(y, [0.26894142, 0.73105858, 0.88079708], atol=5e-9)
    np.testing.assert_allclose(y, [1 / (1 + math.exp(-v)) for v in x], rtol=1e-15)


def test_sigmoid_at_zero():
    assert sigmoid(np.array([0.0]))[0] == 0.5
    assert float(sigmoid(0.0)) == 0.5
    assert float(sigmoid(np.float32(0.0))) == 0.5


def test_sigmoid_symmetric():
    x = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), np.ones_like(x), rtol=0, atol=4.5e-16)
    np.testing.assert_allclose(sigmoid(-x), 1 - sigmoid(x), atol=4.5e-16)


@pytest.mark.filterwarnings("error")
def test_sigmoid_no_overflow_at_extremes():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(np.array([-1000.0, -745.0, -700.0, 0.0, 700.0, 1000.0]))
        y32 = sigmoid(np.array([-1000.0, 1000.0], dtype=np.float32))
    assert np.all(np.isfinite(y))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    # e^-700 / (1 + e^-700): still a normal double, so it must not be lost
    assert y[2] == pytest.approx(math.exp(-700.0), rel=1e-14)
    assert y[1] == pytest.approx(math.exp(-745.0), rel=0.2)  # subnormal: few digits
    assert y[4] == 1.0
    np.testing.assert_array_equal(y32, [0.0, 1.0])
    assert y32.dtype == np.float32


def test_sigmoid_2d_keeps_shape():
    x = np.array([[-2.0, 0.0], [3.0, -0.5]])
    y = sigmoid(x)
    assert y.shape == (2, 2)
    np.testing.assert_allclose(y, [[1 / (1 + math.exp(2)), 0.5], [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(0.5))]],
                               rtol=1e-15)


# --- relu -----------------------------------------------------------------------------------

def test_relu():
    np.testing.assert_array_equal(relu(np.array([-1.0, 0.0, 2.5, -0.0, 1e-300])), [0.0, 0.0, 2.5, 0.0, 1e-300])
    np.testing.assert_array_equal(relu(np.array([[-3, 4], [5, -6]])), [[0, 4], [5, 0]])
    assert relu(np.array([1.0, -1.0], dtype=np.float32)).dtype == np.float32
