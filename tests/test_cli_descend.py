"""`zerodl descend`: chapter 4's gradient descent on f(x0, x1) = x0² + x1², and the PNG of its path.

Expected values come from the closed form: for this f the gradient is 2x, so an exact step
is x <- (1 - 2 lr) x and after k steps x_k = (1 - 2 lr)^k x_0; the central difference of a
quadratic is exact up to rounding, so the command must agree to ~1e-11.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_support import assert_one_line_error, run_in_process, zerodl
from zerodl import plots
from zerodl.gradient import numerical_gradient
from zerodl.plots import DPI

START = np.array([-3.0, 4.0])


def function_2(x):
    return x[0] ** 2 + x[1] ** 2


def strict_json(text: str):
    """json.loads, refusing NaN and Infinity (Python writes them, JSON has no such thing)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def descend_json(tmp_path, monkeypatch, capsys, *args):
    out = tmp_path / "path.png"
    code, stdout, err = run_in_process(["descend", "--json", "--out", out, *args], tmp_path, monkeypatch, capsys)
    assert code == 0 and err == "", err
    return strict_json(stdout), out


def assert_png(path, size=(round(6.4 * DPI), round(6.4 * DPI))) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size
        pixels = np.asarray(img.convert("RGB"))
    return pixels


def red_pixels(pixels: np.ndarray) -> int:
    # the path is drawn in matplotlib's tab:red (214, 39, 40); nothing else in the figure is that red
    r, g, b = (pixels[..., k].astype(int) for k in range(3))
    return int(np.count_nonzero((r > 180) & (g < 90) & (b < 90)))


# --- the book's runs ------------------------------------------------------------------------

def test_the_book_run_ends_where_the_closed_form_says(tmp_path, monkeypatch, capsys):
    result, out = descend_json(tmp_path, monkeypatch, capsys)
    assert (result["start"], result["lr"], result["steps"]) == ([-3.0, 4.0], 0.1, 100)  # the book's defaults
    path = np.array(result["path"])
    assert path.shape == (101, 2)
    exact = 0.8 ** np.arange(101)[:, None] * START  # (1 - 2 * 0.1)^k * init_x
    np.testing.assert_allclose(path, exact, rtol=1e-10, atol=0)
    np.testing.assert_allclose(result["end"], exact[-1], rtol=1e-10)
    # the book prints array([-6.11110793e-10,  8.14814391e-10])
    np.testing.assert_allclose(result["end"], [-6.11110793e-10, 8.14814391e-10], rtol=1e-8)
    assert result["f_end"] == pytest.approx(25 * 0.64 ** 100, rel=1e-10)
    assert result["distance_start"] == 5.0
    assert result["distance_end"] == pytest.approx(5 * 0.8 ** 100, rel=1e-10)
    assert result["verdict"] == "converged"
    assert result["overflow_step"] is None and result["stopped_moving_after_step"] is None
    assert result["left_window_at_step"] is None
    assert result["png"] == str(out) and out.is_file()


def test_the_book_run_as_text(tmp_path, monkeypatch, capsys):
    code, out, err = run_in_process(["descend"], tmp_path, monkeypatch, capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[1] == "start (-3, 4), lr 0.1, 100 steps"
    assert lines[2] == "end   (-6.11e-10, 8.15e-10), f = 1.04e-18"
    assert lines[3] == "distance to the minimum (0, 0): 5 at the start, 1.02e-09 at the end"
    assert lines[4].startswith("converged: ")
    assert lines[-1] == "wrote descent.png"  # the default --out, in the current folder
    pixels = assert_png(tmp_path / "descent.png")
    assert red_pixels(pixels) > 200  # the path is there


def test_lr_001_is_not_the_book_result(tmp_path, monkeypatch, capsys):
    # lr 0.01 multiplies x by 0.98 a step: 100 steps leave it at 0.133 of the start, far from 1e-10
    result, _ = descend_json(tmp_path, monkeypatch, capsys, "--lr", "0.01")
    np.testing.assert_allclose(result["end"], 0.98 ** 100 * START, rtol=1e-10)
    assert result["verdict"] == "not converged yet"


def test_a_too_large_lr_diverges(tmp_path):
    r = zerodl("descend", "--lr", 10, "--json", "--out", tmp_path / "d.png", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no numpy warnings either
    result = strict_json(r.stdout)
    assert result["verdict"] == "diverged"
    path = np.array(result["path"])
    # exact steps (x <- -19 x) while h = 1e-4 still registers next to x ...
    np.testing.assert_allclose(path[:5], (-19.0) ** np.arange(5)[:, None] * START, rtol=1e-6)
    assert np.abs(result["end"]).max() > 1e11
    # ... then x ± h rounds back to x, the numerical gradient is 0, and the points stop (the book's 2.6e13)
    assert result["stopped_moving_after_step"] == 10
    assert not np.any(numerical_gradient(function_2, np.array(result["end"])))
    assert result["left_window_at_step"] == 1

    text = zerodl("descend", "--lr", 10, "--out", tmp_path / "d.png", cwd=tmp_path)
    assert text.stderr == ""
    assert "diverged: lr 10 is too large" in text.stdout
    assert "stopped moving after step 10" in text.stdout
    assert f"wrote {tmp_path / 'd.png'} (the path leaves the drawn window at step 1)" in text.stdout
    assert red_pixels(assert_png(tmp_path / "d.png")) > 100  # the first step, drawn up to the edge


@pytest.mark.parametrize("lr, what", [("1e300", "where f overflows float64"), ("1e308", "x itself overflows")])
def test_an_overflow_is_said_not_printed_as_nan(tmp_path, lr, what):
    out = tmp_path / "d.png"
    r = zerodl("descend", "--lr", lr, "--json", "--out", out, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    result = strict_json(r.stdout)  # no NaN or Infinity in the JSON
    assert result["verdict"] == "diverged"
    assert result["overflow_step"] == 1
    assert result["end"] is None and result["f_end"] is None and result["distance_end"] is None
    assert result["path"] == [[-3.0, 4.0]]  # the finite part
    assert_png(out)
    text = zerodl("descend", "--lr", lr, "--out", out, cwd=tmp_path)
    assert text.stderr == ""
    assert "end   none: after step 1 " in text.stdout and what in text.stdout
    assert "diverged" in text.stdout and "nan" not in text.stdout


def test_a_tiny_lr_barely_moves(tmp_path, monkeypatch, capsys):
    result, _ = descend_json(tmp_path, monkeypatch, capsys, "--lr", "1e-10")
    assert result["verdict"] == "barely moved"
    assert result["distance_end"] == pytest.approx(5 * (1 - 2e-10) ** 100, rel=0, abs=1e-13)
    code, out, _ = run_in_process(["descend", "--lr", "1e-10", "--out", tmp_path / "d.png"], tmp_path,
                                  monkeypatch, capsys)
    assert code == 0
    # enough digits to see that it moved at all: 5 (1 - 2e-8) = 4.9999999
    assert "distance to the minimum (0, 0): 5 at the start, 4.9999999 at the end" in out
    assert "end   (-2.9999999, 3.9999999)" in out
    assert "barely moved: lr 1e-10 is too small; 100 steps took the point 1e-07 closer" in out


@pytest.mark.parametrize("args, verdict", [
    (["--lr", "1"], "oscillating"),             # x <- -x: across the minimum and back
    (["--start", "0", "0"], "converged"),       # already there
    (["--lr", "0.5", "--steps", "1"], "converged"),  # x <- 0 x in one step
    (["--lr", "1.01"], "diverged"),             # x <- -1.02 x
    (["--lr", "1.0002"], "diverged"),           # 100 steps of x <- -1.0004 x: 4 % farther, more than 1 %
    (["--lr", "0.0003"], "not converged yet"),  # 100 steps of x <- 0.9994 x: 6 % closer, more than barely
    (["--start", "2", "-0.5", "--lr", "0.3", "--steps", "3"], "not converged yet"),
])
def test_verdicts(tmp_path, monkeypatch, capsys, args, verdict):
    result, _ = descend_json(tmp_path, monkeypatch, capsys, *args)
    assert result["verdict"] == verdict
    start, lr, steps = np.array(result["start"]), result["lr"], result["steps"]
    # atol: the gradient's rounding, ~1e-12 of x, where the closed form gives exactly 0
    np.testing.assert_allclose(result["end"], (1 - 2 * lr) ** steps * start, rtol=1e-9, atol=1e-10)


# --- the picture ------------------------------------------------------------------------------

def test_the_png_is_the_same_bytes_every_time(tmp_path, monkeypatch, capsys):
    _, first = descend_json(tmp_path, monkeypatch, capsys)
    before = first.read_bytes()
    first.unlink()
    _, again = descend_json(tmp_path, monkeypatch, capsys)
    assert again.read_bytes() == before


def test_descent_path_says_where_the_path_leaves_the_window(tmp_path):
    # window: the square |x| <= 1.2 * 4 around the minimum
    inside = np.array([[-3.0, 4.0], [-1.0, 1.0], [0.0, 0.0]])
    assert plots.descent_path(inside, tmp_path / "in.png", "inside") is None
    far = np.array([[-3.0, 4.0], [57.0, -76.0], [-1e150, 1e150]])  # huge, but the edge is computed, not drawn
    assert plots.descent_path(far, tmp_path / "out.png", "leaves") == 1
    assert plots.descent_path(far[:1], tmp_path / "one.png", "overflow next", end=False) is None
    for name in ("in.png", "out.png", "one.png"):
        assert_png(tmp_path / name)


# --- bad options --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--start", "1"], ["--start", "expected 2 arguments"]),
    (["--start", "a", "b"], ["--start", "expected a number, got 'a'"]),
    (["--start", "nan", "1"], ["--start", "-1,000,000 to 1,000,000", "'nan'"]),
    (["--start", "1", "2e7"], ["--start", "'2e7'"]),
    (["--steps", "0"], ["--steps", "whole number from 1 to 100000", "'0'"]),
    (["--steps", "2.5"], ["--steps", "'2.5'"]),
    (["--steps", "100001"], ["--steps", "'100001'"]),
    (["--lr", "0"], ["--lr", "finite number > 0", "'0'"]),
    (["--lr", "-1"], ["--lr", "'-1'"]),
    (["--lr", "inf"], ["--lr", "'inf'"]),
    (["--lr", "nan"], ["--lr", "'nan'"]),
    (["--lr", "fast"], ["--lr", "'fast'"]),
])
def test_bad_options_are_usage_errors(tmp_path, monkeypatch, capsys, args, words):
    code, out, err = run_in_process(["descend", *args], tmp_path, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "Traceback" not in err and err.startswith("usage: zerodl descend")
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1]
    assert errors[0].startswith("zerodl descend: error: argument ")
    for word in words:
        assert word in errors[0], errors[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_out_gets_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "taken.png").mkdir()
    before = sorted(tmp_path.rglob("*"))
    cases = [
        (tmp_path / "path.jpg", ["--out", "path.jpg", "expected a file name ending in .png"]),
        (tmp_path / "typo" / "path.png", ["--out", "typo does not exist"]),
        (tmp_path / "a_file" / "path.png", ["--out", "a_file is a file, not a folder"]),
        (tmp_path / "taken.png", ["--out", "taken.png", "cannot write"]),
    ]
    for out, words in cases:
        code, stdout, err = run_in_process(["descend", "--out", out], tmp_path, monkeypatch, capsys)
        assert_one_line_error(code, err, *words)
        assert stdout == ""
    assert sorted(tmp_path.rglob("*")) == before
