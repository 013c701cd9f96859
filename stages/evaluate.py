"""Stage `evaluate`: score data/model/model.npz on the test set.

Writes data/metrics/eval.json: accuracy, loss, per-class precision/recall and
the confusion matrix (rows: true digit, columns: predicted), and
data/plots/predictions.csv (actual, predicted per test digit) for DVC's
confusion-matrix plot.
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

from pathlib import Path

from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl.io import all_or_nothing, check_finite, load_split, write_json, write_text
from zerodl.metrics import evaluate
from zerodl.params import load_params

MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
METRICS = Path("data/metrics/eval.json")
PREDICTIONS = Path("data/plots/predictions.csv")


def main() -> None:
    p = load_params("params.yaml")
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    net.check_data(x, t, MODEL)
    check_finite(x, PREPARED / "x_test.npy", "test")
    x = x.astype(net.dtype, copy=False)
    with threadpool_limits(limits=p.train.threads, user_api="blas"):
        result, predicted = evaluate(net, x, t, model=MODEL, name=lambda i: f"test digit {i}")
    with all_or_nothing():
        write_text(PREDICTIONS, "actual,predicted\n" + "".join(f"{a},{b}\n" for a, b in zip(t.tolist(), predicted.tolist())))
        write_json(METRICS, result)
    print(f"evaluate: test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"({result['errors']} of {result['n']} wrong)")


if __name__ == "__main__":
    run(main, prog="evaluate")
