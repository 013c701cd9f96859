"""zerodl.model_file: models as pickle-free .npz: the round trip, and every file it refuses
without running anything in it."""
from __future__ import annotations

import gc
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.errors import ModelError
from zerodl.io import load_npy
from zerodl.model_file import MODEL_FORMAT, MODEL_VERSION, load_model, save_model

KEYS = ("W1", "b1", "W2", "b2")


class _Marker:
    """Unpickling this would create the directory `path` (os.mkdir): proof of execution."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.fixture
def load_spy(monkeypatch):
    """Wrap np.load: every call must pass allow_pickle=False."""
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle", "<default>"))
        assert kwargs.get("allow_pickle") is False, f"np.load called with {kwargs}"
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    return calls


def _trained_looking_net(dtype=np.float32, seed=0):
    net = TwoLayerNet(6, 4, 3, weight_init_std=0.3, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    net.params["b1"][:] = rng.normal(size=4)
    net.params["b2"][:] = rng.normal(size=3)
    return net


def _meta(**over):
    m = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "input_size": 6, "hidden_size": 4,
         "output_size": 3, "dtype": "float32"}
    m.update(over)
    return m


def _good_arrays(i=6, h=4, o=3):
    rng = np.random.default_rng(0)
    return {"W1": rng.normal(size=(i, h)).astype(np.float32), "b1": np.zeros(h, np.float32),
            "W2": rng.normal(size=(h, o)).astype(np.float32), "b2": np.zeros(o, np.float32)}


def _write_npz(path, arrays, meta=None):
    """A foreign .npz written with numpy's own savez (object arrays get pickled inside)."""
    payload = dict(arrays)
    if meta is not None:
        payload["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **payload)
    return path


# --- round trip ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(tmp_path, dtype, load_spy):
    net = _trained_looking_net(dtype)
    path = tmp_path / "model" / "model.npz"  # the folder is created
    net.save(path, learning_rate=0.1, optimizer="adam", iters=123)
    loaded = TwoLayerNet.load(path)
    assert load_spy, "load must go through np.load"
    assert loaded.dtype == np.dtype(dtype)
    for k in KEYS:
        assert loaded.params[k].dtype == np.dtype(dtype)
        assert loaded.params[k].tobytes() == net.params[k].tobytes()
    x = np.random.default_rng(1).random((5, 6))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert (loaded.input_size, loaded.hidden_size, loaded.output_size) == (6, 4, 3)
    m = loaded.meta
    assert m["format"] == "zerodl.TwoLayerNet" and m["version"] == 1
    assert (m["input_size"], m["hidden_size"], m["output_size"]) == (6, 4, 3)
    assert m["dtype"] == np.dtype(dtype).name
    assert m["weight_init_std"] == 0.3
    assert (m["learning_rate"], m["optimizer"], m["iters"]) == (0.1, "adam", 123)


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    path = tmp_path / "m.npz"
    _trained_looking_net().save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["W1.npy", "W2.npy", "b1.npy", "b2.npy", "meta.npy"]
    with np.load(path, allow_pickle=False) as z:  # numpy itself, no pickle allowed
        meta = json.loads(str(z["meta"]))
        assert meta["hidden_size"] == 4
        assert z["W1"].shape == (6, 4)


def test_saving_twice_gives_identical_bytes(tmp_path, monkeypatch):
    net = _trained_looking_net()
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    net.save(a, learning_rate=0.1)
    # a different clock must not matter (np.savez would stamp the current time)
    import time as _time
    real_localtime = _time.localtime
    monkeypatch.setattr(_time, "localtime", lambda *s: real_localtime(2_000_000_000))
    monkeypatch.setattr(_time, "time", lambda: 2_000_000_000.0)
    TwoLayerNet.load(a).save(b, learning_rate=0.1)
    assert a.read_bytes() == b.read_bytes()
    net.save(a, learning_rate=0.1)
    assert a.read_bytes() == b.read_bytes()


def test_save_model_and_load_model_functions(tmp_path):
    arrays = _good_arrays()
    save_model(tmp_path / "m.npz", arrays, {"input_size": 6, "hidden_size": 4, "output_size": 3, "note": "x"})
    params, meta = load_model(tmp_path / "m.npz")
    assert meta["note"] == "x" and meta["format"] == MODEL_FORMAT
    for k in KEYS:
        assert params[k].tobytes() == arrays[k].tobytes()


# --- refusals ---------------------------------------------------------------------------------

def _refused(path, *fragments):
    with pytest.raises(ModelError) as e:
        TwoLayerNet.load(path)
    msg = str(e.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    assert "\n" not in msg
    return msg


def test_refuses_a_pickle_and_never_runs_it(tmp_path, load_spy):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"W1": _Marker(marker)}))
    _refused(path, "pickle")
    assert not marker.exists()
    assert load_spy == [False]


def test_refuses_a_plain_pickle_of_data(tmp_path):
    path = tmp_path / "params.pkl"  # the book's habit: pickle.dump(params, f)
    path.write_bytes(pickle.dumps({k: v.tolist() for k, v in _good_arrays().items()}))
    _refused(path)


def test_refuses_object_arrays_and_never_runs_them(tmp_path, load_spy):
    marker = tmp_path / "pwned"
    arrays = _good_arrays()
    arrays["W1"] = np.array([_Marker(marker)], dtype=object)
    path = _write_npz(tmp_path / "obj.npz", arrays, _meta())
    _refused(path)
    assert not marker.exists()
    assert load_spy and all(c is False for c in load_spy)


def test_refuses_object_meta(tmp_path):
    arrays = _good_arrays()
    with open(tmp_path / "m.npz", "wb") as f:
        np.savez(f, meta=np.array([_meta()], dtype=object), **arrays)
    _refused(tmp_path / "m.npz")


def test_refuses_a_truncated_file(tmp_path):
    good = tmp_path / "good.npz"
    _trained_looking_net().save(good)
    data = good.read_bytes()
    for cut in (0, 1, 4, 30, len(data) // 2, len(data) - 22, len(data) - 1):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        _refused(bad)


def _refused_or_the_same(tmp_path, data: bytes, i: int, mask: int, ref: dict) -> bool:
    """The model file `data` with byte i flipped by `mask`: True if load_model refuses it with a
    ModelError (anything else propagates); if it loads, its arrays must be `ref`'s bytes."""
    b = bytearray(data)
    b[i] ^= mask
    bad = tmp_path / f"flip{i}.npz"  # a new file each time: rewriting one is slow on ext4
    bad.write_bytes(bytes(b))
    try:
        params, _ = load_model(bad)
    except ModelError:
        return True
    assert {k: params[k].tobytes() for k in KEYS} == ref, i
    return False


def test_every_truncation_and_byte_flip_is_refused_or_harmless(tmp_path):
    # nothing but ModelError may come out of a damaged model file; a flip that
    # load does not notice (e.g. in a zip timestamp) must not change the weights
    good = tmp_path / "good.npz"
    net = TwoLayerNet(3, 2, 2, weight_init_std=0.5, seed=0)
    net.save(good)
    data = good.read_bytes()
    ref = {k: net.params[k].tobytes() for k in KEYS}
    refused = 0
    # every third byte: ~600 damaged files. Each is a new file: rewriting one file
    # over and over is slow on ext4 (a truncated file is flushed on close).
    for i in range(0, len(data), 3):
        if i % 8 == 0:
            cut = tmp_path / f"cut{i}.npz"
            cut.write_bytes(data[:i])
            with pytest.raises(ModelError):
                load_model(cut)
        refused += _refused_or_the_same(tmp_path, data, i, (0x01, 0x80, 0xFF)[(i // 3) % 3], ref)  # low, high, all bits
    assert refused > len(data) // 6  # most flips are caught (CRC, headers, JSON)


def test_damaged_compressed_npz_is_refused(tmp_path):
    # a foreign, deflate-compressed archive with a flipped byte: zlib errors become ModelError
    path = tmp_path / "c.npz"
    arrays = _good_arrays(300, 4, 3)
    arrays["W1"] = np.tile(arrays["W1"][:1], (300, 1))  # compressible
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(_meta(input_size=300))), **arrays)
    data = path.read_bytes()
    intact, _ = load_model(path)  # intact, it loads
    assert intact["W1"].shape == (300, 4)
    ref = {k: intact[k].tobytes() for k in KEYS}
    refused = sum(_refused_or_the_same(tmp_path, data, i, 0xFF, ref) for i in range(0, len(data), 5))
    assert refused > len(data) // 10


def test_refused_files_are_closed(tmp_path):
    # an open handle left behind (found only by the garbage collector) would keep
    # the file locked on Windows; CPython reports it as a ResourceWarning
    good = tmp_path / "good.npz"
    _trained_looking_net().save(good)
    data = good.read_bytes()
    damaged = [data[: len(data) // 2], data[:-1], data[:-30] + bytes(30), b"", b"PK\x03\x04" + bytes(40)]
    b = bytearray(data)
    b[-60] ^= 0xFF  # inside the central directory
    damaged.append(bytes(b))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for i, blob in enumerate(damaged):
            path = tmp_path / f"d{i}.npz"
            path.write_bytes(blob)
            try:
                load_model(path)
            except ModelError:
                pass
            else:
                pytest.fail(f"damaged file {i} loaded")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_refuses_npz_with_missing_arrays(tmp_path):
    arrays = _good_arrays()
    del arrays["W2"]
    _refused(_write_npz(tmp_path / "m.npz", arrays, _meta()), "missing", "W2")


def test_refuses_foreign_npz_without_meta(tmp_path):
    _refused(_write_npz(tmp_path / "m.npz", _good_arrays()), "meta")


@pytest.mark.parametrize("meta, fragment", [
    ({"format": "something.else", "version": 1}, "format"),
    (_meta(version=99), "version"),
    (_meta(input_size="six"), "input_size"),
    ([1, 2, 3], "not a zerodl model"),
])
def test_refuses_bad_meta(tmp_path, meta, fragment):
    _refused(_write_npz(tmp_path / "m.npz", _good_arrays(), meta), fragment)


def test_refuses_meta_that_is_not_json(tmp_path):
    payload = dict(_good_arrays())
    payload["meta"] = np.array("{format: zerodl")
    with open(tmp_path / "m.npz", "wb") as f:
        np.savez(f, **payload)
    _refused(tmp_path / "m.npz", "JSON")


@pytest.mark.parametrize("key, shape", [("W1", (4, 6)), ("b1", (5,)), ("W2", (4, 2)), ("b2", (3, 1))])
def test_refuses_wrong_shapes(tmp_path, key, shape):
    arrays = _good_arrays()
    arrays[key] = np.zeros(shape, np.float32)
    _refused(_write_npz(tmp_path / "m.npz", arrays, _meta()), key, str(shape))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_refuses_non_finite_weights(tmp_path, value):
    arrays = _good_arrays()
    arrays["W2"][1, 2] = value
    _refused(_write_npz(tmp_path / "m.npz", arrays, _meta()), "W2", "NaN")


def test_refuses_integer_weights(tmp_path):
    arrays = _good_arrays()
    arrays["W1"] = np.ones((6, 4), dtype=np.int64)
    _refused(_write_npz(tmp_path / "m.npz", arrays, _meta()), "W1", "dtype")


def test_refuses_a_plain_npy(tmp_path, load_spy):
    path = tmp_path / "model.npy"
    np.save(path, np.zeros((6, 4)))
    _refused(path, ".npy")
    assert load_spy == [False]


def test_refuses_a_text_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("W1: [[1, 2], [3, 4]]\n")
    _refused(path)


def test_refuses_a_missing_file_and_a_folder(tmp_path):
    _refused(tmp_path / "nope.npz", "no such model file")
    (tmp_path / "dir.npz").mkdir()
    _refused(tmp_path / "dir.npz")


def test_load_npy_refuses_pickled_objects(tmp_path, load_spy):
    marker = tmp_path / "pwned"
    path = tmp_path / "a.npy"
    np.save(path, np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_npy(path)
    assert not marker.exists()
    assert load_spy == [False]


def test_error_is_a_zerodl_error_with_exit_code(tmp_path):
    from zerodl.errors import ZerodlError

    with pytest.raises(ZerodlError) as e:
        load_model(tmp_path / "nope.npz")
    assert isinstance(e.value, ModelError) and e.value.exit_code != 0
