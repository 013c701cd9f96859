"""zerodl.layers and zerodl.net: backprop layers and TwoLayerNet (chapters 4-5).

References used here, all independent of the code under test: a float64
central difference written in this file (`_num_grad`), a float64 forward pass
and backprop written with plain NumPy formulas (`_forward_loss`,
`_analytic_grads`), Python-`math` log-sum-exp, and hand counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.functions import cross_entropy_error, softmax
from zerodl.gradient import gradient_check, numerical_gradient
from zerodl.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss

KEYS = ("W1", "b1", "W2", "b2")


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


def _forward_loss(p, x, t):
    """Affine -> ReLU -> Affine -> softmax cross entropy, float64, plain formulas."""
    a1 = x @ p["W1"] + p["b1"]
    z = np.maximum(a1, 0) @ p["W2"] + p["b2"]
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(t)), t]))


def _analytic_grads(p, x, t):
    a1 = x @ p["W1"] + p["b1"]
    z1 = np.maximum(a1, 0)
    z2 = z1 @ p["W2"] + p["b2"]
    y = np.exp(z2 - z2.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    dz2 = (y - np.eye(z2.shape[1])[t]) / len(t)
    da1 = (dz2 @ p["W2"].T) * (a1 > 0)
    return {"W1": x.T @ da1, "b1": da1.sum(0), "W2": z1.T @ dz2, "b2": dz2.sum(0)}


def _plain_net_numgrad(net, x, t, h=1e-4):
    """One weight at a time, full float64 forward pass each time (the chapter-4 way)."""
    p = {k: net.params[k].astype(np.float64) for k in KEYS}
    return {k: _num_grad(lambda: _forward_loss(p, x, t), p[k], h) for k in KEYS}


def _copy(grads):
    return {k: np.array(v, dtype=np.float64) for k, v in grads.items()}


def _snapshot(net):
    return {k: net.params[k].tobytes() for k in KEYS}


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


# --- TwoLayerNet: construction ---------------------------------------------------------

def test_params_keys_shapes_dtypes():
    net = TwoLayerNet(784, 50, 10, seed=0)
    assert set(net.params) == set(KEYS)
    assert {k: v.shape for k, v in net.params.items()} == {"W1": (784, 50), "b1": (50,), "W2": (50, 10), "b2": (10,)}
    assert all(v.dtype == np.float32 for v in net.params.values())
    np.testing.assert_array_equal(net.params["b1"], 0)
    np.testing.assert_array_equal(net.params["b2"], 0)
    net64 = TwoLayerNet(3, 4, 2, seed=0, dtype=np.float64)
    assert all(v.dtype == np.float64 for v in net64.params.values())
    assert TwoLayerNet(3, 4, 2, seed=0, dtype="float64").params["W1"].dtype == np.float64


@pytest.mark.parametrize("init, std1, std2", [
    (0.01, 0.01, 0.01),
    (0.5, 0.5, 0.5),
    ("he", math.sqrt(2 / 784), math.sqrt(2 / 200)),
    ("xavier", math.sqrt(1 / 784), math.sqrt(1 / 200)),
])
def test_weight_init_std(init, std1, std2):
    net = TwoLayerNet(784, 200, 10, weight_init_std=init, seed=3)
    # W1: 156,800 draws, the sample std is within ~0.2 % of sigma; W2: 2,000 draws, ~1.6 %
    assert float(np.std(net.params["W1"], dtype=np.float64)) == pytest.approx(std1, rel=0.02)
    assert float(np.std(net.params["W2"], dtype=np.float64)) == pytest.approx(std2, rel=0.08)
    assert abs(float(np.mean(net.params["W1"], dtype=np.float64))) < 0.02 * std1


def test_bad_weight_init_is_refused():
    with pytest.raises(ValueError, match="kaiming"):
        TwoLayerNet(4, 3, 2, weight_init_std="kaiming")


def test_seed_reproducible():
    a, b = TwoLayerNet(20, 7, 3, seed=42), TwoLayerNet(20, 7, 3, seed=42)
    assert _snapshot(a) == _snapshot(b)
    c = TwoLayerNet(20, 7, 3, seed=43)
    assert a.params["W1"].tobytes() != c.params["W1"].tobytes()
    assert a.params["W2"].tobytes() != c.params["W2"].tobytes()
    # an explicit Generator works like the seed
    d = TwoLayerNet(20, 7, 3, rng=np.random.default_rng(42))
    assert _snapshot(a) == _snapshot(d)


def test_float32_and_float64_nets_of_one_seed_agree():
    n32 = TwoLayerNet(30, 8, 4, weight_init_std="he", seed=5)
    n64 = TwoLayerNet(30, 8, 4, weight_init_std="he", seed=5, dtype=np.float64)
    for k in KEYS:
        np.testing.assert_array_equal(n32.params[k], n64.params[k].astype(np.float32))
        np.testing.assert_allclose(n32.params[k], n64.params[k], rtol=2.0 ** -24, atol=0)
    x = np.random.default_rng(0).random((5, 30))
    np.testing.assert_allclose(n32.predict(x), n64.predict(x), rtol=1e-5, atol=1e-6)


# --- TwoLayerNet: forward -----------------------------------------------------------------

def test_predict_shape_and_dtype():
    net = TwoLayerNet(6, 5, 3, seed=0)
    x = np.random.default_rng(0).random((7, 6))
    y = net.predict(x)
    assert y.shape == (7, 3)
    assert y.dtype == np.float32
    p = {k: net.params[k].astype(np.float64) for k in KEYS}
    np.testing.assert_allclose(y, np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"], rtol=1e-5, atol=1e-7)


def test_loss_labels_equal_onehot_and_match_reference():
    rng = np.random.default_rng(1)
    net = TwoLayerNet(6, 5, 3, weight_init_std=0.5, seed=1, dtype=np.float64)
    x, t = rng.random((9, 6)), rng.integers(0, 3, size=9)
    with_labels = net.loss(x, t)
    assert with_labels == net.loss(x, np.eye(3)[t])
    assert with_labels == pytest.approx(_forward_loss(net.params, x, t), rel=1e-13)


def _hand_net():
    """2 inputs, 2 hidden, 2 outputs, weights set by hand.

    hidden = relu(x0 - x1, 2·x1 - 1); logits = (h0, h1 + 0.5)
    """
    net = TwoLayerNet(2, 2, 2, seed=0, dtype=np.float64)
    net.set_params({"W1": np.array([[1.0, 0.0], [-1.0, 2.0]]), "b1": np.array([0.0, -1.0]),
                    "W2": np.eye(2), "b2": np.array([0.0, 0.5])})
    return net


def test_accuracy_counted_by_hand():
    net = _hand_net()
    x = np.array([
        [3.0, 1.0],   # h = (2, 1)    logits (2, 1.5)  -> 0
        [1.0, 2.0],   # h = (0, 3)    logits (0, 3.5)  -> 1
        [0.0, 0.0],   # h = (0, 0)    logits (0, 0.5)  -> 1
        [5.0, 0.5],   # h = (4.5, 0)  logits (4.5, 0.5) -> 0
        [1.0, 1.0],   # h = (0, 1)    logits (0, 1.5)  -> 1
    ])
    np.testing.assert_array_equal(net.predict(x).argmax(axis=1), [0, 1, 1, 0, 1])
    t = np.array([0, 1, 0, 1, 1])  # rows 0, 1, 4 right: 3 / 5
    assert net.accuracy(x, t) == 0.6
    assert net.accuracy(x, np.eye(2)[t]) == 0.6
    loss, acc = net.evaluate(x, t)
    assert acc == 0.6
    assert loss == pytest.approx(_lse_loss_py([[2, 1.5], [0, 3.5], [0, 0.5], [4.5, 0.5], [0, 1.5]], t), rel=1e-14)


def test_evaluate_accepts_onehot_like_accuracy():
    net = _hand_net()
    x = np.array([[3.0, 1.0], [1.0, 2.0], [0.0, 0.0], [5.0, 0.5]])
    t = np.array([0, 1, 0, 1])
    assert net.evaluate(x, np.eye(2)[t]) == net.evaluate(x, t)


def test_accuracy_and_evaluate_over_several_chunks():
    from zerodl.net import EVAL_CHUNK

    rng = np.random.default_rng(2)
    net = TwoLayerNet(5, 6, 4, weight_init_std=1.0, seed=2, dtype=np.float64)
    n = 2 * EVAL_CHUNK + 37
    x, t = rng.normal(size=(n, 5)), rng.integers(0, 4, size=n)
    p = net.params
    logits = np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]
    correct = int(np.sum(logits.argmax(axis=1) == t))
    assert net.accuracy(x, t) == correct / n
    loss, acc = net.evaluate(x, t)
    assert acc == correct / n
    assert loss == pytest.approx(_forward_loss(p, x, t), rel=1e-12)


def test_layers_see_in_place_updates_and_set_params():
    rng = np.random.default_rng(3)
    net = TwoLayerNet(4, 3, 2, seed=3, dtype=np.float64)
    x = rng.random((2, 4))
    net.params["b2"] += np.array([5.0, -5.0])  # what an optimizer does
    np.testing.assert_allclose(net.predict(x), _ref_logits(net.params, x), rtol=1e-14)
    new = {k: rng.normal(size=v.shape) for k, v in net.params.items()}
    net.set_params(new)
    np.testing.assert_allclose(net.predict(x), _ref_logits(new, x), rtol=1e-14)
    with pytest.raises(ValueError, match="W1"):
        net.set_params({"W1": np.zeros((3, 4))})


def _ref_logits(p, x):
    return np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]


# --- TwoLayerNet: gradients ---------------------------------------------------------------

def _random_case(sizes, batch, seed, init=0.5, mnist_like=False):
    i, h, o = sizes
    rng = np.random.default_rng(seed)
    net = TwoLayerNet(i, h, o, weight_init_std=init, seed=seed, dtype=np.float64)
    # non-zero biases so that they are exercised too
    net.params["b1"][:] = rng.normal(scale=0.1, size=h)
    net.params["b2"][:] = rng.normal(scale=0.1, size=o)
    if mnist_like:
        x = rng.random((batch, i))
        x[x < 0.8] = 0.0  # mostly background, some ink in (0.8, 1)
    else:
        x = rng.normal(size=(batch, i))
    t = rng.integers(0, o, size=batch)
    return net, x, t


@pytest.mark.parametrize("sizes, batch, init, mnist_like", [
    ((4, 3, 2), 5, 0.5, False),
    ((10, 7, 5), 8, 0.5, False),
    ((784, 50, 10), 3, 0.01, True),
    ((784, 50, 10), 3, "he", True),
])
def test_gradient_check_backprop_vs_numerical(sizes, batch, init, mnist_like):
    net, x, t = _random_case(sizes, batch, seed=sum(sizes), init=init, mnist_like=mnist_like)
    before = _snapshot(net)
    bp = _copy(net.gradient(x, t))
    num = net.numerical_gradient(x, t)
    assert _snapshot(net) == before
    ref = _analytic_grads(net.params, x, t)
    for k in KEYS:
        assert bp[k].shape == net.params[k].shape and num[k].shape == net.params[k].shape
        assert np.mean(np.abs(bp[k] - num[k])) <= 1e-9, k
        np.testing.assert_allclose(bp[k], ref[k], rtol=1e-10, atol=1e-15)
    # the library's own summary says the same
    diffs = gradient_check(net, x, t)
    assert set(diffs) == set(KEYS) and max(diffs.values()) <= 1e-9
    # the check is not vacuous: the gradients are not all tiny
    assert max(np.abs(bp[k]).max() for k in KEYS) > 1e-3


@pytest.mark.parametrize("sizes, batch", [((4, 3, 2), 5), ((10, 7, 5), 8), ((6, 4, 3), 1)])
def test_backprop_vs_plain_gradient_module(sizes, batch):
    # the book's way: gradient.numerical_gradient(lambda W: net.loss(x, t), net.params[key])
    net, x, t = _random_case(sizes, batch, seed=7 * sum(sizes))
    bp = _copy(net.gradient(x, t))
    before = _snapshot(net)
    for k in KEYS:
        g = numerical_gradient(lambda W: net.loss(x, t), net.params[k])
        assert np.mean(np.abs(bp[k] - g)) <= 1e-9, k
        np.testing.assert_allclose(g, bp[k], rtol=0, atol=1e-8)
    assert _snapshot(net) == before


def test_net_numerical_gradient_one_sample_and_onehot():
    net, x, t = _random_case((5, 4, 3), 3, seed=31)
    batch = net.numerical_gradient(x[1:2], t[1:2])
    for xs, ts in ((x[1], t[1]), (x[1:2], np.eye(3)[t[1:2]])):
        g = net.numerical_gradient(xs, ts)
        for k in KEYS:
            np.testing.assert_array_equal(g[k], batch[k])
    plain = _plain_net_numgrad(net, x[1:2], t[1:2])
    for k in KEYS:
        assert np.max(np.abs(batch[k] - plain[k])) <= 1e-9


def _kink_case(seed):
    """A small float64 net with several hidden pre-activations within h·|x| of 0."""
    net, x, t = _random_case((5, 6, 3), 4, seed=seed, init=0.7)
    p = net.params
    # hidden unit j of sample n sits right on/next to the ReLU kink
    for (n, j, off) in [(0, 0, 0.0), (1, 2, 3e-5), (2, 4, -2e-5), (3, 5, 1e-6), (0, 3, -7e-5)]:
        p["b1"][j] = -(x[n] @ p["W1"][:, j]) + off
    a1 = x @ p["W1"] + p["b1"]
    assert np.sum(np.abs(a1) < 1e-4) >= 5
    return net, x, t


@pytest.mark.parametrize("case", ["kink-11", "kink-12", "random-4-3-2", "random-10-7-5", "mnist-like", "raw-pixels"])
def test_net_numerical_gradient_equals_plain_one_at_a_time(case):
    if case.startswith("kink"):
        net, x, t = _kink_case(int(case.split("-")[1]))
    elif case == "random-4-3-2":
        net, x, t = _random_case((4, 3, 2), 5, seed=21)
    elif case == "random-10-7-5":
        net, x, t = _random_case((10, 7, 5), 8, seed=22)
    elif case == "mnist-like":
        net, x, t = _random_case((30, 8, 4), 6, seed=23, mnist_like=True)
    else:  # unnormalised 0..255 inputs: steps h·x far beyond the tiny-step regime
        net, x, t = _random_case((12, 6, 4), 5, seed=5, init=0.01)
        x = np.floor(np.random.default_rng(5).uniform(0, 256, size=x.shape))
        x[x < 128] = 0
    before = _snapshot(net)
    fast = net.numerical_gradient(x, t)
    assert _snapshot(net) == before
    plain = _plain_net_numgrad(net, x, t)
    for k in KEYS:
        assert np.max(np.abs(fast[k] - plain[k])) <= 1e-9, (k, np.max(np.abs(fast[k] - plain[k])))


def test_numerical_gradient_at_the_kink_is_the_central_difference_not_backprop():
    # 1 input, 1 hidden unit, 2 outputs; the only sample puts the hidden unit exactly
    # on the kink (a1 = 2·1 - 2 = 0), where the central difference is half the
    # right-hand slope while backprop says 0
    net = TwoLayerNet(1, 1, 2, seed=0, dtype=np.float64)
    net.set_params({"W1": np.array([[2.0]]), "b1": np.array([-2.0]),
                    "W2": np.array([[1.0, -1.0]]), "b2": np.array([0.0, 0.0])})
    x, t = np.array([[1.0]]), np.array([0])
    # logits (z, -z) with z = relu(a), label 0: loss = log(1 + e^(-2z)). Moving W1 or
    # b1 by ±h moves a to ±h, z to h or 0: (log(1 + e^(-2h)) - log 2) / 2h
    h = 1e-4
    expected = (math.log1p(math.exp(-2 * h)) - math.log(2)) / (2 * h)
    g = net.numerical_gradient(x, t, h=h)
    assert g["W1"][0, 0] == pytest.approx(expected, rel=1e-9)
    assert g["b1"][0] == pytest.approx(expected, rel=1e-9)


def test_float32_net_gradient_close_to_float64():
    net32 = TwoLayerNet(12, 6, 4, weight_init_std=0.5, seed=9)
    net64 = TwoLayerNet(12, 6, 4, weight_init_std=0.5, seed=9, dtype=np.float64)
    rng = np.random.default_rng(9)
    x, t = rng.random((10, 12)), rng.integers(0, 4, size=10)
    g32, g64 = net32.gradient(x, t), net64.gradient(x, t)
    for k in KEYS:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5)
    assert net32.loss(x, t) == pytest.approx(net64.loss(x, t), rel=1e-5)


def test_check_data_refuses_digits_or_labels_the_net_cannot_take():
    from zerodl.errors import ModelError

    net = TwoLayerNet(6, 3, 4, seed=0)
    net.check_data(np.zeros((2, 6)), np.array([0, 3]), "m.npz")  # fits: no error
    with pytest.raises(ModelError, match=r"^m\.npz: has 6 inputs, but the digits have shape \(2, 5\)$"):
        net.check_data(np.zeros((2, 5)), np.array([0, 1]), "m.npz")
    with pytest.raises(ModelError, match=r"^m\.npz: has 4 outputs, but the data has label 4$"):
        net.check_data(np.zeros((2, 6)), np.array([0, 4]), "m.npz")


def test_gradients_of_two_calls_are_independent_arrays():
    # A reader who keeps one batch's gradient and computes another must not see the first change.
    net = TwoLayerNet(5, 4, 3, weight_init_std=0.5, seed=0, dtype=np.float64)
    rng = np.random.default_rng(1)
    xa, xb = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    t = np.array([0, 1, 2, 0, 1, 2])
    g1 = net.gradient(xa, t)
    kept = {k: v.copy() for k, v in g1.items()}
    g2 = net.gradient(xb, t)
    for k in kept:
        assert g1[k] is not g2[k]
        np.testing.assert_array_equal(g1[k], kept[k])
        assert not np.array_equal(g1[k], g2[k])


def test_params_are_views_of_one_flat_array():
    net = TwoLayerNet(4, 3, 2, seed=3)
    p = net.params
    assert net.flat_params.size == 4 * 3 + 3 + 3 * 2 + 2
    assert all(np.shares_memory(v, net.flat_params) for v in p.values())
    np.testing.assert_array_equal(net.flat_params, np.concatenate([p[k].ravel() for k in ("W1", "b1", "W2", "b2")]))
    net.set_params({k: np.full(v.shape, 2.0) for k, v in p.items()})  # copied in: still views
    assert all(np.shares_memory(v, net.flat_params) for v in net.params.values())
    assert np.all(net.flat_params == 2.0)


def test_a_deep_copy_has_its_own_flat_params_and_trains_alone():
    import copy

    from zerodl.optim import make_optimizer
    from zerodl.train import train

    net = TwoLayerNet(2, 4, 2, seed=0)
    twin = copy.deepcopy(net)
    assert twin.has_flat_params() and not np.shares_memory(twin.flat_params, net.flat_params)
    assert twin.flat_params.tobytes() == net.flat_params.tobytes()
    x = np.random.default_rng(1).random((40, 2), dtype=np.float32)
    t = (x[:, 0] > x[:, 1]).astype(np.int64)
    before = net.flat_params.copy()
    train(twin, make_optimizer("sgd", 0.5), x, t, x, t, iters=30, batch_size=8, rng=np.random.default_rng(0))
    assert net.flat_params.tobytes() == before.tobytes()
    assert twin.flat_params.tobytes() != before.tobytes()
    assert twin.layers["Affine1"].W is twin.params["W1"]  # the copy's layers see its training
    np.testing.assert_array_equal(twin.predict(x), np.maximum(x @ twin.params["W1"] + twin.params["b1"], 0)
                                  @ twin.params["W2"] + twin.params["b2"])


def test_a_rebound_param_trains_through_the_layers():
    # Someone put a new array in params: the loop's fast path (which writes flat_params)
    # must not be used, or the weights the layers read would never move.
    from zerodl.optim import make_optimizer
    from zerodl.train import train

    net = TwoLayerNet(2, 4, 2, seed=0)
    net.params["W1"] = net.params["W1"].copy()
    net._build_layers()
    assert not net.has_flat_params()
    x = np.random.default_rng(1).random((40, 2), dtype=np.float32)
    t = (x[:, 0] > x[:, 1]).astype(np.int64)
    calls = []
    real = net.gradient
    net.gradient = lambda xb, tb: calls.append(1) or real(xb, tb)
    train(net, make_optimizer("sgd", 1.0), x, t, x, t, iters=400, batch_size=8, rng=np.random.default_rng(0))
    assert len(calls) == 400
    assert net.evaluate(x, t)[1] >= 0.9  # and it learned
