"""zerodl.net: TwoLayerNet (chapters 4-6): construction and forward (gradients: test_core_net_gradients.py).

References used here, all independent of the code under test: a float64 forward pass
and backprop written with plain NumPy formulas (`_forward_loss`, `_analytic_grads`),
the one-weight-at-a-time central difference (`_plain_net_numgrad`), Python-`math`
log-sum-exp (tests/test_core_layers.py), and hand counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zerodl import TwoLayerNet


from test_core_layers import _lse_loss_py, _num_grad

KEYS = ("W1", "b1", "W2", "b2")


# --- independent references ---------------------------------------------------------

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
