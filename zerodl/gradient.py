"""Chapter 4: the numerical gradient by central difference, and gradient descent."""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np

H = 1e-4  # the book's h: small enough for accuracy, large enough against rounding


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = H) -> np.ndarray:
    """(f(x + h) - f(x - h)) / 2h for each element of `x`, any shape.

    `x` is perturbed in place (f usually closes over it, as the book's nets do)
    and every element is restored to its exact original bits afterwards.
    """
    if not np.issubdtype(x.dtype, np.floating):
        # x + h would be truncated back to x: a silently wrong (often zero) gradient
        raise TypeError(f"numerical_gradient needs a float array to perturb by h, got dtype {x.dtype}")
    grad = np.zeros_like(x, dtype=np.result_type(x, np.float64))
    flat = x.reshape(-1)  # a view: writes reach x, and so whatever f reads
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array it can perturb in place")
    g = grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + h
        fxh1 = f(x)
        flat[i] = orig - h
        fxh2 = f(x)
        flat[i] = orig
        g[i] = (fxh1 - fxh2) / (2 * h)
    return grad


def gradient_descent(f: Callable[[np.ndarray], float], init_x, lr: float = 0.01, step_num: int = 100,
                     history: list | None = None) -> np.ndarray:
    """x <- x - lr * grad f(x), `step_num` times; returns the final x (init_x is untouched).

    `history`, a list, receives a copy of x at the start and after every step: the path,
    step_num + 1 points (the book's exercise keeps x_history the same way, minus the last).
    """
    x = np.array(init_x, dtype=np.float64)
    if history is not None:
        history.append(x.copy())
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
        if history is not None:
            history.append(x.copy())
    return x


def gradient_check(net, x, t) -> dict[str, float]:
    """Mean |backprop - numerical| per parameter, in float64 (the book's chapter-5 check).

    With dropout, both gradients are of one network: the same mask (net.dropout_held).
    """
    held = getattr(net, "dropout_held", None)
    with held(x) if held else contextlib.nullcontext():
        grad_bp = net.gradient(x, t)
        grad_num = net.numerical_gradient(x, t)
    return {k: float(np.mean(np.abs(grad_bp[k] - grad_num[k]))) for k in grad_num}
