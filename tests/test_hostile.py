"""Hostile and careless files cost little: one line, no traceback, nothing written, bounded memory.

Each case builds its hostile file in a temporary folder. The commands run for
real, as a child of a fresh process that reports the child's peak memory
(hostile_support.run_measured); the bounds leave room over what the fixed code
uses, and the bug each case guards against used gigabytes.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from data_support import idx_set, write_set
from hostile_support import (ROOT, assert_one_line, gzip_zeros, idx_header, npy_header, run_measured, zerodl_cmd,
                             zip_bomb_model)
from PIL import Image, ImageDraw

from zerodl import TwoLayerNet
from zerodl import io as zio
from zerodl import model_file as zmf
from zerodl.data import IDX_FILES, content_sha256, fetch, prepare, read_idx
from zerodl.data.prepare import MAX_PREPARED_BYTES, convert_idx, normalise
from zerodl.entry import run as entry_run
from zerodl.errors import DataError, ModelError
from zerodl.images import MAX_SIDE, load_digit, shrink
from zerodl.io import load_split, write_json
from zerodl.model_file import load_model, npz_bytes
from zerodl.metrics import evaluate

from cli_support import run_in_process

META = {"format": "zerodl.TwoLayerNet", "version": 1, "input_size": 784, "hidden_size": 8, "output_size": 10,
        "dtype": "float32", "activation": "relu", "dropout_ratio": 0.0, "weight_init_std": 0.01}
FASHION = Path("/usr/share/datasets/fashion-mnist")


# --- a small pipeline-shaped folder: prepared test digits, a model, params.yaml -------------------

def write_model(path: Path, scale: float = 0.1) -> TwoLayerNet:
    net = TwoLayerNet(784, 8, 10, weight_init_std=scale, seed=0)
    net.save(path)
    return net


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "x_test.npy", rng.random((60, 784), dtype=np.float32))
    np.save(prepared / "t_test.npy", np.arange(60) % 10)
    write_model(tmp_path / "data" / "model" / "model.npz")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def run_cli(args, cwd, monkeypatch, capsys) -> tuple[int, str, str]:
    """cli.main(args) in this process, run from cwd: (exit code, stdout, stderr)."""
    return run_in_process(args, cwd, monkeypatch, capsys)


def cli_error(args, cwd, monkeypatch, capsys, *fragments: str) -> str:
    """The command fails with exit 1 and one line holding every fragment; nothing on stdout."""
    code, out, err = run_cli(args, cwd, monkeypatch, capsys)
    assert_one_line(subprocess.CompletedProcess(args, code, out, err), 1, "zerodl", *fragments)
    assert out == ""
    return err


def huge_model(path: Path) -> Path:
    """Finite weights whose products overflow float32: the outputs become inf and NaN."""
    net = TwoLayerNet(784, 8, 10, seed=0)
    net.params["W1"][...] = np.float32(3e38)
    net.save(path)
    return path


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


def _model_with(tmp_path, **members) -> Path:
    good = {"W1": np.zeros((784, 8), np.float32), "b1": np.zeros(8, np.float32),
            "W2": np.zeros((8, 10), np.float32), "b2": np.zeros(10, np.float32), "meta": np.array(json.dumps(META))}
    path = tmp_path / "m.npz"
    blob = npz_bytes(good)
    with zipfile.ZipFile(path, "w") as zf:
        with zipfile.ZipFile(io.BytesIO(blob)) as src:
            for info in src.infolist():
                name = info.filename[:-4]
                zf.writestr(info, members.get(name, src.read(info)))
    return path


def test_a_member_with_more_or_less_data_than_its_header_is_refused(tmp_path):
    w1 = npy_header("<f4", (784, 8)) + bytes(784 * 8 * 4)
    with pytest.raises(ModelError, match=r"'W1' holds more data than its header announces$"):
        load_model(_model_with(tmp_path, W1=w1 + b"junk"))
    with pytest.raises(ModelError, match=r"'W1' is truncated \(25,084 of its 25,088 bytes of data\)$"):
        load_model(_model_with(tmp_path, W1=w1[:-4]))
    with pytest.raises(ModelError, match=r"'W1' is not a readable .npy array \("):
        load_model(_model_with(tmp_path, W1=b"not an array"))


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
    path = _model_with(tmp_path, meta=npz_member(np.array(text)))
    with pytest.raises(ModelError) as e:
        TwoLayerNet.load(path)
    assert str(e.value) == f"{path}: {message}"


def npz_member(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def test_meta_sizes_through_the_command(project, monkeypatch, capsys):
    text = json.dumps(META).replace('"input_size": 784', '"input_size": Infinity')
    path = _model_with(project, meta=npz_member(np.array(text)))
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


# --- 5: prepare streams IDX data; what it would write is capped before it reads -------------------

def _idx_project(tmp_path, n_train: int, images: Path | None = None) -> Path:
    """data/raw as fetch leaves it for source idx, with n_train blank training digits (a gzip bomb)."""
    raw = write_set(tmp_path / "data" / "raw", {k: v for k, v in idx_set().items() if "train-images" not in k})
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_header(8, n_train) + (np.arange(n_train) % 10).astype(np.uint8).tobytes()))
    gzip_zeros(raw / "train-images-idx3-ubyte.gz", idx_header(8, n_train, 28, 28), n_train * 784)
    files = {role: {"file": f"{name}.gz", "sha256": content_sha256(raw / f"{name}.gz")[0]}
             for role, name in IDX_FILES.items()}
    (raw / "manifest.json").write_text(json.dumps({"source": "idx", "files": files}))
    params = (ROOT / "params.yaml").read_text().replace("source: mnist-5k", "source: idx     ")
    (tmp_path / "params.yaml").write_text(params.replace("dir: null", f"dir: {tmp_path}"))
    return tmp_path


def test_prepare_converts_a_large_idx_set_in_chunks(tmp_path):
    # 100,000 blank digits: 78 MB of pixels, a 314 MB x_train.npy. Before: ~450 MB in memory at once.
    proj = _idx_project(tmp_path, 100_000)
    p, peak = run_measured([sys.executable, ROOT / "stages" / "prepare.py"], cwd=proj)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == "prepare: idx: 100000 train, 20 test -> data/prepared\n"
    assert peak < 200, f"{peak:.0f} MB"
    expected = hashlib.sha256(npy_header("<f4", (100_000, 784)))
    for _ in range(100):
        expected.update(bytes(1000 * 784 * 4))
    with open(proj / "data/prepared/x_train.npy", "rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == expected.hexdigest()
    np.testing.assert_array_equal(np.load(proj / "data/prepared/t_train.npy"), np.arange(100_000) % 10)


def test_fetch_refuses_an_idx_set_larger_than_prepare_writes_before_reading_it(tmp_path):
    # A header for 1,369,000 digits (the 1 MB gzip bomb announces as many; it passed the
    # 1 GiB content cap and cost 5.3 GB in prepare): refused on the header and the labels alone.
    mine = write_set(tmp_path / "mine", {k: v for k, v in idx_set().items() if "train-images" not in k})
    n = 1_369_000
    (mine / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_header(8, n) + bytes(n)))
    gzip_zeros(mine / "train-images-idx3-ubyte.gz", idx_header(8, n, 28, 28), 1 << 20)  # only 1 MB of pixels
    params = (ROOT / "params.yaml").read_text().replace("source: mnist-5k", "source: idx     ")
    (tmp_path / "params.yaml").write_text(params.replace("dir: null", f"dir: {mine}"))
    p, peak = run_measured([sys.executable, ROOT / "stages" / "fetch.py"], cwd=tmp_path)
    assert assert_one_line(p, 1, "fetch") == (
        f"fetch: error: {mine}/train-images-idx3-ubyte.gz: 1369000 images of 28x28 would be a 4,293,184,000-byte "
        f"x_train.npy (float32), more than prepare's limit of {MAX_PREPARED_BYTES:,} bytes (MAX_PREPARED_BYTES in "
        "zerodl/data/prepare.py): damaged, hostile, or too large to train on")
    assert not any((tmp_path / "data").rglob("*"))  # nothing fetched, no temporary left
    assert peak < 150, f"{peak:.0f} MB"


def test_prepare_checks_its_limit_too_and_writes_nothing(tmp_path):
    proj = _idx_project(tmp_path, 1000)
    (out := tmp_path / "out").mkdir()
    with pytest.raises(DataError, match=r"data/raw/train-images-idx3-ubyte.gz: 1000 images of 28x28 would be a "
                                        r"3,136,000-byte x_train.npy \(float32\), more than prepare's limit of "
                                        r"1,000,000 bytes"):
        prepare(proj / "data" / "raw", out, seed=0, test_fraction=0.2, max_bytes=1_000_000)
    assert list(out.iterdir()) == []


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("where", ["small", "fashion-mnist"])
def test_the_streamed_arrays_are_the_bytes_np_save_wrote(tmp_path, where):
    if where == "small":
        folder = write_set(tmp_path / "set", idx_set(n_train=3000, n_test=7))  # several chunks of images
    elif FASHION.is_dir():
        folder = FASHION
    else:
        pytest.skip(f"{FASHION}: Debian's Fashion-MNIST is not installed (make fashion-mnist)")
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
        convert_idx(images, labels, tmp_path, split)
        assert (tmp_path / f"x_{split}.npy").read_bytes() == _npy_bytes(normalise(read_idx(images)))
        assert (tmp_path / f"t_{split}.npy").read_bytes() == _npy_bytes(read_idx(labels).astype(np.int64))


# --- 6: pictures are shrunk before they become floats; out-of-memory says what was read ----------

@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_largest_picture_zerodl_decodes_costs_little(tmp_path, mode):
    img = Image.new(mode, (7071, 7071), "white")  # 50 million pixels: as float64, 400 MB an array
    ImageDraw.Draw(img).line([(3500, 1500), (3500, 5600)], fill="black", width=450)
    img.save(tmp_path / "big.png", compress_level=1)
    write_model(tmp_path / "m.npz")
    p, peak = run_measured(zerodl_cmd("predict", "--model", tmp_path / "m.npz", "--json", tmp_path / "big.png"),
                           cwd=tmp_path)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert json.loads(p.stdout)[0]["file"] == str(tmp_path / "big.png")
    assert peak < 300, f"{peak:.0f} MB"  # before: 2.9 GB at 9459x9459; measured 146 MB grey, 262 MB colour


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that announces width x height and holds no pixels: what Pillow reads before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(9459, 9459), (1, 40_000_000), (40_000, 10)])
def test_a_picture_beyond_what_zerodl_decodes_is_refused_before_decoding(tmp_path, width, height):
    """9459x9459 in colour cost 434 MB; 1 x 89 million, 880 MB (Pillow keeps 8 bytes a row)."""
    picture = _png_header_only(tmp_path / "huge.png", width, height)
    write_model(tmp_path / "m.npz")
    p, peak = run_measured(zerodl_cmd("predict", "--model", tmp_path / "m.npz", picture), cwd=tmp_path)
    assert_one_line(p, 1, "zerodl", f"{picture}: {width}x{height} pixels is more than zerodl decodes "
                    "(50 million pixels, 32768 on a side); a picture of one digit needs far fewer: shrink it first")
    assert peak < 100, f"{peak:.0f} MB"


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "F"])
def test_shrinking_in_strips_is_one_reduce(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (3 * MAX_SIDE + 37, 500, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (3 * MAX_SIDE + 37, 500), dtype=np.uint16))
    elif mode != "RGBA":
        img = img.convert(mode)
    reference = img.convert({"P": "L", "I;16": "I"}.get(mode, mode)).reduce(4)
    small = shrink(img)
    assert small.size == (125, (3 * MAX_SIDE + 37 + 3) // 4) and small.mode == reference.mode
    np.testing.assert_array_equal(np.asarray(small), np.asarray(reference))
    normal = img.crop((0, 0, 500, MAX_SIDE))
    assert shrink(normal) is normal  # pictures up to MAX_SIDE are read as before, pixel for pixel


def test_out_of_memory_names_what_was_being_read(tmp_path, monkeypatch):
    model = tmp_path / "m.npz"
    write_model(model)
    draw = tmp_path / "d.png"
    Image.new("L", (60, 40), 255).save(draw)

    def no_memory(*args, **kwargs):
        raise MemoryError

    with monkeypatch.context() as m:
        m.setattr(zmf._Members, "data", no_memory)
        with pytest.raises(ModelError, match=rf"^{model}: out of memory loading the model; free some memory"):
            load_model(model)
    with monkeypatch.context() as m:  # building the net beside the loaded arrays (a 190 MB model)
        m.setattr(TwoLayerNet, "set_params", no_memory)
        with pytest.raises(ModelError, match=rf"^{model}: out of memory loading the model; free some memory"):
            TwoLayerNet.load(model)
    with monkeypatch.context() as m:
        m.setattr("zerodl.images.to_grey", no_memory)
        with pytest.raises(DataError, match=rf"^{draw}: out of memory reading its 60x40 pixels$"):
            load_digit(draw)
    np.save(tmp_path / "x_test.npy", np.zeros((2, 3), np.float32))
    with monkeypatch.context() as m:
        m.setattr(zio, "load_npy", no_memory)
        with pytest.raises(DataError, match=r"x_test.npy: out of memory reading its 152 bytes; free some memory"):
            load_split(tmp_path, "test")


@pytest.mark.parametrize("prog, advice", [
    ("train", "try smaller params (train.batch_size, model.hidden_size, or a smaller data set)"),
    ("prepare", "free some memory (close other programs) and run again"),
    ("zerodl", "free some memory (close other programs) and run again"),
])
def test_out_of_memory_advice_is_the_stages_own(prog, advice, capsys):
    def main():
        raise MemoryError

    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e:
            entry_run(main, prog)
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert e.value.code == 1
    assert capsys.readouterr().err == f"{prog}: error: out of memory; {advice}\n"


# --- the minor ones: say what a path is; no Pillow warnings; a cap on show ------------------------

def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def odd_paths(tmp_path) -> dict[str, Path]:
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    return {"a symbolic link loop": tmp_path / "loop1", "a broken symbolic link": tmp_path / "broken",
            "a named pipe (FIFO)": tmp_path / "fifo", "a character device": Path("/dev/null")}


def test_odd_paths_are_named_for_what_they_are(odd_paths, tmp_path, project, monkeypatch, capsys):
    for kind, path in odd_paths.items():
        with pytest.raises(DataError, match=exactly(f"{path}: is {kind}, not a folder")):
            fetch("idx", tmp_path, data_dir=path)
        with pytest.raises(ModelError, match=exactly(f"{path}: is {kind}, not a model file")):
            load_model(path)
        with pytest.raises(DataError, match=exactly(f"{path}: is {kind} (expected a PNG or JPEG picture of a digit)")):
            load_digit(path)
        cli_error(["predict", "--index", 0, "--data", path], project, monkeypatch, capsys,
                  f"{path}: is {kind}, not a folder (expected the prepared data")


@pytest.mark.parametrize("kind", ["a symbolic link loop", "a named pipe (FIFO)", "a folder"])
def test_an_idx_file_that_is_no_file_is_not_called_missing(odd_paths, tmp_path, kind):
    mine = write_set(tmp_path / "mine", {k: v for k, v in idx_set().items() if "t10k-labels" not in k})
    target = mine / "t10k-labels-idx1-ubyte.gz"
    if kind == "a folder":
        target.mkdir()
    elif kind == "a symbolic link loop":
        target.symlink_to(target)
    else:
        os.replace(odd_paths[kind], target)
    (raw := tmp_path / "raw").mkdir()
    with pytest.raises(DataError, match=exactly(f"{target}: is {kind}, not a file")):
        fetch("idx", raw, data_dir=mine)


def test_pillows_warnings_are_not_printed(project, monkeypatch, capsys):
    # A JPEG whose EXIF block is cut short: Pillow warns "Corrupt EXIF data" on stderr, then decodes it.
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06"
    Image.new("L", (40, 40), 255).save(project / "blank.jpg", exif=exif)
    cli_error(["predict", project / "blank.jpg"], project, monkeypatch, capsys, "no digit found")


def test_show_draws_at_most_100_digits(project, monkeypatch, capsys):
    code, _, err = run_cli(["show", "--index", *range(101), "--out", project / "d.png"], project, monkeypatch, capsys)
    assert code == 2 and "101 digits asked for: show draws at most 100 in one PNG" in err.splitlines()[-1]
    code, _, err = run_cli(["show", "--errors", 500, "--out", project / "d.png"], project, monkeypatch, capsys)
    assert code == 2 and "500 digits asked for" in err
    assert not (project / "d.png").exists()
