"""Hostile files, second pass (a review of issue 13's fixes): what zerodl reads back. The JSON
files (metrics, meta.json, environment.json, the fetch manifest), a model's meta nested or
numbered beyond reason and arrays of another dtype than it says, prepared data with labels that
are no class, pixels outside 0..1 or a header announcing more than the file holds. Each costs a
few reads and ends in one line naming the file that is wrong (not the model, for the data)."""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_support import ROOT, assert_one_line, run_measured, zerodl_cmd

from zerodl import TwoLayerNet
from zerodl.data.prepare import read_manifest
from zerodl.errors import DataError, ModelError
from zerodl import io as zio
from zerodl.io import JSON_LIMIT, load_split, read_json

from hostile_support import META, cli_error, model_with, npz_member, project  # noqa: F401 - the fixture

DEEP = "[" * 200_000 + "]" * 200_000  # 400 KB: json's parser recurses once a bracket


@pytest.mark.parametrize("content, why", [
    (DEEP, "nested too deep to be a file zerodl wrote"),
    ("{not json", "not valid JSON (line 1: Expecting property name enclosed in double quotes)"),
    (b"\xff\xfe{}", "not UTF-8 text, so not JSON"),
])
def test_read_json_says_what_is_wrong(tmp_path, content, why):
    path = tmp_path / "f.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ValueError) as e:
        read_json(path)
    assert str(e.value) == why


def test_read_json_reads_no_more_than_its_limit(tmp_path):
    path = tmp_path / "big.json"
    with path.open("wb") as f:  # sparse: 64 MiB and one byte, costing no disk
        f.truncate(JSON_LIMIT + 1)
    with pytest.raises(ValueError, match=r"^larger than 67,108,864 bytes, far more than zerodl's JSON files$"):
        read_json(path)
    path.write_text(" " * 1000 + '{"ok": [1, 2]}')
    assert read_json(path) == {"ok": [1, 2]}


def test_read_json_never_opens_a_pipe_or_reads_a_device(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"^is a named pipe \(FIFO\), not a JSON file$"):
        read_json(tmp_path / "pipe")  # would wait for a writer forever
    with pytest.raises(ValueError, match=r"^is a character device, not a JSON file$"):
        read_json("/dev/zero")  # would read forever
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "none.json")


@pytest.mark.parametrize("what", ["/dev/zero", "pipe", "deep", "big"])
def test_info_reads_hostile_json_files_cheaply(project, what):  # noqa: F811 - the fixture
    """Before: /dev/zero as --environment took 24 GB and the OOM killer, a pipe hung, deep
    brackets gave a RecursionError traceback, 300 MB of spaces cost 623 MB."""
    path = project / what
    if what == "pipe":
        os.mkfifo(path)
    elif what == "deep":
        path.write_text(DEEP)
    elif what == "big":
        with path.open("wb") as f:
            f.truncate(300 * 2**20)
    else:
        path = Path(what)
    p, peak_mb = run_measured(zerodl_cmd("info", "--environment", path), project, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    why = {"/dev/zero": "is a character device, not a JSON file", "pipe": "is a named pipe (FIFO), not a JSON file",
           "deep": "nested too deep to be a file zerodl wrote",
           "big": "larger than 67,108,864 bytes, far more than zerodl's JSON files"}[what]
    assert f"computed  unknown: {path} {why}" in p.stdout, p.stdout
    assert peak_mb < 250, peak_mb  # the 64 MiB read once, at most


def test_a_deep_fetch_manifest_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text(DEEP)
    with pytest.raises(DataError) as e:
        read_manifest(tmp_path)
    assert str(e.value) == f"{tmp_path / 'manifest.json'}: nested too deep to be a file zerodl wrote"


def test_the_report_stage_reads_a_deep_metrics_file_in_one_line(tmp_path):
    (tmp_path / "data" / "live" / "train").mkdir(parents=True)
    (tmp_path / "data" / "live" / "train" / "metrics.json").write_text(DEEP)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[1] / "params.yaml").read_text())
    p, _ = run_measured([sys.executable, Path(__file__).parents[1] / "stages" / "report.py"], tmp_path, timeout=60)
    assert_one_line(p, 1, "report", "data/live/train/metrics.json: nested too deep to be a file zerodl wrote")


# --- a model's meta and dtype ----------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (json.dumps(META)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "not a zerodl model ('meta' is nested too deep)"),
    (json.dumps(META).replace('"hidden_size": 8', '"hidden_size": ' + "8" * 5000),
     "not a zerodl model ('meta' holds a whole number of 5,000 digits)"),
])
def test_a_meta_beyond_reason_is_one_line(tmp_path, text, message):
    path = model_with(tmp_path, meta=npz_member(np.array(text)))
    with pytest.raises(ModelError) as e:
        TwoLayerNet.load(path)
    assert str(e.value) == f"{path}: {message}"


@pytest.mark.parametrize("dtype", ["<f8", ">f4", "<f2"])
def test_arrays_must_have_the_dtype_the_meta_says(tmp_path, dtype):
    """A float64 W1 in a float32 model loaded, and `info` called it float32; big-endian and
    float16 arrays passed as well (the check was only: some floating point)."""
    path = model_with(tmp_path, W1=npz_member(np.zeros((784, 8), dtype)))
    with pytest.raises(ModelError) as e:
        TwoLayerNet.load(path)
    assert str(e.value) == f"{path}: W1 has dtype {dtype}, expected float32 (<f4) as the model's meta says"


def test_a_float64_model_loads_as_float64(tmp_path):
    net = TwoLayerNet(784, 8, 10, seed=1, dtype=np.float64)
    net.save(tmp_path / "m.npz")
    back = TwoLayerNet.load(tmp_path / "m.npz")
    assert back.dtype == np.float64 and all(np.array_equal(back.params[k], net.params[k]) for k in net.params)


# --- prepared data: the data is named when it is the data that is wrong ---------------------------

@pytest.mark.parametrize("label", [99, -1])
def test_a_label_that_is_no_class_names_the_labels_not_the_model(project, monkeypatch, capsys, label):  # noqa: F811
    """Before: evaluate said `data/model/model.npz: has outputs 0 to 9, but the data has label 99`,
    and `zerodl predict` printed `true 99`."""
    t = np.load(project / "data" / "prepared" / "t_test.npy")
    t[5] = label
    np.save(project / "data" / "prepared" / "t_test.npy", t)
    line = (f"data/prepared/t_test.npy: test digit 5 has label {label} (prepared labels are the classes 0 to 9); "
            "rerun `dvc repro -f prepare`")
    p, _ = run_measured([sys.executable, ROOT / "stages" / "evaluate.py"], cwd=project)
    assert assert_one_line(p, 1, "evaluate") == f"evaluate: error: {line}"
    cli_error(["predict", "--index", 0], project, monkeypatch, capsys, line)


def test_a_huge_pixel_names_the_digit_not_the_model(project, monkeypatch, capsys):  # noqa: F811
    """Before: a finite 3e38 pixel overflowed the net, reported as `model.npz: ... a damaged or diverged model`."""
    x = np.load(project / "data" / "prepared" / "x_test.npy")
    x[41] = 3e38
    np.save(project / "data" / "prepared" / "x_test.npy", x)
    line = ("data/prepared/x_test.npy: test digit 41 holds 3e+38 (prepared pixels are numbers from 0 to 1); "
            "rerun `dvc repro -f prepare`")
    cli_error(["predict", "--index", 41], project, monkeypatch, capsys, line)
    p, _ = run_measured([sys.executable, ROOT / "stages" / "evaluate.py"], cwd=project)
    assert assert_one_line(p, 1, "evaluate") == f"evaluate: error: {line}"
    x[41] = -0.5
    np.save(project / "data" / "prepared" / "x_test.npy", x)
    cli_error(["predict", "--index", 41], project, monkeypatch, capsys, "test digit 41 holds -0.5 (prepared pixels")


@pytest.mark.parametrize("mmap", [False, True])
def test_a_header_announcing_more_than_the_file_holds_is_damaged_not_out_of_memory(tmp_path, mmap):
    """Before: a 1,128-byte x_test.npy announcing 10^9 digits said `out of memory reading its 1,128 bytes`."""
    np.save(tmp_path / "t_test.npy", np.zeros(3, np.int64))
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 784), np.float32))
    with (tmp_path / "x_test.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (10**9, 784)})
        f.write(bytes(1000))
    with pytest.raises(DataError) as e:
        load_split(tmp_path, "test", mmap=mmap)
    assert str(e.value) == (f"{tmp_path / 'x_test.npy'}: not a readable .npy array (its header announces "
                            "3,136,000,000,000 bytes of data ((1000000000, 784) float32), but it holds 1,000: "
                            "truncated or damaged); rerun `dvc repro -f prepare`")


def test_no_memory_to_map_a_split_is_out_of_memory_not_damage(tmp_path, monkeypatch):
    """Before: mmap's ENOMEM (a 940 MB split under ulimit -v) was called `not a readable .npy array`."""
    np.save(tmp_path / "x_test.npy", np.zeros((3, 784), np.float32))
    np.save(tmp_path / "t_test.npy", np.zeros(3, np.int64))

    def no_memory(*args, **kwargs):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(zio.np, "load", no_memory)  # where mmap fails when the address space is full
    with pytest.raises(DataError) as e:
        load_split(tmp_path, "test", mmap=True)
    size = (tmp_path / "x_test.npy").stat().st_size
    assert str(e.value) == (f"{tmp_path / 'x_test.npy'}: out of memory mapping its {size:,} bytes; "
                            "free some memory and run again")
