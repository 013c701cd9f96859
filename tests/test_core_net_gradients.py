"""zerodl.net: TwoLayerNet's gradients (chapters 4-6): backprop against the independent
references of tests/test_core_net.py (plain NumPy backprop, the one-weight-at-a-time central
difference), the closed-form numerical gradient, dropout held, weight decay, the gradient check.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.gradient import gradient_check, numerical_gradient

from test_core_net import KEYS, _analytic_grads, _copy, _plain_net_numgrad, _snapshot


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
