"""The book's mini-batch training loop (chapter 4.5), with epoch bookkeeping.

    for each iteration:
        take a batch                   batches.batch(i)
        compute the gradient           gradient(x_batch, t_batch)
        update the weights             optimizer.update(net.params, grads)
        after each epoch, record the loss and accuracy on the whole training and test sets,
        and the size of each parameter and of its last update (a learning rate that is too
        large or too small shows in the ratio of the two)

Two seams keep the fast machinery out of the loop's shape:
- where batches come from, and where epochs are scored: in this process, or a helper
  process on the second core (zerodl.batches, zerodl.worker; the same numbers);
- how the gradient is computed: the layers (net.gradient, the reference), the fused
  BatchGradient (zerodl.fused; used only for a network it matches exactly), or the
  chapter-4 numerical gradient. TrainResult says which ran, and why.

One epoch is train_size // batch_size iterations. Each epoch draws a fresh
permutation of the training set and walks it in batches, so an epoch really
visits every sample once (the book draws each batch with np.random.choice,
which visits only ~63% of them per "epoch").
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .batches import InProcess
from .errors import DivergenceError
from .fused import BatchGradient
from .worker import Helper

# A batch loss this many times the first one means the updates blew up. The exact
# log-sum-exp loss seldom becomes NaN: at learning_rate 1e6 it reaches 1e20 and the
# net dies to chance accuracy with finite weights. Runs that recover (adagrad at 1.0,
# rmsprop at 0.1) were measured to spike to at most ~500x.
DIVERGED = 1e4


@dataclass
class EpochRecord:
    epoch: float          # completed epochs (fractional for a final partial epoch)
    iteration: int        # iterations done so far
    train_loss: float     # on the whole training set
    train_accuracy: float
    test_loss: float      # on the whole test set
    test_accuracy: float
    # Each parameter's norm (Frobenius) after the epoch's last update, and the norm of that
    # update (W after - W before): measured in this process when the epoch ends.
    weight_norm: dict[str, float] = field(default_factory=dict)
    update_norm: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    loss: np.ndarray                       # per iteration: the batch's loss before its update
    epochs: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    iter_per_epoch: int = 0              # the book's name: train_size // batch_size
    gradient: str = ""                   # which gradient ran, and why that one
    batches: str = ""                    # where the batches came from


def train(net, optimizer, x_train, t_train, x_test, t_test, *, iters: int, batch_size: int,
          rng: np.random.Generator, gradient: str = "backprop", helper: bool = False, fused: bool = True,
          on_iteration: Callable[[int, float], None] | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train `net` in place with mini-batches; return the loss and accuracy history.

    gradient: "backprop" (the fused BatchGradient if it matches the net and `fused`,
    else the layers) or "numerical". helper=True gathers the batches and scores the
    epochs in a helper process on the second core; the results are bit-identical
    either way, as long as the callbacks do not draw from `rng` (a draw before the
    next epoch's permutation is caught; on_epoch is called when the helper's scores
    arrive, up to a few epochs late). If no helper can be started, training goes on
    in this process. Raises DivergenceError as soon as a batch loss is NaN or
    infinite, or grows to DIVERGED times the first one, or a whole-set loss is not finite.
    """
    t_train, t_test = _labels(t_train), _labels(t_test)
    # Batches are copied into buffers of the net's dtype; casting once here instead of per
    # batch gives the same numbers (a no-op for the stages, whose data is already cast).
    x_train = np.asarray(x_train, dtype=net.dtype)
    n = len(x_train)
    if not len(x_test):
        raise ValueError("the test set is empty")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size {batch_size} must be between 1 and the training set size {n}")
    iter_per_epoch = max(n // batch_size, 1)
    grad = choose_gradient(net, gradient, batch_size, x_train, fused)
    losses = np.empty(iters, dtype=np.float64)
    result = TrainResult(loss=losses, iter_per_epoch=iter_per_epoch, gradient=grad.about)
    guard = DivergenceGuard(getattr(optimizer, "lr", None))

    def record(tag, scores):
        r = EpochRecord(round(tag[0], 6), tag[1], *scores, *tag[2])
        guard.check_record(r)
        result.epochs.append(r)
        if on_epoch is not None:
            on_epoch(r)

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # Overflow on the way to divergence is reported by the guard, not as numpy warnings
        # (entered first: the helper inherits it).
        stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
        batches = open_batches(stack, helper, net, x_train, t_train, x_test, t_test, iters=iters,
                               batch_size=batch_size, iter_per_epoch=iter_per_epoch, rng=rng, ones=grad.ones)
        result.batches = batches.name
        before = {k: np.empty_like(v) for k, v in net.params.items()}  # the params before an epoch's last update
        for i in range(iters):
            x_batch, t_batch = batches.batch(i)
            loss, grads = grad(x_batch, t_batch)
            if not guard.batch_ok(i, loss):
                batches.finish()  # an earlier epoch's failed scoring is reported first
                while batches.scored:
                    record(*batches.scored.popleft())
                raise guard.batch_error(i, loss, losses)
            epoch_end = (i + 1) % iter_per_epoch == 0 or i + 1 == iters
            if epoch_end:
                for k, v in net.params.items():
                    np.copyto(before[k], v)
            optimizer.update(net.params, grads)
            losses[i] = loss
            if on_iteration is not None:
                on_iteration(i + 1, loss)
            if epoch_end:
                # The norms travel in the tag: the helper's scores may arrive epochs later.
                tag = ((i + 1) / iter_per_epoch, i + 1, param_norms(net.params, before))
                batches.submit(net.params, tag, last=i + 1 == iters)
            while batches.scored:
                record(*batches.scored.popleft())
    result.seconds = time.perf_counter() - start
    return result


def param_norms(params: dict, before: dict) -> tuple[dict[str, float], dict[str, float]]:
    """({key: ||W||}, {key: ||W - W_before||}), Frobenius norms. Overwrites `before`."""
    weight, update = {}, {}
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is handled in _norm
        for k, v in params.items():
            weight[k] = _norm(v)
            update[k] = _norm(np.subtract(v, before[k], out=before[k]))
    return weight, update


def _norm(a) -> float:
    a = np.ravel(a)
    squares = float(np.dot(a, a))  # one BLAS dot in the weights' dtype: ~3 us for W1
    if not math.isfinite(squares):  # float32 squares overflow long before the weights do
        a = a.astype(np.float64)
        squares = float(np.dot(a, a))
    return math.sqrt(squares)


# --- seam 1: where the batches come from ----------------------------------------------------------

def open_batches(stack: contextlib.ExitStack, helper: bool, net, x_train, t_train, x_test, t_test, *,
                 iters: int, batch_size: int, iter_per_epoch: int, rng, ones: bool):
    """A Helper (started, closed by `stack`) if asked for and one can be had, else InProcess."""
    if helper:
        worker = Helper(net, x_train, t_train, x_test, t_test, iters=iters, batch_size=batch_size,
                        iter_per_epoch=iter_per_epoch, rng=rng, ones=ones)
        stack.callback(worker.close)  # before start(): no helper process outlives the loop
        try:
            worker.start()
            return worker
        except OSError:  # no process to be had (EAGAIN, ENOMEM): the same run, in this process
            pass
    return InProcess(net, x_train, t_train, x_test, t_test, batch_size=batch_size,
                     iter_per_epoch=iter_per_epoch, rng=rng, ones=ones)


# --- seam 2: how the gradient is computed ---------------------------------------------------------
# Each is called as grad(x_batch, t_batch) -> (batch loss, {"W1": dW1, ...}); `ones` says
# whether it takes its batches with a column of ones (zerodl.batches.batch_buffer).

class LayersGradient:
    """Backpropagation through the net's layers: net.gradient, the reference (chapter 5)."""

    ones = False

    def __init__(self, net, about="layers (net.gradient)"):
        self.net, self.about = net, about

    def __call__(self, x, t):
        grads = self.net.gradient(x, t)
        return self.net.last_loss, grads  # the loss of gradient's own forward pass


class FusedGradient:
    """zerodl.fused.BatchGradient: the layers' numbers, with each bias folded into its GEMM."""

    ones = True
    about = "fused (zerodl.fused.BatchGradient)"

    def __init__(self, net, batch_size):
        self.fn = BatchGradient(net, batch_size)
        self.grads = self.fn.grads

    def __call__(self, x1, t):
        return self.fn(x1, t), self.grads


class NumericalGradient:
    """The chapter-4 way: net.numerical_gradient, central differences (slow, exact to ~1e-10)."""

    ones = False
    about = "numerical (net.numerical_gradient)"

    def __init__(self, net):
        self.net = net

    def __call__(self, x, t):
        loss = self.net.loss(x, t, train_flg=True)  # draws the dropout mask the gradient then holds
        grads = self.net.numerical_gradient(x, t)
        return loss, {key: g.astype(self.net.dtype) for key, g in grads.items()}


def choose_gradient(net, gradient: str, batch_size: int, x_train, fused: bool = True):
    """The gradient for this net: the fused one only where it computes the layers' numbers."""
    if gradient == "numerical":
        return NumericalGradient(net)
    if gradient != "backprop":
        raise ValueError(f"gradient must be 'backprop' or 'numerical', got {gradient!r}")
    if not fused:
        return LayersGradient(net, "layers (net.gradient; the fused path was turned off)")
    why_not = BatchGradient.unsupported(net, x_train)
    if why_not:
        return LayersGradient(net, f"layers (net.gradient; not the fused BatchGradient: {why_not})")
    return FusedGradient(net, batch_size)


# --- the divergence guard -------------------------------------------------------------------------

class DivergenceGuard:
    """Stops a run whose loss is NaN, infinite, or DIVERGED times its first batch's."""

    def __init__(self, lr):
        self.lr = lr
        self.limit = math.inf

    def batch_ok(self, i: int, loss: float) -> bool:
        if i == 0:
            self.limit = DIVERGED * max(loss, 1.0)
        return loss <= self.limit  # False for NaN too

    def batch_error(self, i: int, loss: float, losses) -> DivergenceError:
        return DivergenceError(
            f"training diverged: the batch loss became {loss:.3g} at iteration {i + 1} "
            f"(it started at {losses[0] if i else loss:.3g}) with train.learning_rate = {self.lr}; "
            "try a smaller train.learning_rate")

    def check_record(self, r: EpochRecord) -> None:
        if not math.isfinite(r.train_loss):
            raise DivergenceError(
                f"training diverged: the training-set loss is {r.train_loss} after iteration {r.iteration} "
                f"with train.learning_rate = {self.lr}; try a smaller train.learning_rate")


def _labels(t):
    """Integer labels; one-hot rows (the book's one_hot_label=True) become their argmax.

    The batch is gathered with np.take into a 1-D buffer: one-hot labels would be
    read from the flattened array, i.e. silently wrong.
    """
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t
