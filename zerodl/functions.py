"""The book's activation and loss functions (chapters 3-4), numerically stable."""
from __future__ import annotations

import numpy as np


def sigmoid(x):
    # Split by sign so exp never overflows: for x < 0 use e^x / (1 + e^x).
    x = np.asarray(x)
    out = np.empty_like(x, dtype=np.result_type(x, np.float32))
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def relu(x):
    return np.maximum(x, 0)


def softmax(x):
    """Softmax over the last axis; subtracting the max keeps exp finite for logits of ±1000."""
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sum_squared_error(y, t):
    """0.5 * sum((y - t)^2); `t` one-hot (as in the book's example)."""
    y, t = np.asarray(y), np.asarray(t)
    return 0.5 * np.sum((y - t) ** 2)


def _label_indices(y, t):
    """Integer labels from `t`, which may be one-hot (same shape as y) or labels."""
    t = np.asarray(t)
    if t.shape == y.shape:
        return t.argmax(axis=-1)
    return t.astype(np.intp, copy=False)


def cross_entropy_error(y, t):
    """The book's cross entropy of probabilities `y`, mean over the batch.

    `t` is one-hot or integer labels; one sample (1-D) or a batch (2-D). The
    1e-7 keeps log finite at y = 0, as in the book. Training never uses this:
    SoftmaxWithLoss computes the loss from logits, exactly.
    """
    y = np.asarray(y)
    labels = _label_indices(y, t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
        labels = np.reshape(labels, 1)
    n = y.shape[0]
    return -np.sum(np.log(y[np.arange(n), labels] + 1e-7)) / n
