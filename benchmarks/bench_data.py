"""The benchmarks' data: Debian's Fashion-MNIST, or synthetic data of the same shapes.

`prepare(DIR, kind)` writes the layout the train stage reads, from Debian's
`dataset-fashion-mnist` (or synthetic data of the same shapes): DIR/data/prepared/
{x,t}_{train,test}.npy (x float32 (N, 784) in [0, 1], t integer labels) and meta.json,
and `write_params` the standard run's params.yaml beside it. Imported by the contenders
too, so whatever else it needs is imported by the function that needs it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import BATCH, HIDDEN, INIT_STD, LR, N_TEST, N_TRAIN, PARAMS

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"x_train": "train-images-idx3-ubyte.gz", "t_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "t_test": "t10k-labels-idx1-ubyte.gz"}
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
LABEL_DTYPE = np.int64


def _read_idx_minimal(path: Path) -> np.ndarray:
    """Decode one (optionally gzip'd) IDX file of unsigned bytes: magic 0x0000 08 NDIM."""
    import gzip
    import struct

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


def idx_reader():
    """(read_idx, its name): zerodl's reader when there is one (it validates more), else ours,
    so the benchmarks do not depend on the code they measure."""
    try:
        from zerodl.data.idx import read_idx
    except ImportError:
        return _read_idx_minimal, "the benchmark's minimal decoder"
    return read_idx, "zerodl.data.idx.read_idx"


def fashion_mnist_available() -> bool:
    return all((DEBIAN_DIR / name).is_file() for name in FILES.values())


def make_synthetic(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0) -> dict[str, np.ndarray]:
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
    if kind == "synthetic":
        return make_synthetic(), "SYNTHETIC data (60,000/10,000, 784 features, 10 classes), as asked"
    if kind != "fashion-mnist":
        raise ValueError(f"unknown data kind {kind!r}")
    if not fashion_mnist_available():
        return make_synthetic(), (f"SYNTHETIC data (60,000/10,000, 784 features, 10 classes): "
                                  f"{DEBIAN_DIR} is missing; `apt-get install dataset-fashion-mnist` for the real set")
    read_idx, _ = idx_reader()
    out = {}
    for key, name in FILES.items():
        a = read_idx(DEBIAN_DIR / name)
        out[key] = (a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0) if key.startswith("x")
                    else a.astype(LABEL_DTYPE))
    return out, f"Fashion-MNIST 60,000/10,000 from {DEBIAN_DIR} (Debian dataset-fashion-mnist)"


def prepare(workdir: Path, kind: str) -> tuple[str, str]:
    """Write data/prepared/ under workdir; returns (description line, source: fashion-mnist | synthetic)."""
    arrays, desc = load(kind)
    out = Path(workdir) / "data" / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        np.save(out / f"{key}.npy", np.ascontiguousarray(a))
    source = "synthetic" if desc.startswith("SYNTHETIC") else "fashion-mnist"
    names = [str(i) for i in range(10)] if source == "synthetic" else CLASS_NAMES
    meta = {
        "source": source, "n_train": int(len(arrays["t_train"])), "n_test": int(len(arrays["t_test"])),
        "input_size": 784, "image_shape": [28, 28], "num_classes": 10, "output_size": 10,
        "classes": names, "class_names": names, "normalize": "x / 255, float32",
        "x_dtype": "float32", "t_dtype": np.dtype(LABEL_DTYPE).name,
        "note": "written by benchmarks/harness.py",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return desc, source


def load_prepared(workdir: Path):
    """(x_train, t_train), (x_test, t_test) from what prepare() wrote, as the book's load_mnist returns them."""
    d = Path(workdir) / "data" / "prepared"
    return ((np.load(d / "x_train.npy"), np.load(d / "t_train.npy")),
            (np.load(d / "x_test.npy"), np.load(d / "t_test.npy")))


def train_sample(n: int, kind: str, seed: int):
    """(x float64 in [0, 1], t, description): n random training images, or n synthetic samples."""
    rng = np.random.default_rng(seed)
    if kind == "fashion-mnist" and fashion_mnist_available():
        read_idx, _ = idx_reader()
        x_all, t_all = (read_idx(DEBIAN_DIR / FILES[k]) for k in ("x_train", "t_train"))
        pick = rng.choice(len(t_all), n, replace=False)
        x = x_all[pick].reshape(n, -1).astype(np.float64) / 255.0
        return x, t_all[pick].astype(np.int64), f"{n} random Fashion-MNIST training images"
    d = make_synthetic(n_train=n, n_test=1, seed=seed)
    return d["x_train"].astype(np.float64), d["t_train"], f"{n} SYNTHETIC samples (Fashion-MNIST not installed or not asked for)"


def write_params(workdir: Path, iters: int, seed: int, threads: int | None, source: str) -> dict:
    """workdir/params.yaml: the repository's, with the model and train keys of the standard run."""
    import yaml

    raw = (yaml.safe_load(PARAMS.read_text()) if PARAMS.is_file() else {}) or {}
    raw["seed"] = seed
    raw.setdefault("data", {})
    if source == "fashion-mnist":
        raw["data"]["source"] = "fashion-mnist"   # irrelevant to the train stage; for the record
    raw.setdefault("model", {}).update(hidden_size=HIDDEN, weight_init_std=INIT_STD)
    train = raw.setdefault("train", {})
    train.update(iters=iters, batch_size=BATCH, learning_rate=LR, optimizer="sgd",
                 gradient="backprop", dtype="float32")
    if threads is not None:
        train["threads"] = threads
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw
