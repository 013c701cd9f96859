"""Where the training loop's batches come from, and where its epochs are scored.

The loop (zerodl.train) asks one object for both chores, through four calls:

    batch(i)             iteration i's (x_batch, t_batch)
    submit(params, tag)  score these weights on the whole training and test sets
    scored               a deque of (tag, (train_loss, train_acc, test_loss, test_acc)), in order
    finish()             wait for every submitted scoring to land in `scored`

Two objects answer them with the same numbers:
- InProcess (here): the book's way, everything in this process, one after the other.
- zerodl.worker.Helper: a forked helper process on the second core gathers the next
  batches and scores the epochs while this process trains (bit-identical; tested).

Both draw each epoch's permutation from the caller's Generator at the epoch's first
batch, and walk it in order, so an epoch visits every sample once; the last
n % batch_size samples of a permutation wait for the next shuffle.
"""
from __future__ import annotations

from collections import deque

import numpy as np


class InProcess:
    """Batches gathered and epochs scored by this process."""

    name = "this process"

    def __init__(self, net, x_train, t_train, x_test, t_test, *, batch_size: int, iter_per_epoch: int,
                 rng: np.random.Generator, ones: bool = False):
        self.net, self.x_train, self.t_train = net, x_train, t_train
        self.sets = ((x_train, t_train), (x_test, t_test))
        self.batch_size, self.iter_per_epoch, self.rng = batch_size, iter_per_epoch, rng
        # The batch lives in buffers filled in place each iteration.
        self.x = batch_buffer(batch_size, x_train, ones, net.dtype)
        self.t = np.empty(batch_size, dtype=t_train.dtype)
        self.scratch = np.empty((batch_size,) + x_train.shape[1:], dtype=net.dtype)
        self.perm = None
        self.scored = deque()

    def batch(self, i: int):
        k = i % self.iter_per_epoch
        if k == 0:
            self.perm = self.rng.permutation(len(self.x_train))
        take_batch(self.x_train, self.t_train, self.perm, k, self.batch_size, self.x, self.t, self.scratch)
        return self.x, self.t

    def submit(self, params, tag, last: bool = False) -> None:
        self.scored.append((tag, score(self.net, self.sets)))  # `params` are the net's own

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


def scoring(net, sets):
    """(train loss, train accuracy, test loss, test accuracy) as net.evaluate gives them, as a
    generator that yields between chunks (so the helper can refill its ring) and returns them."""
    out = ()
    for x, t in sets:
        steps = getattr(net, "evaluate_steps", None)
        if steps is None:  # a net without steps (tests' stand-ins): one piece
            out += tuple(net.evaluate(x, t))
            yield
        else:
            out += yield from steps(x, t)
    return out


def score(net, sets) -> tuple:
    """scoring's numbers, all at once."""
    steps = scoring(net, sets)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def batch_buffer(batch_size, x, ones, dtype) -> np.ndarray:
    """A buffer for one batch of rows of x; with `ones`, the rows end in a column
    of ones, as zerodl.fused.BatchGradient takes them."""
    if not ones:
        return np.empty((batch_size,) + x.shape[1:], dtype)
    return np.ones((batch_size, x.shape[1] + 1), dtype)


def take_batch(x, t, perm, k, batch_size, x_out, t_out, scratch=None) -> None:
    """Batch k of permutation perm into x_out and t_out: the gather of both batch sources.

    If x_out's rows are one longer than x's (batch_buffer's column of ones), the rows
    are gathered into `scratch`, of x's row shape, and copied in: np.take into a
    strided view would go through a fresh temporary, which is slower.
    mode="clip" writes straight into a contiguous buffer (the default "raise" goes
    through a temporary); a permutation's indices are always in range.
    """
    idx = perm[k * batch_size:(k + 1) * batch_size]
    if x_out.shape[1:] == x.shape[1:]:
        np.take(x, idx, axis=0, out=x_out, mode="clip")
    else:
        np.take(x, idx, axis=0, out=scratch, mode="clip")
        x_out[:, :-1] = scratch
    np.take(t, idx, out=t_out, mode="clip")
