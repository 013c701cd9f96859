"""Stage `report`: the figures, data/report/report.md and data/report/draw.html.

PNGs: loss per iteration, train/test accuracy per epoch, the confusion
matrix, and a gallery of the most confidently misclassified test digits.
draw.html: a page to draw a digit on and watch the trained net read it (zerodl.draw).
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

import csv
import json
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl import draw, plots
from zerodl.errors import DataError
from zerodl.io import all_or_nothing, load_split, write_text
from zerodl.metrics import most_confident_errors, predict_proba
from zerodl.params import as_dict, load_params
from zerodl.report import render

OUT = Path("data/report")
MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro` to make it)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not readable JSON ({e})") from None


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro train` to make it)") from None
    if not rows:
        raise DataError(f"{path}: holds no rows")
    try:
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: a value is not a number ({e})") from None


def main() -> None:
    # Everything is read and checked before the first figure is drawn.
    p = load_params("params.yaml")
    train = read_json(Path("data/metrics/train.json"))
    evaluation = read_json(Path("data/metrics/eval.json"))
    meta_path = Path("data/prepared/meta.json")
    data_meta = read_json(meta_path) if meta_path.exists() else None
    loss = read_csv_columns(Path("data/plots/loss.csv"))
    epochs = read_csv_columns(Path("data/plots/epochs.csv"))
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    net.check_data(x, t, MODEL)
    with all_or_nothing():  # the six files are replaced together or not at all
        n_figures = _write_report(p, train, evaluation, data_meta, loss, epochs, net, x, t)
    print(f"report: {OUT / 'report.md'} and {n_figures} figures")


def _write_report(p, train, evaluation, data_meta, loss, epochs, net, x, t) -> int:
    plots.loss_curve(loss["loss"], OUT / "loss.png")
    plots.accuracy_curve(epochs["epoch"], epochs["train_accuracy"], epochs["test_accuracy"], OUT / "accuracy.png")
    plots.confusion(evaluation["confusion_matrix"], OUT / "confusion.png")

    with threadpool_limits(limits=p.train.threads, user_api="blas"):  # the same bits as evaluate's
        proba = predict_proba(net, x.astype(net.dtype, copy=False))
    worst = most_confident_errors(proba, t, p.report.misclassified)
    titles = [f"true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in worst]
    plots.digit_grid(x[worst], titles, OUT / "misclassified.png", cols=5,
                     title=f"The {len(worst)} most confident mistakes (of {evaluation['errors']})")

    figures = {
        "Loss per iteration": "loss.png",
        "Accuracy per epoch": "accuracy.png",
        "Confusion matrix": "confusion.png",
        "Most confident mistakes": "misclassified.png",
    }
    write_text(OUT / "report.md", render(as_dict(p), train, evaluation, data_meta, figures))
    write_text(OUT / "draw.html", draw.render(net, evaluation["accuracy"], (data_meta or {}).get("source", p.data.source)))
    return len(figures)


if __name__ == "__main__":
    run(main, prog="report")
