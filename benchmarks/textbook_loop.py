"""Contender 2: TwoLayerNet trained the textbook way, in plain NumPy.

Written in the style of "Deep Learning from Scratch" ch. 5 (layer objects with
forward/backward, an OrderedDict of layers, float64 weights, a fresh
np.random.choice batch each iteration, the book's `accuracy` on a whole set at
once every epoch, and the book's `network.loss(...)` after each update to
record the loss curve). It is a baseline, not an optimised program: it keeps
the book's habits on purpose (float32 data times float64 weights, copies in
Relu, the first layer's input gradient, softmax then log(y + 1e-7)).

    python textbook_loop.py WORKDIR [--iters N] [--threads K] [--out result.json]

WORKDIR holds data/prepared/*.npy (see bench_data.prepare). The loop is the book's
own; harness.py and bench_data.py give it only its command line, the data files and the result file.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

from collections import OrderedDict  # noqa: E402

import numpy as np  # noqa: E402

import bench_data  # noqa: E402
import harness  # noqa: E402


# ---- ch. 3-4 functions ---------------------------------------------------------------
def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)   # guard against overflow
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:                        # one-hot labels -> label indices
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


# ---- ch. 5 layers --------------------------------------------------------------------
class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:          # one-hot labels
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {
            "W1": weight_init_std * np.random.randn(input_size, hidden_size),
            "b1": np.zeros(hidden_size),
            "W2": weight_init_std * np.random.randn(hidden_size, output_size),
            "b2": np.zeros(output_size),
        }
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {
            "W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
            "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db,
        }


# ---- ch. 5 training loop (train_neuralnet.py) ----------------------------------------
def main(argv=None):
    ap = harness.contender_parser(__doc__, threads=0, threads_help="BLAS threads via threadpoolctl; 0 = numpy's default")
    ap.add_argument("--no-loss-record", action="store_true",
                    help="skip the book's network.loss(...) after each update (an extra forward pass); "
                         "for measuring what it costs, not the default")
    args = ap.parse_args(argv)

    limiter = harness.limit_blas(args.threads)
    blas = harness.blas_info()

    (x_train, t_train), (x_test, t_test) = bench_data.load_prepared(args.workdir)

    np.random.seed(args.seed)
    network = TwoLayerNet(input_size=x_train.shape[1], hidden_size=args.hidden, output_size=10,
                          weight_init_std=args.weight_init_std)
    iters_num, batch_size, learning_rate = args.iters, args.batch_size, args.lr
    train_size = x_train.shape[0]
    iter_per_epoch = max(train_size / batch_size, 1)
    train_loss_list, train_acc_list, test_acc_list = [], [], []

    t_loop = time.perf_counter()
    for i in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]

        grad = network.gradient(x_batch, t_batch)
        for key in ("W1", "b1", "W2", "b2"):
            network.params[key] -= learning_rate * grad[key]

        if not args.no_loss_record:
            loss = network.loss(x_batch, t_batch)
            train_loss_list.append(loss)

        if i % iter_per_epoch == 0:
            train_acc = network.accuracy(x_train, t_train)
            test_acc = network.accuracy(x_test, t_test)
            train_acc_list.append(train_acc)
            test_acc_list.append(test_acc)
    loop_seconds = time.perf_counter() - t_loop

    # The book's loop ends on the last epoch's numbers; the weights after the
    # last update are scored on the test set too (outside the loop time, inside the
    # process time).
    final_test = float(network.accuracy(x_test, t_test))
    limiter.restore_original_limits()

    result = {
        "name": "textbook",
        "loop_seconds": loop_seconds,
        "startup_seconds": t_loop - T_START,
        "evaluations": len(test_acc_list),
        "last_epoch_test_accuracy": float(test_acc_list[-1]) if test_acc_list else None,
        "last_epoch_train_accuracy": float(train_acc_list[-1]) if train_acc_list else None,
        "test_accuracy": final_test,
        "train_accuracy": float(train_acc_list[-1]) if train_acc_list else None,  # last epoch's
        "final_loss": float(train_loss_list[-1]) if train_loss_list else None,
        "blas": blas,
        "threads": args.threads or "numpy default",
        "loss_record": not args.no_loss_record,
        "dtype": str(network.params["W1"].dtype),
    }
    harness.write_result(result, args.out)


if __name__ == "__main__":
    main()
