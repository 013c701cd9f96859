"""The fused gradient: TwoLayerNet.gradient's numbers in fewer, larger NumPy calls.

The layers (zerodl.layers, TwoLayerNet.gradient) are the reference a reader follows;
this is the same computation arranged for speed, and zerodl.train uses it only for a
network it matches exactly (BatchGradient.unsupported), saying which one ran.
"""
from __future__ import annotations

import numpy as np

from .layers import Affine, Relu, SoftmaxWithLoss
from .net import TwoLayerNet


class BatchGradient:
    """`net.gradient(x, t)` for the training loop: the same gradient, the fast way.

    - Each bias rides in its GEMM: the batch comes with a column of ones,
      x1 = [x 1] (zerodl.batches.batch_buffer), so x1 @ [W1; b1] is x @ W1 + b1,
      and x1ᵀ @ dout gives [dW1; db1] at once. The same for the second layer.
    - The logits are kept as (classes, batch), so the max and the sum of each
      sample's softmax run across rows, not along 10-element ones.
    - Every array is allocated once; `grads` holds the usual four, as views of
      the two GEMM outputs [dW1; db1] and [dW2; db2].

    The numbers equal net.gradient's up to float rounding (the bias is added
    inside the GEMM's sum instead of after it; tests/test_core_fused.py holds it to the
    layers). Each call returns the batch loss. It knows one network only, the layers
    below; `unsupported` says why it cannot stand in for any other.
    """

    LAYERS = (Affine, Relu, Affine)

    @classmethod
    def unsupported(cls, net, x) -> str | None:
        """None if this class computes exactly net.gradient's numbers for batches of x; else why not."""
        if type(net) is not TwoLayerNet:  # a subclass may have a gradient of its own
            return f"it knows TwoLayerNet, not {type(net).__name__}"
        layers = tuple(type(layer) for layer in net.layers.values())
        if layers != cls.LAYERS or type(net.lastLayer) is not SoftmaxWithLoss:
            names = " -> ".join(t.__name__ for t in layers + (type(net.lastLayer),))
            return f"it knows Affine -> Relu -> Affine -> SoftmaxWithLoss, not {names}"
        if net.weight_decay_lambda:
            return "it knows no weight decay"
        if not net.has_flat_params():  # it writes through flat_params' views
            return "net.params were rebound: they are no longer views of net.flat_params"
        if x.ndim != 2:
            return f"it takes rows of numbers, not data of shape {x.shape}"
        return None

    def __init__(self, net: TwoLayerNet, batch_size: int):
        dt, n = net.dtype, int(batch_size)
        d, hidden, out = net.input_size, net.hidden_size, net.output_size
        split = (d + 1) * hidden
        self.W1b1 = net.flat_params[:split].reshape(d + 1, hidden)
        self.W2b2 = net.flat_params[split:].reshape(hidden + 1, out)
        self.W2 = self.W2b2[:hidden]
        self.dW1b1 = np.empty((d + 1, hidden), dt)
        self.dW2b2 = np.empty((hidden + 1, out), dt)
        self.grads = {"W1": self.dW1b1[:d], "b1": self.dW1b1[d], "W2": self.dW2b2[:hidden], "b2": self.dW2b2[hidden]}
        self.a1 = np.empty((n, hidden), dt)
        self.mask = np.empty((n, hidden), bool)
        self.z1 = np.ones((n, hidden + 1), dt)  # [relu(a1) 1]
        self.relu_out = self.z1[:, :hidden]
        self.logits = np.empty((out, n), dt)
        self.y = np.empty((out, n), dt)         # softmax, then the logits' gradient
        self.m = np.empty(n, dt)
        self.s = np.empty(n, dt)
        self.lse = np.empty(n, np.float64)
        self.dz1 = np.empty((n, hidden), dt)
        self.cols = np.arange(n)
        self.n = n

    def __call__(self, x1, t) -> float:
        a1, z1, logits, y, m, s, lse, cols = self.a1, self.z1, self.logits, self.y, self.m, self.s, self.lse, self.cols
        # forward: Affine, Relu, Affine
        np.matmul(x1, self.W1b1, out=a1)
        np.greater(a1, 0, out=self.mask)
        np.multiply(a1, self.mask, out=self.relu_out)
        np.dot(self.W2b2.T, z1.T, out=logits)  # np.dot: less overhead than matmul on small ones
        # SoftmaxWithLoss: loss = mean(log(sum exp(a - m)) + m - a[t]), in float64
        np.maximum.reduce(logits, axis=0, out=m)
        np.subtract(logits, m, out=y)
        np.exp(y, out=y)
        np.add.reduce(y, axis=0, out=s)
        np.log(s, out=lse, dtype=np.float64)
        lse += m
        lse -= logits[t, cols]
        loss = float(np.add.reduce(lse)) / self.n
        # backward: dout = (softmax - onehot(t)) / n
        s *= self.n
        y /= s
        y[t, cols] -= 1 / self.n
        np.dot(z1.T, y.T, out=self.dW2b2)
        np.dot(y.T, self.W2.T, out=self.dz1)
        np.multiply(self.dz1, self.mask, out=self.dz1)
        np.matmul(x1.T, self.dz1, out=self.dW1b1)  # no input gradient: x is the data
        return loss
