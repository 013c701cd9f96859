"""Hostile and careless files cost little: one line, no traceback, nothing written, bounded memory.
Data and pictures (items 5, 6 and the minor ones of issue 13): prepare streams IDX data and
caps what it would write, pictures are shrunk or refused before they become floats,
out-of-memory says what was read, a path is named for what it is.

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
import signal
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from data_support import idx_set, write_set
from PIL import Image, ImageDraw

from zerodl import TwoLayerNet
from zerodl import io as zio
from zerodl import model_file as zmf
from zerodl.data import IDX_FILES, content_sha256, fetch, prepare, read_idx
from zerodl.data.prepare import MAX_PREPARED_BYTES, convert_idx, normalise
from zerodl.entry import run as entry_run
from zerodl.errors import DataError, ModelError
from zerodl.images import MAX_SIDE, load_digit, shrink
from zerodl.io import load_split
from zerodl.model_file import load_model

from hostile_support import (FASHION, ROOT, assert_one_line, cli_error, gzip_zeros, idx_header, npy_header,
                             run_cli, run_measured, write_model, zerodl_cmd)
from hostile_support import project  # noqa: F401 - the fixture


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
