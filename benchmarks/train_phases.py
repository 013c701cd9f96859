"""Where do the training process and its helper spend the standard run? Timers, not a profiler.

    .venv/bin/python benchmarks/train_phases.py [--repeat 3] [--iters 10000] [--data fashion-mnist]

cProfile sees only the training process, and its ~1 us per call distorts a loop of
~20 NumPy calls per iteration. This wraps a few functions in perf_counter timers
instead (~0.3 us each) and runs `zerodl.train.train` on the same prepared data and
settings as train_speed.py (784-50-10, batch 100, lr 0.1, SGD, float32, 1 BLAS
thread, the helper on). The helper's timers add into a shared-memory array, since it
is a separate process. Rows:

  training process   gradient  BatchGradient calls (forward, loss, backward)
                     update    optimizer.update
                     batch     Helper.batch: taking the next batch off the ring, waits included
                     waiting   reads of the helper's pipe: for a batch (inside `batch`), for a
                               free scoring slot, or for the last scorings at the end
                     last      the final scoring, done in the training process
  helper             gather    Helper._fill: the batches into the ring
                     score     the epoch scorings

Then the same run with the gradient replaced by its two big GEMMs alone
(x1 @ [W1; b1] and x1.T @ dz1, timed; the weights stay put): the loop's time
with no element-wise work at all, and how much of it is those GEMMs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import bench_data  # noqa: E402
import harness  # noqa: E402
import zerodl.train as train_mod  # noqa: E402
from zerodl import worker  # noqa: E402
from zerodl.io import load_split  # noqa: E402
from zerodl.fused import BatchGradient  # noqa: E402
from zerodl.net import TwoLayerNet  # noqa: E402
from zerodl.optim import make_optimizer  # noqa: E402

ROWS = ["gradient", "update", "batch", "waiting", "last", "gather", "score", "gemms"]


def timed(fn, clock, row):
    k = ROWS.index(row)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[k] += time.perf_counter() - t0

    return wrapper


def instrument(clock) -> None:
    BatchGradient.__call__ = timed(BatchGradient.__call__, clock, "gradient")
    worker.Helper.batch = timed(worker.Helper.batch, clock, "batch")
    worker.Helper._fill = timed(worker.Helper._fill, clock, "gather")
    worker.score = timed(worker.score, clock, "last")  # the last scoring, by Helper.submit(last=True)
    receive = worker.Helper._receive

    def _receive(self):
        t0 = time.perf_counter()
        try:
            return receive(self)
        finally:
            clock[ROWS.index("waiting")] += time.perf_counter() - t0

    worker.Helper._receive = _receive
    scoring = worker.scoring

    def _scoring(net, sets):  # a generator: time each step the helper takes of it
        steps = scoring(net, sets)
        while True:
            t0 = time.perf_counter()
            try:
                next(steps)
            except StopIteration as done:
                clock[ROWS.index("score")] += time.perf_counter() - t0
                return done.value
            clock[ROWS.index("score")] += time.perf_counter() - t0
            yield

    worker.scoring = _scoring


def gemms_only(clock):
    """The gradient's two big GEMMs and nothing else (dz1 held at zero: the weights stay put)."""
    k = ROWS.index("gemms")

    def gradient(self, x1, t):
        if not getattr(self, "_zeroed", False):
            self.dz1[...] = 0
            self.dW1b1[...] = 0
            self.dW2b2[...] = 0
            self._zeroed = True
        t0 = time.perf_counter()
        np.matmul(x1, self.W1b1, out=self.a1)
        np.matmul(x1.T, self.dz1, out=self.dW1b1)
        clock[k] += time.perf_counter() - t0
        return 1.0

    return gradient


def run(data, iters, clock, lr=0.1):
    (x, t), (xt, tt) = data
    clock[:] = 0
    rng = np.random.default_rng(0)
    net = TwoLayerNet(784, 50, 10, weight_init_std=0.01, rng=rng)
    opt = make_optimizer("sgd", lr)
    opt.update = timed(opt.update, clock, "update")
    r = train_mod.train(net, opt, x, t, xt, tt, iters=iters, batch_size=100, rng=rng, helper=True)
    return r.seconds, clock.copy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    args = ap.parse_args(argv)
    if not worker.available():
        sys.exit("the helper needs Linux and two cores; this machine has neither")

    for line in harness.machine_lines():
        print(line)
    with harness.scratch("zerodl-phases-") as work:
        print(bench_data.prepare(work, args.data)[0])
        prepared = work / "data" / "prepared"
        data = [load_split(prepared, split, mmap=True) for split in ("train", "test")]
        clock = worker._shared((len(ROWS),), np.float64)  # the helper adds into it too
        instrument(clock)
        with harness.limit_blas(1):
            real = [run(data, args.iters, clock) for _ in range(args.repeat)]
            real_gradient = BatchGradient.__call__
            BatchGradient.__call__ = gemms_only(clock)
            floor = [run(data, args.iters, clock, lr=0.0) for _ in range(args.repeat)]
            BatchGradient.__call__ = real_gradient

    def line(label, values):
        return harness.row(label, [f"{v:.3f}" for v in values], 9, 28, sep="")

    print(f"\n{args.iters} iterations, 1 BLAS thread, helper on; seconds per run ({args.repeat} runs)")
    print(harness.row("", [f"run {i + 1}" for i in range(args.repeat)], 9, 28, sep=""))
    print(line("training loop (wall)", [s for s, _ in real]))
    for group, rows in (("training process", ROWS[:5]), ("helper process", ROWS[5:7])):
        for row in rows:
            k = ROWS.index(row)
            print(line(f"  {group if row == rows[0] else '':17s}{row}", [c[k] for _, c in real]))
    print(line("loop, two GEMMs only", [s for s, _ in floor]))
    for row, label in (("gemms", "  of which the GEMMs"), ("waiting", "  waiting for the helper")):
        print(line(label, [c[ROWS.index(row)] for _, c in floor]))
    per_iter = min(c[0] for _, c in real) / args.iters * 1e6
    gemms = min(c[ROWS.index("gemms")] for _, c in floor) / args.iters * 1e6
    print(f"\ngradient: {per_iter:.0f} us per iteration; its two big GEMMs alone in the loop: {gemms:.0f} us (best runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
