"""IDX files, the format MNIST ships in: read and write, plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a data type code, the
number of dimensions), one big-endian uint32 per dimension, then the values,
row-major and big-endian. The reader trusts none of it: every way a file can
be wrong raises DataError with one line naming the file, and it reads the
data with the size the header announces as a cap, plus one byte to prove
nothing follows.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DataError
from ..io import write_bytes
from .files import MAX_CONTENT_BYTES, gzip_errors, open_content, read_upto

# IDX type code -> big-endian numpy dtype (the table of the MNIST page).
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(t).newbyteorder("="): code for code, t in DTYPES.items()}


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_CONTENT_BYTES) -> np.ndarray:
    """Read an IDX file (gzip detected by its magic bytes, not its name) into a native-endian array."""
    where = str(path)
    with gzip_errors(where), open_content(path) as f:
        size = None if isinstance(f, gzip.GzipFile) else os.fstat(f.fileno()).st_size
        return read_idx_stream(f, where, max_bytes=max_bytes, file_size=size)


def read_idx_stream(f: IO[bytes], where: str, max_bytes: int = MAX_CONTENT_BYTES,
                    file_size: int | None = None) -> np.ndarray:
    """Parse IDX bytes from a stream; `where` names the file in errors.

    Reads the header, then at most (announced data size + 1) bytes: the extra
    byte is how trailing junk is caught without reading any further.
    """
    magic = read_upto(f, 4)
    if len(magic) < 4:
        raise DataError(f"{where}: not an IDX file: {len(magic)} bytes, too short for the 4-byte magic number")
    if magic[0] or magic[1]:
        raise DataError(f"{where}: not an IDX file: magic number 0x{magic.hex()} does not start with two zero bytes")
    code, ndim = magic[2], magic[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in DTYPES)
        raise DataError(f"{where}: unknown IDX data type code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{where}: IDX header announces 0 dimensions")
    raw_dims = read_upto(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{where}: truncated header: {ndim} dimensions announced, "
                        f"{len(raw_dims)} of their {4 * ndim} bytes present")
    shape = struct.unpack(f">{ndim}I", raw_dims)
    dtype = np.dtype(DTYPES[code])
    n = math.prod(shape) * dtype.itemsize  # a Python int: no overflow, however big the header's numbers
    if n > max_bytes:
        raise DataError(f"{where}: header announces {n} bytes of data (shape {_shape_text(shape)}), "
                        f"more than the {max_bytes}-byte limit")
    header = 4 + 4 * ndim
    if file_size is not None and file_size - header != n:
        # A plain file: its size alone tells, no need to read the data.
        problem = "truncated" if file_size - header < n else "trailing bytes"
        raise DataError(f"{where}: {problem}: header announces {n} bytes of data, file holds {file_size - header}")
    data = read_upto(f, n + 1)
    if len(data) < n:
        raise DataError(f"{where}: truncated: header announces {n} bytes of data, file holds {len(data)}")
    if len(data) > n:
        raise DataError(f"{where}: trailing bytes: header announces {n} bytes of data, file holds more")
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as e:  # e.g. 0 x 4294967295 x 4294967295, or more dimensions than numpy takes
        raise DataError(f"{where}: shape {_shape_text(shape)} cannot be an array ({e})") from None
    return array.astype(dtype.newbyteorder("="), copy=False)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an array of uint8, int8, int16, int32, float32 or float64."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise ValueError(f"IDX cannot hold dtype {array.dtype} (it holds uint8, int8, int16, int32, float32, float64)")
    if not 1 <= array.ndim <= 255 or any(d > 0xFFFFFFFF for d in array.shape):
        raise ValueError(f"IDX cannot hold an array of shape {array.shape}")
    header = bytes([0, 0, CODES[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=DTYPES[CODES[native]]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an IDX file atomically; gzip it if `compress`, or by default if the name ends in .gz."""
    path = Path(path)
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # mtime=0: same array, same bytes
    write_bytes(path, data)


def load_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike,
              n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file (N, rows, cols) of uint8 and its labels file (N,) of uint8 in 0..n_classes-1."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path}: expected images as unsigned bytes in 3 dimensions (count, rows, cols), "
                        f"got {images.dtype} of shape {_shape_text(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels as unsigned bytes in 1 dimension, "
                        f"got {labels.dtype} of shape {_shape_text(labels.shape)}")
    if len(images) == 0:
        raise DataError(f"{images_path}: holds no images")
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DataError(f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is out of range 0-{n_classes - 1}"
                        f" ({bad.size} out of range in all)")
    return images, labels


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "()"
