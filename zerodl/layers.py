"""Chapter 5: one small class per layer, each with `forward` and `backward`.

The layers keep references to the network's parameter arrays (not copies), so
an optimizer that updates `params['W1']` in place updates the layer too.
"""
from __future__ import annotations

import numpy as np

from .functions import sigmoid


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        # In place, as the book's `dout[self.mask] = 0` is.
        return np.multiply(dout, self.mask, out=dout)


class Sigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Dropout:
    """Chapter 6: drop each hidden unit with probability dropout_ratio while training.

    As the book does: training multiplies by a 0/1 mask, testing scales by
    (1 - dropout_ratio) instead. The mask comes from the layer's own Generator (not
    the book's global np.random), so runs repeat bit for bit. `hold = True` keeps
    the last mask for every forward pass: the numerical gradient and the gradient
    check perturb the weights of one and the same network, mask included.
    """

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = dropout_ratio
        self.rng = rng if rng is not None else np.random.default_rng()
        self.mask = None
        self.hold = False

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        if not (self.hold and self.mask is not None and self.mask.shape == x.shape):
            self.mask = self.rng.random(x.shape) > self.dropout_ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Affine:
    """out = x·W + b.

    `input_grad=False` skips dx = dout·Wᵀ in backward: the first layer's
    input is the data, whose gradient nobody needs, and it costs as much as dW.
    """

    def __init__(self, W, b, input_grad: bool = True):
        self.W = W
        self.b = b
        self.input_grad = input_grad
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        out = x @ self.W
        out += self.b
        return out

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        if not self.input_grad:
            return None
        return dout @ self.W.T


class SoftmaxWithLoss:
    """Softmax and cross-entropy together, from the logits.

    The loss is computed by log-sum-exp, so it is exact (no 1e-7 inside the
    log) and its gradient is exactly (softmax(x) - t) / N.
    """

    def __init__(self):
        self.loss = None
        self.y = None  # softmax output
        self.t = None  # integer labels

    def forward(self, x, t):
        t = np.asarray(t)
        if t.ndim == x.ndim:  # one-hot -> labels
            t = t.argmax(axis=-1)
        if x.ndim == 1:
            x = x.reshape(1, -1)
            t = t.reshape(1)
        self.t = t
        m = x.max(axis=1, keepdims=True)
        e = np.subtract(x, m)
        np.exp(e, out=e)
        s = e.sum(axis=1, keepdims=True)
        n = x.shape[0]
        rows = np.arange(n)
        # loss = mean(log(sum exp(x - m)) + m - x[t]); accumulate in float64.
        lse = np.log(s[:, 0], dtype=np.float64) + m[:, 0]
        self.loss = float(np.mean(lse - x[rows, t]))
        np.divide(e, s, out=e)
        self.y = e
        return self.loss

    def backward(self, dout=1):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        dx *= dout / n
        return dx
