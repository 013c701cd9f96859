"""The report's figures, drawn with matplotlib's Agg backend (no screen needed).

Each function takes plain arrays and a path, and writes one PNG atomically.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import write_bytes  # noqa: E402

DPI = 110


def _save(fig, path) -> None:
    buf = io.BytesIO()
    # No software/date metadata: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def loss_curve(loss: np.ndarray, path, window: int = 50) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    it = np.arange(1, len(loss) + 1)
    ax.plot(it, loss, color="tab:blue", alpha=0.35, linewidth=0.7, label="batch loss")
    if len(loss) >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(it[window - 1:], smooth, color="tab:blue", linewidth=1.6, label=f"mean of {window}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Training loss per iteration")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def accuracy_curve(epoch, train_acc, test_acc, path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    few = len(epoch) <= 40  # markers only while they stay readable
    ax.plot(epoch, train_acc, marker="o" if few else None, markersize=3, label="train")
    ax.plot(epoch, test_acc, marker="s" if few else None, markersize=3, linestyle="--", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per epoch")
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def confusion(cm, path, labels=None) -> None:
    cm = np.asarray(cm)
    n = cm.shape[0]
    labels = labels if labels is not None else [str(k) for k in range(n)]
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, path)


def digit_grid(images, titles, path, cols: int = 5, title: str | None = None, frame: bool = False) -> None:
    """A grid of 28x28 digits (rows of 784 values in [0, 1]) with a caption under each.

    `frame` draws each digit's 28x28 border, to show where it sits in the field.
    """
    images = np.asarray(images)
    n = max(len(images), 1)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.85 * rows + (0.4 if title else 0)), squeeze=False)
    side = int(round(np.sqrt(images.shape[1]))) if images.ndim == 2 and len(images) else 28
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k].reshape(side, side), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(titles[k], fontsize=8)
            if frame:
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
    if title:
        fig.suptitle(title)
    # Twice: the first pass squares the image axes, which moves their titles; the second
    # makes room for the titles where they now are (once, a single row's titles are clipped).
    fig.tight_layout()
    fig.tight_layout()
    _save(fig, path)
