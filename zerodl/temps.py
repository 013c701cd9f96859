"""The temporaries behind zerodl.atomic: siblings `.NAME.xxxxxxxx.tmp` of an output NAME,
locked by their run (flock) until installed or removed, so that a later run can tell a dead
run's leftovers (unlocked: swept) from a live one's (locked: never touched); and the few
system calls an install needs (an exchange of two names, fsync of files and folders).
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no leftover can be told from a live run's
    fcntl = None


class Temp:
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
            lock(fd, wait=True)
            if same(fd, self.path):
                break
            os.close(fd)  # another run's sweep took it for a dead one's before we locked it
        self.fd, self.fds = fd, [fd]
        self.leftovers = [self.path]  # what `remove` deletes
        # mkstemp and mkdtemp make them private; outputs are ordinary files and folders
        os.chmod(self.path, 0o755 if folder else 0o666 & ~umask())

    def install(self) -> None:
        if self.folder:
            fsync_tree(self.path)  # what was copied in is on disk before the folder counts as whole
            self._swap_in()
        else:
            os.replace(self.path, self.target)
            self.leftovers = []

    def _swap_in(self) -> None:
        if os.path.lexists(self.target) and exchange(self.path, self.target):
            return  # the old outputs are now under the temporary name, for `remove`
        old = self.path[: -len(".tmp")] + ".old"
        try:
            fd = os.open(self.target, os.O_RDONLY)
        except FileNotFoundError:  # nothing to replace (DVC removes outputs before a stage)
            fd = None
        if fd is not None:
            self.fds.append(fd)
            lock(fd, wait=False)  # no sweep may take the old outputs while they might go back
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
            remove(path)
        self.leftovers = []
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def sweep(target: Path) -> None:
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
            if lock(fd, wait=False) and same(fd, path):
                remove(path)
        finally:
            os.close(fd)


def lock(fd: int, wait: bool) -> bool | None:
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


def same(fd: int, path: str) -> bool:
    try:
        st, fst = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def fsync(path: str | os.PathLike) -> None:
    with contextlib.suppress(OSError):  # not every system can fsync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(folder: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fsync(os.path.join(root, name))
        fsync(root)


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


def exchange(a: str, b: str) -> bool:
    """Swap two names in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot.

    Any failure means: do it the portable way, which reports a real error itself.
    """
    func = _renameat2()
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return func is not None and func(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
