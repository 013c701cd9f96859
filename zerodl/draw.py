"""draw.html: one page, opened from disk, to draw a digit on and watch the trained net read it.

The page is zerodl/templates/draw.html with draw.css and draw.js put inside it (one file, so
it opens from disk alone; three in the package, so each reads as what it is) and the model
filled in: its sizes,
activation and dropout ratio, and the four weight arrays as base64 of their little-endian
bytes (float32, or float64 if the model is), row-major as in model.npz. So the page rebuilds
exactly the net in the model file, and needs no server, no network and no library.

Its JavaScript ports zerodl.images.mnist_like, which stays the one reference: the page
tests (tests/test_draw_page.py) draw in a real browser and compare what the page shows
with `zerodl predict` on the same picture.
"""
from __future__ import annotations

import base64
import html
import json
from importlib import resources

import numpy as np

from .errors import ModelError
from .model_file import PARAM_KEYS
from .net import TwoLayerNet

TEMPLATES = "templates"  # draw.html, draw.css, draw.js: package data (pyproject.toml)
NAMES = {"relu": "ReLU", "sigmoid": "sigmoid"}


def model_json(net: TwoLayerNet) -> str:
    """The net as the page's MODEL constant: sizes, activation, dropout and base64 weights."""
    dtype = "<f8" if net.dtype == np.float64 else "<f4"
    weights = {k: base64.b64encode(np.ascontiguousarray(net.params[k], dtype=dtype).tobytes()).decode("ascii")
               for k in PARAM_KEYS}
    model = {"input_size": net.input_size, "hidden_size": net.hidden_size, "output_size": net.output_size,
             "activation": net.activation, "dropout_ratio": net.dropout_ratio,
             "dtype": np.dtype(dtype).name, "params": weights}
    # Inside <script>: no "</script>" can close it early, whatever a string holds.
    return json.dumps(model, separators=(",", ":")).replace("<", "\\u003c")


def summary(net: TwoLayerNet, accuracy: float | None = None, source: str | None = None) -> str:
    """One line on the model: its layers, and what it was trained on and scores."""
    layers = f"{net.input_size} → {net.hidden_size} {NAMES[net.activation]}"
    if net.dropout_ratio:
        layers += f" (dropout {net.dropout_ratio:g})"
    line = f"TwoLayerNet {layers} → {net.output_size}"
    if source:
        line += f", trained on {source}"
    if accuracy is not None:
        line += f" · test accuracy {100 * accuracy:.2f} %"
    return line


def render(net: TwoLayerNet, accuracy: float | None = None, source: str | None = None) -> str:
    """The page's HTML: the same net and numbers give the same bytes (no date, no random)."""
    if net.input_size != 28 * 28:
        raise ModelError(f"draw.html: the model has {net.input_size} inputs; "
                         "a drawing becomes 28x28 = 784, as in MNIST")
    script = _fill("draw.js", {"{{MODEL}}": model_json(net)})
    return _fill("draw.html", {"{{STYLE}}": _template("draw.css"), "{{SCRIPT}}": script,
                               "{{SUMMARY}}": html.escape(summary(net, accuracy, source))})


def _template(name: str) -> str:
    return resources.files("zerodl").joinpath(TEMPLATES, name).read_text(encoding="utf-8")


def _fill(name: str, values: dict[str, str]) -> str:
    text = _template(name)
    for mark, value in values.items():
        if text.count(mark) != 1:
            raise RuntimeError(f"zerodl/{TEMPLATES}/{name}: expected {mark} once, found it {text.count(mark)} times")
        text = text.replace(mark, value)
    return text
