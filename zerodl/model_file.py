"""The model file: TwoLayerNet's W1, b1, W2, b2 and a JSON description, as an .npz read without pickle.

Loading trusts nothing in the file: each member's .npy header is checked against the
description before its data is read, so a hostile archive (a pickle, a zip bomb, NaN
weights, sizes that are not whole numbers) costs a few reads and one line naming it.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import ModelError
from .io import path_kind, read_npy_header, write_bytes

MODEL_FORMAT = "zerodl.TwoLayerNet"
MODEL_VERSION = 1
PARAM_KEYS = ("W1", "b1", "W2", "b2")
SIZE_KEYS = ("input_size", "hidden_size", "output_size")
# What reading a model may cost, decided from the .npy headers before any data is read:
# the JSON description is a few hundred bytes; arrays may announce up to MAX_INFLATION
# times the file's size (stored arrays are at most 1x; learned weights deflate ~1.1:1,
# a zip bomb of zeros ~1000:1), or FREE_BYTES whatever the file.
MAX_META_BYTES = 1 << 20
MAX_INFLATION = 10
FREE_BYTES = 16 << 20
CHUNK = 1 << 20


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
    Each array's .npy header is checked against the meta before its data is
    read, so a hostile archive (a zip bomb) costs a few reads, not its size.
    """
    path = Path(path)
    where = str(path)
    kind = path_kind(path)
    if kind == "a folder":
        raise ModelError(f"{where}: is a folder, not a model file")
    if kind == "nothing":
        raise ModelError(f"{where}: no such model file (train one with `dvc repro`)")
    if kind != "a file":
        raise ModelError(f"{where}: is {kind}, not a model file")
    try:
        # Our own handle, closed by `with` whatever happens: np.load given a path
        # leaks its file when the zip directory is damaged (NpzFile raises).
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)  # an .npz is opened, not read
            if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy gives an ndarray: no `with`
                raise ModelError(f"{where}: not a zerodl model (a single .npy array, not an .npz archive)")
            with z:
                names = set(z.files)
                if "meta" not in names:
                    raise ModelError(f"{where}: not a zerodl model (no 'meta' entry; has {sorted(names)})")
                members = _Members(z.zip, where, os.fstat(f.fileno()).st_size)
                meta = _parse_meta(members.meta(), where)
                shapes = _shapes(where, meta)
                missing = [k for k in PARAM_KEYS if k not in names]
                if missing:
                    raise ModelError(f"{where}: model is missing arrays {missing}")
                dtype = _dtype(where, meta)
                params = {k: members.array(k, shapes[k], dtype) for k in PARAM_KEYS}
    except ModelError:
        raise
    except MemoryError:
        raise ModelError(f"{where}: out of memory loading the model; free some memory and run again") from None
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


class _Members:
    """The .npy members of an open archive: a member's data is read only once its header has passed."""

    def __init__(self, zf: zipfile.ZipFile, where: str, file_size: int):
        self.zf, self.where, self.file_size = zf, where, file_size
        self.limit, self.announced = max(FREE_BYTES, MAX_INFLATION * file_size), 0

    def open(self, key: str):
        return self.zf.open(f"{key}.npy" if f"{key}.npy" in self.zf.namelist() else key)

    def header(self, m, key: str) -> tuple[np.dtype, tuple[int, ...], bool]:
        """(dtype, shape, fortran order) from a member's .npy header; m is left at its data."""
        try:
            shape, fortran, dtype = read_npy_header(m)
        except ValueError as e:
            raise ModelError(f"{self.where}: '{key}' is not a readable .npy array ({e})") from None
        if dtype.hasobject:
            raise ModelError(f"{self.where}: refused to load (Object arrays cannot be loaded when "
                             "allow_pickle=False); zerodl models never need pickle")
        return dtype, shape, fortran

    def meta(self) -> str:
        with self.open("meta") as m:
            dtype, shape, _ = self.header(m, "meta")
            if dtype.kind != "U" or shape != ():
                raise ModelError(f"{self.where}: not a zerodl model ('meta' is not a JSON string)")
            if dtype.itemsize > MAX_META_BYTES:
                raise ModelError(f"{self.where}: not a zerodl model ('meta' is a string of {dtype.itemsize:,} "
                                 "bytes; a model's is a few hundred)")
            return str(self.data(m, "meta", dtype, 1)[0])

    def array(self, key: str, want: tuple[int, ...], want_dtype: np.dtype) -> np.ndarray:
        with self.open(key) as m:
            dtype, shape, fortran = self.header(m, key)
            if shape != want:
                raise ModelError(f"{self.where}: {key} has shape {shape}, expected {want}")
            if dtype != want_dtype:  # '<f8' where the meta says float32, '>f4', float16: not what was saved
                raise ModelError(f"{self.where}: {key} has dtype {dtype.str}, expected {want_dtype.name} "
                                 f"({want_dtype.str}) as the model's meta says")
            self.announced += math.prod(shape) * dtype.itemsize
            if self.announced > self.limit:
                raise ModelError(f"{self.where}: its arrays announce {self.announced:,} bytes of data, more than "
                                 f"a {self.file_size:,}-byte file holds (a damaged archive, or a zip bomb)")
            a = self.data(m, key, dtype, math.prod(shape)).reshape(shape, order="F" if fortran else "C")
        if not np.all(np.isfinite(a)):
            raise ModelError(f"{self.where}: {key} holds NaN or infinite values")
        return a

    def data(self, m, key: str, dtype: np.dtype, count: int) -> np.ndarray:
        """The `count` values after the header, read in chunks: exactly those, nothing after them."""
        a = np.empty(count, dtype=dtype)
        buf, got = a.view(np.uint8), 0
        while got < buf.size:
            step = m.readinto(buf[got:got + CHUNK])
            if not step:
                raise ModelError(f"{self.where}: '{key}' is truncated ({got:,} of its {buf.size:,} bytes of data)")
            got += step
        if m.read(1):
            raise ModelError(f"{self.where}: '{key}' holds more data than its header announces")
        return a


def _parse_meta(text: str, where: str) -> dict:
    def refuse(token):  # NaN, Infinity, 1e999: not JSON numbers, and no size or setting
        raise ModelError(f"{where}: not a zerodl model ('meta' holds {token}, which is not a finite number)")

    def number(token):
        value = float(token)
        return value if math.isfinite(value) else refuse(token)

    def whole(token):  # sizes and settings have a few digits; int() would refuse past 4,300 with a riddle
        if len(token) > 20:
            raise ModelError(f"{where}: not a zerodl model ('meta' holds a whole number of {len(token):,} digits)")
        return int(token)

    try:
        meta = json.loads(text, parse_constant=refuse, parse_float=number, parse_int=whole)
    except RecursionError:
        raise ModelError(f"{where}: not a zerodl model ('meta' is nested too deep)") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{where}: not a zerodl model (format is {meta.get('format') if isinstance(meta, dict) else meta!r})")
    if meta.get("version") != MODEL_VERSION:
        raise ModelError(f"{where}: model version {meta.get('version')!r} is not supported (expected {MODEL_VERSION})")
    return meta


def _dtype(where: str, meta: dict) -> np.dtype:
    """The arrays' dtype the meta says (models from before it was recorded: float32)."""
    name = meta.get("dtype", "float32")
    if name not in ("float32", "float64"):
        raise ModelError(f"{where}: model dtype {json.dumps(name)[:40]} is not float32 or float64")
    return np.dtype(name)


def _shapes(where: str, meta: dict) -> dict[str, tuple[int, ...]]:
    """The shapes of W1, b1, W2, b2 that the meta's sizes say, each size a whole number >= 1."""
    if any(k not in meta for k in SIZE_KEYS):
        raise ModelError(f"{where}: model meta lacks input_size/hidden_size/output_size")
    for k in SIZE_KEYS:
        if type(meta[k]) is not int or meta[k] < 1:  # not bool, not 784.0 or "784": save_model writes ints
            raise ModelError(f"{where}: model meta {k} = {json.dumps(meta[k])}: expected a whole number >= 1")
    i, h, o = (meta[k] for k in SIZE_KEYS)
    return {"W1": (i, h), "b1": (h,), "W2": (h, o), "b2": (o,)}
