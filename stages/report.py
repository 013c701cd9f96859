"""Stage `report`: the figures, data/report/report.md and data/report/draw.html.

PNGs: loss per iteration, train/test accuracy per epoch, the confusion
matrix, a gallery of the most confidently misclassified test digits, and what
the network learned: the first layer's weights, the hidden units' activity on
the test set, the norms of the weights and their updates per epoch.
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
from zerodl.metrics import dead_units, hidden_activations, most_confident_errors, predict_proba, saturated_units
from zerodl.params import as_dict, load_params
from zerodl.report import hidden_units_line, render

OUT = Path("data/report")
MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
NORMS_CSV = Path("data/plots/norms.csv")

# What to look for in each figure of what the network learned (report.md, under the figure).
NOTES = {
    "What each hidden unit looks for":
        "Each tile is one hidden unit's first-layer weights `W1[:, j]`, laid out as the input image: "
        "red pixels excite the unit, blue ones inhibit it, white ones it ignores (colours centred at 0). "
        "Look for strokes and blobs, the parts of digits a unit has learned to detect; "
        "faint tiles are units whose weights stayed small, near their random start.",
    "Weight and update norms per epoch":
        "Left, the size ||W|| of each parameter; right, the epoch's last update relative to it, ||ΔW|| / ||W||. "
        "A rule of thumb puts a good learning rate near 1e-3 (the dashed line): ratios that stay at 1e-2 or more "
        "mean steps too large for the weights (the loss jumps, ReLUs die); ratios far below 1e-3 from the start, "
        "too small a learning rate. The ratio falls as the training loss does; a gap is an epoch whose last update "
        "did not move that parameter at all.",
}
LOOK_FOR_HIDDEN = {
    "relu": "A ReLU that no digit activates gets no gradient and cannot recover: many of them point to too "
            "large a learning rate. On the left, the tall bar at 0 is every (digit, unit) pair where the unit is off.",
    "sigmoid": "A saturated sigmoid's slope is below 0.02, so it passes almost no gradient: many of them point to "
               "weights grown too large (try a smaller learning rate, xavier init or weight decay).",
}


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
    train = read_json(Path("data/metrics/train.json"))
    evaluation = read_json(Path("data/metrics/eval.json"))
    meta_path = Path("data/prepared/meta.json")
    data_meta = read_json(meta_path) if meta_path.exists() else None
    loss = read_csv_columns(Path("data/plots/loss.csv"))
    epochs = read_csv_columns(Path("data/plots/epochs.csv"))
    norms = read_norms(NORMS_CSV)
    net = TwoLayerNet.load(MODEL)
    x, t = load_split(PREPARED, "test")
    net.check_data(x, t, MODEL)
    with all_or_nothing():  # the report and its figures are replaced together or not at all
        n_figures = _write_report(p, train, evaluation, data_meta, loss, epochs, norms, net, x, t)
    print(f"report: {OUT / 'report.md'} and {n_figures} figures")


def _write_report(p, train, evaluation, data_meta, loss, epochs, norms, net, x, t) -> int:
    plots.loss_curve(loss["loss"], OUT / "loss.png")
    plots.accuracy_curve(epochs["epoch"], epochs["train_accuracy"], epochs["test_accuracy"], OUT / "accuracy.png")
    plots.confusion(evaluation["confusion_matrix"], OUT / "confusion.png")

    with threadpool_limits(limits=p.train.threads, user_api="blas"):  # the same bits as evaluate's
        proba = predict_proba(net, x.astype(net.dtype, copy=False))
        hidden = hidden_activations(net, x)
    worst = most_confident_errors(proba, t, p.report.misclassified)
    titles = [f"true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in worst]
    plots.digit_grid(x[worst], titles, OUT / "misclassified.png", cols=5,
                     title=f"The {len(worst)} most confident mistakes (of {evaluation['errors']})")

    # What the network learned: its first layer, its hidden units on the test set, its norms.
    relu = net.activation == "relu"
    flagged = dead_units(hidden) if relu else saturated_units(hidden)
    shape = (data_meta or {}).get("image_shape")
    shape = tuple(shape) if shape and int(np.prod(shape)) == net.input_size else None
    plots.weight_tiles(net.params["W1"], OUT / "weights.png", image_shape=shape, marked=flagged,
                       marked_label="dead (never active on the test set)" if relu else "saturated on the test set")
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
    notes = {**NOTES, "Hidden units on the test set": f"{units_line} {LOOK_FOR_HIDDEN[net.activation]}"}
    write_text(OUT / "report.md", render(as_dict(p), train, evaluation, data_meta, figures, notes))
    write_text(OUT / "draw.html", draw.render(net, evaluation["accuracy"], (data_meta or {}).get("source", p.data.source)))
    return len(figures)


if __name__ == "__main__":
    run(main, prog="report")
