"""The book's mini-batch training loop (chapter 4.5), with epoch bookkeeping.

One epoch is train_size // batch_size iterations. Each epoch draws a fresh
permutation of the training set and walks it in batches, so an epoch really
visits every sample once (the book draws each batch with np.random.choice,
which visits only ~63% of them per "epoch"); the last train_size % batch_size
samples of a permutation wait for the next epoch's shuffle.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import DivergenceError
from .net import BatchGradient, TwoLayerNet
from .worker import Helper, batch_buffer, take_batch

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


@dataclass
class TrainResult:
    loss: np.ndarray                       # per iteration: the batch's loss before its update
    epochs: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    iter_per_epoch: int = 0              # the book's name: train_size // batch_size


def train(net, optimizer, x_train, t_train, x_test, t_test, *, iters: int, batch_size: int,
          rng: np.random.Generator, gradient: str = "backprop", helper: bool = False,
          on_iteration: Callable[[int, float], None] | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train `net` in place with mini-batches; return the loss and accuracy history.

    helper=True gathers the batches and scores the epochs in a helper process
    (zerodl.worker) on the second core; the results are bit-identical either way, as
    long as the callbacks do not draw from `rng` (a draw before the next epoch's
    permutation is caught; on_epoch is called when the helper's scores arrive, up to
    a few epochs late). If the helper cannot be started, training goes on in this process.
    Raises DivergenceError as soon as a batch loss is NaN or infinite, or grows
    to DIVERGED times the first one, or a whole-set loss is not finite.
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
    if gradient not in ("backprop", "numerical"):
        raise ValueError(f"gradient must be 'backprop' or 'numerical', got {gradient!r}")
    iter_per_epoch = max(n // batch_size, 1)
    losses = np.empty(iters, dtype=np.float64)
    result = TrainResult(loss=losses, iter_per_epoch=iter_per_epoch)
    lr = getattr(optimizer, "lr", None)
    backprop = None
    # A subclass may have other layers; BatchGradient writes into flat_params' views.
    if gradient == "backprop" and type(net) is TwoLayerNet and x_train.ndim == 2 and net.has_flat_params():
        backprop = BatchGradient(net, batch_size)
    ones = backprop is not None  # BatchGradient's batches end in a column of ones
    pending = deque()  # (epoch, iteration) of the scorings the helper has not returned yet

    def record(epoch, iteration, scores):
        r = EpochRecord(round(epoch, 6), iteration, *scores)
        if not math.isfinite(r.train_loss):
            raise DivergenceError(
                f"training diverged: the training-set loss is {r.train_loss} after iteration {iteration} "
                f"with train.learning_rate = {lr}; try a smaller train.learning_rate")
        result.epochs.append(r)
        if on_epoch is not None:
            on_epoch(r)

    def collect(scorings):
        for scores in scorings:
            record(*pending.popleft(), scores)

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # Overflow on the way to divergence is reported by the guard, not as numpy warnings
        # (entered first: the helper inherits it).
        stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
        worker = None
        if helper:
            worker = Helper(net, x_train, t_train, x_test, t_test, iters=iters, batch_size=batch_size,
                            iter_per_epoch=iter_per_epoch, rng=rng, ones=ones)
            stack.callback(worker.close)  # before start(): no helper process outlives the loop
            try:
                worker.start()
            except OSError:  # no process to be had (EAGAIN, ENOMEM): the same run, in this process
                worker = None
        if worker is None:
            # The batch lives in two buffers filled in place each iteration.
            x_batch = batch_buffer(batch_size, x_train, ones, net.dtype)
            scratch = np.empty((batch_size,) + x_train.shape[1:], dtype=net.dtype)
            t_batch = np.empty(batch_size, dtype=t_train.dtype)
            perm = None
        limit = math.inf
        for i in range(iters):
            k = i % iter_per_epoch
            if worker is not None:
                x_batch, t_batch = worker.batch(i)
                if worker.scored:
                    collect(worker.done())
            else:
                if k == 0:
                    perm = rng.permutation(n)
                take_batch(x_train, t_train, perm, k, batch_size, x_batch, t_batch, scratch)

            if backprop is not None:
                loss = backprop(x_batch, t_batch)
                grads = backprop.grads
            elif gradient == "backprop":
                grads = net.gradient(x_batch, t_batch)
                loss = net.lastLayer.loss  # computed by gradient's forward pass
            else:
                loss = net.loss(x_batch, t_batch)
                grads = {key: g.astype(net.dtype) for key, g in net.numerical_gradient(x_batch, t_batch).items()}
            if i == 0:
                limit = DIVERGED * max(loss, 1.0)
            if not loss <= limit:  # also true for NaN
                if worker is not None:
                    collect(worker.finish())  # an earlier epoch's failed scoring is reported first
                raise DivergenceError(
                    f"training diverged: the batch loss became {loss:.3g} at iteration {i + 1} "
                    f"(it started at {losses[0] if i else loss:.3g}) with train.learning_rate = {lr}; "
                    "try a smaller train.learning_rate")
            optimizer.update(net.params, grads)
            losses[i] = loss
            if on_iteration is not None:
                on_iteration(i + 1, loss)

            if k == iter_per_epoch - 1 or i + 1 == iters:
                pending.append(((i + 1) / iter_per_epoch, i + 1))
                if worker is not None and i + 1 < iters:
                    worker.submit(net.params)
                else:  # the last scoring is done here, while the helper may still be on the one before
                    scores = _scores(net, x_train, t_train, x_test, t_test)
                    if worker is not None:
                        collect(worker.finish())
                    collect([scores])

    result.seconds = time.perf_counter() - start
    return result


def _labels(t):
    """Integer labels; one-hot rows (the book's one_hot_label=True) become their argmax.

    The batch is gathered with np.take into a 1-D buffer: one-hot labels would be
    read from the flattened array, i.e. silently wrong.
    """
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


def _scores(net, x_train, t_train, x_test, t_test) -> tuple[float, float, float, float]:
    return net.evaluate(x_train, t_train) + net.evaluate(x_test, t_test)
