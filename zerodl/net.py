"""TwoLayerNet (chapters 4-6): Affine -> Relu or Sigmoid [-> Dropout] -> Affine -> SoftmaxWithLoss.

Chapter 4 builds it with a sigmoid hidden layer and trains it with the numerical
gradient; chapter 5 with ReLU and backpropagation; chapter 6 adds weight decay
(`weight_decay_lambda`) and Dropout against overfitting.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np

from . import numerical
from .gradient import H, numerical_gradient
from .errors import ModelError
from .model_file import load_model, save_model
from .layers import Affine, Dropout, Relu, Sigmoid, SoftmaxWithLoss

# model.activation -> the hidden layer and its name in `layers` (the book's names)
ACTIVATIONS = {"relu": ("Relu1", Relu), "sigmoid": ("Sigmoid1", Sigmoid)}

EVAL_CHUNK = 512  # rows per forward pass when scoring a whole set: stays in cache


def init_std(weight_init_std, fan_in: int) -> float:
    """A number is used as is; "he" is sqrt(2/n) (for ReLU), "xavier" is sqrt(1/n)."""
    if weight_init_std == "he":
        return float(np.sqrt(2.0 / fan_in))
    if weight_init_std == "xavier":
        return float(np.sqrt(1.0 / fan_in))
    if isinstance(weight_init_std, str):
        raise ValueError(f"weight_init_std: expected a number, 'he' or 'xavier', got {weight_init_std!r}")
    return float(weight_init_std)


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01,
                 seed=None, dtype=np.float32, rng=None, activation="relu", dropout_ratio=0.0,
                 weight_decay_lambda=0.0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio: expected a number in [0, 1), got {dropout_ratio!r}")
        self.input_size, self.hidden_size, self.output_size = int(input_size), int(hidden_size), int(output_size)
        self.weight_init_std = weight_init_std
        self.activation = activation
        self.dropout_ratio = float(dropout_ratio)
        self.weight_decay_lambda = float(weight_decay_lambda)
        self.dtype = np.dtype(dtype)
        rng = rng if rng is not None else np.random.default_rng(seed)
        # Drawn in float64 and then cast, so float32 and float64 nets of one seed agree.
        std1 = init_std(weight_init_std, input_size)
        std2 = init_std(weight_init_std, hidden_size)
        W1 = std1 * rng.standard_normal((input_size, hidden_size))
        W2 = std2 * rng.standard_normal((hidden_size, output_size))
        # All four live in one array, in this order, so [W1; b1] and [W2; b2] are
        # contiguous matrices: the training loop folds each bias into its GEMM
        # (BatchGradient).
        self.flat_params = np.zeros(W1.size + hidden_size + W2.size + output_size, dtype=self.dtype)
        self._bind_params()
        self.params["W1"][...] = W1
        self.params["W2"][...] = W2
        # Dropout's masks come from a stream of their own, spawned without drawing from
        # rng: the batch order of a run stays the same with dropout on or off.
        self.dropout_rng = rng.spawn(1)[0] if self.dropout_ratio else None
        self.last_loss = None  # the loss of the last forward pass, as loss() returned it
        self._build_layers()

    def _bind_params(self):
        """params['W1'] ... params['b2'] as views of flat_params."""
        d, h, o = self.input_size, self.hidden_size, self.output_size
        self.params = {}
        start = 0
        for key, shape in (("W1", (d, h)), ("b1", (h,)), ("W2", (h, o)), ("b2", (o,))):
            size = int(np.prod(shape))
            self.params[key] = self.flat_params[start:start + size].reshape(shape)
            start += size

    def __getstate__(self):
        # copy.deepcopy would copy each view on its own, apart from flat_params:
        # copy flat_params alone and make the views and the layers anew.
        state = self.__dict__.copy()
        for key in ("params", "layers", "lastLayer"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_params()
        self._build_layers()

    def has_flat_params(self) -> bool:
        """Whether params are still the views of flat_params (not if someone rebound one)."""
        return all(np.shares_memory(v, self.flat_params) for v in self.params.values())

    def _build_layers(self):
        p = self.params
        name, Activation = ACTIVATIONS[self.activation]
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(p["W1"], p["b1"], input_grad=False)
        self.layers[name] = Activation()
        if self.dropout_ratio:
            self.layers["Dropout1"] = Dropout(self.dropout_ratio, self.dropout_rng)
        self.layers["Affine2"] = Affine(p["W2"], p["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def set_params(self, params: dict) -> None:
        """Copy these weights (e.g. from a saved model) into the net's own arrays."""
        for k, v in params.items():
            want = self.params[k].shape
            if np.shape(v) != want:
                raise ValueError(f"{k}: shape {np.shape(v)}, expected {want}")
        for k, v in params.items():  # in place: the arrays stay views of flat_params
            self.params[k][...] = v

    def save(self, path, **extra) -> None:
        """Write the weights and the net's sizes (plus `extra` settings) to an .npz, no pickle."""
        config = {"input_size": self.input_size, "hidden_size": self.hidden_size,
                  "output_size": self.output_size, "weight_init_std": self.weight_init_std,
                  "dtype": self.dtype.name, "activation": self.activation,
                  "dropout_ratio": self.dropout_ratio, **extra}
        save_model(path, self.params, config)

    @classmethod
    def load(cls, path) -> "TwoLayerNet":
        """A net from a file written by `save`; ModelError if it is anything else."""
        params, meta = load_model(path)  # which checks the arrays against the meta's sizes and dtype
        dtype = meta.get("dtype", "float32")
        # Models from before the activation was recorded are all ReLU without dropout.
        activation = meta.get("activation", "relu")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ModelError(f"{path}: model activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        ratio = meta.get("dropout_ratio", 0.0)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise ModelError(f"{path}: model dropout_ratio {ratio!r} is not a number in [0, 1)")
        try:  # the net's own arrays, beside the loaded ones: as large again
            net = cls(meta["input_size"], meta["hidden_size"], meta["output_size"], seed=0, dtype=dtype,
                      activation=activation, dropout_ratio=ratio)
            net.set_params(params)
        except MemoryError:
            raise ModelError(f"{path}: out of memory loading the model; free some memory and run again") from None
        net.weight_init_std = meta.get("weight_init_std")
        net.meta = meta
        return net

    def check_data(self, x, t, where) -> None:
        """ModelError (naming `where`, the model file) unless x and t fit this net."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ModelError(f"{where}: has {self.input_size} inputs, but the digits have shape {x.shape}")
        if len(t) and int(t.max()) >= self.output_size:
            raise ModelError(f"{where}: has {self.output_size} outputs, but the data has label {int(t.max())}")
        if len(t) and int(t.min()) < 0:
            raise ModelError(f"{where}: has outputs 0 to {self.output_size - 1}, but the data has label {int(t.min())}")

    def _cast(self, x):
        return np.asarray(x, dtype=self.dtype)

    def predict(self, x, train_flg=False):
        """The logits (scores before softmax) for each row of x; train_flg: Dropout drops."""
        x = self._cast(x)
        for layer in self.layers.values():
            x = layer.forward(x, train_flg) if isinstance(layer, Dropout) else layer.forward(x)
        return x

    def loss(self, x, t, train_flg=False):
        """Cross-entropy of the softmax, plus the weight decay λ/2·(ΣW1² + ΣW2²)."""
        y = self.predict(x, train_flg)
        loss = self.lastLayer.forward(y, t)
        if self.weight_decay_lambda:
            loss += 0.5 * self.weight_decay_lambda * float(np.sum(self.params["W1"] ** 2) + np.sum(self.params["W2"] ** 2))
        self.last_loss = loss
        return loss

    def accuracy(self, x, t):
        t = np.asarray(t)
        if t.ndim != 1:
            t = t.argmax(axis=1)
        correct = 0
        for start in range(0, len(t), EVAL_CHUNK):
            y = self.predict(x[start:start + EVAL_CHUNK])
            correct += int(np.count_nonzero(y.argmax(axis=1) == t[start:start + EVAL_CHUNK]))
        return correct / len(t)

    def evaluate(self, x, t, predicted=None) -> tuple[float, float]:
        """(loss, accuracy) on a whole set, in chunks, from one forward pass.

        `predicted`, if given (an int array of len(x)), receives each row's class.
        """
        t = np.asarray(t)
        if t.ndim != 1:  # one-hot, as accuracy accepts
            t = t.argmax(axis=1)
        steps = self.evaluate_steps(x, t, predicted)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def evaluate_steps(self, x, t, predicted=None):
        """evaluate's work as a generator that yields after each EVAL_CHUNK of integer
        labels t and returns (loss, accuracy), so a caller can do other work between
        chunks (zerodl.worker does)."""
        loss_sum, correct = 0.0, 0
        for start in range(0, len(t), EVAL_CHUNK):
            tb = t[start:start + EVAL_CHUNK]
            y = self.predict(x[start:start + EVAL_CHUNK])
            loss_sum += SoftmaxWithLoss().forward(y, tb) * len(tb)
            classes = y.argmax(axis=1)
            correct += int(np.count_nonzero(classes == tb))
            if predicted is not None:
                predicted[start:start + EVAL_CHUNK] = classes
            yield
        return loss_sum / len(t), correct / len(t)

    def gradient(self, x, t):
        """Backpropagation: the gradient of loss(x, t, train_flg=True) for every parameter (fresh arrays)."""
        self.loss(x, t, train_flg=True)
        dout = self.lastLayer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        grads = {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}
        if self.weight_decay_lambda:
            grads["W1"] = grads["W1"] + self.weight_decay_lambda * self.params["W1"]
            grads["W2"] = grads["W2"] + self.weight_decay_lambda * self.params["W2"]
        return grads

    @contextlib.contextmanager
    def dropout_held(self, x):
        """Every forward pass inside uses one dropout mask: the last training pass's if it
        was for a batch like x, else one drawn now. The numerical gradient and the gradient
        check need one network, not a new one per pass."""
        drops = [layer for layer in self.layers.values() if isinstance(layer, Dropout)]
        for d in drops:
            d.hold = True
        try:
            if any(d.mask is None or d.mask.shape[0] != len(x) for d in drops):
                for d in drops:
                    d.mask = None
                self.predict(x, train_flg=True)
            yield
        finally:
            for d in drops:
                d.hold = False

    def numerical_gradient(self, x, t, h=H):
        """Chapter 4: (L(W + h) - L(W - h)) / 2h for every weight, in float64, where
        L = loss(x, t, train_flg=True) with the dropout mask held (dropout_held).

        The numbers of perturbing one weight at a time (numerical_gradient_plain), from
        zerodl.numerical's closed form of that difference: ~10,000 times faster, and the
        same to ~1e-12. A net that module does not know, or inputs too large for its
        series, get the plain loop.
        """
        x = np.asarray(x, dtype=np.float64)
        t = np.asarray(t)
        if t.ndim == 2:
            t = t.argmax(axis=1)
        if x.ndim == 1:
            x, t = x.reshape(1, -1), t.reshape(1)
        if type(self) is not TwoLayerNet or numerical.unsupported(self):  # a subclass may have its own loss
            return self.numerical_gradient_plain(x, t, h)
        with self.dropout_held(x):
            grads = numerical.central_difference(self, x, t, h)
        return grads if grads is not None else self.numerical_gradient_plain(x, t, h)

    def numerical_gradient_plain(self, x, t, h=H):
        """The book's own numerical gradient: one weight at a time, two forward passes each."""
        with self.dropout_held(x):
            loss_W = lambda W: self.loss(x, t, train_flg=True)  # noqa: E731 - the book's name
            return {k: numerical_gradient(loss_W, self.params[k], h) for k in ("W1", "b1", "W2", "b2")}
