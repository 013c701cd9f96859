"""zerodl.draw, the writer of draw.html: the net it embeds, a page with nothing outside it, same bytes each time.

What the page does with the net is tested in a real browser: tests/test_draw_page.py.
"""
from __future__ import annotations

import base64
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from zerodl import TwoLayerNet, draw
from zerodl.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]


def embedded(page: str) -> dict:
    """The MODEL constant of a written page, as the page's script reads it."""
    return json.loads(re.search(r"^const MODEL = (.*);$", page, re.M).group(1))


@pytest.mark.parametrize("dtype, activation, dropout", [(np.float32, "relu", 0.0), (np.float64, "sigmoid", 0.25)])
def test_the_page_carries_the_net_of_the_model_file_bit_for_bit(tmp_path, dtype, activation, dropout):
    TwoLayerNet(784, 30, 10, weight_init_std=0.5, seed=3, dtype=dtype, activation=activation,
                dropout_ratio=dropout).save(tmp_path / "model.npz")
    net = TwoLayerNet.load(tmp_path / "model.npz")
    model = embedded(draw.render(net))
    assert {k: model[k] for k in ("input_size", "hidden_size", "output_size", "activation", "dropout_ratio")} == \
           {"input_size": 784, "hidden_size": 30, "output_size": 10, "activation": activation, "dropout_ratio": dropout}
    assert model["dtype"] == np.dtype(dtype).name
    for key, want in net.params.items():
        got = np.frombuffer(base64.b64decode(model["params"][key]), dtype=np.dtype(dtype).newbyteorder("<"))
        assert got.tobytes() == np.ascontiguousarray(want).astype("<" + np.dtype(dtype).str[1:]).tobytes()
        assert got.size == want.size


def test_the_page_is_self_contained():
    page = draw.render(TwoLayerNet(784, 20, 10, seed=0))
    assert not re.search(r"https?:", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|<img\b|<iframe\b|@import|url\(", page, re.I)
    assert not re.search(r"\bfetch\(|XMLHttpRequest|WebSocket|import\(", page)
    assert not re.search(r"\{\{[A-Z]+\}\}", page)  # every placeholder filled


def test_same_net_same_bytes_and_a_summary_line():
    net = TwoLayerNet(784, 20, 10, seed=0, activation="relu", dropout_ratio=0.5)
    first = draw.render(net, 0.9123, "mnist-5k")
    assert first == draw.render(net, 0.9123, "mnist-5k")
    assert "TwoLayerNet 784 → 20 ReLU (dropout 0.5) → 10, trained on mnist-5k · test accuracy 91.23 %" in first
    assert draw.render(net) != first  # the summary, not a date, is what differs


def test_text_is_escaped_into_the_page():
    page = draw.render(TwoLayerNet(784, 20, 10, seed=0), source="<script>alert(1)</script>")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("</script>") == 1  # the page's own script, closed once


def test_a_model_that_does_not_read_28x28_is_refused():
    with pytest.raises(ModelError, match="784"):
        draw.render(TwoLayerNet(10, 5, 3, seed=0))


def test_the_templates_ship_with_the_package_and_are_the_report_stage_s_deps():
    folder = resources.files("zerodl").joinpath(draw.TEMPLATES)
    names = sorted(f.name for f in folder.iterdir() if f.is_file())
    assert names == ["draw.css", "draw.html", "draw.js"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    globs = json.loads("[" + re.search(r'^\[tool\.setuptools\.package-data\]\nzerodl = \[(.*)\]$',
                                       pyproject, re.M).group(1) + "]")
    assert all(any(Path(draw.TEMPLATES, name).match(glob) for glob in globs) for name in names)
    deps = (ROOT / "dvc.yaml").read_text().split("  report:")[1].split("    params:")[0]
    assert "- zerodl/draw.py" in deps and f"- zerodl/{draw.TEMPLATES}\n" in deps
