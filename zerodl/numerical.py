"""Chapter 4's numerical gradient of TwoLayerNet, in closed form instead of one weight at a time.

The book perturbs each of the 39,760 weights by ±h, runs the whole forward pass twice
and takes (L(W + h) - L(W - h)) / 2h: 79,520 forward passes, ~16 s per batch of 100.
The same numbers come from far less work, because each perturbation is tiny and local:

- W1[i, j] moves only hidden unit j, and in sample n only by δ = h·x[n, i]. Per sample
  the loss then changes as a function G_nj(δ) of that one number, so the central
  difference is  Σ_n (G_nj(h·x[n, i]) - G_nj(-h·x[n, i])) / 2h / N.
- G's odd Taylor series gives that difference exactly: x·G'(0) + h²x³·G'''(0)/6, plus a
  term of order h⁴ ≈ 1e-16 that is far below float64 rounding. G'(0) and G'''(0) are
  per (n, j), so the sum over n for every i at once is two matrix products:
  Xᵀ·G1 + (h²/6)·(X³)ᵀ·G3.
- G is the log-sum-exp of the logits after hidden unit j's output moves by u(δ), minus
  the true class's logit. Its derivatives in u are the cumulants κ1, κ2, κ3 of row j of
  W2 under the sample's softmax (those of a log-sum-exp); u(δ) is δ for an active ReLU,
  0 for an inactive one, and σ(a + δ) - σ(a) for a sigmoid, whose derivatives are
  polynomials in σ. Dropout multiplies u by the sample's 0/1 mask.
- A ReLU whose pre-activation lies within h·x of its kink is not smooth there: those
  few (sample, input, unit) triples are evaluated exactly, by the loss itself.
- W2[j, k] moves logit k by h·z[n, j] (the same series, for a two-outcome softmax), and
  weight decay λ/2·ΣW² adds exactly λ·W to the central difference.

tests/test_core_numerical.py holds it to the book's one-weight-at-a-time loop (to 1e-9,
for ReLU and sigmoid, dropout and weight decay). A network this module does not know
(`unsupported`) gets the loop itself (TwoLayerNet.numerical_gradient_plain).
"""
from __future__ import annotations

import numpy as np

from .functions import sigmoid
from .layers import Affine, Dropout, Relu, Sigmoid, SoftmaxWithLoss


def unsupported(net) -> str | None:
    """None if central_difference computes this net's numerical gradient; else why not."""
    kinds = [type(layer) for layer in net.layers.values()]
    known = ([Affine, Relu, Affine], [Affine, Sigmoid, Affine],
             [Affine, Relu, Dropout, Affine], [Affine, Sigmoid, Dropout, Affine])
    if kinds not in known or type(net.lastLayer) is not SoftmaxWithLoss:
        return "it knows Affine -> Relu or Sigmoid [-> Dropout] -> Affine -> SoftmaxWithLoss"
    return None


# The series is cut after h²: the first term left out is ~(step)⁴/120 of the kept ones,
# where step is the largest change h·x of a pre-activation, or h·x·w of a logit.
# Up to 1e-3 that is < 1e-14 relative; MNIST in [0, 1] with h = 1e-4 stays near 1e-4.
MAX_STEP = 1e-3


def central_difference(net, x, t, h: float) -> dict[str, np.ndarray] | None:
    """(L(W + h) - L(W - h)) / 2h for every weight of `net`, in float64, L = net.loss(x, t,
    train_flg=True) with the dropout mask of the net's last training pass (zerodl.net);
    None if a step is too large for the series (unnormalised inputs, say)."""
    p = {k: v.astype(np.float64) for k, v in net.params.items()}
    W2 = p["W2"]
    n = len(x)
    layers = list(net.layers.values())
    relu = isinstance(layers[1], Relu)
    mask = layers[2].mask.astype(np.float64) if isinstance(layers[2], Dropout) else 1.0

    a1 = x @ p["W1"] + p["b1"]
    z1 = np.maximum(a1, 0) if relu else sigmoid(a1)
    step = h * max(float(np.abs(x).max(initial=1.0)), float(z1.max(initial=1.0)))
    if step * max(1.0, float(np.abs(W2).max(initial=0.0))) > MAX_STEP:
        return None
    z2 = (z1 * mask) @ W2 + p["b2"]
    P = np.exp(z2 - z2.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)

    # Cumulants of row j of W2 under each sample's softmax: (n, H) each.
    k1 = P @ W2.T
    m2 = P @ (W2.T ** 2)
    k2 = m2 - k1 ** 2
    k3 = P @ (W2.T ** 3) - 3 * k1 * m2 + 2 * k1 ** 3
    F1 = k1 - W2[:, t].T  # minus the true class's weight: the logit we subtract
    if relu:
        on = (a1 > 0) * mask
        G1, G3 = F1 * on, k3 * on
    else:
        s1 = z1 * (1 - z1)                  # σ', σ'', σ''' in terms of σ
        s2 = s1 * (1 - 2 * z1)
        s3 = s1 * (1 - 6 * z1 + 6 * z1 ** 2)
        G1 = mask * F1 * s1
        G3 = mask * (k3 * s1 ** 3 + 3 * k2 * s1 * s2 + F1 * s3)   # Faà di Bruno, 3rd order
    c = h * h / 6
    g = {"W1": x.T @ G1 + c * ((x ** 3).T @ G3), "b1": G1.sum(axis=0) + c * G3.sum(axis=0)}
    if relu:
        _kinks(g, x, a1, P, W2, t, mask, G1, G3, h)

    # W2[j, k], b2[k]: logit k moves by d = h·z (z = 1 for b2); log(1 + p(e^d - 1)) is the
    # cumulant function of a coin with probability p: κ1 = p, κ3 = p(1 - p)(1 - 2p).
    z = z1 * mask
    C1 = P.copy()
    C1[np.arange(n), t] -= 1
    C3 = P * (1 - P) * (1 - 2 * P)
    g["W2"] = z.T @ C1 + c * ((z ** 3).T @ C3)
    g["b2"] = C1.sum(axis=0) + c * C3.sum(axis=0)

    grads = {k: v / n for k, v in g.items()}
    lam = net.weight_decay_lambda
    if lam:  # (λ/2·(w + h)² - λ/2·(w - h)²) / 2h = λ·w
        grads["W1"] += lam * p["W1"]
        grads["W2"] += lam * p["W2"]
    return grads


def _kinks(g, x, a1, P, W2, t, mask, G1, G3, h) -> None:
    """Replace the series by the exact difference where ±h·x moves a ReLU across 0.

    Such a triple (n, i, j) has |a1[n, j]| < h·|x[n, i]|; the input 1 of b1 counts as x = 1.
    """
    n_in = x.shape[1]
    xb = np.hstack([x, np.ones((len(x), 1))])  # b1 as the weight of an input fixed at 1
    reach = h * np.abs(xb).max(axis=1)
    pairs = np.nonzero((np.abs(a1) < reach[:, None]) & (np.broadcast_to(mask, a1.shape) > 0))
    if not pairs[0].size:
        return
    rows, units = pairs
    a = a1[rows, units]
    k, i = np.nonzero(h * np.abs(xb[rows]) > np.abs(a)[:, None])  # pair k crosses for input i
    rows, units, a, v = rows[k], units[k], a[k], xb[rows[k], i]
    on = a > 0
    up = np.maximum(a + h * v, 0) - np.maximum(a, 0)
    down = np.maximum(a - h * v, 0) - np.maximum(a, 0)
    exact = (_shifted_loss(P, W2, t, rows, units, up) - _shifted_loss(P, W2, t, rows, units, down)) / (2 * h)
    series = on * (v * G1[rows, units] + h * h / 6 * v ** 3 * G3[rows, units])
    fix = np.bincount(i * a1.shape[1] + units, weights=exact - series, minlength=(n_in + 1) * a1.shape[1])
    fix = fix.reshape(n_in + 1, a1.shape[1])
    g["W1"] += fix[:n_in]
    g["b1"] += fix[n_in]


def _shifted_loss(P, W2, t, rows, units, d):
    """The change of sample rows' loss when hidden unit `units` moves by d: exactly,
    log Σ_o p_o·exp(d·W2[j, o]) - d·W2[j, t], with log1p/expm1 for the small differences."""
    w = W2[units]  # (m, O)
    change = np.log1p((P[rows] * np.expm1(d[:, None] * w)).sum(axis=1))
    return change - d * W2[units, t[rows]]

