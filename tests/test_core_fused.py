"""The fused gradient (zerodl.fused.BatchGradient) against the layers, and how the training
loop chooses between them: the fused path only for a network it matches, visibly."""
from __future__ import annotations

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.batches import batch_buffer
from zerodl.fused import BatchGradient
from zerodl.layers import Sigmoid
from zerodl.optim import make_optimizer
from zerodl.train import train

from test_core_train import KEYS, xor_data


# --- BatchGradient ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, batch", [((784, 50, 10), 100), ((5, 3, 4), 1), ((2, 16, 2), 7)])
def test_batch_gradient_is_net_gradient(dtype, shape, batch):
    # Equal up to rounding: BatchGradient adds each bias inside its GEMM's sum, the layers after it.
    rng = np.random.default_rng(3)
    net = TwoLayerNet(*shape, weight_init_std=0.5, dtype=dtype, seed=1)
    bg = BatchGradient(net, batch)
    x1 = batch_buffer(batch, np.zeros((1, shape[0])), True, dtype)
    assert x1.shape == (batch, shape[0] + 1) and x1.dtype == dtype and np.all(x1[:, -1] == 1)
    ref = TwoLayerNet(*shape, dtype=np.float64, seed=0)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for _ in range(3):  # the buffers are reused: each call must be independent of the last
        x1[:, :-1] = rng.normal(size=(batch, shape[0]))
        t = rng.integers(0, shape[2], size=batch)
        loss = bg(x1, t)
        ref.set_params(net.params)
        grads = ref.gradient(x1[:, :-1].astype(np.float64), t)  # the layers, in float64
        assert loss == pytest.approx(ref.lastLayer.loss, rel=rtol)
        for k in KEYS:
            assert bg.grads[k].dtype == dtype and bg.grads[k].shape == net.params[k].shape
            scale = np.abs(grads[k]).max()
            np.testing.assert_allclose(bg.grads[k], grads[k], rtol=0, atol=rtol * scale, err_msg=k)
        # and the four are views of the two GEMM outputs, [dW1; db1] and [dW2; db2]
        np.testing.assert_array_equal(bg.dW1b1, np.vstack([bg.grads["W1"], bg.grads["b1"]]))
        np.testing.assert_array_equal(bg.dW2b2, np.vstack([bg.grads["W2"], bg.grads["b2"]]))
        assert np.shares_memory(bg.grads["b1"], bg.dW1b1) and np.shares_memory(bg.grads["W2"], bg.dW2b2)
        # and the numbers are the gradient (not two equal wrong ones): against a finite difference
        h = 1e-3 if dtype == np.float32 else 1e-6
        W = ref.params["b2"]
        old = W[0]
        W[0] = old + h
        up = ref.loss(x1[:, :-1], t)
        W[0] = old - h
        down = ref.loss(x1[:, :-1], t)
        W[0] = old
        assert bg.grads["b2"][0] == pytest.approx((up - down) / (2 * h), abs=2e-3)


def test_batch_gradient_leaves_the_weights_alone():
    net = TwoLayerNet(6, 4, 3, weight_init_std=0.5, seed=2)
    before = net.flat_params.copy()
    bg = BatchGradient(net, 5)
    x1 = np.hstack([np.random.default_rng(0).normal(size=(5, 6)), np.ones((5, 1))]).astype(np.float32)
    bg(x1, np.array([0, 1, 2, 0, 1]))
    assert net.flat_params.tobytes() == before.tobytes()




# --- which gradient the loop uses --------------------------------------------------------------

def _train(net, fused=True, iters=120, lr=0.3, seed=5, **kw):
    x, t = xor_data(240, seed)
    return train(net, make_optimizer("sgd", lr), x, t, x[:60], t[:60], iters=iters, batch_size=16,
                 rng=np.random.default_rng(seed), fused=fused, **kw)


def test_the_book_net_trains_through_the_fused_gradient_and_says_so():
    r = _train(TwoLayerNet(2, 12, 2, weight_init_std="he", seed=0))
    assert r.gradient.startswith("fused") and "BatchGradient" in r.gradient
    assert r.batches == "this process"


def test_fused_training_follows_the_layers_training():
    # The whole run, not one call: in float64 the two paths differ only by rounding, which
    # 120 updates must not have grown into a different trajectory.
    nets = [TwoLayerNet(2, 12, 2, weight_init_std="he", seed=0, dtype=np.float64) for _ in range(2)]
    rf, rl = _train(nets[0], fused=True), _train(nets[1], fused=False)
    assert rf.gradient.startswith("fused") and rl.gradient.startswith("layers")
    assert "turned off" in rl.gradient
    np.testing.assert_allclose(rf.loss, rl.loss, rtol=1e-9, atol=0)
    for k in KEYS:
        np.testing.assert_allclose(nets[0].params[k], nets[1].params[k], rtol=0, atol=1e-9, err_msg=k)
    assert [(e.iteration, e.train_accuracy, e.test_accuracy) for e in rf.epochs] == \
           [(e.iteration, e.train_accuracy, e.test_accuracy) for e in rl.epochs]
    assert rf.epochs[-1].test_accuracy > 0.9  # it learned: the comparison is not of two idle runs


def test_a_net_the_fused_gradient_does_not_know_trains_through_its_layers_visibly():
    # Another hidden activation: the fused path would silently compute ReLU's gradient.
    def sigmoid_net():
        net = TwoLayerNet(2, 12, 2, weight_init_std="xavier", seed=0, dtype=np.float64)
        net.layers["Relu1"] = Sigmoid()  # stays in place: the OrderedDict keeps the order
        return net

    a, b = sigmoid_net(), sigmoid_net()
    assert BatchGradient.unsupported(a, np.zeros((3, 2))) == \
        "it knows Affine -> Relu -> Affine -> SoftmaxWithLoss, not Affine -> Sigmoid -> Affine -> SoftmaxWithLoss"
    ra, rb = _train(a, lr=1.0), _train(b, fused=False, lr=1.0)
    assert ra.gradient.startswith("layers") and "Sigmoid" in ra.gradient
    # the same path as the layers chosen by hand: the same bits
    assert ra.loss.tobytes() == rb.loss.tobytes()
    for k in KEYS:
        assert a.params[k].tobytes() == b.params[k].tobytes()


def test_subclasses_and_other_shapes_are_not_fused():
    class Sub(TwoLayerNet):
        pass

    net = TwoLayerNet(4, 3, 2, seed=0)
    assert BatchGradient.unsupported(net, np.zeros((5, 4))) is None
    assert BatchGradient.unsupported(Sub(4, 3, 2, seed=0), np.zeros((5, 4))) == "it knows TwoLayerNet, not Sub"
    assert "shape (5, 2, 2)" in BatchGradient.unsupported(net, np.zeros((5, 2, 2)))
    net.params["W1"] = net.params["W1"].copy()
    assert "rebound" in BatchGradient.unsupported(net, np.zeros((5, 4)))
