"""zerodl.layers: the book's backprop layers (Affine, Relu, Sigmoid, Dropout, SoftmaxWithLoss), chapter 5.

References used here, all independent of the code under test: a float64
central difference written in this file (`_num_grad`), Python-`math`
log-sum-exp and softmax (`_lse_loss_py`, `_softmax_py`), and hand counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zerodl.functions import cross_entropy_error, softmax
from zerodl.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss


# --- independent references ---------------------------------------------------------

def _num_grad(f, arr, h=1e-5):
    """Central difference of scalar f() w.r.t. arr, perturbing arr in place, float64."""
    g = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        orig = arr[idx]
        arr[idx] = orig + h
        fp = f()
        arr[idx] = orig - h
        fm = f()
        arr[idx] = orig
        g[idx] = (fp - fm) / (2 * h)
    return g


def _lse_loss_py(x, labels):
    """Mean cross entropy of softmax(x) by log-sum-exp, in Python floats."""
    total = []
    for row, t in zip(np.asarray(x, dtype=np.float64).tolist(), labels):
        m = max(row)
        total.append(m + math.log(math.fsum(math.exp(v - m) for v in row)) - row[t])
    return math.fsum(total) / len(total)


def _softmax_py(x):
    out = []
    for row in np.asarray(x, dtype=np.float64).tolist():
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = math.fsum(e)
        out.append([v / s for v in e])
    return np.array(out)


# --- layers ---------------------------------------------------------------------------

def test_affine_forward_and_backward():
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    dout = rng.normal(size=(4, 5))
    layer = Affine(W, b)
    np.testing.assert_allclose(layer.forward(x), x @ W + b, rtol=1e-14)
    dx = layer.backward(dout)

    def L():
        return float(np.sum(Affine(W, b).forward(x) * dout))

    np.testing.assert_allclose(dx, _num_grad(L, x), rtol=0, atol=1e-8)
    np.testing.assert_allclose(layer.dW, _num_grad(L, W), rtol=0, atol=1e-8)
    np.testing.assert_allclose(layer.db, _num_grad(L, b), rtol=0, atol=1e-8)
    # and the closed forms
    np.testing.assert_allclose(dx, dout @ W.T, rtol=1e-13)
    np.testing.assert_allclose(layer.dW, x.T @ dout, rtol=1e-13)
    np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-13)


def test_affine_without_input_grad_still_fills_dW_db():
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(6, 2)), rng.normal(size=(2, 3)), rng.normal(size=3)
    dout = rng.normal(size=(6, 3))
    layer = Affine(W, b, input_grad=False)
    layer.forward(x)
    assert layer.backward(dout) is None
    np.testing.assert_allclose(layer.dW, x.T @ dout, rtol=1e-13)
    np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-13)


def test_affine_backward_twice_gives_fresh_values():
    # the second call must overwrite, not accumulate
    rng = np.random.default_rng(2)
    x, W, b = rng.normal(size=(3, 2)), rng.normal(size=(2, 2)), np.zeros(2)
    layer = Affine(W, b)
    layer.forward(x)
    layer.backward(np.ones((3, 2)))
    d2 = rng.normal(size=(3, 2))
    layer.backward(d2)
    np.testing.assert_allclose(layer.dW, x.T @ d2, rtol=1e-13)
    np.testing.assert_allclose(layer.db, d2.sum(axis=0), rtol=1e-13)


def test_relu_layer():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4))
    x[np.abs(x) < 0.05] = 0.5  # keep away from the kink for the numerical check
    dout = rng.normal(size=(5, 4))
    layer = Relu()
    np.testing.assert_array_equal(layer.forward(x), np.where(x > 0, x, 0.0))
    dx = layer.backward(dout.copy())

    def L():
        return float(np.sum(Relu().forward(x) * dout))

    np.testing.assert_allclose(dx, _num_grad(L, x), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0.0))


def test_relu_hand_values():
    layer = Relu()
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, -0.5], [-2.0, 3.0]])), [[1.0, 0.0], [0.0, 3.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[10.0, 20.0], [30.0, 40.0]])), [[10.0, 0.0], [0.0, 40.0]])


def test_sigmoid_layer():
    rng = np.random.default_rng(4)
    x = rng.normal(scale=2.0, size=(3, 4))
    dout = rng.normal(size=(3, 4))
    layer = Sigmoid()
    y = layer.forward(x)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-15)
    dx = layer.backward(dout)

    def L():
        return float(np.sum(Sigmoid().forward(x) * dout))

    np.testing.assert_allclose(dx, _num_grad(L, x), rtol=0, atol=1e-9)
    e = np.exp(-x)
    np.testing.assert_allclose(dx, dout * e / (1 + e) ** 2, rtol=1e-13)


def test_softmax_with_loss_gradient_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(5)
    x = rng.normal(scale=3.0, size=(6, 4))
    t = np.array([0, 3, 1, 1, 2, 0])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward()
    expected = (_softmax_py(x) - np.eye(4)[t]) / 6
    np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-16)
    assert loss == pytest.approx(_lse_loss_py(x, t), rel=1e-14)
    # and dx is the derivative of the loss
    num = _num_grad(lambda: SoftmaxWithLoss().forward(x, t), x)
    np.testing.assert_allclose(dx, num, rtol=0, atol=1e-9)


def test_softmax_with_loss_hand_values():
    layer = SoftmaxWithLoss()
    # logits log 1, log 2, log 3: probabilities 1/6, 2/6, 3/6
    x = np.log(np.array([[1.0, 2.0, 3.0]]))
    assert layer.forward(x, np.array([2])) == pytest.approx(math.log(2), rel=1e-14)
    np.testing.assert_allclose(layer.backward(), [[1 / 6, 2 / 6, -1 / 2]], atol=1e-16)
    # four equal logits: log 4, gradient (1/4 - onehot) / 2
    loss = layer.forward(np.zeros((2, 4)), np.array([0, 3]))
    assert loss == pytest.approx(math.log(4), rel=1e-15)
    np.testing.assert_allclose(layer.backward(), [[-3 / 8, 1 / 8, 1 / 8, 1 / 8], [1 / 8, 1 / 8, 1 / 8, -3 / 8]],
                               atol=1e-16)


def test_softmax_with_loss_extreme_logits_are_exact():
    layer = SoftmaxWithLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert layer.forward(np.array([[1000.0, 0.0]]), np.array([1])) == 1000.0
        assert layer.forward(np.array([[1000.0, 0.0]]), np.array([0])) == 0.0
        assert layer.forward(np.array([[-1000.0, -1000.0]]), np.array([0])) == pytest.approx(math.log(2), rel=1e-15)


def test_softmax_with_loss_onehot_and_1d():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 5))
    t = np.array([4, 0, 2, 2])
    a = SoftmaxWithLoss().forward(x, t)
    b = SoftmaxWithLoss().forward(x, np.eye(5)[t])
    assert a == b
    # one sample as a 1-D vector, with a label or a one-hot vector
    assert SoftmaxWithLoss().forward(x[1], 0) == pytest.approx(_lse_loss_py(x[1:2], [0]), rel=1e-14)
    assert SoftmaxWithLoss().forward(x[1], np.eye(5)[0]) == pytest.approx(_lse_loss_py(x[1:2], [0]), rel=1e-14)


def test_softmax_with_loss_vs_book_cross_entropy():
    # the book's cross_entropy_error(softmax(x)) adds 1e-7 inside the log: the two
    # differ by exactly mean(log(1 + 1e-7 / p_t)), nothing else
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 10))
    t = rng.integers(0, 10, size=8)
    loss = SoftmaxWithLoss().forward(x, t)
    book = cross_entropy_error(softmax(x), t)
    p_t = _softmax_py(x)[np.arange(8), t]
    gap = float(np.mean(np.log1p(1e-7 / p_t)))
    assert 0 < loss - book <= 1e-7 / p_t.min()
    assert loss - book == pytest.approx(gap, rel=1e-6, abs=1e-14)


def test_softmax_with_loss_float32_logits():
    rng = np.random.default_rng(8)
    x = rng.normal(scale=5.0, size=(16, 10)).astype(np.float32)
    t = rng.integers(0, 10, size=16)
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    assert isinstance(loss, float)
    assert loss == pytest.approx(_lse_loss_py(x, t), rel=1e-6)
    dx = layer.backward()
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, (_softmax_py(x) - np.eye(10)[t]) / 16, atol=1e-8)
