"""Stage `report`: the figures, data/report/report.md and data/report/draw.html.

PNGs: loss per iteration, train/test accuracy per epoch, the confusion
matrix, a gallery of the most confidently misclassified test digits, and what
the network learned: the first layer's weights, the hidden units' activity on
the test set, the norms of the weights and their updates per epoch. The gallery and the weights,
the figures DVC cannot draw from plot data, are also logged through dvclive as images
(data/live/report/plots/images/, in git), so `dvc plots diff` shows them beside the curves.
draw.html: a page to draw a digit on and watch the trained net read it (zerodl.draw).
"""
from __future__ import annotations

from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

import csv
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from zerodl import TwoLayerNet
from zerodl import draw, io, plots
from zerodl.errors import DataError
from zerodl.io import all_or_nothing, check_pixels, live_dir, load_split, naming, write_bytes, write_text
from zerodl.live import open_live
from zerodl.metrics import dead_units, hidden_activations, most_confident_errors, predict_proba, saturated_units
from zerodl.params import as_dict, load_params
from zerodl.report import FIGURE_NOTES, HIDDEN_NOTES, hidden_units_line, render

OUT = Path("data/report")
LIVE = Path("data/live/report")
TRAIN_LIVE = Path("data/live/train")  # dvclive's: metrics.json, and plots/custom/epochs.json (a row a step)
MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
NORMS_CSV = Path("data/plots/norms.csv")


def read_json(path: Path) -> dict:
    try:
        return io.read_json(path)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro` to make it)") from None
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    kind = io.path_kind(path)
    if kind not in ("a file", "nothing", "a broken symbolic link"):  # never read a device or a pipe
        raise DataError(f"{path}: is {kind}, not a CSV file (rerun `dvc repro train` to make it)")
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


def read_norms(path: Path) -> dict[str, np.ndarray]:
    columns = read_csv_columns(path)
    keys = [c[:-len("_norm")] for c in columns if c.endswith("_norm")]
    if "epoch" not in columns or not keys or any(f"{k}_update_ratio" not in columns for k in keys):
        raise DataError(f"{path}: expected the columns epoch, <param>_norm and <param>_update_ratio "
                        "(rerun `dvc repro train` to make it)")
    return columns


def main() -> None:
    # Everything is read and checked before the first figure is drawn.
    p = load_params("params.yaml")
    train = read_json(TRAIN_LIVE / "metrics.json")
    evaluation = read_json(Path("data/live/eval/metrics.json"))
    meta_path = Path("data/prepared/meta.json")
    data_meta = read_json(meta_path) if meta_path.exists() else None
    loss = read_csv_columns(Path("data/plots/loss.csv"))
    epochs = read_rows(TRAIN_LIVE / "plots" / "custom" / "epochs.json", ("epochs", "train_accuracy", "test_accuracy"))
    norms = read_norms(NORMS_CSV)
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    check_pixels(x, PREPARED / "x_test.npy", "test")
    net.check_data(x, t, MODEL)
    # The old data/live/report comes back if this fails; the files of data/report are
    # replaced together at the end (report.md, draw.html and the figures). The two pictures
    # DVC cannot draw from plot data are drawn first, so that dvclive logs them (into git:
    # data/report is in DVC's cache only, and a plot there fails `dvc plots` on a fresh clone).
    with live_dir(LIVE) as folder, tempfile.TemporaryDirectory() as tmp:
        gallery, tiles = Path(tmp) / "misclassified.png", Path(tmp) / "weights.png"
        _gallery(p, evaluation, net, x, t, gallery)
        hidden, flagged = _weights(p, net, x, data_meta, tiles)
        with naming(LIVE):
            live = open_live(folder)
            for image in (gallery, tiles):
                live.log_image(image.name, image)
        with all_or_nothing():
            n_figures = _write_report(p, train, evaluation, data_meta, loss, epochs, norms, net, x, t,
                                      gallery.read_bytes(), tiles.read_bytes(), hidden, flagged)
    print(f"report: {OUT / 'report.md'} and {n_figures} figures")


def _gallery(p, evaluation, net, x, t, path) -> None:
    with threadpool_limits(limits=p.train.threads, user_api="blas"):  # the same bits as evaluate's
        proba = predict_proba(net, x.astype(net.dtype, copy=False), model=MODEL, name=lambda i: f"test digit {i}")
    worst = most_confident_errors(proba, t, p.report.misclassified)
    titles = [f"true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in worst]
    plots.digit_grid(x[worst], titles, path, cols=5,
                     title=f"The {len(worst)} most confident mistakes (of {evaluation['errors']})")


def _weights(p, net, x, data_meta, path):
    """What the first layer looks for, drawn to `path`: (the hidden activations on x, the units
    flagged dead or saturated, framed in the picture)."""
    with threadpool_limits(limits=p.train.threads, user_api="blas"):
        hidden = hidden_activations(net, x)
    relu = net.activation == "relu"
    flagged = dead_units(hidden) if relu else saturated_units(hidden)
    shape = (data_meta or {}).get("image_shape")
    shape = tuple(shape) if shape and int(np.prod(shape)) == net.input_size else None
    plots.weight_tiles(net.params["W1"], path, image_shape=shape, marked=flagged,
                       marked_label="dead (never active on the test set)" if relu else "saturated on the test set")
    return hidden, flagged


def _write_report(p, train, evaluation, data_meta, loss, epochs, norms, net, x, t, gallery: bytes, tiles: bytes,
                  hidden, flagged) -> int:
    plots.loss_curve(loss["loss"], OUT / "loss.png")
    plots.accuracy_curve(epochs["epochs"], epochs["train_accuracy"], epochs["test_accuracy"], OUT / "accuracy.png")
    plots.confusion(evaluation["confusion_matrix"], OUT / "confusion.png")
    write_bytes(OUT / "misclassified.png", gallery)
    # What the network learned: its first layer, its hidden units on the test set, its norms.
    write_bytes(OUT / "weights.png", tiles)
    plots.hidden_activity(hidden, net.activation, OUT / "hidden.png")
    plots.norm_curves(norms["epoch"], norms, OUT / "norms.png")
    units_line = hidden_units_line(net.activation, int(np.count_nonzero(flagged)), net.hidden_size, len(x))

    figures = {
        "Loss per iteration": "loss.png",
        "Accuracy per epoch": "accuracy.png",
        "Confusion matrix": "confusion.png",
        "Most confident mistakes": "misclassified.png",
        "What each hidden unit looks for": "weights.png",
        "Hidden units on the test set": "hidden.png",
        "Weight and update norms per epoch": "norms.png",
    }
    notes = {**FIGURE_NOTES, "Hidden units on the test set": f"{units_line} {HIDDEN_NOTES[net.activation]}"}
    write_text(OUT / "report.md", render(as_dict(p), train, evaluation, data_meta, figures, notes))
    write_text(OUT / "draw.html", draw.render(net, evaluation["accuracy"], (data_meta or {}).get("source", p.data.source)))
    return len(figures)

if __name__ == "__main__":
    run(main, prog="report")
