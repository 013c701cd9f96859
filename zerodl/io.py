"""Files written whole or not at all, and the prepared arrays read back with checks.

Every file the pipeline writes goes through `atomic_write` (zerodl.atomic): the
bytes land in a temporary file in the same folder, are flushed to disk, and
only then renamed over the target. A crash, Ctrl-C or a full disk leaves the
old file (or none), never half of a new one. The model file is zerodl.model_file.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from .atomic import all_or_nothing, atomic_write, live_dir, naming, signals_held  # noqa: F401 - the writers' one import
from .errors import DataError


def write_bytes(path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    # allow_nan=False: NaN and Infinity are not JSON; a metric that became one is a bug, never written.
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


N_CLASSES = 10  # every source: ten digits, or ten kinds of garment
JSON_LIMIT = 64 * 2**20  # zerodl's JSON files are kilobytes; a long run's epoch rows, megabytes


def read_json(path, limit: int = JSON_LIMIT):
    """The JSON value in `path`, read within bounds: FileNotFoundError if there is no file,
    ValueError saying what is wrong otherwise (not a regular file, unreadable, over `limit`
    bytes, not UTF-8, not JSON, nested too deep). A device or named pipe is never opened."""
    kind = path_kind(path)
    if kind in ("nothing", "a broken symbolic link"):
        raise FileNotFoundError(errno.ENOENT, "not found", str(path))
    if kind != "a file":
        raise ValueError(f"is {kind}, not a JSON file")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:  # a forbidden file, an I/O error: the callers' one kind of bad file
        raise ValueError(f"cannot read ({e.strerror or e})") from None
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes, far more than zerodl's JSON files")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text, so not JSON") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:  # 200,000 brackets in 400 KB: no file zerodl writes nests that deep
        raise ValueError("nested too deep to be a file zerodl wrote") from None


def save_npy(path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def save_npy_stream(path, dtype, shape: tuple[int, ...], chunks) -> None:
    """save_npy for an array that arrives as chunks of rows, never whole in memory: the same bytes."""
    dtype = np.dtype(dtype)
    with atomic_write(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": tuple(shape)})
        rows = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            f.write(memoryview(chunk).cast("B"))
            rows += len(chunk)
        if rows != shape[0]:
            raise ValueError(f"{path}: {rows} rows written, {shape[0]} announced")  # a bug of the caller


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the .npy array at f's position, f left at its data;
    ValueError if it is none. Versions 1.0 and 2.0: 3.0 only adds unicode names of structured fields."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


def load_npy(path, mmap: bool = False) -> np.ndarray:
    """np.load without pickle; ValueError first if the header announces more data than the file
    holds (a damaged or hostile file would otherwise be read as an allocation of that size)."""
    with open(path, "rb") as f:
        try:
            shape, _, dtype = read_npy_header(f)
        except ValueError:  # np.load below says what is wrong
            shape = None
        if shape is not None and not dtype.hasobject:
            announced = math.prod(shape) * dtype.itemsize
            holds = os.fstat(f.fileno()).st_size - f.tell()
            if announced > holds:
                raise ValueError(f"its header announces {announced:,} bytes of data ({shape} {dtype}), "
                                 f"but it holds {holds:,}: truncated or damaged")
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
        kind = path_kind(path)
        if kind not in ("a file", "nothing"):
            raise DataError(f"{path}: is {kind}, not a .npy array ({hint})")
        try:
            arrays.append(load_npy(path, mmap))
        except FileNotFoundError:
            raise DataError(f"{path}: not found ({hint})") from None
        except MemoryError:
            raise DataError(f"{path}: out of memory reading its {path.stat().st_size:,} bytes; "
                            "free some memory and run again") from None
        except OSError as e:
            if e.errno == errno.ENOMEM:  # mapping it found no memory: not a damaged file
                raise DataError(f"{path}: out of memory mapping its {path.stat().st_size:,} bytes; "
                                "free some memory and run again") from None
            raise DataError(f"{path}: not a readable .npy array ({e}); rerun `dvc repro -f prepare`") from None
        except (ValueError, EOFError) as e:
            raise DataError(f"{path}: not a readable .npy array ({e}); rerun `dvc repro -f prepare`") from None
    x, t = arrays
    if x.ndim != 2 or t.ndim != 1 or len(x) != len(t) or x.dtype.kind != "f" or t.dtype.kind not in "iu":
        raise DataError(f"{folder}: x_{split} {x.shape} {x.dtype} and t_{split} {t.shape} {t.dtype} "
                        "are not prepared data (expected float rows and integer labels of the same length); "
                        "rerun `dvc repro -f prepare`")
    if len(t) == 0:
        raise DataError(f"{folder}: the {split} split is empty")
    if int(t.min()) < 0 or int(t.max()) >= N_CLASSES:
        i = int(np.flatnonzero((t < 0) | (t >= N_CLASSES))[0])
        raise DataError(f"{folder / f't_{split}.npy'}: {split} digit {i} has label {int(t[i])} (prepared labels "
                        f"are the classes 0 to {N_CLASSES - 1}); rerun `dvc repro -f prepare`")
    return x, t


def check_pixels(x: np.ndarray, where, split: str, rows=None) -> None:
    """DataError naming the first digit of x (every row, or those in `rows`) with a pixel that is
    not a number from 0 to 1, as every prepared pixel is: NaN or an infinity would make each
    output of the net NaN, and a huge value would overflow it and seem the model's fault."""
    def bad(block):  # NaN fails both comparisons
        return np.flatnonzero(~((block >= 0) & (block <= 1)).all(axis=1))

    if rows is not None:
        found = [i for i in rows if bad(x[i:i + 1]).size]
    else:
        found = []
        for s in range(0, len(x), 4096):  # in chunks: a memory-mapped split stays on disk
            b = bad(x[s:s + 4096])
            if b.size:
                found = [s + int(b[0])]
                break
    if not found:
        return
    row = np.asarray(x[found[0]], dtype=np.float64)
    if not np.isfinite(row).all():
        raise DataError(f"{where}: {split} digit {found[0]} holds NaN or infinite values "
                        "(prepared pixels are numbers from 0 to 1); rerun `dvc repro -f prepare`")
    value = row[(row < 0) | (row > 1)][0]
    raise DataError(f"{where}: {split} digit {found[0]} holds {value:g} "
                    "(prepared pixels are numbers from 0 to 1); rerun `dvc repro -f prepare`")


def path_kind(path) -> str:
    """What is at `path`, in words: "a file", "a folder", "nothing", "a symbolic link loop", ...

    For messages that say what a path is when it is not what was expected (a
    device, a named pipe, a link to nowhere); and so that nothing opens a named
    pipe, which would wait for a writer forever.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "nothing"
    except NotADirectoryError:
        return "nothing"  # a path through a file
    except OSError as e:
        return "a symbolic link loop" if e.errno == errno.ELOOP else f"unreadable ({e.strerror or e})"
    for test, kind in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"
