"""What logging each epoch through dvclive costs the training loop (issue: at most 2 %).

Runs the train stage's loop in this process on the project's data/prepared and
params.yaml (the default: 10,000 iterations, 250 epochs of 40 on mnist-5k, the
most epochs per second of any source, so the worst case), alternating two ways:
  plain     no epoch callback
  dvclive   the stage's logging (zerodl.live.EpochLog on a real dvclive.Live, in a temporary folder)
and prints each pair of loop times (TrainResult.seconds) and the median ratio.
Pairs, in alternating order, because this machine's speed drifts between minutes.

    .venv/bin/python benchmarks/dvclive_cost.py [--rounds 8]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent


def stage_module():
    """stages/train.py as a module (its main() is not run): its data loading and EPOCH_METRICS."""
    spec = importlib.util.spec_from_file_location("train_stage", ROOT / "stages" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_run(stage, p, data, logged: bool) -> float:
    from zerodl import TwoLayerNet
    from zerodl.live import EpochLog, open_live
    from zerodl.optim import make_optimizer
    from zerodl.params import iterations
    from zerodl.train import train
    from zerodl.worker import available

    x_train, t_train, x_test, t_test = data
    tp = p.train
    rng = np.random.default_rng(p.seed)
    net = TwoLayerNet(x_train.shape[1], p.model.hidden_size, 10, weight_init_std=p.model.weight_init_std,
                      dtype=tp.dtype, rng=rng)
    optimizer = make_optimizer(tp.optimizer, tp.learning_rate, tp.momentum)
    with tempfile.TemporaryDirectory() as tmp:
        log = EpochLog(open_live(tmp), stage.EPOCH_METRICS) if logged else None
        with threadpool_limits(limits=tp.threads, user_api="blas"):
            result = train(net, optimizer, x_train, t_train, x_test, t_test, iters=iterations(p, len(x_train)),
                           batch_size=tp.batch_size, rng=rng, helper=tp.threads == 1 and available(),
                           on_epoch=log.on_epoch if log else None)
        if log:
            log.close()
            assert log.error is None and log.steps == len(result.epochs), (log.error, log.steps)
    return result.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="pairs of runs (default 8)")
    args = ap.parse_args()
    import os
    os.chdir(ROOT)
    stage = stage_module()
    from zerodl.params import load_params

    p = load_params("params.yaml")
    data = stage.load_prepared(np.dtype(p.train.dtype))
    one_run(stage, p, data, True)  # warm-up: imports, page cache
    ratios = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {logged: one_run(stage, p, data, logged) for logged in order}
        ratios.append(times[True] / times[False])
        print(f"round {r + 1}: plain {times[False]:.3f} s, dvclive {times[True]:.3f} s, ratio {ratios[-1]:.4f}",
              flush=True)
    print(f"median ratio dvclive/plain: {statistics.median(ratios):.4f} "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f}, {args.rounds} pairs)")


if __name__ == "__main__":
    sys.exit(main())
