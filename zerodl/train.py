"""The book's mini-batch training loop (chapter 4.5), with epoch bookkeeping.

One epoch is train_size // batch_size iterations. Each epoch draws a fresh
permutation of the training set and walks it in batches, so an epoch really
visits every sample once (the book draws each batch with np.random.choice,
which visits only ~63% of them per "epoch"); the last train_size % batch_size
samples of a permutation wait for the next epoch's shuffle.
"""
from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import DivergenceError

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
    iters_per_epoch: int = 0


def train(net, optimizer, x_train, t_train, x_test, t_test, *, iters: int, batch_size: int,
          rng: np.random.Generator, gradient: str = "backprop",
          on_iteration: Callable[[int, float], None] | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None,
          background: bool = True) -> TrainResult:
    """Train `net` in place with mini-batches; return the loss and accuracy history.

    Raises DivergenceError as soon as a batch loss is NaN or infinite, or grows
    to DIVERGED times the first one.

    With `background`, two chores leave the training thread: scoring the whole
    train and test sets after each epoch (a third of the work) runs on a copy
    of that epoch's weights, and the next batches are gathered ahead, each in a
    worker thread (NumPy releases the GIL in both), so a second core does them.
    The numbers are the same bits as without; only `on_epoch` comes a little later.
    """
    t_train, t_test = _labels(t_train), _labels(t_test)
    n = len(x_train)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size {batch_size} must be between 1 and the training set size {n}")
    if gradient not in ("backprop", "numerical"):
        raise ValueError(f"gradient must be 'backprop' or 'numerical', got {gradient!r}")
    iter_per_epoch = max(n // batch_size, 1)
    losses = np.empty(iters, dtype=np.float64)
    result = TrainResult(loss=losses, iters_per_epoch=iter_per_epoch)
    lr = getattr(optimizer, "lr", None)
    start = time.perf_counter()

    limit = math.inf
    scorer = _Scorer(net, x_train, t_train, x_test, t_test, lr, background)
    batches = _Batches(x_train, t_train, batch_size, iters, iter_per_epoch, rng, net.dtype, background)

    def collect(wait: bool) -> None:
        for record in scorer.done(wait):
            result.epochs.append(record)
            if on_epoch is not None:
                on_epoch(record)

    # Overflow on the way to divergence is reported by the guard, not as numpy warnings.
    with scorer, batches, np.errstate(over="ignore", invalid="ignore"):
        for i, (x_batch, t_batch) in enumerate(batches):
            if gradient == "backprop":
                grads = net.gradient(x_batch, t_batch)
                loss = net.lastLayer.loss  # computed by gradient's forward pass
            else:
                loss = net.loss(x_batch, t_batch)
                grads = {key: g.astype(net.dtype) for key, g in net.numerical_gradient(x_batch, t_batch).items()}
            if i == 0:
                limit = DIVERGED * max(loss, 1.0)
            if not loss <= limit:  # also true for NaN
                raise DivergenceError(
                    f"training diverged: the batch loss became {loss:.3g} at iteration {i + 1} "
                    f"(it started at {losses[0] if i else loss:.3g}) with train.learning_rate = {lr}; "
                    "try a smaller train.learning_rate")
            optimizer.update(net.params, grads)
            losses[i] = loss
            if on_iteration is not None:
                on_iteration(i + 1, loss)

            if (i + 1) % iter_per_epoch == 0 or i + 1 == iters:
                scorer.submit((i + 1) / iter_per_epoch, i + 1)
                collect(wait=False)
        collect(wait=True)

    result.seconds = time.perf_counter() - start
    return result


def _labels(t):
    """Integer labels; one-hot rows (the book's one_hot_label=True) become their argmax.

    The batch is gathered with np.take into a 1-D buffer: one-hot labels would be
    read from the flattened array, i.e. silently wrong.
    """
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


class _Batches:
    """The mini-batches, in the order of one fresh permutation per epoch.

    They are gathered CHUNK batches at a time into one of two buffers; in the
    background mode a worker thread fills one while training reads the other.
    """

    CHUNK = 32

    def __init__(self, x, t, batch_size, iters, iter_per_epoch, rng, dtype, background: bool):
        self.x, self.t, self.b = x, t, batch_size
        self.iters, self.iter_per_epoch, self.rng = iters, iter_per_epoch, rng
        rows = self.CHUNK * batch_size
        self.buffers = [(np.empty((rows,) + x.shape[1:], dtype=dtype), np.empty(rows, dtype=t.dtype))
                        for _ in range(2)]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zerodl-batch") if background else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _plan(self):
        """Row indices of each chunk; chunks never straddle an epoch."""
        done = 0
        while done < self.iters:
            perm = self.rng.permutation(len(self.x))
            for k in range(0, self.iter_per_epoch, self.CHUNK):
                count = min(self.CHUNK, self.iter_per_epoch - k, self.iters - done)
                if count <= 0:
                    return
                yield perm[k * self.b:(k + count) * self.b]
                done += count

    def _gather(self, idx, slot):
        xb, tb = self.buffers[slot]
        np.take(self.x, idx, axis=0, out=xb[:len(idx)])
        np.take(self.t, idx, out=tb[:len(idx)])

    def __iter__(self):
        plan = self._plan()
        queue = []

        def submit(slot):
            idx = next(plan, None)
            if idx is None:
                return
            if self.pool is None:
                self._gather(idx, slot)
                queue.append((slot, len(idx) // self.b, None))
            else:
                queue.append((slot, len(idx) // self.b, self.pool.submit(self._gather, idx, slot)))

        submit(0)
        submit(1)
        while queue:
            slot, count, job = queue.pop(0)
            if job is not None:
                job.result()
            xb, tb = self.buffers[slot]
            for j in range(count):
                yield xb[j * self.b:(j + 1) * self.b], tb[j * self.b:(j + 1) * self.b]
            submit(slot)  # the training thread is done with this buffer: refill it


class _Scorer:
    """Scores snapshots of the net's weights, in order, in line or in one worker thread."""

    def __init__(self, net, x_train, t_train, x_test, t_test, lr, background: bool):
        self.net = net
        self.data = (x_train, t_train, x_test, t_test)
        self.lr = lr
        # Its own net: the layers keep per-call state the training thread must not see change.
        self.scoring_net = copy.deepcopy(net) if background else net
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zerodl-score") if background else None
        self.pending: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, epoch: float, iteration: int) -> None:
        if self.pool is None:
            self.pending.append(_evaluate(self.net, epoch, iteration, *self.data, self.lr))
            return
        snapshot = {k: v.copy() for k, v in self.net.params.items()}
        self.pending.append(self.pool.submit(self._score, snapshot, epoch, iteration))

    def _score(self, snapshot, epoch, iteration) -> "EpochRecord":
        for k, v in snapshot.items():
            self.scoring_net.params[k][...] = v  # in place: the layers hold these arrays
        with np.errstate(over="ignore", invalid="ignore"):
            return _evaluate(self.scoring_net, epoch, iteration, *self.data, self.lr)

    def done(self, wait: bool) -> list["EpochRecord"]:
        """The records ready so far, in epoch order (all of them if `wait`)."""
        out = []
        while self.pending:
            head = self.pending[0]
            if isinstance(head, EpochRecord):
                out.append(head)
            elif wait or head.done():
                out.append(head.result())  # re-raises a DivergenceError from the worker
            else:
                break
            self.pending.pop(0)
        return out


def _evaluate(net, epoch, iteration, x_train, t_train, x_test, t_test, lr) -> EpochRecord:
    train_loss, train_acc = net.evaluate(x_train, t_train)
    test_loss, test_acc = net.evaluate(x_test, t_test)
    if not math.isfinite(train_loss):
        raise DivergenceError(
            f"training diverged: the training-set loss is {train_loss} after iteration {iteration} "
            f"with train.learning_rate = {lr}; try a smaller train.learning_rate"
        )
    return EpochRecord(round(epoch, 6), iteration, train_loss, train_acc, test_loss, test_acc)
