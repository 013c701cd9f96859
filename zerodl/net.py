"""TwoLayerNet (chapters 4-5): Affine -> Relu -> Affine -> SoftmaxWithLoss."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .gradient import H
from .errors import ModelError
from .io import load_model, save_model
from .layers import Affine, Relu, SoftmaxWithLoss

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
                 seed=None, dtype=np.float32, rng=None):
        self.input_size, self.hidden_size, self.output_size = int(input_size), int(hidden_size), int(output_size)
        self.weight_init_std = weight_init_std
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
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(p["W1"], p["b1"], input_grad=False)
        self.layers["Relu1"] = Relu()
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
                  "dtype": self.dtype.name, **extra}
        save_model(path, self.params, config)

    @classmethod
    def load(cls, path) -> "TwoLayerNet":
        """A net from a file written by `save`; ModelError if it is anything else."""
        params, meta = load_model(path)
        dtype = meta.get("dtype", "float32")
        if dtype not in ("float32", "float64"):
            raise ModelError(f"{path}: model dtype {dtype!r} is not float32 or float64")
        net = cls(meta["input_size"], meta["hidden_size"], meta["output_size"], seed=0, dtype=dtype)
        net.set_params(params)
        net.weight_init_std = meta.get("weight_init_std")
        net.meta = meta
        return net

    def check_data(self, x, t, where) -> None:
        """ModelError (naming `where`, the model file) unless x and t fit this net."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ModelError(f"{where}: has {self.input_size} inputs, but the digits have shape {x.shape}")
        if len(t) and int(t.max()) >= self.output_size:
            raise ModelError(f"{where}: has {self.output_size} outputs, but the data has label {int(t.max())}")

    def _cast(self, x):
        return np.asarray(x, dtype=self.dtype)

    def predict(self, x):
        """The logits (scores before softmax) for each row of x."""
        x = self._cast(x)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

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
        """Backpropagation: the gradient of the loss for every parameter (fresh arrays)."""
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}

    def numerical_gradient(self, x, t, h=H):
        """The chapter-4 numerical gradient, central difference, in float64.

        Same numbers as perturbing one weight at a time and running the whole
        forward pass, but far faster: a perturbation of W1[i, j] or b1[j]
        changes only hidden unit j, and one of W2[j, k] or b2[k] only logit k,
        so each loss is recomputed from the unperturbed pass plus that change,
        for all i (or j) at once.
        """
        x = np.asarray(x, dtype=np.float64)
        t = np.asarray(t)
        if t.ndim == 2:
            t = t.argmax(axis=1)
        if x.ndim == 1:
            x, t = x.reshape(1, -1), t.reshape(1)
        W1, b1, W2, b2 = (self.params[k].astype(np.float64) for k in ("W1", "b1", "W2", "b2"))
        a1 = x @ W1 + b1                # (N, H) hidden pre-activations
        z1 = np.maximum(a1, 0)          # (N, H)
        z2 = z1 @ W2 + b2               # (N, O) logits
        n = x.shape[0]
        # exp of the logits shifted by each row's max; perturbations are far too
        # small to overflow it, so no per-perturbation max is needed.
        E = np.exp(z2 - z2.max(axis=1, keepdims=True))
        grads = {}

        def central(p_idx, n_idx, dp, dm, w_out, count):
            # Perturbation p changes the logits of sample n by dz * w_out (dz = dp for
            # +h, dm for -h). Samples whose forward pass does not change are left
            # out: their two losses are the same number and cancel exactly.
            keep = (dp != 0) | (dm != 0)
            p_idx, n_idx, dp, dm = p_idx[keep], n_idx[keep], dp[keep], dm[keep]
            s_plus, s_minus = _sum_exp(E, w_out, n_idx, dp), _sum_exp(E, w_out, n_idx, dm)
            # loss(+) - loss(-) per sample: the log-sum-exp terms minus the true logit's change
            diff = np.log(s_plus / s_minus) - (dp - dm) * w_out[t[n_idx]]
            return np.bincount(p_idx, weights=diff, minlength=count) / n / (2 * h)

        # W1[i, j] (and b1[j], as an input fixed at 1) moves hidden unit j of
        # sample n by h * x[n, i]: only the nonzero inputs matter.
        src = np.vstack([x.T, np.ones((1, n))])
        i_idx, n_idx = np.nonzero(src)
        step = h * src[i_idx, n_idx]
        g1 = np.empty((W1.shape[0] + 1, W1.shape[1]))
        for j in range(W1.shape[1]):
            a = a1[n_idx, j]
            z = z1[n_idx, j]
            dp = np.maximum(a + step, 0) - z
            dm = np.maximum(a - step, 0) - z
            g1[:, j] = central(i_idx, n_idx, dp, dm, W2[j], src.shape[0])
        grads["W1"], grads["b1"] = g1[:-1], g1[-1].copy()

        # W2[j, k] (and b2[k]) moves logit k of sample n by h * z1[n, j].
        src = np.vstack([z1.T, np.ones((1, n))])
        j_idx, n_idx = np.nonzero(src)
        step = h * src[j_idx, n_idx]
        g2 = np.empty((W2.shape[0] + 1, W2.shape[1]))
        eye = np.eye(W2.shape[1])
        for k in range(W2.shape[1]):
            g2[:, k] = central(j_idx, n_idx, step, -step, eye[k], src.shape[0])
        grads["W2"], grads["b2"] = g2[:-1], g2[-1].copy()
        return grads


_SERIES_ORDER = 6
_SERIES_LIMIT = 2e-3  # |d * w| below this: the Taylor remainder is < 1e-19 relative


def _sum_exp(E, w, rows, d):
    """sum_o E[rows, o] * exp(d * w[o]) for each entry of d.

    For the tiny d·w of a numerical gradient, exp is summed as its Taylor series
    with moments precomputed per sample: exact to double precision (the
    remainder is far below one rounding step), and no exp per perturbation.
    Larger steps fall back to computing the exps.
    """
    if d.size == 0:
        return d.copy()
    if np.max(np.abs(d)) * np.max(np.abs(w)) > _SERIES_LIMIT:
        return (E[rows] * np.exp(d[:, None] * w)).sum(axis=1)
    # moments[k, n] = sum_o E[n, o] * w[o]^k / k!
    powers = np.cumprod(np.vstack([np.ones_like(w)] + [w / k for k in range(1, _SERIES_ORDER + 1)]), axis=0)
    moments = powers @ E.T
    total = moments[_SERIES_ORDER][rows]
    for k in range(_SERIES_ORDER - 1, -1, -1):  # Horner
        total = total * d + moments[k][rows]
    return total
