"""Hostile and careless files cost little: one line, no traceback, nothing written, bounded memory.
Model files (items 2-4 of issue 13): headers checked against the meta before any data is
read, sizes that are whole numbers, and nothing non-finite reaching the output.

Each case builds its hostile file in a temporary folder. The commands run for
real, as a child of a fresh process that reports the child's peak memory
(hostile_support.run_measured); the bounds leave room over what the fixed code
uses, and the bug each case guards against used gigabytes.
"""
from __future__ import annotations

import json
import os
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from zerodl import TwoLayerNet
from zerodl.errors import DataError, ModelError
from zerodl.images import load_digit
from zerodl.io import write_json
from zerodl.model_file import load_model
from zerodl.metrics import evaluate

from hostile_support import (META, ROOT, assert_one_line, cli_error, huge_model, model_with, npy_header,
                             npz_member, run_cli, run_measured, zerodl_cmd, zip_bomb_model)
from hostile_support import project  # noqa: F401 - the fixture


# --- 2, 3: model files: headers checked against the meta before any data is read -------------

def test_a_zip_bomb_model_costs_its_headers_not_its_size(tmp_path):
    # 627 MB of zeros in W1, deflated to ~3 MB; the meta says 784x8. Before: all of it inflated first.
    bomb = zip_bomb_model(tmp_path / "bomb.npz", META, {"W1": (784, 100_000), "b1": (8,), "W2": (8, 10), "b2": (10,)})
    assert bomb.stat().st_size < 10 << 20
    p, peak = run_measured(zerodl_cmd("info", "--model", bomb), cwd=tmp_path)
    assert_one_line(p, 1, "zerodl", f"{bomb}: W1 has shape (784, 100000), expected (784, 8)")
    assert peak < 200, f"{peak:.0f} MB"


def test_a_zip_bomb_that_fits_its_meta_is_refused_before_inflating(tmp_path):
    meta = {**META, "hidden_size": 20_000, "dtype": "float64"}  # as its arrays are
    bomb = zip_bomb_model(tmp_path / "bomb.npz", meta, {"W1": (784, 20_000), "b1": (20_000,),
                                                         "W2": (20_000, 10), "b2": (10,)})
    size = bomb.stat().st_size
    with pytest.raises(ModelError, match=rf"bomb.npz: its arrays announce 125,440,000 bytes of data, more than a "
                                         rf"{size:,}-byte file holds \(a damaged archive, or a zip bomb\)$"):
        load_model(bomb)


def test_a_meta_string_bomb_is_refused_by_its_header(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.npy", npy_header("<U1000000", ()) + bytes(4_000_000))
    with pytest.raises(ModelError, match=r"'meta' is a string of 4,000,000 bytes; a model's is a few hundred\)$"):
        load_model(path)



def test_a_member_with_more_or_less_data_than_its_header_is_refused(tmp_path):
    w1 = npy_header("<f4", (784, 8)) + bytes(784 * 8 * 4)
    with pytest.raises(ModelError, match=r"'W1' holds more data than its header announces$"):
        load_model(model_with(tmp_path, W1=w1 + b"junk"))
    with pytest.raises(ModelError, match=r"'W1' is truncated \(25,084 of its 25,088 bytes of data\)$"):
        load_model(model_with(tmp_path, W1=w1[:-4]))
    with pytest.raises(ModelError, match=r"'W1' is not a readable .npy array \("):
        load_model(model_with(tmp_path, W1=b"not an array"))


@pytest.mark.parametrize("value, message", [
    ("784.6", "model meta input_size = 784.6: expected a whole number >= 1"),
    ('"784"', 'model meta input_size = "784": expected a whole number >= 1'),
    ("784.0", "model meta input_size = 784.0: expected a whole number >= 1"),
    ("true", "model meta input_size = true: expected a whole number >= 1"),
    ("-784", "model meta input_size = -784: expected a whole number >= 1"),
    ("null", "model meta input_size = null: expected a whole number >= 1"),
    ("Infinity", "not a zerodl model ('meta' holds Infinity, which is not a finite number)"),
    ("NaN", "not a zerodl model ('meta' holds NaN, which is not a finite number)"),
    ("1e400", "not a zerodl model ('meta' holds 1e400, which is not a finite number)"),
])
def test_meta_sizes_must_be_whole_numbers(tmp_path, value, message):
    text = json.dumps(META).replace('"input_size": 784', f'"input_size": {value}')
    path = model_with(tmp_path, meta=npz_member(np.array(text)))
    with pytest.raises(ModelError) as e:
        TwoLayerNet.load(path)
    assert str(e.value) == f"{path}: {message}"



def test_meta_sizes_through_the_command(project, monkeypatch, capsys):
    text = json.dumps(META).replace('"input_size": 784', '"input_size": Infinity')
    path = model_with(project, meta=npz_member(np.array(text)))
    cli_error(["info", "--model", path], project, monkeypatch, capsys, "holds Infinity")


# --- 4: nothing non-finite reaches the output -----------------------------------------------------

def test_overflowing_outputs_are_refused_by_predict_and_show(project, monkeypatch, capsys):
    model = huge_model(project / "huge.npz")
    cli_error(["predict", "--model", model, "--index", 3], project, monkeypatch, capsys,
              f"{model}: the network's outputs overflow float32 for test digit 3 (weights up to 3e+38)")
    cli_error(["predict", "--model", model, "--errors", 5, "--json"], project, monkeypatch, capsys,
              "overflow float32 for test digit 0")
    cli_error(["show", "--model", model, "--errors", 5, "--out", project / "e.png"], project, monkeypatch, capsys,
              "overflow float32 for test digit 0")
    assert not (project / "e.png").exists()


@pytest.mark.parametrize("case", ["huge weights", "inf pixel"])
def test_evaluate_refuses_what_would_be_nan_and_writes_nothing(project, case):
    metrics = project / "data" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "eval.json").write_text('{"old": true}\n')
    if case == "huge weights":
        huge_model(project / "data" / "model" / "model.npz")
        line = ("evaluate: error: data/model/model.npz: the network's outputs overflow float32 for test digit 0 "
                "(weights up to 3e+38): a damaged or diverged model")
    else:
        x = np.load(project / "data" / "prepared" / "x_test.npy")
        x[7, 100] = np.inf
        np.save(project / "data" / "prepared" / "x_test.npy", x)
        line = ("evaluate: error: data/prepared/x_test.npy: test digit 7 holds NaN or infinite values "
                "(prepared pixels are numbers from 0 to 1); rerun `dvc repro -f prepare`")
    p, peak = run_measured([sys.executable, ROOT / "stages" / "evaluate.py"], cwd=project)
    assert assert_one_line(p, 1, "evaluate") == line
    assert (metrics / "eval.json").read_text() == '{"old": true}\n'
    assert sorted(os.listdir(metrics)) == ["eval.json"] and not (project / "data" / "plots").exists()
    assert peak < 250, f"{peak:.0f} MB"


def test_evaluate_the_library_refuses_an_overflow(tmp_path):
    net = TwoLayerNet.load(huge_model(tmp_path / "huge.npz"))
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    with pytest.raises(ModelError, match=r"^m.npz: the network's outputs overflow float32 for digit 0 "):
        evaluate(net, x, np.arange(5), model="m.npz", name=lambda i: f"digit {i}")


def test_no_metrics_file_gets_nan(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        write_json(tmp_path / "m.json", {"loss": float("nan")})
    assert not (tmp_path / "m.json").exists()


def test_prepared_digits_with_nan_are_refused(project, monkeypatch, capsys):
    x = np.load(project / "data" / "prepared" / "x_test.npy")
    x[41, 5] = np.nan
    np.save(project / "data" / "prepared" / "x_test.npy", x)
    line = "data/prepared/x_test.npy: test digit 41 holds NaN or infinite values"
    for args in (["predict", "--index", 2, 41], ["predict", "--errors", 3],
                 ["show", "--index", 41, "--out", project / "d.png"], ["show", "--errors", 3, "--out", project / "d.png"]):
        cli_error(args, project, monkeypatch, capsys, line)
    assert not (project / "d.png").exists()
    code, out, _ = run_cli(["predict", "--index", 2], project, monkeypatch, capsys)  # the other digits still work
    assert code == 0 and out.startswith("test #2: true 2")


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_float_picture_with_a_non_finite_pixel_is_refused(tmp_path, value):
    a = np.zeros((40, 40), np.float32)
    a[10:30, 18:22] = 1.0
    a[0, 0] = value
    Image.fromarray(a, mode="F").save(tmp_path / "f.tif")
    with pytest.raises(DataError, match=r"f.tif: has pixels that are NaN or infinite \(expected a picture of a digit\)$"):
        load_digit(tmp_path / "f.tif")
