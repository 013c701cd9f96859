"""What logging through dvclive costs the training loop (issue 16: at most 2 %).

Runs the train stage's loop in this process on the project's data/prepared and
params.yaml (the default: 10,000 iterations, 250 epochs of 40 on mnist-5k, the
most epochs per second of any source, so the worst case), alternating:
  plain       no callback
  dvclive     the stage's per-epoch logging: zerodl.live.EpochLog on a real
              dvclive.Live in a temporary folder
and, with --per-iteration, once each at the end:
  epoch-rows  one dvclive.Live.log_metric row per value and epoch (5 an epoch),
              dvclive's usual way, which EpochLog does not take
  iteration   dvclive.Live.log_metric("loss", ...) on every iteration: what logging
              the per-iteration loss as dvclive steps would cost
It prints each pair of loop times (TrainResult.seconds), the median ratio, and the
time the loop spent in EpochLog. Pairs, in alternating order: this machine drifts.

    .venv/bin/python benchmarks/dvclive_cost.py [--rounds 10] [--per-iteration]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
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


def one_run(stage, p, data, how: str) -> tuple[float, float]:
    """(loop seconds, seconds of it spent in the epoch callback) for one training run."""
    import zerodl.live
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
    spent = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        live = open_live(tmp) if how != "plain" else None
        log = EpochLog(live, stage.EPOCH_METRICS) if how == "dvclive" else None

        def on_epoch(record):
            start = time.perf_counter()
            if log:
                log.on_epoch(record)
            else:  # epoch-rows
                live.step += 1
                for name, field in stage.EPOCH_METRICS.items():
                    live.log_metric(name, float(getattr(record, field)))
            spent[0] += time.perf_counter() - start

        on_iteration = (lambda i, loss: (setattr(live, "step", i), live.log_metric("loss", float(loss)))
                        if how == "iteration" else None)
        with threadpool_limits(limits=tp.threads, user_api="blas"):
            result = train(net, optimizer, x_train, t_train, x_test, t_test, iters=iterations(p, len(x_train)),
                           batch_size=tp.batch_size, rng=rng, helper=tp.threads == 1 and available(),
                           on_iteration=on_iteration, on_epoch=on_epoch if how in ("dvclive", "epoch-rows") else None)
        if log:
            log.close()
            assert log.steps == len(result.epochs) == len(json.loads(Path(tmp, "plots/custom/epochs.json").read_text()))
    assert zerodl.live.SYNC_SECONDS == 1.0
    return result.seconds, spent[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="pairs of runs (default 10)")
    ap.add_argument("--per-iteration", action="store_true", help="also time logging every iteration")
    args = ap.parse_args()
    os.chdir(ROOT)
    stage = stage_module()
    from zerodl.params import load_params

    p = load_params("params.yaml")
    data = stage.load_prepared(np.dtype(p.train.dtype))
    one_run(stage, p, data, "dvclive")  # warm-up: imports, page cache
    ratios, cpus, plains = [], [], []
    for r in range(args.rounds):
        order = ("plain", "dvclive") if r % 2 == 0 else ("dvclive", "plain")
        times = {how: one_run(stage, p, data, how) for how in order}
        ratios.append(times["dvclive"][0] / times["plain"][0])
        cpus.append(times["dvclive"][1])
        plains.append(times["plain"][0])
        print(f"round {r + 1}: plain {times['plain'][0]:.3f} s, dvclive {times['dvclive'][0]:.3f} s "
              f"(in EpochLog: {times['dvclive'][1] * 1000:.1f} ms), ratio {ratios[-1]:.4f}", flush=True)
    print(f"median ratio dvclive/plain: {statistics.median(ratios):.4f} (quartiles "
          f"{statistics.quantiles(ratios, n=4)[0]:.4f}..{statistics.quantiles(ratios, n=4)[2]:.4f}, "
          f"{args.rounds} pairs); in EpochLog {statistics.median(cpus) * 1000:.1f} ms a run, "
          f"{statistics.median(cpus) / statistics.median(plains):.2%} of the plain loop")
    if args.per_iteration:
        for how in ("epoch-rows", "iteration"):
            plain, _ = one_run(stage, p, data, "plain")
            logged, spent = one_run(stage, p, data, how)
            print(f"{how}: {logged:.3f} s against plain {plain:.3f} s, ratio {logged / plain:.4f}"
                  + (f" ({spent * 1000:.0f} ms in log_metric)" if how == "epoch-rows" else ""))


if __name__ == "__main__":
    sys.exit(main())
