"""zerodl.gradient: central-difference gradient and gradient descent (chapter 4).

Expected values: the book's printed results, closed forms (x_k = x_0 (1 - 2 lr)^k
for f = x0² + x1²) and analytic gradients written here.
"""
from __future__ import annotations

import numpy as np
import pytest

from zerodl.gradient import H, gradient_descent, numerical_gradient


def function_2(x):
    """The book's f(x0, x1) = x0² + x1², written as the book writes it."""
    return x[0] ** 2 + x[1] ** 2


@pytest.mark.parametrize("point, expected", [
    ((3.0, 4.0), (6.0, 8.0)),
    ((0.0, 2.0), (0.0, 4.0)),
    ((3.0, 0.0), (6.0, 0.0)),
])
def test_book_gradients_of_function_2(point, expected):
    g = numerical_gradient(function_2, np.array(point))
    # central difference is exact for a quadratic up to rounding (~1e-11 here)
    np.testing.assert_allclose(g, expected, rtol=0, atol=1e-7)
    assert g.dtype == np.float64


def test_default_h_is_the_books():
    assert H == 1e-4


def test_shape_2x3_against_analytic():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(2, 3))
    x = rng.normal(size=(2, 3))

    def f(v):  # sum c·v³ + (sum v)²
        return np.sum(c * v ** 3) + np.sum(v) ** 2

    g = numerical_gradient(f, x)
    assert g.shape == (2, 3)
    # truncation error of the central difference: h²·f'''/6 = h²·c ~ 1e-8
    np.testing.assert_allclose(g, 3 * c * x ** 2 + 2 * np.sum(x), rtol=0, atol=1e-6)


def test_shape_2x2x2_against_analytic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 2, 2))
    M = rng.normal(size=(8, 8))

    def f(v):  # sum e^(v/2) + v·M·v
        flat = v.reshape(-1)
        return np.sum(np.exp(0.5 * v)) + flat @ M @ flat

    g = numerical_gradient(f, x)
    assert g.shape == (2, 2, 2)
    expected = 0.5 * np.exp(0.5 * x) + ((M + M.T) @ x.reshape(-1)).reshape(2, 2, 2)
    np.testing.assert_allclose(g, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_x_restored_to_exact_bits(dtype):
    # values where (v + h) - h != v in floating point: an implementation that
    # undoes its perturbation arithmetically would change their bits
    x = np.array([[0.1, 1e-20, 12345.678901], [-0.3, 7.0 / 3.0, -1e8]], dtype=dtype)
    before = x.tobytes()
    numerical_gradient(lambda v: float(np.sum(np.sin(v))), x)
    assert x.tobytes() == before


def test_f_may_ignore_its_argument_and_read_x():
    # the book's nets pass `lambda W: net.loss(x, t)`: f reads the array x
    # itself, so the perturbation must happen in place
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_gradient(lambda _: float(np.sum(w ** 2)), w)
    np.testing.assert_allclose(g, 2 * w, atol=1e-8)
    assert w.tobytes() == np.array([[1.0, -2.0], [0.5, 3.0]]).tobytes()


def test_float32_input_gives_float64_gradient():
    x = np.array([3.0, 4.0], dtype=np.float32)
    g = numerical_gradient(lambda v: float(v[0]) ** 2 + float(v[1]) ** 2, x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [6.0, 8.0], rtol=1e-2)  # float32 steps of h: coarse, not garbage


def test_integer_input_is_refused():
    # an int array cannot hold x + 1e-4: the book's trap (np.array([3, 4]))
    # must fail loudly instead of returning a wrong gradient
    with pytest.raises((TypeError, ValueError), match="float"):
        numerical_gradient(function_2, np.array([3, 4]))


def test_non_contiguous_view_is_refused():
    # perturbing a copy would leave what f reads unchanged: refuse instead
    base = np.arange(12.0).reshape(3, 4)
    for view in (base[:, :2], base.T):
        with pytest.raises(ValueError, match="contiguous"):
            numerical_gradient(lambda v: float(np.sum(view ** 2)), view)


def test_evenly_strided_view_is_fine():
    base = np.arange(12.0).reshape(3, 4)
    view = base[:, ::2]  # flattens to a view (stride 16 bytes): perturbing it is safe
    g = numerical_gradient(lambda _: float(np.sum(view ** 2)), view)
    np.testing.assert_allclose(g, 2 * base[:, ::2], atol=1e-7)
    np.testing.assert_array_equal(base, np.arange(12.0).reshape(3, 4))


# --- gradient descent ----------------------------------------------------------------

def test_gradient_descent_book_run():
    init = np.array([-3.0, 4.0])
    x = gradient_descent(function_2, init, lr=0.1, step_num=100)
    # the book prints array([-6.11110793e-10,  8.14814391e-10])
    assert x[0] == pytest.approx(-6.11110793e-10, rel=5e-3)
    assert x[1] == pytest.approx(8.14814391e-10, rel=5e-3)
    # closed form: each step multiplies x by (1 - 2·lr) = 0.8
    np.testing.assert_allclose(x, [-3.0 * 0.8 ** 100, 4.0 * 0.8 ** 100], rtol=1e-6)
    # init_x is not touched
    np.testing.assert_array_equal(init, [-3.0, 4.0])


def test_gradient_descent_lr_too_large_diverges():
    # the book: lr=10.0 gives array([-2.58983747e+13, -1.29524862e+12])
    x = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=10.0, step_num=100)
    assert np.all(np.isfinite(x))
    assert np.all(np.abs(x) > 1e11)
    np.testing.assert_allclose(x, [-2.58983747e13, -1.29524862e12], rtol=1e-2)


def test_gradient_descent_lr_too_small_barely_moves():
    # the book: lr=1e-10 gives array([-2.99999994,  3.99999992]);
    # by hand: -3 (1 - 2e-10)^100 = -3 (1 - 2e-8) = -2.99999994
    x = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    np.testing.assert_allclose(x, [-2.99999994, 3.99999992], rtol=0, atol=1e-8)
    assert not np.array_equal(x, [-3.0, 4.0])


def test_gradient_descent_accepts_a_list_and_step_count():
    x = gradient_descent(function_2, [1.0, -2.0], lr=0.25, step_num=3)
    # factor (1 - 0.5) per step: 3 steps -> /8
    np.testing.assert_allclose(x, [0.125, -0.25], atol=1e-9)


def test_gradient_descent_history_is_the_path():
    history = []
    x = gradient_descent(function_2, [-3.0, 4.0], lr=0.1, step_num=5, history=history)
    assert len(history) == 6  # the start and x after each step
    np.testing.assert_array_equal(history[0], [-3.0, 4.0])
    np.testing.assert_allclose(history, 0.8 ** np.arange(6)[:, None] * np.array([-3.0, 4.0]), rtol=1e-10)
    # copies, not views of the x being updated; the same bits as a run without history
    np.testing.assert_array_equal(history[-1], x)
    assert not any(np.shares_memory(a, b) for a, b in zip(history, history[1:]))
    np.testing.assert_array_equal(gradient_descent(function_2, [-3.0, 4.0], lr=0.1, step_num=5), x)
