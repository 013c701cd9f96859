"""zerodl.plots' figures of what the network learned: drawn for any size of net, the same bytes each time."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from zerodl import plots


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.mark.parametrize("d, units", [(784, 50), (784, 7), (784, plots.MAX_TILES + 40), (6, 3)])
def test_weight_tiles_any_size_same_bytes(tmp_path, d, units):
    W1 = np.random.default_rng(0).normal(scale=0.1, size=(d, units)).astype(np.float32)
    marked = np.arange(units) % 5 == 0
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    plots.weight_tiles(W1, a, marked=marked, marked_label="every fifth")
    plots.weight_tiles(W1.copy(), b, marked=marked, marked_label="every fifth")
    assert _png(a) == _png(b)
    height, width = imread(a).shape[:2]
    assert 300 <= width <= 1200 and 150 <= height <= 1200  # readable, whatever the number of units


def test_weight_tiles_of_a_zero_layer(tmp_path):
    plots.weight_tiles(np.zeros((784, 4)), tmp_path / "w.png")  # no division by a zero limit
    _png(tmp_path / "w.png")


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_hidden_activity(tmp_path, activation):
    rng = np.random.default_rng(1)
    h = rng.random((300, 20))
    if activation == "relu":
        h = np.maximum(h - 0.5, 0)
        h[:, 3] = 0  # a dead unit
    else:
        h[:, 3] = 0.001  # a saturated one
    plots.hidden_activity(h, activation, tmp_path / "a.png")
    plots.hidden_activity(h, activation, tmp_path / "b.png")
    assert _png(tmp_path / "a.png") == _png(tmp_path / "b.png")


def test_hidden_activity_all_dead(tmp_path):
    plots.hidden_activity(np.zeros((10, 4)), "relu", tmp_path / "h.png")
    _png(tmp_path / "h.png")


def test_norm_curves_with_zero_and_nan_ratios(tmp_path):
    epoch = np.arange(1.0, 6.0)
    columns = {"epoch": epoch}
    for k in ("W1", "b1", "W2", "b2"):
        columns[f"{k}_norm"] = np.linspace(1, 2, 5)
        columns[f"{k}_update_ratio"] = np.array([1e-2, 1e-3, 0.0, np.nan, 1e-4])  # units died, a zero param
    plots.norm_curves(epoch, columns, tmp_path / "a.png")
    plots.norm_curves(epoch, columns, tmp_path / "b.png")
    assert _png(tmp_path / "a.png") == _png(tmp_path / "b.png")
