"""The helper process (zerodl.worker), one of the loop's two batch sources, does not
change a single bit of the in-process loop's (zerodl.batches.InProcess)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl import worker
from zerodl.errors import DivergenceError, HelperError
from zerodl.optim import make_optimizer
from zerodl.train import train
from zerodl.worker import Helper

from test_core_train import KEYS, NullOptimizer, RecordingNet, _indexed_data, xor_data

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks (Linux)")


@pytest.fixture
def small_chunks(monkeypatch):
    """One batch per chunk and the smallest ring (2 slots), so a short run wraps around it often."""
    monkeypatch.setattr(worker, "CHUNK_BYTES", 1)  # one batch per chunk
    monkeypatch.setattr(worker, "RING_BYTES", 1)   # as few slots as there can be


# --- the helper: same bits as the in-process loop --------------------------------------------------

def _run(helper, *, dtype=np.float32, optimizer="sgd", lr=0.3, n=240, iters=100, batch=16, seed=5):
    x, t = xor_data(n, seed)
    xt, tt = xor_data(60, seed + 1)
    rng = np.random.default_rng(seed)
    net = TwoLayerNet(2, 12, 2, weight_init_std="he", dtype=dtype, rng=rng)
    seen = []
    r = train(net, make_optimizer(optimizer, lr), x.astype(dtype), t, xt, tt, iters=iters, batch_size=batch,
              rng=rng, helper=helper, on_epoch=seen.append)
    assert seen == r.epochs
    return net, r, rng.random()


@pytest.mark.parametrize("case", [
    {},                                       # 15 iterations per epoch, a final partial epoch
    {"dtype": np.float64, "optimizer": "adam", "lr": 0.01},
    {"optimizer": "momentum", "lr": 0.1, "batch": 240, "iters": 7},  # the whole set in each batch
    {"iters": 3},                             # less than one epoch
    {"batch": 7, "iters": 205},               # 34 per epoch, 2 samples left over each time
])
def test_helper_gives_the_same_bits(small_chunks, case):
    net_a, ra, after_a = _run(False, **case)
    net_b, rb, after_b = _run(True, **case)
    assert ra.loss.tobytes() == rb.loss.tobytes()
    assert ra.epochs == rb.epochs and len(ra.epochs) >= 1
    # the norms measured at each epoch's end ride with its (possibly late) scores: the same bits
    norms = [np.array([[(r.weight_norm[k], r.update_norm[k]) for k in KEYS] for r in run.epochs]) for run in (ra, rb)]
    assert norms[0].tobytes() == norms[1].tobytes()
    assert norms[0].shape == (len(ra.epochs), 4, 2) and np.all(norms[0][:, :, 1] > 0)
    for k in KEYS:
        assert net_a.params[k].tobytes() == net_b.params[k].tobytes(), k
    assert after_a == after_b  # the caller's generator is left where the in-process loop leaves it
    assert ra.epochs[-1].test_accuracy > 0.6 or case.get("iters", 100) < 10  # it did learn


def test_helper_with_default_chunks_same_bits():
    # the real ring size: many batches per chunk, chunks not aligned with epochs
    a, b = _run(False, iters=400, batch=10), _run(True, iters=400, batch=10)
    assert a[1].loss.tobytes() == b[1].loss.tobytes() and a[1].epochs == b[1].epochs


def test_small_chunks_fixture_makes_the_smallest_ring(small_chunks):
    x, t = xor_data(40, 0)
    h = Helper(TwoLayerNet(2, 3, 2, seed=0), x, t, x, t, iters=9, batch_size=4, iter_per_epoch=10,
               rng=np.random.default_rng(0))
    assert (h.slots, h.chunk) == (2, 1)


def test_helper_same_bits_on_mnist_shaped_batches():
    # The standard run's ring: one 100 x 785 batch per slot (with the ones column), 8 slots,
    # wrapped around many times, a float32 net on float32 data.
    rng = np.random.default_rng(7)
    x = rng.random((700, 784), dtype=np.float32)
    t = (x[:, :392].sum(axis=1) > x[:, 392:].sum(axis=1)).astype(np.int64)
    runs = []
    for helper in (False, True):
        g = np.random.default_rng(1)
        net = TwoLayerNet(784, 50, 10, rng=g)
        r = train(net, make_optimizer("sgd", 0.1), x, t, x[:200], t[:200], iters=60, batch_size=100,
                  rng=g, helper=helper)
        runs.append((net.flat_params.tobytes(), r.loss.tobytes(), r.epochs))
    assert runs[0] == runs[1]


def test_helper_batches_visit_every_sample_once_per_epoch(small_chunks):
    n, batch = 12, 3
    x, t = _indexed_data(n)
    nets = []
    for helper in (False, True):
        net = RecordingNet()
        train(net, NullOptimizer(), x, t, x, t, iters=20, batch_size=batch, rng=np.random.default_rng(3), helper=helper)
        nets.append(net)
    inproc, helped = nets
    assert [b.tolist() for b in helped.batches] == [b.tolist() for b in inproc.batches]
    assert [lab.tolist() for lab in helped.labels] == [lab.tolist() for lab in inproc.labels]
    for e in range(5):
        np.testing.assert_array_equal(np.sort(np.concatenate(helped.batches[4 * e:4 * e + 4])), np.arange(n))


# --- the helper: failures ---------------------------------------------------------------------------

def test_helper_non_finite_scoring_is_the_same_error():
    x, t = _indexed_data(6)
    errors = []
    for helper in (False, True):
        with pytest.raises(DivergenceError) as e:
            train(RecordingNet(eval_loss=float("inf")), NullOptimizer(), x, t, x, t, iters=9, batch_size=2,
                  rng=np.random.default_rng(0), helper=helper)
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    assert "training-set loss is inf after iteration 3" in errors[0]


class LateBlowUp(RecordingNet):
    """Scores inf on the whole set, and its batch loss turns NaN at iteration 5."""

    def gradient(self, x, t):
        grads = super().gradient(x, t)
        if len(self.batches) >= 5:
            self.last_loss = float("nan")
        return grads


def test_earlier_failed_scoring_wins_over_a_later_batch_divergence():
    # The helper returns epoch 1's scoring (iteration 3) later than the loop reaches the
    # NaN at iteration 5: the error must still be the earlier one, as in-process.
    x, t = _indexed_data(6)
    for helper in (False, True):
        with pytest.raises(DivergenceError, match="training-set loss is inf after iteration 3"):
            train(LateBlowUp(eval_loss=float("inf")), NullOptimizer(), x, t, x, t, iters=9, batch_size=2,
                  rng=np.random.default_rng(0), helper=helper)


@pytest.fixture
def helpers(monkeypatch):
    """Every Helper the loop makes, to check its process afterwards."""
    made = []
    real_start = Helper.start

    def start(self):
        real_start(self)
        made.append((self, self.pid))

    monkeypatch.setattr(Helper, "start", start)
    return made


def _reaped(pid) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child any more: waited for already
    return False


def test_ctrl_c_stops_and_reaps_the_helper(helpers):
    x, t = xor_data(200, 1)

    def interrupt(i, loss):
        if i == 7:
            raise KeyboardInterrupt

    net = TwoLayerNet(2, 4, 2, seed=0)
    with pytest.raises(KeyboardInterrupt):
        train(net, make_optimizer("sgd", 0.1), x, t, x, t, iters=50, batch_size=10,
              rng=np.random.default_rng(0), helper=True, on_iteration=interrupt)
    (h, pid), = helpers
    assert h.pid is None and _reaped(pid)


def test_a_finished_run_reaps_the_helper(helpers):
    _run(True, iters=20)
    (h, pid), = helpers
    assert h.pid is None and _reaped(pid)


def _failing_fill(exc_or_code):
    real_fill = Helper._fill

    def fill(self, c):
        if c == 2:
            if isinstance(exc_or_code, int):
                os._exit(exc_or_code)
            raise exc_or_code
        real_fill(self, c)
    return fill


def test_helper_out_of_memory_is_a_memory_error(small_chunks, monkeypatch, helpers):
    monkeypatch.setattr(Helper, "_fill", _failing_fill(MemoryError()))
    with pytest.raises(MemoryError):
        _run(True)
    assert _reaped(helpers[0][1])


def test_helper_bug_is_reported_with_its_traceback(small_chunks, monkeypatch, capfd, helpers):
    monkeypatch.setattr(Helper, "_fill", _failing_fill(ValueError("bad index 42")))
    with pytest.raises(HelperError, match="this is a bug in zerodl"):
        _run(True)
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: bad index 42" in err
    assert _reaped(helpers[0][1])


def test_helper_that_dies_is_a_clear_error_not_a_hang(small_chunks, monkeypatch, helpers):
    monkeypatch.setattr(Helper, "_fill", _failing_fill(3))
    with pytest.raises(HelperError, match=r"the training helper process \(pid \d+\) died \(exit code 3\)"):
        _run(True)
    assert _reaped(helpers[0][1])


def test_helper_failure_found_by_a_write_is_still_its_own_error(small_chunks, monkeypatch, helpers):
    # The helper fails while scoring and exits; the parent first notices when it next writes
    # (a broken pipe) and must still report what the helper said, not just that it died.
    def scoring(net, sets):
        raise MemoryError
        yield  # a generator, as the real one

    monkeypatch.setattr(worker, "scoring", scoring)

    def pause(i, loss):
        if i == 16:  # epoch 1 was handed over at iteration 15: give the helper time to fail
            time.sleep(0.5)

    x, t = xor_data(240, 5)
    with pytest.raises(MemoryError):
        train(TwoLayerNet(2, 12, 2, seed=0), make_optimizer("sgd", 0.3), x, t, x, t, iters=100, batch_size=16,
              rng=np.random.default_rng(5), helper=True, on_iteration=pause)
    assert _reaped(helpers[0][1])


def test_available_needs_two_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert worker.available() is False
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert worker.available() is True


def test_helper_leaves_no_open_pipes(small_chunks, monkeypatch):
    before = sorted(os.listdir("/proc/self/fd"))
    _run(True, iters=30)
    monkeypatch.setattr(Helper, "_fill", _failing_fill(3))
    with pytest.raises(HelperError):
        _run(True)
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_drawing_from_the_generator_during_training_is_caught():
    # The helper draws the batches from its own copy of rng: a draw by the caller in
    # between would silently give other batches than the in-process loop. The next
    # epoch's permutation then differs from the helper's, which is an error.
    x, t = xor_data(100, 2)
    rng = np.random.default_rng(0)
    net = TwoLayerNet(2, 4, 2, seed=0)
    with pytest.raises(RuntimeError, match="random generator was drawn from during training"):
        train(net, make_optimizer("sgd", 0.1), x, t, x, t, iters=50, batch_size=10, rng=rng, helper=True,
              on_iteration=lambda i, loss: rng.random() if i == 5 else None)


WARNINGS_SCRIPT = """
import sys
import numpy as np
from test_core_train import xor_data
from zerodl import TwoLayerNet
from zerodl.optim import make_optimizer
from zerodl.train import train
x, t = xor_data(400, 0)
xt, tt = xor_data(100, 1)
xt[0] = 3e38  # one extreme test row: the forward pass overflows
r = train(TwoLayerNet(2, 16, 2, weight_init_std="he", seed=0), make_optimizer("sgd", 0.1), x, t, xt, tt,
          iters=40, batch_size=40, rng=np.random.default_rng(0), helper=sys.argv[1] == "1")
print(repr(r.epochs))
"""


def test_numpy_warnings_are_silenced_in_the_helper_too():
    # The in-process loop scores under np.errstate; the helper must too. Run as a script:
    # pytest's own warning capture would hide the child's warnings from this test.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])}
    runs = [subprocess.run([sys.executable, "-c", WARNINGS_SCRIPT, helper], capture_output=True, text=True,
                           env=env, timeout=120) for helper in ("0", "1")]
    for p in runs:
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""
    assert runs[0].stdout == runs[1].stdout and "test_loss=nan" in runs[0].stdout  # it did overflow


def test_helper_works_with_descriptors_above_1024():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        a, b = _run(False, iters=40), _run(True, iters=40)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert a[1].loss.tobytes() == b[1].loss.tobytes()


def test_ring_of_big_batches_holds_two():
    x = np.zeros((40, 100_000), np.float32)  # 400 kB rows: a batch of 30 is 12 MB
    t = np.zeros(40, np.int64)
    net = TwoLayerNet(100_000, 2, 2, seed=0)
    h = Helper(net, x, t, x, t, iters=5, batch_size=30, iter_per_epoch=1, rng=np.random.default_rng(0))
    assert (h.slots, h.chunk) == (2, 1)
    assert h.x_ring.nbytes == 2 * 30 * x[0].nbytes
    small = Helper(net, x, t, x, t, iters=5, batch_size=1, iter_per_epoch=40, rng=np.random.default_rng(0))
    assert small.slots == worker.SLOTS and small.x_ring.nbytes <= worker.RING_BYTES
    assert Helper(net, x, t, x, t, iters=5, batch_size=3, iter_per_epoch=13, rng=np.random.default_rng(0)).x_ring.nbytes <= worker.RING_BYTES


def test_no_fork_no_helper_same_run(monkeypatch):
    def fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    before = sorted(os.listdir("/proc/self/fd"))
    a = _run(False, iters=40)
    monkeypatch.setattr(os, "fork", fork)
    b = _run(True, iters=40)
    assert a[1].loss.tobytes() == b[1].loss.tobytes() and a[1].epochs == b[1].epochs
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_empty_test_set_is_a_clear_error():
    x, t = xor_data(20, 0)
    for helper in (False, True):
        with pytest.raises(ValueError, match="the test set is empty"):
            train(TwoLayerNet(2, 3, 2, seed=0), make_optimizer("sgd", 0.1), x, t, x[:0], t[:0], iters=5,
                  batch_size=4, rng=np.random.default_rng(0), helper=helper)


def test_float32_data_into_a_float64_net_both_ways():
    nets = [_run(helper, dtype=np.float64, iters=40)[0] for helper in (False, True)]
    x, t = xor_data(240, 5)  # _run's data is float32 before its cast: pass it as float32 here
    runs = []
    for helper in (False, True):
        rng = np.random.default_rng(5)
        net = TwoLayerNet(2, 12, 2, weight_init_std="he", dtype=np.float64, rng=rng)
        train(net, make_optimizer("sgd", 0.3), x, t, x, t, iters=40, batch_size=16, rng=rng, helper=helper)
        runs.append(net)
    for k in KEYS:
        assert runs[0].params[k].tobytes() == runs[1].params[k].tobytes()
        assert runs[0].params[k].tobytes() == nets[0].params[k].tobytes()  # same as float64 data


def test_a_subclass_keeps_its_own_gradient():
    calls = []

    class Counting(TwoLayerNet):
        def gradient(self, x, t):
            calls.append(len(x))
            return super().gradient(x, t)

    x, t = xor_data(40, 1)
    train(Counting(2, 3, 2, seed=0), make_optimizer("sgd", 0.1), x, t, x, t, iters=6, batch_size=4,
          rng=np.random.default_rng(0))
    assert calls == [4] * 6
