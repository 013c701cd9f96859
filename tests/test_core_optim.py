"""zerodl.optim: SGD, Momentum, AdaGrad, RMSprop, Adam (chapter 6).

The test problem is the book's f(x, y) = x²/20 + y² from (-7, 2) (section 6.1),
with the book's learning rates. Expected values: single steps computed by hand,
and whole trajectories from scalar Python-float references written here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.optim import OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, RMSprop, make_optimizer


def bowl_grads(p):
    """∇(x²/20 + y²) = (x/10, 2y)"""
    return {"x": p["x"] / 10.0, "y": 2.0 * p["y"]}


def start(dtype=np.float64):
    return {"x": np.array([-7.0], dtype=dtype), "y": np.array([2.0], dtype=dtype)}


def run(opt, steps, dtype=np.float64):
    p = start(dtype)
    for _ in range(steps):
        opt.update(p, bowl_grads(p))
    return float(p["x"][0]), float(p["y"][0])


# --- scalar references, one coordinate at a time (Python floats) ----------------------

def ref_sgd(lr, steps):
    out = []
    for w, scale in ((-7.0, 0.1), (2.0, 2.0)):
        for _ in range(steps):
            w = w - lr * scale * w
        out.append(w)
    return out


def ref_momentum(lr, mom, steps):
    out = []
    for w, scale in ((-7.0, 0.1), (2.0, 2.0)):
        v = 0.0
        for _ in range(steps):
            v = mom * v - lr * scale * w
            w = w + v
        out.append(w)
    return out


def ref_adagrad(lr, steps):
    out = []
    for w, scale in ((-7.0, 0.1), (2.0, 2.0)):
        h = 0.0
        for _ in range(steps):
            g = scale * w
            h = h + g * g
            w = w - lr * g / (math.sqrt(h) + 1e-7)
        out.append(w)
    return out


def ref_rmsprop(lr, decay, steps):
    out = []
    for w, scale in ((-7.0, 0.1), (2.0, 2.0)):
        h = 0.0
        for _ in range(steps):
            g = scale * w
            h = decay * h + (1 - decay) * g * g
            w = w - lr * g / (math.sqrt(h) + 1e-7)
        out.append(w)
    return out


def ref_adam(lr, steps, b1=0.9, b2=0.999):
    # Kingma & Ba's m, v recursions; the step size with bias correction as the book writes it
    out = []
    for w, scale in ((-7.0, 0.1), (2.0, 2.0)):
        m = v = 0.0
        for t in range(1, steps + 1):
            g = scale * w
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            w = w - lr_t * m / (math.sqrt(v) + 1e-7)
        out.append(w)
    return out


# --- one step by hand -------------------------------------------------------------------

def test_sgd_one_step_by_hand():
    # x: -7 - 0.95·(-0.7) = -6.335;  y: 2 - 0.95·4 = -1.8
    assert run(SGD(lr=0.95), 1) == pytest.approx((-6.335, -1.8), abs=1e-15)


def test_momentum_two_steps_by_hand():
    # v = -0.1·g: v = (0.07, -0.4), p = (-6.93, 1.6)
    assert run(Momentum(lr=0.1, momentum=0.9), 1) == pytest.approx((-6.93, 1.6), abs=1e-15)
    # v = 0.9·v - 0.1·g: vx = 0.063 + 0.0693 = 0.1323, vy = -0.36 - 0.32 = -0.68
    assert run(Momentum(lr=0.1, momentum=0.9), 2) == pytest.approx((-6.7977, 0.92), abs=1e-14)


def test_adagrad_one_step_by_hand():
    # h = g², so the step is lr·g/(|g| + 1e-7): almost exactly lr = 1.5 against the gradient
    x, y = run(AdaGrad(lr=1.5), 1)
    assert x == pytest.approx(-7 + 1.5 * 0.7 / (0.7 + 1e-7), rel=1e-15)
    assert y == pytest.approx(2 - 1.5 * 4 / (4 + 1e-7), rel=1e-15)
    assert (x, y) == pytest.approx((-5.5, 0.5), abs=3e-7)


def test_rmsprop_one_step_by_hand():
    # h = 0.01·g², sqrt(h) = 0.1·|g|: the step is lr·10 = 1 against the gradient
    x, y = run(RMSprop(lr=0.1, decay_rate=0.99), 1)
    assert x == pytest.approx(-7 + 0.1 * 0.7 / (0.07 + 1e-7), rel=1e-14)
    assert y == pytest.approx(2 - 0.1 * 4 / (0.4 + 1e-7), rel=1e-14)
    assert (x, y) == pytest.approx((-6.0, 1.0), abs=3e-6)


def test_adam_one_step_by_hand():
    # m = 0.1·g, v = 0.001·g², bias-corrected m/sqrt(v) = sign(g): the first step is lr = 0.3
    x, y = run(Adam(lr=0.3), 1)
    s = math.sqrt(0.001)
    assert x == pytest.approx(-7 + 0.3 * s * 0.7 / (s * 0.7 + 1e-7), rel=1e-14)
    assert y == pytest.approx(2 - 0.3 * s * 4 / (s * 4 + 1e-7), rel=1e-14)
    assert (x, y) == pytest.approx((-6.7, 1.7), abs=2e-6)


# --- trajectories and convergence ----------------------------------------------------------

@pytest.mark.parametrize("name, make, ref", [
    ("sgd", lambda: SGD(lr=0.95), lambda n: ref_sgd(0.95, n)),
    ("momentum", lambda: Momentum(lr=0.1), lambda n: ref_momentum(0.1, 0.9, n)),
    ("adagrad", lambda: AdaGrad(lr=1.5), lambda n: ref_adagrad(1.5, n)),
    ("rmsprop", lambda: RMSprop(lr=0.1), lambda n: ref_rmsprop(0.1, 0.99, n)),
    ("adam", lambda: Adam(lr=0.3), lambda n: ref_adam(0.3, n)),
])
def test_trajectory_matches_scalar_reference(name, make, ref):
    for steps in (2, 7, 40):
        assert run(make(), steps) == pytest.approx(tuple(ref(steps)), rel=1e-9, abs=1e-12), steps


@pytest.mark.parametrize("name, make", [
    ("sgd", lambda: SGD(lr=0.95)),
    ("momentum", lambda: Momentum(lr=0.1, momentum=0.9)),
    ("adagrad", lambda: AdaGrad(lr=1.5)),
    ("rmsprop", lambda: RMSprop(lr=0.1)),
    ("adam", lambda: Adam(lr=0.3)),
])
def test_each_optimizer_minimises_the_books_bowl(name, make):
    # the book's figure stops at 30 steps; 300 take every one of them to ~1e-6 or better
    x, y = run(make(), 300)
    assert abs(x) < 1e-5 and abs(y) < 1e-5, (x, y)
    assert x * x / 20 + y * y < 1e-10


def test_sgd_lr_too_large_diverges_on_the_bowl():
    # y <- y (1 - 2 lr): |1 - 2·1.05| = 1.1 > 1, so y grows as 1.1^k
    x, y = run(SGD(lr=1.05), 50)
    assert abs(y) == pytest.approx(2 * 1.1 ** 50, rel=1e-9)


# --- dtypes and in-place updates --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_params_stay_float32_and_in_place(name, grad_dtype):
    opt = make_optimizer(name, lr=0.01)
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(3, 4)).astype(np.float32), "b": np.zeros(4, dtype=np.float32)}
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape).astype(grad_dtype) for k, v in params.items()}
        opt.update(params, grads)
    for k, v in params.items():
        assert v.dtype == np.float32, k
        assert id(v) == ids[k], "update must work in place (the layers hold these arrays)"
    for state in ("v", "h", "m"):
        for arr in (getattr(opt, state, None) or {}).values():
            assert arr.dtype == np.float32


def test_float32_update_is_the_float64_update_rounded():
    # float32 arithmetic throughout: one Adam step agrees with float64 to float32 precision
    x32, y32 = run(Adam(lr=0.3), 5, dtype=np.float32)
    x64, y64 = run(Adam(lr=0.3), 5)
    assert x32 == pytest.approx(x64, rel=1e-5) and y32 == pytest.approx(y64, rel=1e-5)


def test_optimizer_updates_reach_the_net():
    # TwoLayerNet's layers hold references to params: an update changes predictions
    net = TwoLayerNet(4, 3, 2, weight_init_std=0.5, seed=0, dtype=np.float64)
    x = np.random.default_rng(1).random((3, 4))
    t = np.array([0, 1, 1])
    loss0 = net.loss(x, t)
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    W1 = net.params["W1"].copy()
    SGD(lr=0.1).update(net.params, grads)
    np.testing.assert_allclose(net.params["W1"], W1 - 0.1 * grads["W1"], rtol=1e-15)
    p = net.params
    logits = np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]
    np.testing.assert_allclose(net.predict(x), logits, rtol=1e-14)
    assert net.loss(x, t) < loss0


# --- make_optimizer ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("sgd", SGD), ("momentum", Momentum), ("adagrad", AdaGrad),
                                       ("rmsprop", RMSprop), ("adam", Adam), ("Adam", Adam), ("SGD", SGD)])
def test_make_optimizer_by_name(name, cls):
    opt = make_optimizer(name, lr=0.25)
    assert type(opt) is cls
    assert opt.lr == 0.25


def test_make_optimizer_passes_momentum():
    assert make_optimizer("momentum", lr=0.1, momentum=0.5).momentum == 0.5
    assert make_optimizer("momentum", lr=0.1).momentum == 0.9


@pytest.mark.parametrize("bad", ["sgdd", "", "nesterov", "adam "])
def test_make_optimizer_unknown_name(bad):
    with pytest.raises(ValueError) as e:
        make_optimizer(bad, lr=0.1)
    msg = str(e.value)
    assert repr(bad) in msg
    for name in ("sgd", "momentum", "adagrad", "rmsprop", "adam"):
        assert name in msg

