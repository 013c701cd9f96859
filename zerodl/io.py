"""Files written whole or not at all, and models saved without pickle.

Every file the pipeline writes goes through `atomic_write` (zerodl.atomic): the
bytes land in a temporary file in the same folder, are flushed to disk, and
only then renamed over the target. A crash, Ctrl-C or a full disk leaves the
old file (or none), never half of a new one.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .atomic import all_or_nothing, atomic_write, live_dir, naming, signals_held  # noqa: F401 - the writers' one import
from .errors import DataError, ModelError

MODEL_FORMAT = "zerodl.TwoLayerNet"
MODEL_VERSION = 1
PARAM_KEYS = ("W1", "b1", "W2", "b2")


def write_bytes(path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def load_npy(path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        if "pickle" not in str(e):
            raise
        # Not numpy's advice to load the file "unsafely": zerodl never unpickles.
        raise ValueError("not a .npy array, or one of Python objects, which zerodl never unpickles") from None


def load_split(folder, split: str, mmap: bool = False,
               hint: str = "run `dvc repro prepare` first") -> tuple[np.ndarray, np.ndarray]:
    """(x, t) of one split ("train" or "test") of the prepared data in `folder`.

    Checks what every reader relies on: float rows, integer labels, same length,
    not empty. `mmap` maps the files instead of reading them (one digit costs one digit).
    """
    folder = Path(folder)
    arrays = []
    for name in (f"x_{split}", f"t_{split}"):
        path = folder / f"{name}.npy"
        try:
            arrays.append(load_npy(path, mmap))
        except FileNotFoundError:
            raise DataError(f"{path}: not found ({hint})") from None
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable .npy array ({e}); rerun `dvc repro -f prepare`") from None
    x, t = arrays
    if x.ndim != 2 or t.ndim != 1 or len(x) != len(t) or x.dtype.kind != "f" or t.dtype.kind not in "iu":
        raise DataError(f"{folder}: x_{split} {x.shape} {x.dtype} and t_{split} {t.shape} {t.dtype} "
                        "are not prepared data (expected float rows and integer labels of the same length); "
                        "rerun `dvc repro -f prepare`")
    if len(t) == 0:
        raise DataError(f"{folder}: the {split} split is empty")
    return x, t


def save_model(path, params: dict[str, np.ndarray], config: dict) -> None:
    """Save W1, b1, W2, b2 and a JSON description of the net (sizes, settings).

    The description is stored as a plain unicode array, so loading needs no pickle.
    """
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, **config}
    arrays = {k: np.ascontiguousarray(params[k]) for k in PARAM_KEYS}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    write_bytes(path, npz_bytes(arrays))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive whose bytes depend only on the arrays.

    np.savez stamps each member with the current time, so the same weights
    would hash differently on every run (and DVC would see a new model).
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def load_model(path) -> tuple[dict[str, np.ndarray], dict]:
    """Return (params, meta) from a file written by `save_model`.

    Anything else (a pickle, a truncated or foreign .npz, wrong shapes, NaN
    weights) raises ModelError with one line naming the file and the problem.
    """
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise ModelError(f"{where}: is a folder, not a model file")
    if not path.is_file():
        raise ModelError(f"{where}: no such model file (train one with `dvc repro`)")
    try:
        # Our own handle, closed by `with` whatever happens: np.load given a path
        # leaks its file when the zip directory is damaged (NpzFile raises).
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy gives an ndarray: no `with`
                raise ModelError(f"{where}: not a zerodl model (a single .npy array, not an .npz archive)")
            with z:
                names = set(z.files)
                if "meta" not in names:
                    raise ModelError(f"{where}: not a zerodl model (no 'meta' entry; has {sorted(names)})")
                meta_arr = z["meta"]
                if meta_arr.dtype.kind != "U" or meta_arr.shape != ():
                    raise ModelError(f"{where}: not a zerodl model ('meta' is not a JSON string)")
                meta = json.loads(str(meta_arr))
                if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
                    raise ModelError(f"{where}: not a zerodl model (format is {meta.get('format') if isinstance(meta, dict) else meta!r})")
                if meta.get("version") != MODEL_VERSION:
                    raise ModelError(f"{where}: model version {meta.get('version')!r} is not supported (expected {MODEL_VERSION})")
                missing = [k for k in PARAM_KEYS if k not in names]
                if missing:
                    raise ModelError(f"{where}: model is missing arrays {missing}")
                params = {k: z[k] for k in PARAM_KEYS}
    except ModelError:
        raise
    except json.JSONDecodeError as e:  # a ValueError too: must come first
        raise ModelError(f"{where}: not a zerodl model ('meta' is not valid JSON: {e})") from None
    except ValueError as e:
        # numpy says "Object arrays cannot be loaded when allow_pickle=False" for pickles.
        raise ModelError(_not_npz(path, where) or
                         f"{where}: refused to load ({e}); zerodl models never need pickle") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ModelError(_not_npz(path, where) or
                         f"{where}: not a readable zerodl model ({type(e).__name__}: {e})") from None
    except Exception as e:  # damaged zip headers: NotImplementedError, RuntimeError, zlib.error...
        raise ModelError(f"{where}: not a readable zerodl model ({type(e).__name__}: {e})") from None
    _check_shapes(where, params, meta)
    return params, meta


def _not_npz(path: Path, where: str) -> str | None:
    """What the file is, when np.load refused it and it is no .npz or .npy at all.

    numpy's own message for those would suggest loading the file "unsafely"
    with pickle, which zerodl never does. None: let numpy's error stand.
    """
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"{where}: cannot read ({e.strerror or e})"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        return None  # a damaged archive or array: numpy's message says how
    if not head:
        return f"{where}: is empty, not a zerodl model"
    if head.startswith(b"\x80"):
        return (f"{where}: is a Python pickle, not a zerodl model; "
                "zerodl never unpickles (loading a pickle can run any code)")
    return f"{where}: not a zerodl model (not an .npz archive; it starts with {head!r})"


def _check_shapes(where: str, params: dict, meta: dict) -> None:
    try:
        i, h, o = int(meta["input_size"]), int(meta["hidden_size"]), int(meta["output_size"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{where}: model meta lacks input_size/hidden_size/output_size") from None
    want = {"W1": (i, h), "b1": (h,), "W2": (h, o), "b2": (o,)}
    for k, shape in want.items():
        a = params[k]
        if a.shape != shape:
            raise ModelError(f"{where}: {k} has shape {a.shape}, expected {shape}")
        if a.dtype.kind != "f":
            raise ModelError(f"{where}: {k} has dtype {a.dtype}, expected floating point")
        if not np.all(np.isfinite(a)):
            raise ModelError(f"{where}: {k} holds NaN or infinite values")
