"""Outputs installed whole or not at all: one file, a set of files, a whole folder.

- An output NAME is first written under a temporary sibling `.NAME.xxxxxxxx.tmp`
  (a file for `atomic_write`, a folder for `replace_dir`), flushed to disk, and
  only then renamed onto NAME. A crash, Ctrl-C or a full disk leaves the old
  output (or none), never half of a new one.
- `all_or_nothing` holds the renames back to the end of its block and does them
  all then, Ctrl-C and SIGTERM held; on an error it removes every temporary.
  A lone `atomic_write` and a `replace_dir` are each a block of their own.
- A folder is swapped in by one exchange of the two names (Linux renameat2
  RENAME_EXCHANGE); where the file system cannot, by two renames (NAME ->
  `.NAME.xxxxxxxx.old`, then the temporary -> NAME), between which NAME is
  absent, as DVC leaves an output before it runs the stage.
- A folder that a run fills in place as it goes (dvclive's: a live log others may read
  meanwhile) cannot be filled aside; `live_dir` keeps its old contents in memory instead
  and writes them back, whole, if the run fails.
- SIGKILL or a power cut can still leave temporaries behind (and, during the
  final renames of a block, some outputs new next to old ones: each one whole,
  and a rerun rewrites them all). A live run holds an flock on each of its
  temporaries, which the kernel drops however the run ends; so before writing
  NAME a run removes the `.NAME.xxxxxxxx.tmp` and `.old` next to it whose lock
  it can take: a dead run's, never a live one's (two stage scripts at once),
  never a name of another pattern. Where flock is missing or refused
  (Windows, some network file systems) nothing is removed. The temporaries, their
  locks and the sweep are zerodl.temps.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

from . import temps
from .errors import DataError

# The temporaries of the current `all_or_nothing` block, in the order they were made.
_STAGED: contextvars.ContextVar[list[temps.Temp] | None] = contextvars.ContextVar("zerodl_staged", default=None)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path`; rename it onto `path` when the block ends.

    Inside `all_or_nothing` the rename waits for the end of that block. An
    OSError names the output, not the temporary file: `path` when writing fails
    (a full disk fails `write`, which names no file), its folder when the file
    cannot be created.
    """
    path = Path(path)
    with all_or_nothing():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _stage(path, folder=False)
        with naming(path), os.fdopen(os.dup(temp.fd), mode) as f:  # its own descriptor: the lock outlives the file
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def replace_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Fill a fresh temporary sibling of `dest`; on success it takes dest's place as a whole.

    A stage's outputs are a set of files that belong together (four arrays and
    their meta.json), so replacing them one by one could leave a mix of old and
    new after an error. Here nothing in `dest` changes until every file has been
    written; on any error (a full disk, Ctrl-C) the temporary folder is removed
    and `dest` is exactly as it was. A write error becomes one DataError line
    naming `dest` (or the folder `dest` could not be made in), never a temporary.
    """
    dest = Path(dest)
    temp = None
    try:
        with all_or_nothing():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() and not dest.is_dir():
                raise DataError(f"{dest}: is a file, expected a folder of outputs")
            temp = _stage(dest, folder=True)
            yield Path(temp.path)
    except OSError as e:
        where = e.filename
        if where is None or (temp is not None and temps.inside(os.fspath(where), temp.path)):
            where = dest
        raise DataError(f"{where}: cannot write ({e.strerror or e}); {dest} was left as it was") from None


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """An OSError raised in this block that names no file (a full disk fails write(2), which
    names none) names `path`: for writers that are not ours (dvclive), as atomic_write does."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


@contextlib.contextmanager
def live_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """An empty `dest` for a run to write into as it goes; on an error, `dest` as it was.

    For small folders (logs, metrics): the old contents are read into memory and `dest` is
    emptied; when the block ends without error the new contents are synced to disk; on an
    error or Ctrl-C they are removed (freeing their space) and the old ones written back
    whole. A SIGKILL or a power cut leaves what the run had written so far, and no
    temporary, as DVC leaves an output whose stage it was running. Use it around a stage.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: is a file, expected a folder of outputs")
    old = None
    if dest.is_dir():  # sorted: each folder before what it holds
        old = {p.relative_to(dest): (p.read_bytes() if p.is_file() else None) for p in sorted(dest.rglob("*"))}
    with signals_held():
        temps.remove(str(dest))
        dest.mkdir(parents=True)
    try:
        yield dest
        temps.fsync_tree(str(dest))
    except BaseException as error:
        with signals_held():
            temps.remove(str(dest))
            if old is not None:
                _write_back(dest, old, error)
        raise


def _write_back(dest: Path, old: dict, error: BaseException) -> None:
    """live_dir's old contents, whole, under a temporary sibling first, then renamed onto `dest`."""
    temp = None
    try:
        temp = tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.chmod(temp, 0o777 & ~temps.umask())
        for rel, data in old.items():
            if data is None:
                (Path(temp) / rel).mkdir()
            else:
                (Path(temp) / rel).write_bytes(data)
        temps.fsync_tree(temp)
        os.rename(temp, dest)
    except OSError as e:
        if temp is not None:
            temps.remove(temp)
        raise DataError(f"{dest}: the run stopped ({error or type(error).__name__}) and its old contents could "
                        f"not be written back ({e.strerror or e}); run the stage again") from error


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Install every file written in this block together, or none of them.

    A stage's outputs belong together (a new model next to the old metrics
    would be a lie), so inside the block `atomic_write` and `replace_dir` only
    stage their output; when the block ends without error they are all renamed
    onto their targets, with Ctrl-C and SIGTERM held back for those few renames.
    On an error or an interruption every temporary is removed and the old
    outputs stay as they were.
    """
    if _STAGED.get() is not None:  # nested: the outermost block installs
        yield
        return
    staged: list[temps.Temp] = []
    token = _STAGED.set(staged)
    try:
        yield
        with signals_held():  # the renames run to the end, or not at all
            for temp in reversed(staged):  # files made in a new folder before the folder
                temp.install()
            folders = {t.path for t in staged if t.folder}  # synced whole by their install
            for parent in dict.fromkeys(str(t.target.parent) for t in staged):
                if parent not in folders:
                    temps.fsync(parent)  # the renames themselves survive a power cut
            for temp in staged:
                temp.remove()
    finally:
        with signals_held():
            for temp in staged:  # on an error: every temporary (on success: nothing left)
                temp.remove()
        _STAGED.reset(token)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for a few system calls; they are delivered at the end.

    Masked in this thread, and their Python handlers replaced by a note meanwhile: the
    kernel may hand a signal to another thread (BLAS's workers do not mask it), and its
    Python handler would then still run here, in the middle of the held calls.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    handlers = {sig: signal.getsignal(sig) for sig in held}
    caught = []
    for sig, handler in handlers.items():
        if handler is not None:  # None: not set from Python, so not ours to swap
            signal.signal(sig, lambda signum, frame: caught.append(signum))
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(held))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # one held by the mask is noted now
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)  # delivered now, to its own handler


def _stage(target: Path, folder: bool) -> temps.Temp:
    """A new temporary for `target`, listed in the current block, which installs or removes it."""
    temps.sweep(target)
    staged = _STAGED.get()
    with signals_held():  # a signal between making it and listing it would leave it behind
        staged.append(temps.Temp(target, folder))
    return staged[-1]
