"""Scores of a trained net on a labelled set: accuracy, loss, confusion, per class; and how
its hidden units are used (dead ReLUs, saturated sigmoids)."""
from __future__ import annotations

import math

import numpy as np

from .errors import ModelError
from .functions import softmax
from .net import ACTIVATIONS

# A sigmoid output this close to 0 or 1 has a slope below 0.02: it passes almost no gradient.
SATURATED_OUTSIDE = (0.02, 0.98)
SATURATED_SHARE = 0.99  # a unit that is saturated on this share of the digits is called saturated


def confusion_matrix(t, y, n_classes: int) -> np.ndarray:
    """cm[true, predicted] = count."""
    t = np.asarray(t, dtype=np.intp)
    y = np.asarray(y, dtype=np.intp)
    return np.bincount(t * n_classes + y, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(cm: np.ndarray) -> list[dict]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    out = []
    for k in range(cm.shape[0]):
        precision = tp[k] / predicted[k] if predicted[k] else 0.0
        recall = tp[k] / actual[k] if actual[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"class": k, "support": int(actual[k]), "precision": float(precision),
                    "recall": float(recall), "f1": float(f1)})
    return out


def predict_proba(net, x, chunk: int = 2048, model="the model", name=lambda i: f"row {i}") -> np.ndarray:
    """Softmax probabilities for every row of x, computed in chunks.

    Refuses outputs that are not finite numbers (ModelError naming `model` and
    `name(row)`): with finite inputs and weights, that is an overflow.
    """
    out = np.empty((len(x), net.output_size), dtype=np.float64)
    with np.errstate(all="ignore"):  # an overflow is reported below, not as a warning
        for s in range(0, len(x), chunk):
            out[s:s + chunk] = softmax(net.predict(x[s:s + chunk]).astype(np.float64))
            bad = np.flatnonzero(~np.isfinite(out[s:s + chunk]).all(axis=1))
            if bad.size:
                raise overflow(net, model, name(s + int(bad[0])))
    return out


def overflow(net, model, digit: str) -> ModelError:
    top = max(float(np.abs(p).max()) for p in net.params.values())
    return ModelError(f"{model}: the network's outputs overflow {net.dtype.name} for {digit} "
                      f"(weights up to {top:.2g}): a damaged or diverged model")


def evaluate(net, x, t, model="the model", name=lambda i: f"row {i}") -> tuple[dict, np.ndarray]:
    """(everything eval.json holds, the predicted class of each row), from one forward pass.

    Accuracy, loss, confusion matrix and per-class scores all come from the same
    logits, so they cannot contradict each other. A loss that is not a finite
    number (an overflow: x and the weights are finite) raises ModelError naming
    `model` and the first digit whose outputs overflow, `name(row)`.
    """
    t = np.asarray(t)
    predicted = np.empty(len(t), dtype=np.intp)
    with np.errstate(all="ignore"):
        loss, accuracy = net.evaluate(x, t, predicted)
        if not math.isfinite(loss):
            for s in range(0, len(x), 2048):
                y = net.predict(x[s:s + 2048])
                bad = np.flatnonzero(~np.isfinite(y.max(axis=1) - y.min(axis=1)))  # NaN, inf, or too far apart
                if bad.size:
                    raise overflow(net, model, name(s + int(bad[0])))
            raise overflow(net, model, "the set as a whole")  # each digit's loss finite, their sum not
    cm = confusion_matrix(t, predicted, net.output_size)
    classes = per_class(cm)
    result = {
        "accuracy": accuracy,
        "loss": loss,
        "n": int(len(t)),
        "errors": int(np.count_nonzero(predicted != t)),
        "macro_precision": float(np.mean([c["precision"] for c in classes])),
        "macro_recall": float(np.mean([c["recall"] for c in classes])),
        "per_class": classes,
        "confusion_matrix": cm.tolist(),
    }
    return result, predicted


def most_confident_errors(proba: np.ndarray, t, k: int) -> np.ndarray:
    """Indices of the k misclassified rows with the highest predicted probability."""
    t = np.asarray(t)
    y = proba.argmax(axis=1)
    wrong = np.flatnonzero(y != t)
    conf = proba[wrong, y[wrong]]
    # Stable sort on -confidence: ties keep index order, so the choice is reproducible.
    return wrong[np.argsort(-conf, kind="stable")][:k]


def hidden_activations(net, x, chunk: int = 2048) -> np.ndarray:
    """The hidden layer's output for every row of x (rows x hidden units, the net's dtype):
    the net's own Affine1 and Relu1/Sigmoid1 in inference mode, in chunks, before any Dropout."""
    layers = net.layers["Affine1"], net.layers[ACTIVATIONS[net.activation][0]]
    out = np.empty((len(x), net.hidden_size), dtype=net.dtype)
    for s in range(0, len(x), chunk):
        h = np.asarray(x[s:s + chunk], dtype=net.dtype)
        for layer in layers:
            h = layer.forward(h)
        out[s:s + chunk] = h
    return out


def active_share(h: np.ndarray) -> np.ndarray:
    """Per hidden unit (column of h): the share of rows on which it is active (> 0)."""
    return np.count_nonzero(h > 0, axis=0) / len(h)


def dead_units(h: np.ndarray) -> np.ndarray:
    """Per unit, True if it is never active (a ReLU that passes no gradient on any row)."""
    return ~np.any(h > 0, axis=0)


def saturated_share(h: np.ndarray, outside: tuple[float, float] = SATURATED_OUTSIDE) -> np.ndarray:
    """Per unit: the share of rows on which its output is outside the open interval `outside`."""
    low, high = outside
    return np.count_nonzero((h <= low) | (h >= high), axis=0) / len(h)


def saturated_units(h: np.ndarray, outside: tuple[float, float] = SATURATED_OUTSIDE,
                    share: float = SATURATED_SHARE) -> np.ndarray:
    """Per unit, True if it is saturated (outside `outside`) on at least `share` of the rows."""
    return saturated_share(h, outside) >= share
