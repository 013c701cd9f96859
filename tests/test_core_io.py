"""zerodl.io and zerodl.atomic: files written whole or not at all, alone or together; the
model's bytes (tests/test_core_model_file.py has the model file itself)."""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import zerodl.io as zio
import zerodl.model_file as zmf
from zerodl.io import atomic_write, load_npy, save_npy, write_json, write_text

from test_core_model_file import _trained_looking_net


# --- atomic writes --------------------------------------------------------------------------

def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_write(target, "w") as f:
        f.write("new")
        assert target.read_text() == "old"  # not visible until the block ends
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_write_keeps_old_content_on_error(tmp_path, exc):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content")
    with pytest.raises(type(exc)):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            f.flush()
            raise exc
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_error_leaves_no_file_when_there_was_none(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(ValueError):
        with atomic_write(target, "w") as f:
            f.write("x")
            raise ValueError("boom")
    assert not target.exists()
    assert os.listdir(tmp_path / "sub") == []


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_all_or_nothing_installs_every_file_together(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with zio.all_or_nothing():
        write_text(tmp_path / "a.txt", "new a")
        write_text(tmp_path / "b.txt", "new b")
        assert (tmp_path / "a.txt").read_text() == "old a"  # staged, not yet installed
        assert not (tmp_path / "b.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert (tmp_path / "b.txt").read_text() == "new b"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("exc", [RuntimeError("stage failed"), KeyboardInterrupt()])
def test_all_or_nothing_installs_nothing_on_error(tmp_path, exc):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(type(exc)):
        with zio.all_or_nothing():
            write_text(tmp_path / "a.txt", "new a")
            write_text(tmp_path / "b.txt", "new b")
            raise exc
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    # and the next write outside a block is installed at once again
    write_text(tmp_path / "c.txt", "c")
    assert (tmp_path / "c.txt").read_text() == "c"


def test_save_failure_keeps_the_old_model(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    _trained_looking_net(seed=0).save(path)
    old = path.read_bytes()

    def broken(arrays):
        raise OSError("No space left on device")

    monkeypatch.setattr(zmf, "npz_bytes", broken)
    with pytest.raises(OSError):
        _trained_looking_net(seed=1).save(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.npz"]


def test_write_helpers(tmp_path):
    write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode("utf-8")
    write_json(tmp_path / "m.json", {"acc": 0.5, "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.5, "n": 3}
    assert (tmp_path / "m.json").read_text().endswith("\n")
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_npy(tmp_path / "x.npy", arr)
    back = load_npy(tmp_path / "x.npy")
    assert back.dtype == np.uint8 and back.tobytes() == arr.tobytes()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "m.json", "x.npy"]


def test_npz_bytes_depend_only_on_arrays():
    arrays = {"a": np.arange(3.0), "b": np.array("text")}
    assert zmf.npz_bytes(arrays) == zmf.npz_bytes({k: v.copy() for k, v in arrays.items()})
    with zipfile.ZipFile(io.BytesIO(zmf.npz_bytes(arrays))) as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
