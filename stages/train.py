"""Stage `train`: TwoLayerNet on data/prepared with mini-batch SGD.

Writes data/model/model.npz, data/metrics/train.json and the history that
`dvc plots` draws: data/plots/loss.csv (per iteration), data/plots/epochs.csv.
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

import csv
import io
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl.errors import DataError
from zerodl.environment import describe as describe_environment
from zerodl.io import all_or_nothing, load_split, write_json, write_text
from zerodl.optim import make_optimizer
from zerodl.params import as_dict, check_batch_size, iterations, load_params
from zerodl.progress import TrainingBar
from zerodl.train import train
from zerodl.worker import available as helper_available

PREPARED = Path("data/prepared")
MODEL = Path("data/model/model.npz")
METRICS = Path("data/metrics/train.json")
LOSS_CSV = Path("data/plots/loss.csv")
EPOCHS_CSV = Path("data/plots/epochs.csv")
ENVIRONMENT = Path("data/environment.json")  # what the bits depend on: committed, not a metric


def load_prepared(dtype):
    # Memory-mapped: the pages are read as batches touch them, not copied up front.
    (x_train, t_train), (x_test, t_test) = (load_split(PREPARED, split, mmap=True) for split in ("train", "test"))
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(f"{PREPARED}: train and test images differ in size; rerun `dvc repro -f prepare`")
    return x_train.astype(dtype, copy=False), t_train, x_test.astype(dtype, copy=False), t_test


def csv_text(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def main() -> None:
    p = load_params("params.yaml")
    tp = p.train
    x_train, t_train, x_test, t_test = load_prepared(np.dtype(tp.dtype))
    check_batch_size(p, len(x_train))
    iters = iterations(p, len(x_train))  # train.iters, or train.epochs counted in iterations
    n_classes = int(max(t_train.max(), t_test.max())) + 1

    rng = np.random.default_rng(p.seed)  # weights first, then the batch order
    net = TwoLayerNet(x_train.shape[1], p.model.hidden_size, n_classes,
                      weight_init_std=p.model.weight_init_std, dtype=tp.dtype, rng=rng,
                      activation=p.model.activation, dropout_ratio=p.model.dropout,
                      weight_decay_lambda=tp.weight_decay)
    optimizer = make_optimizer(tp.optimizer, tp.learning_rate, tp.momentum)

    bar = TrainingBar(iters, file=sys.stderr)  # a terminal's bar, or plain lines in a log
    on_iteration, on_epoch = bar.on_iteration, bar.on_epoch

    try:
        with threadpool_limits(limits=tp.threads, user_api="blas"):
            environment = describe_environment()  # as the training sees it: its BLAS threads
            result = train(net, optimizer, x_train, t_train, x_test, t_test,
                           iters=iters, batch_size=tp.batch_size, rng=rng, gradient=tp.gradient,
                           helper=tp.threads == 1 and helper_available(), on_iteration=on_iteration, on_epoch=on_epoch)
    finally:
        bar.close()  # an error or Ctrl-C gets a line of its own, not the end of the bar's

    last = result.epochs[-1]
    with all_or_nothing():  # the outputs are replaced together or not at all
        write_json(ENVIRONMENT, environment)
        net.save(MODEL, params=as_dict(p), n_train=len(x_train), n_test=len(x_test), iterations=iters)
        write_text(LOSS_CSV, csv_text(["iteration", "loss"],
                                      ((i + 1, repr(float(l))) for i, l in enumerate(result.loss))))
        write_text(EPOCHS_CSV, csv_text(
            ["epoch", "iteration", "train_loss", "train_accuracy", "test_loss", "test_accuracy"],
            ((r.epoch, r.iteration, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy) for r in result.epochs)))
        write_json(METRICS, {
            "train_accuracy": last.train_accuracy,
            "test_accuracy": last.test_accuracy,
            "train_loss": last.train_loss,
            "test_loss": last.test_loss,
            "final_batch_loss": float(result.loss[-1]),
            "epochs": last.epoch,
            "iterations": iters,
            "iter_per_epoch": result.iter_per_epoch,
            # Wall time: the one number here that differs between identical runs.
            "seconds": round(result.seconds, 3),
        })
    print(f"train: {iters} iterations ({last.epoch:g} epochs) in {result.seconds:.1f} s: "
          f"train accuracy {last.train_accuracy:.4f}, test accuracy {last.test_accuracy:.4f}")
    print(f"train: gradient {result.gradient}; batches and scoring in {result.batches}")


if __name__ == "__main__":
    run(main, prog="train")
