"""Chapters 4 and 6 in TwoLayerNet: sigmoid or ReLU, Dropout, weight decay, and the closed-form
numerical gradient (zerodl.numerical) held to the book's one-weight-at-a-time loop, written here."""
from __future__ import annotations

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.errors import ModelError
from zerodl.gradient import gradient_check
from zerodl.layers import Dropout
from zerodl.optim import SGD
from zerodl.train import train

KEYS = ("W1", "b1", "W2", "b2")


# --- an independent float64 reference: the book's forward pass and its numerical gradient ------

def _loss(p, x, t, activation, mask, lam):
    a1 = x @ p["W1"] + p["b1"]
    z1 = np.maximum(a1, 0) if activation == "relu" else 0.5 * (1 + np.tanh(a1 / 2))  # σ, another way
    z2 = (z1 * mask) @ p["W2"] + p["b2"]
    m = z2.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z2 - m).sum(axis=1))
    return np.mean(lse - z2[np.arange(len(t)), t]) + 0.5 * lam * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))


def _plain(net, x, t, mask=1.0, h=1e-4):
    """(L(w + h) - L(w - h)) / 2h, one weight at a time, the whole forward pass each time."""
    p = {k: net.params[k].astype(np.float64).copy() for k in KEYS}
    out = {}
    for k in KEYS:
        g = np.zeros_like(p[k])
        flat, gf = p[k].reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = _loss(p, x, t, net.activation, mask, net.weight_decay_lambda)
            flat[i] = old - h
            down = _loss(p, x, t, net.activation, mask, net.weight_decay_lambda)
            flat[i] = old
            gf[i] = (up - down) / (2 * h)
        out[k] = g
    return out


def _case(activation, dropout, lam, seed=0, sizes=(9, 6, 4), batch=5, pixels=False):
    rng = np.random.default_rng(seed)
    net = TwoLayerNet(*sizes, weight_init_std=0.7, seed=seed, dtype=np.float64, activation=activation,
                      dropout_ratio=dropout, weight_decay_lambda=lam)
    net.params["b1"][:] = rng.normal(scale=0.3, size=sizes[1])
    net.params["b2"][:] = rng.normal(scale=0.3, size=sizes[2])
    x = rng.random((batch, sizes[0])) * (rng.random((batch, sizes[0])) < 0.5) if pixels else rng.normal(size=(batch, sizes[0]))
    return net, x, rng.integers(0, sizes[2], size=batch)


def _mask(net):
    d = net.layers.get("Dropout1")
    return d.mask.astype(np.float64) if d is not None else 1.0


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("dropout, lam", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.1), (0.3, 0.05)])
@pytest.mark.parametrize("pixels", [False, True])
def test_numerical_gradient_is_the_one_at_a_time_loop(activation, dropout, lam, pixels):
    net, x, t = _case(activation, dropout, lam, seed=3, pixels=pixels)
    before = net.flat_params.copy()
    fast = net.numerical_gradient(x, t)
    assert net.flat_params.tobytes() == before.tobytes()
    ref = _plain(net, x, t, _mask(net))  # the mask the gradient held
    for k in KEYS:
        assert fast[k].dtype == np.float64 and fast[k].shape == net.params[k].shape
        # 1e-10, tighter than the 1e-9 promised: the loop's own rounding is ~1e-12 here, and
        # the series without its h² term is off by ~4e-10 on these cases
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=1e-10, err_msg=k)
    if dropout:  # the mask matters: with another one the numbers are not these
        assert not np.allclose(fast["W2"], _plain(net, x, t, 1 - _mask(net))["W2"], atol=1e-3)


def test_the_closed_form_is_what_ran_not_the_loop(monkeypatch):
    net, x, t = _case("sigmoid", 0.0, 0.0)
    monkeypatch.setattr(TwoLayerNet, "numerical_gradient_plain", lambda *a: pytest.fail("the loop ran"))
    net.numerical_gradient(x, t)


def test_steps_too_large_for_the_series_use_the_loop():
    # raw 0..255 pixels: h·x reaches 0.0255, where the series' cut-off term is no longer negligible
    net, x, t = _case("sigmoid", 0.0, 0.0, seed=4)
    x = np.floor(np.random.default_rng(4).uniform(0, 256, size=x.shape))
    calls = []
    real = TwoLayerNet.numerical_gradient_plain
    net.numerical_gradient_plain = lambda *a: calls.append(1) or real(net, *a)
    fast = net.numerical_gradient(x, t)
    assert calls == [1]
    ref = _plain(net, x, t)
    for k in KEYS:
        np.testing.assert_allclose(fast[k], ref[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_a_subclass_gets_the_plain_loop():
    class Mine(TwoLayerNet):
        def loss(self, x, t, train_flg=False):
            return 2 * super().loss(x, t, train_flg)

    net = Mine(4, 3, 2, weight_init_std=0.5, seed=1, dtype=np.float64)
    x, t = np.random.default_rng(1).normal(size=(3, 4)), np.array([0, 1, 1])
    g = net.numerical_gradient(x, t)
    ref = _plain(net, x, t)
    for k in KEYS:  # twice the plain net's: its own loss, not the closed form of the base class
        np.testing.assert_allclose(g[k], 2 * ref[k], rtol=0, atol=1e-9)


# --- backprop of the new pieces, and the gradient check --------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("dropout, lam", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.2), (0.4, 0.1)])
def test_gradient_check_passes_for_every_network(activation, dropout, lam):
    net, x, t = _case(activation, dropout, lam, seed=7, sizes=(20, 8, 5), batch=6, pixels=True)
    diffs = gradient_check(net, x, t)
    assert max(diffs.values()) < 1e-8, diffs
    # and backprop is the reference's own analytic gradient here, mask included
    grads = net.gradient(x, t)  # a fresh mask: compare with the reference for that mask
    ref = _plain(net, x, t, _mask(net))
    for k in KEYS:
        np.testing.assert_allclose(grads[k], ref[k], rtol=0, atol=1e-8, err_msg=k)


def test_without_a_held_mask_the_check_would_compare_two_networks():
    net, x, t = _case("relu", 0.5, 0.0, seed=2, sizes=(20, 8, 5), batch=6, pixels=True)
    bp = net.gradient(x, t)
    net.layers["Dropout1"].mask = ~net.layers["Dropout1"].mask  # another network
    with net.dropout_held(x):
        num = net.numerical_gradient(x, t)
    assert np.max(np.abs(bp["W2"] - num["W2"])) > 1e-3


def test_weight_decay_adds_to_loss_and_gradient():
    net, x, t = _case("relu", 0.0, 0.25, seed=5)
    plain = TwoLayerNet(9, 6, 4, seed=0, dtype=np.float64)
    plain.set_params(net.params)
    p = net.params
    decay = 0.5 * 0.25 * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    assert net.loss(x, t) == pytest.approx(plain.loss(x, t) + decay, rel=1e-12)
    g, g0 = net.gradient(x, t), plain.gradient(x, t)
    np.testing.assert_allclose(g["W1"], g0["W1"] + 0.25 * p["W1"], rtol=1e-12)
    np.testing.assert_allclose(g["W2"], g0["W2"] + 0.25 * p["W2"], rtol=1e-12)
    np.testing.assert_array_equal(g["b1"], g0["b1"])  # biases are not decayed
    assert net.evaluate(x, t)[0] == pytest.approx(plain.loss(x, t), rel=1e-12)  # scores: cross-entropy only


# --- Dropout, the book's way ------------------------------------------------------------------------

def test_dropout_masks_in_training_and_scales_at_test_time():
    d = Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((400, 50))
    y = d.forward(x, train_flg=True)
    kept = d.mask.mean()
    assert set(np.unique(y)) == {0.0, 1.0} and 0.72 < kept < 0.78
    np.testing.assert_array_equal(d.backward(np.full_like(x, 2.0)), 2.0 * d.mask)
    np.testing.assert_array_equal(d.forward(x, train_flg=False), np.full_like(x, 0.75))
    first = d.mask
    d.forward(x, train_flg=True)
    assert not np.array_equal(first, d.mask)  # a fresh mask per training pass
    d.hold = True
    held = d.mask
    d.forward(x, train_flg=True)
    assert d.mask is held


def test_dropout_runs_repeat_and_keep_the_batch_order_of_runs_without_it():
    def rng_after(ratio):
        rng = np.random.default_rng(11)
        TwoLayerNet(5, 4, 3, rng=rng, dropout_ratio=ratio)
        return rng.random()

    assert rng_after(0.0) == rng_after(0.5)
    x = np.random.default_rng(0).random((60, 5)).astype(np.float32)
    t = (x[:, 0] > 0.5).astype(np.int64)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        net = TwoLayerNet(5, 8, 2, weight_init_std="he", rng=rng, dropout_ratio=0.5)
        r = train(net, SGD(lr=0.3), x, t, x, t, iters=30, batch_size=10, rng=rng)
        runs.append((r.loss.tobytes(), net.flat_params.tobytes(), r.gradient))
    assert runs[0] == runs[1]
    assert runs[0][2].startswith("layers") and "Dropout" in runs[0][2]
    assert TwoLayerNet(5, 8, 2, dropout_ratio=0.5, seed=0).predict(x).dtype == np.float32


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_numerical_gradient_training_follows_backprop(activation):
    rng = np.random.default_rng(9)
    x, t = rng.random((30, 6)), rng.integers(0, 3, size=30)
    nets, runs = [], []
    for gradient in ("backprop", "numerical"):
        net = TwoLayerNet(6, 5, 3, weight_init_std=0.5, seed=4, dtype=np.float64, activation=activation,
                          dropout_ratio=0.2, weight_decay_lambda=0.01)
        runs.append(train(net, SGD(lr=0.5), x, t, x, t, iters=12, batch_size=5,
                          rng=np.random.default_rng(1), gradient=gradient))
        nets.append(net)
    assert runs[1].gradient.startswith("numerical")
    np.testing.assert_allclose(runs[0].loss, runs[1].loss, rtol=0, atol=1e-8)
    for k in KEYS:
        np.testing.assert_allclose(nets[0].params[k], nets[1].params[k], rtol=0, atol=1e-8)


# --- the model file remembers the network -----------------------------------------------------------

def test_activation_and_dropout_survive_save_and_load(tmp_path):
    net = TwoLayerNet(6, 4, 3, seed=2, activation="sigmoid", dropout_ratio=0.3)
    net.save(tmp_path / "m.npz")
    back = TwoLayerNet.load(tmp_path / "m.npz")
    assert (back.activation, back.dropout_ratio) == ("sigmoid", 0.3)
    assert list(back.layers) == ["Affine1", "Sigmoid1", "Dropout1", "Affine2"]
    x = np.random.default_rng(0).random((5, 6))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_a_model_from_before_activations_loads_as_relu(tmp_path):
    from zerodl.model_file import save_model

    net = TwoLayerNet(6, 4, 3, seed=2)
    save_model(tmp_path / "old.npz", net.params, {"input_size": 6, "hidden_size": 4, "output_size": 3,
                                                  "weight_init_std": 0.01, "dtype": "float32"})
    back = TwoLayerNet.load(tmp_path / "old.npz")
    assert back.activation == "relu" and back.dropout_ratio == 0.0
    assert list(back.layers) == ["Affine1", "Relu1", "Affine2"]


@pytest.mark.parametrize("meta, why", [({"activation": "tanh"}, "activation 'tanh'"),
                                       ({"dropout_ratio": 1.5}, "dropout_ratio 1.5"),
                                       ({"dropout_ratio": "half"}, "dropout_ratio 'half'")])
def test_a_model_with_an_unknown_network_is_refused(tmp_path, meta, why):
    from zerodl.model_file import save_model

    net = TwoLayerNet(6, 4, 3, seed=2)
    save_model(tmp_path / "m.npz", net.params, {"input_size": 6, "hidden_size": 4, "output_size": 3,
                                                "dtype": "float32", **meta})
    with pytest.raises(ModelError, match=why):
        TwoLayerNet.load(tmp_path / "m.npz")
