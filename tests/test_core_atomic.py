"""zerodl.atomic: outputs installed whole (a file, a set, a folder), and what a killed run leaves.

The kills are real: a child process SIGKILLs itself at a chosen system call
(a monkeypatched os.replace or os.rename), then the next run must work and
leave nothing behind. tests/test_data_stages.py does the same to the real
fetch and prepare stages.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import zerodl.atomic as atomic
import zerodl.temps as temps
from zerodl.atomic import all_or_nothing, atomic_write, replace_dir
from zerodl.io import write_text

LINUX = sys.platform.startswith("linux")


def child(script: str, *args, cwd: Path, **kw) -> subprocess.Popen:
    """A Python process running `script` in cwd; zerodl as installed for these tests."""
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def hidden(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


# --- a folder: one exchange, or two renames where the system has no exchange --------------------

@pytest.mark.parametrize("how", ["exchange", "two-renames"])
def test_replace_dir_swaps_the_folder_in(tmp_path, monkeypatch, how):
    calls = []
    real = temps.exchange

    def exchange(a, b):
        calls.append(real(a, b) if how == "exchange" else False)
        return calls[-1]

    monkeypatch.setattr(temps, "exchange", exchange)
    dest = tmp_path / "out"
    with replace_dir(dest) as tmp:  # no folder yet, as DVC leaves an output before its stage
        (tmp / "a").write_text("first")
    assert os.listdir(dest) == ["a"] and calls == []  # nothing to exchange with: one rename
    with replace_dir(dest) as tmp:
        (tmp / "b").write_text("second")
        write_text(tmp / "c", "second")
        assert os.listdir(dest) == ["a"]
    assert sorted(os.listdir(dest)) == ["b", "c"] and (dest / "b").read_text() == "second"
    assert os.listdir(tmp_path) == ["out"]
    if how == "exchange" and LINUX:
        assert calls == [True]  # renameat2 did it in one step on this system
    else:
        assert calls == [False]


def test_replace_dir_inside_all_or_nothing_installs_with_the_block(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    with all_or_nothing():
        with replace_dir(tmp_path / "out") as tmp:
            write_text(tmp / "new", "new")
        write_text(tmp_path / "note.txt", "new")
        assert os.listdir(tmp_path / "out") == ["old"] and not (tmp_path / "note.txt").exists()
    assert os.listdir(tmp_path / "out") == ["new"] and (tmp_path / "note.txt").read_text() == "new"
    assert hidden(tmp_path) == []


# --- a file that cannot be created is reported as its folder -------------------------------------

@pytest.mark.parametrize("in_block", [False, True])
def test_a_forbidden_folder_is_named_not_the_temporary(tmp_path, monkeypatch, in_block):
    real_open = os.open

    def open_(path, flags, mode=0o777, *, dir_fd=None):  # the kernel's answer in a chmod-555 folder
        if flags & os.O_CREAT and Path(path).parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(PermissionError) as e:
        if in_block:
            with all_or_nothing():
                write_text(tmp_path / "a.txt", "x")
        else:
            write_text(tmp_path / "a.txt", "x")
    assert e.value.filename == str(tmp_path)
    assert os.listdir(tmp_path) == []


# --- what a killed run leaves, and the next run removes -----------------------------------------

# Writes a.txt, b.txt and c.txt together; with "kill", SIGKILLs itself right after the first rename.
THREE_FILES = r'''
import os, signal, sys
from zerodl.atomic import all_or_nothing
from zerodl.io import write_text

if sys.argv[1] == "kill":
    real = os.replace
    def replace(src, dst):
        real(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
with all_or_nothing():
    for name in ("a.txt", "b.txt", "c.txt"):
        write_text(name, "new " + name)
'''


def test_sigkill_while_a_set_of_files_is_renamed_then_a_rerun(tmp_path):
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("old " + name)
    p = child(THREE_FILES, "kill", cwd=tmp_path)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    contents = sorted((tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt"))
    assert sum(c.startswith("new") for c in contents) == 1  # each whole, one already new
    assert len(hidden(tmp_path)) == 2  # the two temporaries not yet renamed
    p = child(THREE_FILES, "run", cwd=tmp_path)
    assert p.communicate(timeout=60) == ("", "") and p.returncode == 0
    assert [(tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new a.txt", "new b.txt", "new c.txt"]
    assert len(os.listdir(tmp_path)) == 3 and hidden(tmp_path) == []


# Stages out/ and out.txt, says "staged", then waits for a line on stdin (or is killed there).
HOLD = r'''
import sys
from zerodl.atomic import all_or_nothing, replace_dir
from zerodl.io import write_text

with all_or_nothing():
    with replace_dir("out") as tmp:
        write_text(tmp / "f", sys.argv[1])
    write_text("out.txt", sys.argv[1])
    print("staged", flush=True)
    sys.stdin.readline()
'''


def test_the_next_run_removes_a_dead_runs_temporaries_and_only_those(tmp_path):
    dead = child(HOLD, "dead", cwd=tmp_path)
    assert dead.stdout.readline() == "staged\n"
    dead.kill()  # SIGKILL: no cleanup of its own
    dead.communicate(timeout=60)
    left = hidden(tmp_path)
    assert len(left) == 2 and all(n.endswith(".tmp") for n in left), left
    # Names of other patterns are not ours to remove, nor is a link with one of our names.
    foreign = [".out.tmp", ".out.abcdefg.tmp", ".out.ABCDEFGH.tmp", ".out.abcdefgh.tmp.keep",
               ".outx.abcdefgh.tmp", "out.abcdefgh.tmp", ".out.abcdefgh.bak"]
    for name in foreign:
        (tmp_path / name).write_text("keep")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f").write_text("keep")
    os.symlink(elsewhere, tmp_path / ".out.linkedxx.tmp")

    with all_or_nothing():
        with replace_dir(tmp_path / "out") as tmp:
            write_text(tmp / "f", "alive")
        write_text(tmp_path / "out.txt", "alive")
    assert (tmp_path / "out" / "f").read_text() == "alive" and (tmp_path / "out.txt").read_text() == "alive"
    assert sorted(os.listdir(tmp_path)) == sorted([*foreign, ".out.linkedxx.tmp", "elsewhere", "out", "out.txt"])
    assert (elsewhere / "f").read_text() == "keep"


def test_a_live_runs_temporaries_are_left_alone(tmp_path):
    live = child(HOLD, "first", cwd=tmp_path)
    try:
        assert live.stdout.readline() == "staged\n"
        staged = hidden(tmp_path)
        assert len(staged) == 2
        with all_or_nothing():  # a second run of the same outputs meanwhile
            with replace_dir(tmp_path / "out") as tmp:
                write_text(tmp / "f", "second")
            write_text(tmp_path / "out.txt", "second")
        assert hidden(tmp_path) == staged  # the live run's temporaries are still there
        assert (tmp_path / "out" / "f").read_text() == "second"
        out, err = live.communicate("go\n", timeout=60)
        assert (live.returncode, err) == (0, ""), err
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    # The first run finished last: its outputs, whole, and nothing else left.
    assert (tmp_path / "out" / "f").read_text() == "first" and (tmp_path / "out.txt").read_text() == "first"
    assert hidden(tmp_path) == []


def test_a_sweep_never_takes_a_temporary_made_before_its_lock(tmp_path, monkeypatch):
    """Another run's sweep may remove a fresh temporary between its creation and its lock:
    the maker sees its name no longer leads to its file, and makes another."""
    real_lock, swept = temps.lock, []

    def lock(fd, wait):
        if wait and not swept:  # the maker, before its first lock: the other run sweeps now
            swept.append(hidden(tmp_path))
            for name in swept[0]:
                os.unlink(tmp_path / name)
        return real_lock(fd, wait)

    monkeypatch.setattr(temps, "lock", lock)
    write_text(tmp_path / "a.txt", "new")
    assert len(swept[0]) == 1 and swept[0][0].startswith(".a.txt.")
    assert (tmp_path / "a.txt").read_text() == "new" and os.listdir(tmp_path) == ["a.txt"]


def test_temporaries_are_locked_while_they_live(tmp_path):
    if temps.fcntl is None:
        pytest.skip("no flock on this system: leftovers are never swept here")
    with atomic_write(tmp_path / "a.txt") as f:
        name = hidden(tmp_path)[0]
        other = os.open(tmp_path / name, os.O_RDONLY)  # as another process's sweep opens it
        try:
            assert temps.lock(other, wait=False) is False
        finally:
            os.close(other)
        f.write(b"x")
    assert os.listdir(tmp_path) == ["a.txt"]


def test_sigkill_between_the_two_renames_of_a_folder_then_a_rerun(tmp_path):
    """Without an exchange, a kill after `out -> .out.xxxxxxxx.old` leaves no `out` at all
    (as DVC leaves it before a stage); the next run works and removes both temporaries."""
    script = r'''
import os, signal, sys
import zerodl.temps as temps
from zerodl.atomic import replace_dir

temps.exchange = lambda a, b: False
if sys.argv[1] == "kill":
    real = os.rename
    def rename(src, dst):
        real(src, dst)
        if dst.endswith(".old"):
            os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
with replace_dir("out") as tmp:
    (tmp / "f").write_text(sys.argv[1])
'''
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("old")
    p = child(script, "kill", cwd=tmp_path)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert not (tmp_path / "out").exists()
    left = hidden(tmp_path)
    assert sorted(n[-4:] for n in left) == [".old", ".tmp"], left
    p = child(script, "rerun", cwd=tmp_path)
    assert p.communicate(timeout=60) == ("", "") and p.returncode == 0
    assert os.listdir(tmp_path) == ["out"] and (tmp_path / "out" / "f").read_text() == "rerun"


def test_signals_held_also_when_the_kernel_hands_them_to_another_thread():
    # A process-wide SIGTERM may go to any thread that does not mask it (BLAS's workers);
    # its Python handler then runs in the main thread all the same. Held, it must wait.
    import threading
    import time

    seen = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with atomic.signals_held():
            signal.pthread_kill(other.ident, signal.SIGTERM)
            time.sleep(0.2)  # the other thread takes it; a handler due would run after this call
            assert seen == []
        time.sleep(0.01)
        assert seen == [signal.SIGTERM]
    finally:
        stop.set()
        other.join()
        signal.signal(signal.SIGTERM, old)
