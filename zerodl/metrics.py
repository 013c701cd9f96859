"""Scores of a trained net on a labelled set: accuracy, loss, confusion, per class; and how
its hidden units are used (dead ReLUs, saturated sigmoids)."""
from __future__ import annotations

import numpy as np

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


def predict_proba(net, x, chunk: int = 2048) -> np.ndarray:
    """Softmax probabilities for every row of x, computed in chunks."""
    out = np.empty((len(x), net.output_size), dtype=np.float64)
    for s in range(0, len(x), chunk):
        out[s:s + chunk] = softmax(net.predict(x[s:s + chunk]).astype(np.float64))
    return out


def evaluate(net, x, t) -> tuple[dict, np.ndarray]:
    """(everything eval.json holds, the predicted class of each row), from one forward pass.

    Accuracy, loss, confusion matrix and per-class scores all come from the same
    logits, so they cannot contradict each other.
    """
    t = np.asarray(t)
    predicted = np.empty(len(t), dtype=np.intp)
    loss, accuracy = net.evaluate(x, t, predicted)
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
