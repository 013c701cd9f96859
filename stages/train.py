"""Stage `train`: TwoLayerNet on data/prepared with mini-batch SGD.

Writes data/model/model.npz, data/plots/loss.csv (the batch loss per iteration)
and, through dvclive, data/live/train/: each epoch's whole-set loss and accuracy
as a step (plots/custom/epochs.json, written as training goes, with the latest
values and step in metrics.json, so `dvc exp show` and DVC's VS Code extension
can follow a running experiment), the params it ran with (params.yaml) and the
summary (metrics.json); and data/plots/norms.csv (per epoch: each parameter's norm
and its last update's).
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
from zerodl.io import all_or_nothing, live_dir, load_split, naming, write_json, write_text
from zerodl.live import EpochLog, open_live
from zerodl.optim import make_optimizer
from zerodl.params import as_dict, check_batch_size, iterations, load_params
from zerodl.progress import TrainingBar
from zerodl.train import train
from zerodl.worker import available as helper_available

PREPARED = Path("data/prepared")
MODEL = Path("data/model/model.npz")
LIVE = Path("data/live/train")
LOSS_CSV = Path("data/plots/loss.csv")
NORMS_CSV = Path("data/plots/norms.csv")
# Each epoch's record, logged through dvclive as a step (plots/custom/epochs.json): column ->
# EpochRecord field. `epochs` is the epochs done at that step (2.5 after a last half epoch).
EPOCH_METRICS = {"train_accuracy": "train_accuracy", "test_accuracy": "test_accuracy",
                 "train_loss": "train_loss", "test_loss": "test_loss", "epochs": "epoch"}
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


def norms_table(records) -> tuple[list[str], list[tuple]]:
    """The header and rows of norms.csv: per epoch, ||W|| of each parameter, ||ΔW|| of the
    epoch's last update, and their ratio (about 1e-3 is the classic sign of a good learning rate)."""
    keys = list(records[0].weight_norm)
    header = ["epoch", "iteration", *(f"{k}_norm" for k in keys), *(f"{k}_update" for k in keys),
              *(f"{k}_update_ratio" for k in keys)]
    rows = []
    for r in records:
        w, u = r.weight_norm, r.update_norm
        rows.append((r.epoch, r.iteration, *(w[k] for k in keys), *(u[k] for k in keys),
                     *(u[k] / w[k] if w[k] else float("nan") for k in keys)))
    return header, rows


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

    # The old data/live/train comes back if this run fails; the other outputs are replaced at the end.
    with live_dir(LIVE) as folder:
        with naming(LIVE):  # dvclive's own writes: a full disk names the folder
            live = open_live(folder)
            live.log_params({"seed": p.seed, **{k: v for k, v in as_dict(p).items() if k in ("model", "train")}})
        epochs = EpochLog(live, EPOCH_METRICS)  # each epoch a step; dvclive writes about once a second
        bar = TrainingBar(iters, file=sys.stderr)  # a terminal's bar, or plain lines in a log

        def on_epoch(record):
            bar.on_epoch(record)
            epochs.on_epoch(record)

        try:
            with threadpool_limits(limits=tp.threads, user_api="blas"):
                environment = describe_environment()  # as the training sees it: its BLAS threads
                result = train(net, optimizer, x_train, t_train, x_test, t_test,
                               iters=iters, batch_size=tp.batch_size, rng=rng, gradient=tp.gradient,
                               helper=tp.threads == 1 and helper_available(), on_iteration=bar.on_iteration,
                               on_epoch=on_epoch)
        finally:
            bar.close()  # an error or Ctrl-C gets a line of its own, not the end of the bar's
        epochs.close()  # every row

        last = result.epochs[-1]
        with all_or_nothing():  # the model, the loss, the norms and the environment: together or not at all
            write_json(ENVIRONMENT, environment)
            net.save(MODEL, params=as_dict(p), n_train=len(x_train), n_test=len(x_test), iterations=iters)
            write_text(LOSS_CSV, csv_text(["iteration", "loss"],
                                          ((i + 1, repr(float(l))) for i, l in enumerate(result.loss))))
            write_text(NORMS_CSV, csv_text(*norms_table(result.epochs)))
            # The summary, its keys in a fixed order (those of the syncs depended on their timing).
            live.step = epochs.steps
            live.summary = {**{name: float(getattr(last, field)) for name, field in EPOCH_METRICS.items()},
                            "step": epochs.steps, "final_batch_loss": float(result.loss[-1]),
                            "iterations": iters, "iter_per_epoch": result.iter_per_epoch,
                            # Wall time: the one number here that differs between identical runs.
                            "seconds": round(result.seconds, 3)}
            with naming(LIVE):
                live.end()  # metrics.json
    print(f"train: {iters} iterations ({last.epoch:g} epochs) in {result.seconds:.1f} s: "
          f"train accuracy {last.train_accuracy:.4f}, test accuracy {last.test_accuracy:.4f}")
    print(f"train: gradient {result.gradient}; batches and scoring in {result.batches}")


if __name__ == "__main__":
    run(main, prog="train")
