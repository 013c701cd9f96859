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
  (Windows, some network file systems) nothing is removed.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

from .errors import DataError

try:
    import fcntl
except ImportError:  # Windows: no flock, so no leftover can be told from a live run's
    fcntl = None

# The temporaries of the current `all_or_nothing` block, in the order they were made.
_STAGED: contextvars.ContextVar[list[_Temp] | None] = contextvars.ContextVar("zerodl_staged", default=None)


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
        if where is None or (temp is not None and _inside(os.fspath(where), temp.path)):
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
        _remove(str(dest))
        dest.mkdir(parents=True)
    try:
        yield dest
        _fsync_tree(str(dest))
    except BaseException as error:
        with signals_held():
            _remove(str(dest))
            if old is not None:
                _write_back(dest, old, error)
        raise


def _write_back(dest: Path, old: dict, error: BaseException) -> None:
    """live_dir's old contents, whole, under a temporary sibling first, then renamed onto `dest`."""
    temp = None
    try:
        temp = tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.chmod(temp, 0o777 & ~_umask())
        for rel, data in old.items():
            if data is None:
                (Path(temp) / rel).mkdir()
            else:
                (Path(temp) / rel).write_bytes(data)
        _fsync_tree(temp)
        os.rename(temp, dest)
    except OSError as e:
        if temp is not None:
            _remove(temp)
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
    staged: list[_Temp] = []
    token = _STAGED.set(staged)
    try:
        yield
        with signals_held():  # the renames run to the end, or not at all
            for temp in reversed(staged):  # files made in a new folder before the folder
                temp.install()
            folders = {t.path for t in staged if t.folder}  # synced whole by their install
            for parent in dict.fromkeys(str(t.target.parent) for t in staged):
                if parent not in folders:
                    _fsync(parent)  # the renames themselves survive a power cut
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


def _stage(target: Path, folder: bool) -> _Temp:
    """A new temporary for `target`, listed in the current block, which installs or removes it."""
    _sweep(target)
    staged = _STAGED.get()
    with signals_held():  # a signal between making it and listing it would leave it behind
        staged.append(_Temp(target, folder))
    return staged[-1]


class _Temp:
    """A temporary sibling of `target` (a file, or a folder), locked by this process until removed."""

    def __init__(self, target: Path, folder: bool):
        self.target, self.folder = target, folder
        while True:
            try:
                if folder:
                    self.path = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
                    fd = os.open(self.path, os.O_RDONLY)
                else:
                    fd, self.path = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            except OSError as e:  # name the folder the user can fix, not a file that was never made
                raise OSError(e.errno, e.strerror, str(target.parent)) from e
            _lock(fd, wait=True)
            if _same(fd, self.path):
                break
            os.close(fd)  # another run's sweep took it for a dead one's before we locked it
        self.fd, self.fds = fd, [fd]
        self.leftovers = [self.path]  # what `remove` deletes
        # mkstemp and mkdtemp make them private; outputs are ordinary files and folders
        os.chmod(self.path, 0o755 if folder else 0o666 & ~_umask())

    def install(self) -> None:
        if self.folder:
            _fsync_tree(self.path)  # what was copied in is on disk before the folder counts as whole
            self._swap_in()
        else:
            os.replace(self.path, self.target)
            self.leftovers = []

    def _swap_in(self) -> None:
        if os.path.lexists(self.target) and _exchange(self.path, self.target):
            return  # the old outputs are now under the temporary name, for `remove`
        old = self.path[: -len(".tmp")] + ".old"
        try:
            fd = os.open(self.target, os.O_RDONLY)
        except FileNotFoundError:  # nothing to replace (DVC removes outputs before a stage)
            fd = None
        if fd is not None:
            self.fds.append(fd)
            _lock(fd, wait=False)  # no sweep may take the old outputs while they might go back
            os.rename(self.target, old)
        try:
            os.rename(self.path, self.target)
        except BaseException:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.rename(old, self.target)
            raise
        self.leftovers = [old] if fd is not None else []

    def remove(self) -> None:
        for path in self.leftovers:
            _remove(path)
        self.leftovers = []
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _sweep(target: Path) -> None:
    """Remove the temporaries of `target` that dead runs left: our own names only, and only unlocked ones."""
    if fcntl is None:
        return
    ours = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.(tmp|old)")  # tempfile's 8 letters
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not ours.fullmatch(name):
            continue
        path = os.path.join(target.parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone already, or a link or a file we may not read: not ours
        try:
            if _lock(fd, wait=False) and _same(fd, path):
                _remove(path)
        finally:
            os.close(fd)


def _lock(fd: int, wait: bool) -> bool | None:
    """Take an exclusive flock on fd: True; False if another process holds it; None if the system cannot."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _same(fd: int, path: str) -> bool:
    try:
        st, fst = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _fsync(path: str | os.PathLike) -> None:
    with contextlib.suppress(OSError):  # not every system can fsync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)


@functools.lru_cache(maxsize=None)
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28)
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return func


def _exchange(a: str, b: str) -> bool:
    """Swap two names in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot.

    Any failure means: do it the portable way, which reports a real error itself.
    """
    func = _renameat2()
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return func is not None and func(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
