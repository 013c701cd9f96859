"""IDX files, the format MNIST ships in: read and write, plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a data type code, the
number of dimensions), one big-endian uint32 per dimension, then the values,
row-major and big-endian. The reader trusts none of it: every way a file can
be wrong raises DataError with one line naming the file, and it reads the
data with the size the header announces as a cap, plus one byte to prove
nothing follows.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from ..errors import DataError
from ..io import write_bytes
from .files import MAX_CONTENT_BYTES, gzip_errors, open_content, read_upto

# IDX type code -> big-endian numpy dtype (the table of the MNIST page).
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(t).newbyteorder("="): code for code, t in DTYPES.items()}


@dataclass(frozen=True)
class Header:
    """What an IDX header announces: the data's dtype (big-endian, as stored) and shape."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # a Python int: no overflow

    @property
    def native(self) -> np.dtype:
        return self.dtype.newbyteorder("=")


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
    header = read_header(f, where, max_bytes, file_size)
    n, shape = header.nbytes, header.shape
    data = read_upto(f, n + 1)
    if len(data) < n:
        raise DataError(f"{where}: truncated: header announces {n} bytes of data, file holds {len(data)}")
    if len(data) > n:
        raise DataError(f"{where}: trailing bytes: header announces {n} bytes of data, file holds more")
    try:
        array = np.frombuffer(data, dtype=header.dtype).reshape(shape)
    except ValueError as e:  # e.g. 0 x 4294967295 x 4294967295, or more dimensions than numpy takes
        raise DataError(f"{where}: shape {_shape_text(shape)} cannot be an array ({e})") from None
    return array.astype(header.native, copy=False)


def read_header(f: IO[bytes], where: str, max_bytes: int = MAX_CONTENT_BYTES,
                file_size: int | None = None) -> Header:
    """The header of an IDX stream, checked; the stream is left at the first data byte.

    A data size over max_bytes is refused on the header's numbers alone; for a
    plain file (`file_size` known) so is a data size the file does not match.
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
    header = Header(np.dtype(DTYPES[code]), struct.unpack(f">{ndim}I", raw_dims))
    n = header.nbytes
    if n > max_bytes:
        raise DataError(f"{where}: header announces {n} bytes of data (shape {_shape_text(header.shape)}), "
                        f"more than the {max_bytes}-byte limit (no data set this project reads comes near it)")
    start = 4 + 4 * ndim
    if file_size is not None and file_size - start != n:
        # A plain file: its size alone tells, no need to read the data.
        problem = "truncated" if file_size - start < n else "trailing bytes"
        raise DataError(f"{where}: {problem}: header announces {n} bytes of data, file holds {file_size - start}")
    return header


@contextlib.contextmanager
def open_idx(path: str | os.PathLike, max_bytes: int = MAX_CONTENT_BYTES) -> Iterator[Rows]:
    """An IDX file opened for reading its rows in chunks (Rows), its header read and checked."""
    where = str(path)
    with open_content(path) as f:
        with gzip_errors(where):
            size = None if isinstance(f, gzip.GzipFile) else os.fstat(f.fileno()).st_size
            header = read_header(f, where, max_bytes, size)
        yield Rows(f, where, header)


@dataclass
class Rows:
    """The data of an open IDX file, read in chunks of whole rows (the first dimension)."""

    f: IO[bytes]
    where: str
    header: Header

    def chunks(self, max_bytes: int = 1 << 22) -> Iterator[np.ndarray]:
        """The data as flat native-endian arrays of whole rows, up to max_bytes each (at least one
        row), until exactly the announced bytes are read: a short file or a byte more is refused."""
        n = self.header.nbytes
        row = math.prod(self.header.shape[1:]) * self.header.dtype.itemsize
        step = max(1, max_bytes // row) * row if row else n
        done = 0
        while done < n:
            want = min(step, n - done)
            with gzip_errors(self.where):
                data = read_upto(self.f, want)
            done += len(data)
            if len(data) < want:
                raise DataError(f"{self.where}: truncated: header announces {n} bytes of data, file holds {done}")
            yield np.frombuffer(data, self.header.dtype).astype(self.header.native, copy=False)
        with gzip_errors(self.where):
            if self.f.read(1):
                raise DataError(f"{self.where}: trailing bytes: header announces {n} bytes of data, file holds more")


def check_idx(path: str | os.PathLike, max_bytes: int = MAX_CONTENT_BYTES) -> Header:
    """read_idx's checks without keeping the data: memory stays one chunk, whatever the file."""
    with open_idx(path, max_bytes) as rows:
        for _ in rows.chunks():
            pass
    return rows.header


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
    check_pair(images_path, Header(images.dtype, images.shape), labels_path, Header(labels.dtype, labels.shape))
    count_labels(labels_path, [labels], n_classes)
    return images, labels


def check_pair(images_path, images: Header, labels_path, labels: Header) -> None:
    """An images file (N, rows, cols) of uint8 and its labels file (N,) of uint8, by their headers alone."""
    if images.native != np.uint8 or len(images.shape) != 3:
        raise DataError(f"{images_path}: expected images as unsigned bytes in 3 dimensions (count, rows, cols), "
                        f"got {images.native} of shape {_shape_text(images.shape)}")
    if labels.native != np.uint8 or len(labels.shape) != 1:
        raise DataError(f"{labels_path}: expected labels as unsigned bytes in 1 dimension, "
                        f"got {labels.native} of shape {_shape_text(labels.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: holds no images")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for the {images.shape[0]} images of {images_path}")


def count_labels(labels_path, chunks, n_classes: int = 10) -> list[int]:
    """How many of each class the labels (arriving in chunks) hold; DataError for one out of range."""
    counts = np.zeros(n_classes, dtype=np.int64)
    first, n_bad, start = None, 0, 0
    for labels in chunks:
        bad = np.flatnonzero(labels >= n_classes)
        if bad.size and first is None:
            first = (labels[bad[0]], start + bad[0])
        n_bad += bad.size
        counts += np.bincount(labels[labels < n_classes], minlength=n_classes)
        start += len(labels)
    if n_bad:
        raise DataError(f"{labels_path}: label {first[0]} at index {first[1]} is out of range 0-{n_classes - 1}"
                        f" ({n_bad} out of range in all)")
    return counts.tolist()


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "()"
