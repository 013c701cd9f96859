"""Chapter 6: the update rules, each `update(params, grads)` in place.

State (velocity, squared-gradient sums) is kept in the dtype of the weights,
so float32 training stays float32.
"""
from __future__ import annotations

import numpy as np


class SGD:
    """W <- W - lr * dW"""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    """v <- momentum * v - lr * dW;  W <- W + v"""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        for key in params:
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.v[key]


class AdaGrad:
    """h <- h + dW²;  W <- W - lr * dW / (sqrt(h) + 1e-7)"""

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {k: np.zeros_like(v) for k, v in params.items()}
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop:
    """h <- decay * h + (1 - decay) * dW²;  W <- W - lr * dW / (sqrt(h) + 1e-7)"""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {k: np.zeros_like(v) for k, v in params.items()}
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    """Adam (Kingma & Ba), with the bias correction folded into the step size."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.iter += 1
        # A Python float, so float32 weights are not promoted to float64.
        lr_t = float(self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter))
        for key in params:
            g = grads[key]
            self.m[key] += (1 - self.beta1) * (g - self.m[key])
            self.v[key] += (1 - self.beta2) * (g * g - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(name: str, lr: float, momentum: float = 0.9):
    """The optimizer called `name` (sgd | momentum | adagrad | rmsprop | adam)."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}") from None
    if cls is Momentum:
        return cls(lr=lr, momentum=momentum)
    return cls(lr=lr)
