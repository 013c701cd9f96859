"""The report's figures, drawn with matplotlib's Agg backend (no screen needed).

Each function takes plain arrays and a path, and writes one PNG atomically.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from .io import write_bytes  # noqa: E402
from .metrics import (SATURATED_OUTSIDE, SATURATED_SHARE, active_share, dead_units,  # noqa: E402
                      saturated_share, saturated_units)

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


def descent_path(points, path, title: str, end: bool = True) -> int | None:
    """The book's figure 4-10: a path of gradient descent over the contours of x0² + x1².

    `points` (n, 2), finite, the start first; `end` False if the descent went on past the
    last point (to an overflow), so that point is no end. The window is a square around the
    minimum that holds the start with a margin; a path that leaves it is drawn up to the edge,
    with an arrow. Returns the first step outside the window, or None if the path stays in it.
    """
    points = np.asarray(points, dtype=np.float64)
    start = points[0]
    r = 1.2 * float(np.abs(start).max()) or 1.0
    outside = np.flatnonzero(np.abs(points).max(axis=1) > r)
    left = int(outside[0]) if outside.size else None
    shown = points if left is None else points[:left]

    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    grid = np.linspace(-r, r, 401)
    gx, gy = np.meshgrid(grid, grid)
    fz = gx ** 2 + gy ** 2
    # Circles evenly spaced in radius (round radii, so round-ish labels), not in f: in f they crowd outwards.
    radii = MaxNLocator(nbins=8, steps=[1, 2, 5, 10]).tick_values(0, r * np.sqrt(2))
    levels = radii[radii > 0] ** 2
    bands = np.r_[0, levels, max(fz.max(), levels[-1]) * 1.01]
    # The light half of Blues, darkest at the minimum: a valley the red path stands out on.
    ax.contourf(gx, gy, fz, levels=bands, colors=plt.get_cmap("Blues")(np.linspace(0.5, 0.04, len(bands) - 1)))
    lines = ax.contour(gx, gy, fz, levels=levels, colors="#4a6785", linewidths=0.7, linestyles="--")
    ax.clabel(lines, fmt="%g", fontsize=7.5)
    ax.axhline(0, color="0.6", linewidth=0.6, zorder=1)
    ax.axvline(0, color="0.6", linewidth=0.6, zorder=1)

    ax.plot(shown[:, 0], shown[:, 1], color="tab:red", linewidth=1.3, marker="o" if len(shown) <= 200 else None,
            markersize=3.5, zorder=3, label="path")
    if left is not None:
        edge = _to_edge(points[left - 1], points[left], r)
        ax.annotate("", xy=edge, xytext=points[left - 1], zorder=3,
                    arrowprops={"arrowstyle": "-|>", "color": "tab:red", "linewidth": 1.3})
        ax.annotate(f"step {left} leaves the window", xy=edge, textcoords="offset points",
                    xytext=(-12 * np.sign(edge[0]), -14 * np.sign(edge[1]) or -14), fontsize=9, color="tab:red",
                    ha="right" if edge[0] > 0 else "left", va="top" if edge[1] > 0 else "bottom")
    elif not end:
        ax.annotate(f"step {len(points)}: f overflows", xy=points[-1], textcoords="offset points", xytext=(0, -18),
                    fontsize=9, color="tab:red", ha="center", va="top")
    ax.plot(*start, linestyle="none", marker="o", markersize=11, markerfacecolor="white", markeredgecolor="tab:green",
            markeredgewidth=2.2, zorder=4, label="start")
    if left is None and end:
        ax.plot(*points[-1], linestyle="none", marker="*", markersize=15, color="darkred", markeredgecolor="white",
                markeredgewidth=0.8, zorder=5, label="end")
    ax.plot(0, 0, linestyle="none", marker="+", markersize=12, markeredgewidth=1.5, color="black", zorder=4,
            label="minimum (0, 0)")
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_0$")
    ax.set_ylabel("$x_1$")
    ax.set_title(title, fontsize=11)
    # A fixed corner away from the path (which runs through the start and the origin): `best` is
    # slow and warns on long paths.
    ax.legend(loc="upper right" if start[0] * start[1] <= 0 else "upper left", fontsize=9, framealpha=0.92)
    fig.tight_layout()
    _save(fig, path)
    return left


def _to_edge(p, q, r: float) -> np.ndarray:
    """Where the segment from p (inside the square |x| <= r) to q (outside) crosses its edge."""
    d = q - p
    t = min(((r if di > 0 else -r) - pi) / di for pi, di in zip(p, d) if di != 0)
    return p + min(max(t, 0.0), 1.0) * d


# --- what the network learned ---------------------------------------------------------------------

MAX_TILES = 300  # first-layer units drawn; beyond that the tiles get too small to read


def weight_tiles(W1, path, image_shape=None, marked=None, marked_label: str = "") -> None:
    """Each hidden unit's first-layer weights W1[:, j] as an image of the input, on a diverging
    map centred at 0 (red: a bright pixel there excites the unit, blue: it inhibits it).

    `marked` (a bool per unit) frames those units in black, `marked_label` says what they are.
    """
    W1 = np.asarray(W1, dtype=np.float64)
    d, units = W1.shape
    shown = min(units, MAX_TILES)
    side = int(round(np.sqrt(d)))
    rows_px, cols_px = image_shape if image_shape is not None else ((side, side) if side * side == d else (1, d))
    cols = min(shown, int(np.ceil(np.sqrt(2 * shown))))  # about twice as wide as tall: 10 x 5 for 50
    rows = -(-shown // cols)
    gap = 2
    # One mosaic, one imshow: gaps are NaN (drawn grey), so every tile has a frame.
    mosaic = np.full((rows * (rows_px + gap) + gap, cols * (cols_px + gap) + gap), np.nan)
    for j in range(shown):
        r, c = divmod(j, cols)
        y, x = gap + r * (rows_px + gap), gap + c * (cols_px + gap)
        mosaic[y:y + rows_px, x:x + cols_px] = W1[:, j].reshape(rows_px, cols_px)
    # Symmetric limits at a high percentile of |W1|: one extreme weight would wash out the rest.
    limit = float(np.percentile(np.abs(W1[:, :shown]), 99.5)) or 1.0
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.7")
    width = min(10.0, max(6.5, 0.9 * cols + 1.4))
    fig, ax = plt.subplots(figsize=(width, (width - 1.4) * mosaic.shape[0] / mosaic.shape[1] + 0.9))
    im = ax.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    if marked is not None:
        for j in np.flatnonzero(np.asarray(marked)[:shown]):
            r, c = divmod(j, cols)
            ax.add_patch(plt.Rectangle((gap + c * (cols_px + gap) - 1.5, gap + r * (rows_px + gap) - 1.5),
                                       cols_px + 2, rows_px + 2, fill=False, edgecolor="black", linewidth=1.6))
    if shown % cols:  # the empty end of the last row: blank, not a grey block
        x0, y0 = gap + (shown % cols) * (cols_px + gap) - 0.5, gap + (rows - 1) * (rows_px + gap) - 0.5
        ax.add_patch(plt.Rectangle((x0, y0), mosaic.shape[1] - x0, mosaic.shape[0] - y0,
                                   facecolor="white", edgecolor="none"))
    ax.set_axis_off()
    extend = "both" if np.abs(W1).max() > limit else "neither"
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, extend=extend, label="weight")
    which = f"the first {shown} of {units} units" if shown < units else f"all {units} units"
    if marked is not None and np.any(marked):
        which += f"; framed in black: {marked_label}"
    ax.set_title(f"What each hidden unit looks for: its first-layer weights W1[:, j]\n({which})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def hidden_activity(h, activation: str, path, outside=SATURATED_OUTSIDE, share: float = SATURATED_SHARE) -> None:
    """Left: the histogram of every hidden activation on the test set. Right: per unit, the
    share of digits on which it is active (ReLU; dead units marked) or saturated (sigmoid)."""
    h = np.asarray(h, dtype=np.float64)
    n, units = h.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    unit = np.arange(units)
    if activation == "relu":
        top = float(h.max()) if h.size and h.max() > 0 else 1.0
        left.hist(h.ravel(), bins=60, range=(0, top), color="tab:blue", log=True)
        zero = np.count_nonzero(h == 0) / max(h.size, 1)
        left.set_title(f"Hidden activations ({100 * zero:.0f} % exactly 0)")
        left.set_ylabel("count (log scale)")
        per_unit, flagged = active_share(h), dead_units(h)
        right.set_ylabel("share of test digits it is active on")
        right.set_title(f"Per unit: {np.count_nonzero(flagged)} of {units} dead (red: never active)")
    else:
        # Bins of 0.02, so the first and the last are the saturated ends, drawn red.
        counts, edges = np.histogram(h.ravel(), bins=50, range=(0, 1))
        ends = (edges[:-1] < outside[0]) | (edges[1:] > outside[1])
        left.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=np.where(ends, "tab:red", "tab:blue"))
        left.set_xlim(0, 1)
        left.set_title(f"Hidden activations (red: outside {outside})")
        left.set_ylabel("count")
        per_unit, flagged = saturated_share(h, outside), saturated_units(h, outside, share)
        right.axhline(share, color="tab:red", lw=0.8, ls="--")
        right.set_ylabel(f"share of test digits outside {outside}")
        right.set_title(f"Per unit: {np.count_nonzero(flagged)} of {units} saturated (red: ≥ {100 * share:g} %)")
    left.set_xlabel("activation")
    for j in np.flatnonzero(flagged):  # a dead unit's bar has no height: shade its column
        right.axvspan(j - 0.5, j + 0.5, color="tab:red", alpha=0.2, lw=0)
    right.bar(unit, per_unit, width=0.8, color=np.where(flagged, "tab:red", "tab:blue"))
    right.set_xlabel("hidden unit")
    right.set_ylim(0, 1.05)
    right.set_xlim(-1, units)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Hidden layer on the {n:,} test digits")
    fig.tight_layout()
    _save(fig, path)


def norm_curves(epoch, columns: dict, path) -> None:
    """Per epoch (log scale): each parameter's norm ||W||, and its last update's norm over it,
    ||ΔW|| / ||W||, with the classic mark of a good learning rate at 1e-3."""
    keys = [c[:-len("_norm")] for c in columns if c.endswith("_norm")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    few = len(epoch) <= 40
    colors = {"W1": "tab:blue", "b1": "tab:cyan", "W2": "tab:red", "b2": "tab:orange"}  # a layer's pair alike
    for k in keys:
        style = {"color": colors.get(k), "marker": "o" if few else None, "markersize": 3, "linewidth": 1.3}
        left.plot(epoch, columns[f"{k}_norm"], label=k, **style)
        ratio = np.asarray(columns[f"{k}_update_ratio"], dtype=np.float64)
        right.plot(epoch, np.where(ratio > 0, ratio, np.nan), label=k, **style)  # no update: a gap
    right.axhline(1e-3, color="0.3", lw=0.8, ls="--")
    right.annotate("1e-3", (1.0, 1e-3), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                   textcoords="offset points", ha="right", fontsize=8, color="0.3")
    left.set_title("Parameter norm ||W|| per epoch")
    right.set_title("Last update of the epoch: ||ΔW|| / ||W||")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
