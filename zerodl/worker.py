"""A helper process for the training loop: the next batches and the epoch scores, on the second core.

One of the two batch sources of zerodl.batches (the other is InProcess); same calls, same numbers.

Training is one chain of small dependent GEMMs. A second BLAS thread speeds it up
only on an idle machine: its threads spin-wait for each other, and with the other
core busy they slow to a crawl. The work around the chain does not depend on it: gathering the next batches (a copy of
100 random rows, ~55 us per batch on MNIST, cache misses all of it) and scoring
the weights on the whole training and test sets once per epoch (two forward
passes over 70,000 rows, ~70 ms). A forked child does both while the parent trains:

    parent                                   helper
    trains on the batches in ring slot s  <- gathers the next chunks of batches into free slots
    copies the weights into a snapshot    -> scores it on both sets, one EVAL_CHUNK at a time,
                                             refilling the ring between chunks

The child starts with the parent's arrays and random generator as they are at the
fork, so it draws the permutations the parent's own loop would draw: the batches,
and with them every number of the run, are bit-identical to the in-process loop's
(tests/test_core_worker.py checks this; the parent also compares each epoch's
permutation with the child's). The child inherits the BLAS thread count and
np.errstate too, so it scores exactly as the parent would. Nothing is pickled:
the ring and the snapshots are shared memory, and the messages are fixed-size
structs on two pipes.
"""
from __future__ import annotations

import math
import mmap
import os
import select
import signal
import struct
import sys
import traceback
import zlib
from collections import deque

import numpy as np

from .batches import scoring, score, take_batch
from .errors import HelperError
from .io import signals_held

SLOTS = 8                # ring slots: one being trained on, the rest filled ahead
CHUNK_BYTES = 1 << 18    # batches per slot: about this many bytes of them, at least one
RING_BYTES = 1 << 23     # fewer slots if they would hold more than this (but always 2)
# Why so few bytes ahead: the helper's scoring streams the whole data set through the
# caches, and a batch written long before its use may have gone back to memory by then
# (measured: the gradient took ~5 % longer with 24 batches ahead; 2 to 15 measure alike).
SNAPSHOTS = 4            # weight snapshots waiting to be scored before the parent waits

# parent -> helper: kind, index
_CMD = struct.Struct("<ii")
FREE, SCORE, STOP = 1, 2, 3
# helper -> parent: kind, index, four numbers
_MSG = struct.Struct("<ii4d")
READY, SCORED, FAILED, PERM = 1, 2, 3, 4
_OUT_OF_MEMORY, _BUG = 1, 2


def available() -> bool:
    """A helper needs a second core to pay off, and a system where fork is safe (Linux)."""
    return sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) >= 2


def _shared(shape, dtype) -> np.ndarray:
    size = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
    return np.frombuffer(mmap.mmap(-1, size), dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class Helper:
    """The helper: start() forks it; then the calls of zerodl.batches (batch, submit, scored,
    finish); close() (after the loop, an error or a Ctrl-C) stops the child and reaps it."""

    name = "a helper process"

    def __init__(self, net, x_train, t_train, x_test, t_test, *, iters: int, batch_size: int,
                 iter_per_epoch: int, rng: np.random.Generator, ones: bool = False):
        self.net, self.x_train, self.t_train = net, x_train, t_train
        self.sets = ((x_train, t_train), (x_test, t_test))
        self.iters, self.batch_size, self.iter_per_epoch, self.rng = iters, batch_size, iter_per_epoch, rng
        row = (x_train.shape[1] + 1,) if ones else x_train.shape[1:]  # see batch_buffer
        batch_bytes = batch_size * int(np.prod(row)) * net.dtype.itemsize
        self.chunk = max(1, min(iters, CHUNK_BYTES // max(batch_bytes, 1)))
        self.n_chunks = math.ceil(iters / self.chunk)
        self.slots = max(2, min(SLOTS, RING_BYTES // max(self.chunk * batch_bytes, 1)))
        self.x_ring = _shared((self.slots, self.chunk, batch_size) + row, net.dtype)
        self.scratch = np.empty((batch_size,) + x_train.shape[1:], net.dtype)
        if ones:
            self.x_ring[..., -1] = 1
        self.t_ring = _shared((self.slots, self.chunk, batch_size), t_train.dtype)
        self.snapshots = [{k: _shared(v.shape, v.dtype) for k, v in net.params.items()} for _ in range(SNAPSHOTS)]
        self.ready = 0         # chunks the helper has filled
        self.submitted = 0     # snapshots sent
        self.tags = deque()    # the tags of the scorings sent, not yet received
        self.scored = deque()  # (tag, the four numbers) of each scoring received, not yet taken
        self.n_scored = 0
        self.perms = {}        # epoch -> crc32 of the permutation the helper drew for it
        self._buf = b""
        self.pid = self.cmd = self.msg = None

    def start(self) -> None:
        """Fork the helper. Register close() before calling this: a Ctrl-C right after
        the fork then still stops the child."""
        cmd_r, cmd_w = os.pipe()
        msg_r, msg_w = os.pipe()
        with signals_held():  # the child must not see a Ctrl-C before it ignores them
            try:
                pid = os.fork()
            except OSError:  # EAGAIN, ENOMEM: the caller can go on without a helper
                for fd in (cmd_r, cmd_w, msg_r, msg_w):
                    os.close(fd)
                raise
            if pid == 0:
                os.close(cmd_w)
                os.close(msg_r)
                self._child(cmd_r, msg_w)  # never returns
            self.pid, self.cmd, self.msg = pid, cmd_w, msg_r
            os.close(cmd_r)
            os.close(msg_w)

    # --- the parent's side ---------------------------------------------------------------------

    def batch(self, i: int):
        """Iteration i's (x, t): views into the ring, valid until batch(i + chunk)."""
        c, j = divmod(i, self.chunk)
        if j == 0:
            if c > 0:
                self._send(FREE, (c - 1) % self.slots)
            while self.ready <= c:  # not every chunk: one read takes all the READYs waiting
                self._receive()
        if i % self.iter_per_epoch == 0:
            # The in-process loop's own draw: it leaves the caller's generator where that
            # loop would, and checks that the helper's copy drew the same permutation.
            mine = zlib.crc32(self.rng.permutation(len(self.x_train)))
            if self.perms.pop(i // self.iter_per_epoch) != mine:
                raise RuntimeError("train(helper=True): the random generator was drawn from during "
                                   "training (by a callback?), so the helper's batches are no longer "
                                   "the ones it would give; draw from another Generator")
        s = c % self.slots
        return self.x_ring[s, j], self.t_ring[s, j]

    def submit(self, params, tag, last: bool = False) -> None:
        """Queue a scoring of these weights (copied now) on the whole training and test sets.

        The last one is scored here, while the helper may still be on the one before.
        """
        if last:
            mine = score(self.net, self.sets)
            self.finish()
            self.scored.append((tag, mine))
            return
        while self.submitted - self.n_scored >= SNAPSHOTS:
            self._receive()
        k = self.submitted % SNAPSHOTS
        for key, v in params.items():
            np.copyto(self.snapshots[k][key], v)
        self.submitted += 1
        self.tags.append(tag)
        self._send(SCORE, k)

    def finish(self) -> None:
        """Wait until every submitted scoring is in `scored`."""
        while self.n_scored < self.submitted:
            self._receive()

    def close(self) -> None:
        if self.pid is not None:
            with signals_held():  # a Ctrl-C between kill and waitpid would leave a zombie
                os.kill(self.pid, signal.SIGKILL)  # it holds nothing worth a clean exit: no files, only shared memory
                os.waitpid(self.pid, 0)
                self.pid = None
        for fd in (self.cmd, self.msg):
            if fd is not None:
                os.close(fd)
        self.cmd = self.msg = None

    def _send(self, kind: int, index: int) -> None:
        try:
            os.write(self.cmd, _CMD.pack(kind, index))
        except BrokenPipeError:
            # Gone. One that failed wrote why before it exited: report that, not just its death.
            while True:
                self._receive()  # raises that report, or HelperError at the end of the pipe

    def _receive(self) -> None:
        """Wait for messages and take every one waiting (a read returns all there are)."""
        data = os.read(self.msg, 64 * _MSG.size)
        if not data:
            self._died()
        self._buf += data
        whole = len(self._buf) - len(self._buf) % _MSG.size
        for kind, index, *numbers in _MSG.iter_unpack(self._buf[:whole]):
            if kind == READY:
                self.ready = index + 1
            elif kind == SCORED:
                self.scored.append((self.tags.popleft(), tuple(numbers)))
                self.n_scored += 1
            elif kind == PERM:
                self.perms[index] = int(numbers[0])
            elif index == _OUT_OF_MEMORY:
                raise MemoryError
            else:
                raise HelperError("the training helper process failed (its traceback is above); "
                                  "this is a bug in zerodl")
        self._buf = self._buf[whole:]

    def _died(self):
        pid, self.pid = self.pid, None
        _, status = os.waitpid(pid, 0)
        how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit code {os.WEXITSTATUS(status)}")
        raise HelperError(f"the training helper process (pid {pid}) died ({how}); "
                          "if the machine ran out of memory, try smaller params")

    # --- the helper's side ----------------------------------------------------------------------

    def _child(self, cmd: int, msg: int):
        code = 0
        try:
            # Ctrl-C and SIGTERM are the parent's to handle; it stops this process.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            self.cmd, self.msg = cmd, msg
            self._serve()
        except BrokenPipeError:
            pass  # the parent is gone (killed): nothing to report to, nobody to serve
        except MemoryError:
            code = self._report(_OUT_OF_MEMORY)
        except BaseException:
            traceback.print_exc()
            code = self._report(_BUG)
        finally:
            os._exit(code)  # never the parent's cleanup: its finally blocks and atexit are not ours

    def _report(self, why: int) -> int:
        try:
            os.write(self.msg, _MSG.pack(FAILED, why, 0, 0, 0, 0))
        except OSError:
            pass
        return 1

    def _serve(self) -> None:
        free, filled = self.slots, 0
        jobs, job, job_index = deque(), None, -1
        buf = b""
        commands = select.poll()  # not select(): that fails on descriptors >= 1024
        commands.register(self.cmd, select.POLLIN)
        while True:
            work = (free and filled < self.n_chunks) or job is not None or jobs
            if not work or commands.poll(0):
                data = os.read(self.cmd, 64 * _CMD.size)
                if not data:  # the parent is gone
                    return
                buf += data
                whole = len(buf) - len(buf) % _CMD.size
                for kind, index in _CMD.iter_unpack(buf[:whole]):
                    if kind == FREE:
                        free += 1
                    elif kind == SCORE:
                        jobs.append(index)
                    else:
                        return
                buf = buf[whole:]
            if free and filled < self.n_chunks:  # batches first: the parent waits for them
                self._fill(filled)
                os.write(self.msg, _MSG.pack(READY, filled, 0, 0, 0, 0))
                filled, free = filled + 1, free - 1
            elif job is None and jobs:
                job_index = jobs.popleft()
                for key, v in self.snapshots[job_index].items():
                    np.copyto(self.net.params[key], v)
                job = scoring(self.net, self.sets)
            elif job is not None:
                try:
                    next(job)
                except StopIteration as finished:
                    os.write(self.msg, _MSG.pack(SCORED, job_index, *finished.value))
                    job = None

    def _fill(self, c: int) -> None:
        """Chunk c: the batches of iterations c*chunk ..., drawn as the in-process loop draws them."""
        s, n, b = c % self.slots, len(self.x_train), self.batch_size
        for j, i in enumerate(range(c * self.chunk, min((c + 1) * self.chunk, self.iters))):
            k = i % self.iter_per_epoch
            if k == 0:
                self.perm = self.rng.permutation(n)
                os.write(self.msg, _MSG.pack(PERM, i // self.iter_per_epoch, zlib.crc32(self.perm), 0, 0, 0))
            take_batch(self.x_train, self.t_train, self.perm, k, b, self.x_ring[s, j], self.t_ring[s, j], self.scratch)
