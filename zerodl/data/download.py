"""Download one file from a list of mirrors: stdlib urllib, a timeout, and no trust.

Each mirror is tried in order; any failure (an HTTP error, a refused
connection, a timeout, a short body, a body that fails verification) moves on
to the next. The body streams into a temporary file beside its destination and
is renamed into place only once verified, so a failed download leaves nothing.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable, Sequence

from ..errors import DataError
from .files import CHUNK

# A progress callback gets (label, bytes so far, total bytes or None), and 0 bytes each time a
# mirror answers; zerodl.progress.DownloadBars is the stages' one.
Progress = Callable[[str, int, "int | None"], None]

TIMEOUT = 30.0  # seconds without a byte before a mirror counts as dead
MAX_DOWNLOAD_BYTES = 256 << 20  # the largest file we fetch is 26 MB; an endless body stops here
USER_AGENT = "zerodl/0.1 (Python urllib)"


class MirrorFailed(Exception):
    """One mirror failed; the message says how. Caught here, never seen by users alone."""


def download(filename: str, mirrors: Sequence[str], dest: str | os.PathLike,
             verify: Callable[[Path], str | None], timeout: float = TIMEOUT,
             progress: Progress | None = None, max_bytes: int = MAX_DOWNLOAD_BYTES) -> str:
    """Fetch `filename` from the first mirror that serves a copy passing `verify`; return its URL.

    `verify(path)` returns None if the file is good, else the reason it is not.
    Raises DataError listing every mirror's failure if none served a good copy.
    """
    dest = Path(dest)
    if not mirrors:
        raise DataError(f"{filename}: no mirror to download it from")
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout, max_bytes, progress, label=filename)
            problem = verify(Path(tmp))
            if problem:
                raise MirrorFailed(problem)
            os.replace(tmp, dest)
            return url
        except (MirrorFailed, DataError) as e:
            failures.append(f"{url}: {e}")
        except Exception as e:  # noqa: BLE001 - any other failure of one mirror means: try the next
            failures.append(f"{url}: {_why(e, timeout)}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    raise DataError(f"{filename}: no mirror served a good copy: " + "; ".join(failures))


def _fetch(url: str, out: IO[bytes], timeout: float, max_bytes: int, progress: Progress | None,
           label: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise MirrorFailed(f"announces {total} bytes, more than the {max_bytes}-byte limit")
        done = 0
        if progress:
            progress(label, 0, total)  # a new start: a bar of the previous mirror's try ends here
        while chunk := response.read(CHUNK):
            done += len(chunk)
            if done > max_bytes:
                raise MirrorFailed(f"sent more than the {max_bytes}-byte limit")
            out.write(chunk)
            if progress:
                progress(label, done, total)
        if progress and total is None:
            progress(label, done, done)  # no length announced: close the line now
        if total is not None and done != total:
            raise MirrorFailed(f"truncated body: {done} of the {total} bytes announced")
        if done == 0:
            raise MirrorFailed("empty body")


def _why(e: BaseException, timeout: float) -> str:
    """A short reason for one mirror's failure."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        if not isinstance(e.reason, BaseException):
            return str(e.reason)
        e = e.reason  # urllib wraps the socket error: report that one
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(e, http.client.IncompleteRead):
        return f"truncated body: {len(e.partial)} bytes, then the connection closed"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {e}"
