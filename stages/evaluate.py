"""Stage `evaluate`: score data/model/model.npz on the test set.

Writes, through dvclive, data/live/eval/: metrics.json (accuracy, loss,
per-class precision/recall and the confusion matrix: rows true digit, columns
predicted) and the confusion-matrix plot as dvclive logs it for a classifier
(plots/sklearn/confusion_matrix.json: actual and predicted per test digit).
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

from pathlib import Path

from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl.io import check_pixels, live_dir, load_split, naming
from zerodl.live import open_live
from zerodl.metrics import evaluate
from zerodl.params import load_params

MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
LIVE = Path("data/live/eval")


def main() -> None:
    p = load_params("params.yaml")
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    net.check_data(x, t, MODEL)
    check_pixels(x, PREPARED / "x_test.npy", "test")
    x = x.astype(net.dtype, copy=False)
    with threadpool_limits(limits=p.train.threads, user_api="blas"):
        result, predicted = evaluate(net, x, t, model=MODEL, name=lambda i: f"test digit {i}")
    with live_dir(LIVE) as folder, naming(LIVE):  # the old data/live/eval comes back if this fails
        live = open_live(folder)
        live.log_sklearn_plot("confusion_matrix", t.tolist(), predicted.tolist())
        live.summary = result
        live.end()  # metrics.json
    print(f"evaluate: test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"({result['errors']} of {result['n']} wrong)")


if __name__ == "__main__":
    run(main, prog="evaluate")
