"""Stage `report`: the figures and data/report/report.md.

PNGs: loss per iteration, train/test accuracy per epoch, the confusion
matrix, and a gallery of the most confidently misclassified test digits. The
gallery, the one figure DVC cannot draw from plot data, is also logged through
dvclive as an image (data/live/report/plots/images/), so `dvc plots diff` shows
it next to the curves from git alone.
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl import plots
from zerodl.errors import DataError
from zerodl.io import all_or_nothing, live_dir, load_split, naming, write_bytes, write_text
from zerodl.live import open_live
from zerodl.metrics import most_confident_errors, predict_proba
from zerodl.params import as_dict, load_params
from zerodl.report import render

OUT = Path("data/report")
LIVE = Path("data/live/report")
TRAIN_LIVE = Path("data/live/train")  # dvclive's: metrics.json, and plots/custom/epochs.json (a row a step)
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
    return _columns(path, rows, rows[0] if rows else ())


def read_rows(path: Path, names) -> dict[str, np.ndarray]:
    """The columns `names` of a dvclive custom plot (a JSON list of rows)."""
    rows = read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and set(names) <= set(r) for r in rows):
        raise DataError(f"{path}: expected a list of rows with {', '.join(names)}")
    return _columns(path, rows, names)


def _columns(path: Path, rows, names) -> dict[str, np.ndarray]:
    if not rows:
        raise DataError(f"{path}: holds no rows")
    try:
        return {k: np.array([float(r[k]) for r in rows]) for k in names}
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: a value is not a number ({e})") from None


def main() -> None:
    # Everything is read and checked before the first figure is drawn.
    p = load_params("params.yaml")
    train = read_json(TRAIN_LIVE / "metrics.json")
    evaluation = read_json(Path("data/live/eval/metrics.json"))
    meta_path = Path("data/prepared/meta.json")
    data_meta = read_json(meta_path) if meta_path.exists() else None
    loss = read_csv_columns(Path("data/plots/loss.csv"))
    epochs = read_rows(TRAIN_LIVE / "plots" / "custom" / "epochs.json", ("epochs", "train_accuracy", "test_accuracy"))
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    net.check_data(x, t, MODEL)
    # The old data/live/report comes back if this fails; the five files of data/report are
    # replaced together at the end. The gallery is drawn first, outside that block, so that
    # dvclive can log the finished PNG before any of the report is installed.
    with live_dir(LIVE) as folder, tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "misclassified.png"
        _gallery(p, evaluation, net, x, t, gallery)
        with naming(LIVE):
            live = open_live(folder)
            live.log_image("misclassified.png", gallery)
        with all_or_nothing():
            n_figures = _write_report(p, train, evaluation, data_meta, loss, epochs, gallery.read_bytes())
    print(f"report: {OUT / 'report.md'} and {n_figures} figures")


def _gallery(p, evaluation, net, x, t, path) -> None:
    with threadpool_limits(limits=p.train.threads, user_api="blas"):  # the same bits as evaluate's
        proba = predict_proba(net, x.astype(net.dtype, copy=False))
    worst = most_confident_errors(proba, t, p.report.misclassified)
    titles = [f"true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in worst]
    plots.digit_grid(x[worst], titles, path, cols=5,
                     title=f"The {len(worst)} most confident mistakes (of {evaluation['errors']})")


def _write_report(p, train, evaluation, data_meta, loss, epochs, gallery: bytes) -> int:
    plots.loss_curve(loss["loss"], OUT / "loss.png")
    plots.accuracy_curve(epochs["epochs"], epochs["train_accuracy"], epochs["test_accuracy"], OUT / "accuracy.png")
    plots.confusion(evaluation["confusion_matrix"], OUT / "confusion.png")
    write_bytes(OUT / "misclassified.png", gallery)

    figures = {
        "Loss per iteration": "loss.png",
        "Accuracy per epoch": "accuracy.png",
        "Confusion matrix": "confusion.png",
        "Most confident mistakes": "misclassified.png",
    }
    write_text(OUT / "report.md", render(as_dict(p), train, evaluation, data_meta, figures))
    return len(figures)


if __name__ == "__main__":
    run(main, prog="report")
