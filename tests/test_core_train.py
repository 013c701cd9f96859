"""zerodl.train: the mini-batch loop, epochs, history, divergence guard (chapter 4.5)."""
from __future__ import annotations


import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.errors import DivergenceError, ZerodlError
from zerodl.optim import SGD, make_optimizer
from zerodl.train import EpochRecord, TrainResult, param_norms, train

KEYS = ("W1", "b1", "W2", "b2")


def xor_data(n, seed):
    """Points in [-1, 1]² away from the axes; label 1 where x0·x1 > 0 (needs the hidden layer)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(3 * n, 2))
    x = x[(np.abs(x) > 0.15).all(axis=1)][:n]
    assert len(x) == n
    return x.astype(np.float32), (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def _ref_loss_acc(net, x, t):
    """Float64 forward pass written here: (mean cross entropy, accuracy)."""
    p = {k: net.params[k].astype(np.float64) for k in KEYS}
    z = np.maximum(np.asarray(x, np.float64) @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(t)), t])), float(np.mean(z.argmax(axis=1) == t))


class RecordingNet:
    """A stand-in net: records every batch it is given, reports loss = iteration number."""

    dtype = np.dtype(np.float64)

    def __init__(self, eval_loss=0.5):
        self.params = {"w": np.zeros(1)}
        self.batches, self.labels = [], []
        self.last_loss = None
        self.eval_loss = eval_loss

    def gradient(self, x, t):
        self.batches.append(x[:, 0].astype(np.int64))  # astype copies: x is a reused buffer
        self.labels.append(t.copy())
        self.last_loss = float(len(self.batches))
        return {"w": np.zeros(1)}

    def evaluate(self, x, t):
        return self.eval_loss, 0.25


class NullOptimizer:
    lr = 0.125

    def update(self, params, grads):
        pass


def _indexed_data(n):
    """Column 0 is the row's own index; the label is a function of it."""
    x = np.stack([np.arange(n), np.full(n, 9.0)], axis=1).astype(np.float64)
    t = (np.arange(n) * 7) % 5
    return x, t


# --- learning ----------------------------------------------------------------------------------

def test_trains_xor_to_high_accuracy():
    x, t = xor_data(400, 0)
    xt, tt = xor_data(200, 1)
    net = TwoLayerNet(2, 16, 2, weight_init_std="he", seed=0)
    _, acc0 = _ref_loss_acc(net, xt, tt)
    assert acc0 < 0.8  # not solved before training
    result = train(net, SGD(lr=0.5), x, t, xt, tt, iters=400, batch_size=20, rng=np.random.default_rng(0))
    assert isinstance(result, TrainResult)
    last = result.epochs[-1]
    assert last.train_accuracy >= 0.97 and last.test_accuracy >= 0.97
    assert last.train_loss < 0.1
    assert np.mean(result.loss[-20:]) < 0.2 * np.mean(result.loss[:20])
    # the last record describes the final net (float64 reference, float32 net)
    loss, acc = _ref_loss_acc(net, x, t)
    assert last.train_loss == pytest.approx(loss, rel=1e-4)
    assert last.train_accuracy == acc
    loss, acc = _ref_loss_acc(net, xt, tt)
    assert last.test_loss == pytest.approx(loss, rel=1e-4)
    assert last.test_accuracy == acc
    assert all(v.dtype == np.float32 for v in net.params.values())
    assert result.seconds > 0


@pytest.mark.parametrize("name, lr", [("momentum", 0.1), ("adam", 0.01)])
def test_trains_with_other_optimizers(name, lr):
    x, t = xor_data(400, 0)
    xt, tt = xor_data(200, 1)
    net = TwoLayerNet(2, 16, 2, weight_init_std="he", seed=0)
    result = train(net, make_optimizer(name, lr), x, t, xt, tt, iters=300, batch_size=20,
                   rng=np.random.default_rng(0))
    assert result.epochs[-1].test_accuracy >= 0.97


# --- epochs and history -------------------------------------------------------------------------

def test_epoch_records_and_final_partial_epoch():
    x, t = xor_data(300, 2)
    net = TwoLayerNet(2, 8, 2, weight_init_std="he", seed=1)
    seen = []
    result = train(net, SGD(lr=0.1), x, t, x[:50], t[:50], iters=40, batch_size=32,
                   rng=np.random.default_rng(1), on_epoch=seen.append)
    # 300 // 32 = 9 iterations per epoch: records after 9, 18, 27, 36, then the partial 40
    assert result.iter_per_epoch == 9
    assert [r.iteration for r in result.epochs] == [9, 18, 27, 36, 40]
    assert [r.epoch for r in result.epochs] == [1.0, 2.0, 3.0, 4.0, 4.444444]
    assert seen == result.epochs
    assert all(isinstance(r, EpochRecord) for r in result.epochs)
    assert result.loss.shape == (40,) and result.loss.dtype == np.float64
    assert np.all(np.isfinite(result.loss))


def test_whole_epochs_have_no_partial_record():
    x, t = xor_data(100, 3)
    net = TwoLayerNet(2, 4, 2, seed=0)
    result = train(net, SGD(lr=0.1), x, t, x, t, iters=20, batch_size=10, rng=np.random.default_rng(0))
    assert [(r.epoch, r.iteration) for r in result.epochs] == [(1.0, 10), (2.0, 20)]


def test_fewer_iterations_than_an_epoch():
    x, t = xor_data(100, 3)
    net = TwoLayerNet(2, 4, 2, seed=0)
    result = train(net, SGD(lr=0.1), x, t, x, t, iters=3, batch_size=10, rng=np.random.default_rng(0))
    assert [(r.epoch, r.iteration) for r in result.epochs] == [(0.3, 3)]
    assert len(result.loss) == 3


def test_each_epoch_visits_every_sample_once():
    n, batch = 12, 3
    x, t = _indexed_data(n)
    net = RecordingNet()
    train(net, NullOptimizer(), x, t, x, t, iters=4 * 5, batch_size=batch, rng=np.random.default_rng(3))
    assert len(net.batches) == 20
    assert all(len(b) == batch for b in net.batches)
    orders = []
    for e in range(5):
        idx = np.concatenate(net.batches[4 * e:4 * e + 4])
        np.testing.assert_array_equal(np.sort(idx), np.arange(n))
        orders.append(tuple(idx))
    assert len(set(orders)) > 1  # reshuffled, not one fixed order
    assert orders[0] != tuple(range(n))
    # the labels travel with their rows
    for b, lab in zip(net.batches, net.labels):
        np.testing.assert_array_equal(lab, (b * 7) % 5)


def test_leftover_samples_wait_for_the_next_shuffle():
    # 10 samples, batches of 3: 3 batches per epoch, 9 distinct samples each epoch
    x, t = _indexed_data(10)
    net = RecordingNet()
    result = train(net, NullOptimizer(), x, t, x, t, iters=9, batch_size=3, rng=np.random.default_rng(4))
    assert result.iter_per_epoch == 3
    for e in range(3):
        idx = np.concatenate(net.batches[3 * e:3 * e + 3])
        assert len(set(idx.tolist())) == 9
    # over the three epochs every sample is used
    assert set(np.concatenate(net.batches).tolist()) == set(range(10))


def test_loss_history_is_what_the_net_reported():
    x, t = _indexed_data(8)
    net = RecordingNet()
    calls = []
    result = train(net, NullOptimizer(), x, t, x, t, iters=7, batch_size=2,
                   rng=np.random.default_rng(0), on_iteration=lambda i, loss: calls.append((i, loss)))
    np.testing.assert_array_equal(result.loss, np.arange(1.0, 8.0))
    assert calls == [(i, float(i)) for i in range(1, 8)]
    assert [(r.iteration, r.train_loss, r.train_accuracy) for r in result.epochs] == [(4, 0.5, 0.25), (7, 0.5, 0.25)]


def test_same_seed_same_bits():
    x, t = xor_data(200, 5)

    def run(rng_seed):
        net = TwoLayerNet(2, 10, 2, weight_init_std="he", seed=7)
        r = train(net, make_optimizer("adam", 0.01), x, t, x[:40], t[:40], iters=50, batch_size=16,
                  rng=np.random.default_rng(rng_seed))
        return net, r

    (n1, r1), (n2, r2), (n3, r3) = run(11), run(11), run(12)
    assert r1.loss.tobytes() == r2.loss.tobytes()
    assert r1.epochs == r2.epochs
    for k in KEYS:
        assert n1.params[k].tobytes() == n2.params[k].tobytes()
    assert r1.loss.tobytes() != r3.loss.tobytes()
    assert n1.params["W1"].tobytes() != n3.params["W1"].tobytes()


def test_onehot_labels_train_like_integer_labels():
    # the book loads MNIST with one_hot_label=True
    x, t = xor_data(120, 6)
    eye = np.eye(2, dtype=np.int64)

    def run(tr, te):
        net = TwoLayerNet(2, 6, 2, weight_init_std="he", seed=3)
        r = train(net, SGD(lr=0.3), x, tr, x[:30], te, iters=25, batch_size=12, rng=np.random.default_rng(2))
        return net, r

    n1, r1 = run(t, t[:30])
    n2, r2 = run(eye[t], eye[t[:30]])
    assert r1.loss.tobytes() == r2.loss.tobytes()
    assert r1.epochs == r2.epochs
    for k in KEYS:
        assert n1.params[k].tobytes() == n2.params[k].tobytes()


def test_float64_data_into_float32_net():
    x, t = xor_data(60, 7)
    net = TwoLayerNet(2, 5, 2, seed=0)
    train(net, SGD(lr=0.1), x.astype(np.float64), t, x, t, iters=5, batch_size=10, rng=np.random.default_rng(0))
    assert all(v.dtype == np.float32 for v in net.params.values())


class Spy:
    """An optimizer that keeps a copy of the params before and after each of its updates."""

    def __init__(self, optimizer):
        self.optimizer, self.lr, self.steps = optimizer, optimizer.lr, []

    def update(self, params, grads):
        before = {k: v.copy() for k, v in params.items()}
        self.optimizer.update(params, grads)
        self.steps.append((before, {k: v.copy() for k, v in params.items()}))


@pytest.mark.parametrize("name, lr", [("sgd", 0.3), ("momentum", 0.1), ("adam", 0.01)])
def test_epoch_records_carry_each_params_norm_and_its_last_update(name, lr):
    x, t = xor_data(300, 2)
    net = TwoLayerNet(2, 8, 2, weight_init_std="he", seed=1)
    spy = Spy(make_optimizer(name, lr))
    result = train(net, spy, x, t, x[:50], t[:50], iters=40, batch_size=32, rng=np.random.default_rng(1))
    assert [r.iteration for r in result.epochs] == [9, 18, 27, 36, 40]
    for r in result.epochs:
        before, after = spy.steps[r.iteration - 1]  # the epoch's last update
        assert list(r.weight_norm) == list(r.update_norm) == list(KEYS)
        for k in KEYS:
            step = after[k].astype(np.float64) - before[k].astype(np.float64)
            # (summed in float32, as the weights are)
            assert r.weight_norm[k] == pytest.approx(np.sqrt(np.sum(after[k].astype(np.float64) ** 2)), rel=1e-6)
            assert r.update_norm[k] == pytest.approx(np.sqrt(np.sum(step ** 2)), rel=1e-6)
            assert r.update_norm[k] > 0
    last = result.epochs[-1]
    for k in KEYS:  # the last record's norms are the trained net's
        assert last.weight_norm[k] == pytest.approx(float(np.linalg.norm(net.params[k].astype(np.float64))), rel=1e-6)


def test_norms_of_a_net_that_does_not_move():
    x, t = _indexed_data(8)
    result = train(RecordingNet(), NullOptimizer(), x, t, x, t, iters=7, batch_size=2, rng=np.random.default_rng(0))
    assert [(r.weight_norm, r.update_norm) for r in result.epochs] == [({"w": 0.0}, {"w": 0.0})] * 2


def test_param_norms_of_weights_whose_float32_squares_overflow():
    # float32 weights of 1e30 (a run on its way to divergence): summed again in float64
    params = {"W": np.full((3, 4), 1e30, np.float32), "b": np.array([3.0, 4.0], np.float32)}
    before = {"W": np.full((3, 4), 5e29, np.float32), "b": np.array([3.0, 3.0], np.float32)}
    weight, update = param_norms(params, before)
    assert weight["W"] == pytest.approx(np.sqrt(12) * 1e30, rel=1e-6) and weight["b"] == 5.0
    assert update["W"] == pytest.approx(np.sqrt(12) * 5e29, rel=1e-6) and update["b"] == 1.0
    assert all(type(v) is float for v in (*weight.values(), *update.values()))


# --- guards ---------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_learning_rate_raises_divergence_error():
    x, t = xor_data(200, 8)
    net = TwoLayerNet(2, 16, 2, weight_init_std="he", seed=0)
    # (at lr = 1e6 this net's loss peaks near 1e29 and then its ReLUs die: finite, so
    # no error; 1e10 overflows float32 and the loss becomes NaN)
    lr = 1e10
    with pytest.raises(DivergenceError) as e:
        train(net, SGD(lr=lr), x, t, x, t, iters=200, batch_size=20, rng=np.random.default_rng(0))
    msg = str(e.value)
    assert "learning_rate" in msg and str(lr) in msg
    assert isinstance(e.value, ZerodlError) and e.value.exit_code != 0


def test_finite_blow_up_raises_divergence_error():
    # At lr = 1e6 the loss climbs to ~1e29 without ever being NaN, then the ReLUs
    # die and training would end "fine" at chance accuracy: the growth guard stops it.
    x, t = xor_data(200, 8)
    net = TwoLayerNet(2, 16, 2, weight_init_std="he", seed=0)
    with pytest.raises(DivergenceError, match=r"learning_rate = 1000000\.0"):
        train(net, SGD(lr=1e6), x, t, x, t, iters=200, batch_size=20, rng=np.random.default_rng(0))


def test_non_finite_training_set_loss_raises_divergence_error():
    x, t = _indexed_data(6)
    with pytest.raises(DivergenceError, match="learning_rate = 0.125"):
        train(RecordingNet(eval_loss=float("inf")), NullOptimizer(), x, t, x, t, iters=3, batch_size=2,
              rng=np.random.default_rng(0))


@pytest.mark.parametrize("batch_size", [0, -1, 11])
def test_bad_batch_size(batch_size):
    x, t = _indexed_data(10)
    with pytest.raises(ValueError, match="batch_size"):
        train(RecordingNet(), NullOptimizer(), x, t, x, t, iters=1, batch_size=batch_size,
              rng=np.random.default_rng(0))


def test_batch_size_equal_to_n_is_fine():
    x, t = _indexed_data(10)
    net = RecordingNet()
    train(net, NullOptimizer(), x, t, x, t, iters=2, batch_size=10, rng=np.random.default_rng(0))
    assert [sorted(b.tolist()) for b in net.batches] == [list(range(10))] * 2


def test_bad_gradient_mode():
    x, t = _indexed_data(10)
    with pytest.raises(ValueError, match="gradient"):
        train(RecordingNet(), NullOptimizer(), x, t, x, t, iters=1, batch_size=2,
              rng=np.random.default_rng(0), gradient="autodiff")


# --- the chapter-4 way -------------------------------------------------------------------------------

def test_numerical_gradient_training_matches_backprop():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(20, 4))
    t = rng.integers(0, 3, size=20)

    def run(gradient):
        net = TwoLayerNet(4, 5, 3, weight_init_std="he", seed=4, dtype=np.float64)
        r = train(net, SGD(lr=0.5), x, t, x, t, iters=6, batch_size=5, rng=np.random.default_rng(1),
                  gradient=gradient)
        return net, r

    init = TwoLayerNet(4, 5, 3, weight_init_std="he", seed=4, dtype=np.float64)
    nb, rb = run("backprop")
    nn, rn = run("numerical")
    for k in KEYS:
        assert np.max(np.abs(nb.params[k] - nn.params[k])) <= 1e-6, k
        assert nn.params[k].dtype == np.float64
    # the parameters did move (the comparison is not of two untouched nets)
    assert max(np.max(np.abs(nb.params[k] - init.params[k])) for k in KEYS) > 1e-2
    np.testing.assert_allclose(rn.loss, rb.loss, rtol=0, atol=1e-6)


def test_numerical_gradient_training_float32_net():
    x, t = xor_data(30, 10)
    net = TwoLayerNet(2, 4, 2, weight_init_std="he", seed=0)
    result = train(net, SGD(lr=0.1), x, t, x, t, iters=3, batch_size=10, rng=np.random.default_rng(0),
                   gradient="numerical")
    assert all(v.dtype == np.float32 for v in net.params.values())
    assert len(result.loss) == 3 and np.all(np.isfinite(result.loss))
