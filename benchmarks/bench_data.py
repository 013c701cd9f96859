"""The benchmarks' data: Fashion-MNIST from Debian's `dataset-fashion-mnist`, or synthetic.

A minimal IDX decoder of its own (the benchmarks must not depend on the code
they measure), and `prepare()`, which writes the layout the train stage reads:

    DIR/data/prepared/x_train.npy   float32 (60000, 784) in [0, 1]
    DIR/data/prepared/t_train.npy   integer labels (60000,)
    DIR/data/prepared/x_test.npy    float32 (10000, 784) in [0, 1]
    DIR/data/prepared/t_test.npy    integer labels (10000,)
    DIR/data/prepared/meta.json
"""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "t_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "t_test": "t10k-labels-idx1-ubyte.gz",
}
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
LABEL_DTYPE = np.int64


def _read_idx_minimal(path: Path) -> np.ndarray:
    """Decode one (optionally gzip'd) IDX file of unsigned bytes: magic 0x0000 08 NDIM."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, code, ndim = struct.unpack_from(">HBB", raw, 0)
    if zero != 0 or code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data for shape {shape}")
    return data.reshape(shape)


try:  # zerodl's own reader, when it exists (it validates more); else the minimal one above
    from zerodl.data.idx import read_idx as _zerodl_read_idx

    read_idx = _zerodl_read_idx
    IDX_READER = "zerodl.data.idx.read_idx"
except ImportError:
    read_idx = _read_idx_minimal
    IDX_READER = "the benchmark's minimal decoder"


def fashion_mnist_available(root: Path = DEBIAN_DIR) -> bool:
    return all((root / name).is_file() for name in FILES.values())


def load_fashion_mnist(root: Path = DEBIAN_DIR) -> dict[str, np.ndarray]:
    """The four arrays, x as float32 in [0, 1] of shape (N, 784), t as integer labels."""
    out = {}
    for key, name in FILES.items():
        a = read_idx(root / name)
        if key.startswith("x"):
            out[key] = (a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0))
        else:
            out[key] = a.astype(LABEL_DTYPE)
    return out


def make_synthetic(n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> dict[str, np.ndarray]:
    """Same shapes and dtypes as Fashion-MNIST; labels from a fixed random linear
    teacher on sparse 'images', so the net has something learnable to fit."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.random((n, 784), dtype=np.float32)
        x[x < 0.5] = 0.0                     # about half the pixels dark, like the real thing
        out[f"x_{split}"] = x
        out[f"t_{split}"] = (x @ teacher).argmax(axis=1).astype(LABEL_DTYPE)
    return out


def load(kind: str) -> tuple[dict[str, np.ndarray], str]:
    """(arrays, a one-line description). kind: fashion-mnist (falls back to synthetic) | synthetic."""
    if kind == "fashion-mnist":
        if fashion_mnist_available():
            return load_fashion_mnist(), f"Fashion-MNIST 60,000/10,000 from {DEBIAN_DIR} (Debian dataset-fashion-mnist)"
        return make_synthetic(), (f"SYNTHETIC data (60,000/10,000, 784 features, 10 classes): "
                                  f"{DEBIAN_DIR} is missing; `apt-get install dataset-fashion-mnist` for the real set")
    if kind == "synthetic":
        return make_synthetic(), "SYNTHETIC data (60,000/10,000, 784 features, 10 classes), as asked"
    raise ValueError(f"unknown data kind {kind!r}")


def prepare(workdir: Path, kind: str) -> str:
    """Write data/prepared/ under workdir; returns the description line."""
    arrays, desc = load(kind)
    out = Path(workdir) / "data" / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        np.save(out / f"{key}.npy", np.ascontiguousarray(a))
    synthetic = desc.startswith("SYNTHETIC")
    meta = {
        "source": "synthetic" if synthetic else "fashion-mnist",
        "n_train": int(len(arrays["t_train"])),
        "n_test": int(len(arrays["t_test"])),
        "input_size": 784,
        "image_shape": [28, 28],
        "num_classes": 10,
        "output_size": 10,
        "classes": [str(i) for i in range(10)] if synthetic else CLASS_NAMES,
        "class_names": [str(i) for i in range(10)] if synthetic else CLASS_NAMES,
        "normalize": "x / 255, float32",
        "x_dtype": "float32",
        "t_dtype": np.dtype(LABEL_DTYPE).name,
        "note": "written by benchmarks/bench_data.py",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return desc


def load_prepared(workdir: Path) -> dict[str, np.ndarray]:
    d = Path(workdir) / "data" / "prepared"
    return {k: np.load(d / f"{k}.npy") for k in FILES}
