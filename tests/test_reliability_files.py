"""Reliability, done for real: what the user sees when something goes wrong. Here:
hostile or damaged model files (refused with one line, never unpickled), a full disk, a
read-only or forbidden folder, a file-size limit, and outputs installed all or nothing.

Every test runs the real stage scripts (`python stages/<name>.py`) or the real `dvc` in a
temporary copy of the project, does the bad thing and checks what the user gets (one line, no
traceback, the exit code) and that no output was half-written, left as a temporary file, or
touched at all. Shared: tests/reliability_support.py; every case: docs/troubleshooting.md.
"""
from __future__ import annotations

import errno
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zerodl.entry import run as entry_run

from reliability_support import (ENV, MODEL, ROOT, assert_error_after_training, assert_one_line, leftovers,
                                 snapshot, stage, write_params)
from reliability_support import project, shared  # noqa: F401 - fixtures (base: conftest.py)


# --- model files: refused with one line, never unpickled --------------------------------------

class _Exploit:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _good_model_arrays(base: Path) -> dict:
    with np.load(base / MODEL, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # numpy's own writer: object arrays are pickled inside


def make_bad_model(kind: str, path: Path, base: Path, marker: Path) -> None:
    good = _good_model_arrays(base)
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"W1": _Exploit(marker)}))
    elif kind == "pickle-in-npz":
        _savez(path, {**good, "W1": np.array([_Exploit(marker)], dtype=object)})
    elif kind == "object-array":
        _savez(path, {**good, "b1": np.array([1, "x", None], dtype=object)})
    elif kind == "truncated":
        data = (base / MODEL).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong-arrays":
        _savez(path, {"a": np.zeros(3), "b": np.ones(2)})
    elif kind == "wrong-shapes":
        _savez(path, {**good, "W1": good["W1"][:, :5]})
    elif kind == "nan-weights":
        w = good["W2"].copy()
        w[0, 0] = np.nan
        _savez(path, {**good, "W2": w})
    elif kind == "single-npy":
        with open(path, "wb") as f:
            np.save(f, good["W1"])
    elif kind == "text":
        path.write_text("W1: [[0.1, 0.2], [0.3, 0.4]]\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    else:
        raise ValueError(kind)


BAD_MODELS = {
    "pickle": "is a Python pickle, not a zerodl model; zerodl never unpickles",
    "pickle-in-npz": "refused to load (Object arrays cannot be loaded when allow_pickle=False)",
    "object-array": "refused to load (Object arrays cannot be loaded when allow_pickle=False)",
    "truncated": "not a readable zerodl model (BadZipFile",
    "wrong-arrays": "not a zerodl model (no 'meta' entry; has ['a', 'b'])",
    "wrong-shapes": "W1 has shape (784, 5), expected (784, 20)",
    "nan-weights": "W2 holds NaN or infinite values",
    "single-npy": "not a zerodl model (a single .npy array, not an .npz archive)",
    "text": "not a zerodl model (not an .npz archive; it starts with b'W1: [[0.'",
    "empty": "is empty, not a zerodl model",
    "folder": "is a folder, not a model file",
}


@pytest.fixture
def bad_model(shared, base, request, tmp_path):
    """Put a bad data/model/model.npz in `shared`; give back the good one afterwards."""
    kind = request.param
    marker = tmp_path / "PWNED"
    path = shared / MODEL
    path.unlink()
    make_bad_model(kind, path, base, marker)
    yield kind, marker
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()
    shutil.copy2(base / MODEL, path)


@pytest.mark.parametrize("name", ["evaluate", "report"])
@pytest.mark.parametrize("bad_model", list(BAD_MODELS), indirect=True)
def test_bad_model_is_refused(shared, bad_model, name):
    kind, marker = bad_model
    before = {k: v for k, v in snapshot(shared / "data").items() if k != "model/model.npz"}
    p = stage(shared, name)
    assert_one_line(p, 1, f"{name}: error: {MODEL}: {BAD_MODELS[kind]}")
    assert not marker.exists(), "the pickle was executed"
    after = {k: v for k, v in snapshot(shared / "data").items() if k != "model/model.npz"}
    assert after == before
    assert leftovers(shared) == []


@pytest.mark.parametrize("kind", ["pickle", "pickle-in-npz", "text"])
def test_cli_info_refuses_a_bad_model(base, tmp_path, kind):
    if not (ROOT / "zerodl" / "cli" / "__init__.py").exists():
        pytest.fail("zerodl/cli/__init__.py is missing")
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.npz"
    make_bad_model(kind, path, base, marker)
    p = subprocess.run([sys.executable, "-m", "zerodl.cli", "info", "--model", str(path)], cwd=base,
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert_one_line(p, 1, f"zerodl: error: {path}: {BAD_MODELS[kind]}")
    assert not marker.exists(), "the pickle was executed"


# --- a full disk, a read-only or forbidden folder --------------------------------------------

# Runs a stage with one fault injected at the OS boundary: `write-ENOSPC` makes
# every write to the named output's temporary file fail as a full disk does
# (OSError 28 from write(2), which names no file); `open-EACCES` / `open-EROFS`
# make creating it fail as a forbidden or read-only folder does.
FAULT = '''
import errno, os, runpy, sys
fault, target, stage = sys.argv[1:4]
how, code = fault.split("-")
code = getattr(errno, code)
ours = lambda name: os.path.basename(name).startswith("." + target + ".")
real_fdopen, real_open = os.fdopen, os.open

class Failing:
    def __init__(self, f): self._f = f
    def write(self, data): raise OSError(code, os.strerror(code))
    def __getattr__(self, name): return getattr(self._f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self._f.close()

def fdopen(fd, *args, **kwargs):
    f = real_fdopen(fd, *args, **kwargs)
    return Failing(f) if ours(os.readlink(f"/proc/self/fd/{fd}")) else f

def open_(path, flags, mode=0o777, *, dir_fd=None):
    if ours(os.fspath(path)) and flags & os.O_CREAT:
        raise OSError(code, os.strerror(code), os.fspath(path))
    return real_open(path, flags, mode, dir_fd=dir_fd)

if how == "write":
    os.fdopen = fdopen
else:
    os.open = open_
sys.argv = ["stages/" + stage + ".py"]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def run_with_fault(proj: Path, fault: str, target: str, name: str):
    (proj / "fault.py").write_text(FAULT)
    return subprocess.run([sys.executable, "fault.py", fault, target, name], cwd=proj, env=ENV,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, target, path", [
    ("train", "model.npz", "data/model/model.npz"),     # the first of train's four outputs
    ("train", "loss.csv", "data/plots/loss.csv"),  # the last: the model was already written
])
def test_full_disk_keeps_every_previous_output(project, name, target, path):
    if name == "train":
        write_params(project, {"train": {"learning_rate": 0.05}})  # the new outputs would differ
    before = snapshot(project / "data")
    p = run_with_fault(project, "write-ENOSPC", target, name)
    check = assert_error_after_training if name == "train" else assert_one_line
    check(p, 1, f"{name}: error: {path}: No space left on device; free some disk space and run again")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


@pytest.mark.parametrize("fault, message", [
    ("open-EACCES", "Permission denied; check the permissions of that path"),
    ("open-EROFS", "Read-only file system; the file system is read-only"),
])
def test_unwritable_model_folder(project, fault, message):
    write_params(project, {"train": {"learning_rate": 0.05}})
    before = snapshot(project / "data")
    p = run_with_fault(project, fault, "model.npz", "train")
    assert_error_after_training(p, 1, f"train: error: data/model: {message}")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_file_size_limit_for_real(project):
    """A real write failure from the kernel, no monkeypatching: `ulimit -f` below the model's size."""
    write_params(project, {"train": {"learning_rate": 0.05}})
    before = snapshot(project / "data")
    limit = 20_000  # the model is 66 kB; the CSVs and JSON are smaller than this

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = stage(project, "train", preexec_fn=limited)
    assert_error_after_training(p, 1, "train: error: data/model/model.npz: File too large")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_programming_errors_keep_their_traceback(capsys):
    """entry.run turns the machine's state into one line, not bugs."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(ZeroDivisionError):
            entry_run(lambda: 1 / 0, prog="x")
        with pytest.raises(FileNotFoundError):  # a path the code got wrong: a bug, not the disk
            entry_run(lambda: open("/nonexistent/zerodl/file"), prog="x")

        def full():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/model/model.npz")

        with pytest.raises(SystemExit) as e:
            entry_run(full, prog="x")
        assert e.value.code == 1
        assert capsys.readouterr().err == ("x: error: data/model/model.npz: No space left on device; "
                                           "free some disk space and run again\n")
    finally:
        signal.signal(signal.SIGTERM, handler)


def test_all_or_nothing_installs_every_file_or_none(tmp_path):
    from zerodl.io import all_or_nothing, write_text

    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    write_text(a, "old a")
    with pytest.raises(KeyboardInterrupt):
        with all_or_nothing():
            write_text(a, "new a")
            assert a.read_text() == "old a"  # staged, not installed
            with all_or_nothing():  # nested blocks install with the outermost
                write_text(b, "new b")
            raise KeyboardInterrupt
    assert a.read_text() == "old a" and not b.exists()
    assert leftovers(tmp_path) == []
    with all_or_nothing():
        write_text(a, "new a")
        write_text(b, "new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert leftovers(tmp_path) == []
