"""zerodl.metrics on the hidden layer: its activations as the net computes them, and which
units are dead (ReLU) or saturated (sigmoid); the report's sentence about them."""
from __future__ import annotations

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.functions import sigmoid
from zerodl.metrics import active_share, dead_units, hidden_activations, saturated_share, saturated_units
from zerodl.report import hidden_units_line


def test_dead_units_are_the_ones_never_active():
    h = np.array([[0.0, 0.5, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 2.0],
                  [0.0, 1.0, 1e-30, 3.0]])
    np.testing.assert_array_equal(dead_units(h), [True, False, False, False])
    np.testing.assert_allclose(active_share(h), [0, 2 / 3, 1 / 3, 2 / 3])


def test_saturated_is_outside_the_open_interval_on_99_percent_of_rows():
    n = 200
    h = np.full((n, 5), 0.5)  # float64: 0.02 and 0.98 exactly on the bounds
    h[:, 0] = 0.0                  # always at 0
    h[:, 1] = 0.99                 # always above 0.98
    h[:198, 2] = 0.02              # on the bounds counts as outside: 198 of 200 = 99 %
    h[198:, 2] = 0.5
    h[:197, 3] = 0.98              # 197 of 200: 98.5 %, not saturated
    h[:, 4] = np.linspace(0.021, 0.979, n)  # never
    np.testing.assert_array_equal(saturated_units(h), [True, True, True, False, False])
    np.testing.assert_allclose(saturated_share(h), [1, 1, 0.99, 0.985, 0])
    # the bounds and the share are parameters
    np.testing.assert_array_equal(saturated_units(h, outside=(0.01, 0.995)), [True, False, False, False, False])
    np.testing.assert_array_equal(saturated_units(h, share=0.98), [True, True, True, True, False])


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_hidden_activations_are_what_the_net_computes(activation):
    rng = np.random.default_rng(3)
    x = rng.random((37, 6), dtype=np.float32)
    net = TwoLayerNet(6, 9, 4, weight_init_std=1.0, seed=2, activation=activation)
    net.params["b1"][...] = rng.normal(size=9)  # some units off for some rows
    h = hidden_activations(net, x, chunk=5)  # chunks of 5: the last one short
    assert h.shape == (37, 9) and h.dtype == np.float32
    assert activation == "sigmoid" or 0 < np.count_nonzero(h == 0) < h.size
    # written out in float64 here
    a = x.astype(np.float64) @ net.params["W1"].astype(np.float64) + net.params["b1"]
    want = np.maximum(a, 0) if activation == "relu" else sigmoid(a)
    np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-6)
    # and the net's own numbers, bit for bit: the rest of the net turns them into its logits
    assert net.layers["Affine2"].forward(h).tobytes() == net.predict(x).tobytes()
    assert hidden_activations(net, x, chunk=100).tobytes() == h.tobytes()


def test_hidden_activations_come_before_dropout():
    rng = np.random.default_rng(4)
    x = rng.random((10, 5))
    net = TwoLayerNet(5, 7, 3, weight_init_std=0.5, seed=1, dropout_ratio=0.4, dtype=np.float64)
    h = hidden_activations(net, x)
    np.testing.assert_allclose(h, np.maximum(x @ net.params["W1"] + net.params["b1"], 0), rtol=1e-12)
    # inference mode: the net scales them by 1 - ratio on the way to its logits
    np.testing.assert_allclose(net.layers["Affine2"].forward(h * 0.6), net.predict(x), rtol=1e-12)


def test_hidden_units_line():
    assert hidden_units_line("relu", 12, 50, 1000) == \
        "12 of 50 hidden units are dead: never active on any of the 1,000 test digits."
    assert hidden_units_line("relu", 1, 50, 10000) == \
        "1 of 50 hidden units is dead: never active on any of the 10,000 test digits."
    assert hidden_units_line("sigmoid", 7, 50, 1000) == \
        "7 of 50 hidden units are saturated: outside (0.02, 0.98) on at least 99 % of the 1,000 test digits."
