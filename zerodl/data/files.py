"""File helpers for the data stages: gzip sniffing, bounded content hashing.

A source file may be stored plain or gzip-compressed, and Debian (for one)
recompresses what it ships, so files are identified by the sha256 of their
*content*: the decompressed bytes. Content is read in 1 MiB chunks and capped
at MAX_CONTENT_BYTES, so a gzip bomb costs at most the time to inflate that
much (~2 s a GiB here) and a chunk of memory. Readers that keep what they read
(read_idx, read_content) hold up to the cap: prepare does not (it converts IDX
files chunk by chunk, after checking their headers against its own limit).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import IO, Iterator

from ..errors import DataError
from ..io import path_kind

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# No data set this project reads decompresses to more than ~50 MB per file; past
# 1 GiB a file is damaged or hostile, and we stop instead of filling memory or disk.
MAX_CONTENT_BYTES = 1 << 30


def is_gzip(f: IO[bytes]) -> bool:
    """True if the stream starts with the gzip magic bytes; the position is restored."""
    pos = f.tell()
    head = f.read(2)
    f.seek(pos)
    return head == GZIP_MAGIC


@contextlib.contextmanager
def open_content(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a file for reading its content, decompressing it if (by its magic bytes) it is gzip."""
    path = Path(path)
    kind = path_kind(path)  # never open a named pipe: it would wait for a writer
    if kind not in ("a file", "nothing", "a folder"):
        raise DataError(f"{path}: is {kind}, not a file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        if is_gzip(f):
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                yield g
        else:
            yield f


@contextlib.contextmanager
def gzip_errors(where: str) -> Iterator[None]:
    """Turn what gzip and zlib raise on bad bytes into one DataError line naming the file."""
    try:
        yield
    except DataError:
        raise
    except EOFError:
        raise DataError(f"{where}: truncated gzip stream (it ends before its end-of-stream marker)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{where}: corrupt gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{where}: cannot read ({e.strerror or e})") from None


def read_upto(f: IO[bytes], n: int) -> bytearray:
    """Read n bytes, or fewer if the stream ends first, in chunks: never allocates more than it got."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def content_sha256(path: str | os.PathLike, max_bytes: int = MAX_CONTENT_BYTES,
                   where: str | None = None) -> tuple[str, int]:
    """Return (sha256 hex, size) of the file's content, decompressed if gzip; at most max_bytes.

    `where` names the file in errors (default: its path).
    """
    where = where or str(path)
    h = hashlib.sha256()
    size = 0
    with gzip_errors(where), open_content(path) as f:
        while chunk := f.read(min(CHUNK, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:
                raise DataError(f"{where}: content is larger than the {max_bytes}-byte limit (damaged or not a data file)")
            h.update(chunk)
    return h.hexdigest(), size


def read_content(path: str | os.PathLike, max_bytes: int = MAX_CONTENT_BYTES) -> bytearray:
    """The whole content of a file (decompressed if gzip), refusing more than max_bytes."""
    where = str(path)
    with gzip_errors(where), open_content(path) as f:
        data = read_upto(f, max_bytes + 1)
    if len(data) > max_bytes:
        raise DataError(f"{where}: content is larger than the {max_bytes}-byte limit (damaged or not a data file)")
    return data
