"""stages/fetch.py and stages/prepare.py as a user runs them: outputs whole or not at all, one line on error."""
from __future__ import annotations

import errno
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from data_support import REPO, idx_set, write_set

from zerodl.data import replace_dir
from zerodl.errors import DataError

BIN = Path(sys.executable).parent


def make_repo(tmp_path: Path, **data) -> Path:
    """A copy of what the stages need: params.yaml (with data.* overrides) and stages/."""
    repo = tmp_path / "repo"
    (repo / "stages").mkdir(parents=True)
    for name in ("fetch.py", "prepare.py"):
        shutil.copy(REPO / "stages" / name, repo / "stages" / name)
    set_params(repo, **data)
    return repo


def set_params(repo: Path, seed: int | None = None, **data) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data)
    if seed is not None:
        params["seed"] = seed
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def run(repo: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=repo, capture_output=True, text=True,
                          timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_one_line_error(result, prog: str, message: str, code: int = 1) -> None:
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    assert result.stderr == f"{prog}: error: {message}\n"


def test_good_run_mnist_5k(tmp_path):
    repo = make_repo(tmp_path)
    fetched = run(repo, "fetch")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr == ""  # a copy of the package's file, no download: no progress lines
    assert sorted(os.listdir(repo / "data" / "raw")) == ["manifest.json", "mnist_5k.csv.gz"]
    prepared = run(repo, "prepare")
    assert prepared.returncode == 0, prepared.stderr
    assert prepared.stdout == "prepare: mnist-5k: 4000 train, 1000 test -> data/prepared\n"
    out = repo / "data" / "prepared"
    assert sorted(os.listdir(out)) == ["meta.json", "t_test.npy", "t_train.npy", "x_test.npy", "x_train.npy"]
    assert np.load(out / "x_train.npy").shape == (4000, 784)
    assert sorted(os.listdir(repo / "data")) == ["prepared", "raw"]  # no temporary folder left


def test_idx_with_an_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    repo = make_repo(tmp_path, source="idx", dir=str(empty))
    result = run(repo, "fetch")
    assert_one_line_error(result, "fetch", f"{empty}: holds neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz")
    assert os.listdir(repo / "data") == []  # no data/raw, no temporary folder


def test_a_failed_fetch_leaves_the_previous_output_untouched(tmp_path):
    repo = make_repo(tmp_path)
    assert run(repo, "fetch").returncode == 0
    before = snapshot(repo / "data" / "raw")
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    set_params(repo, source="idx", dir=str(afile))  # a path that is a file: fails even for root
    assert_one_line_error(run(repo, "fetch"), "fetch", f"{afile}: is a file, not a folder")
    assert snapshot(repo / "data" / "raw") == before
    assert os.listdir(repo / "data") == ["raw"]


def test_fetch_and_prepare_an_idx_folder(tmp_path):
    data_dir = write_set(tmp_path / "mine", idx_set(), gz=False)
    repo = make_repo(tmp_path, source="idx", dir=str(data_dir))
    assert run(repo, "fetch").returncode == 0
    result = run(repo, "prepare")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "prepare: idx: 30 train, 20 test -> data/prepared\n"


def test_a_bad_idx_file_is_one_line(tmp_path):
    files = idx_set()
    files["train-labels-idx1-ubyte"] = b"\x00\x00\x08\x01\x00\x00\x00\x1e" + bytes(10)  # 30 announced, 10 there
    data_dir = write_set(tmp_path / "mine", files, gz=False)
    repo = make_repo(tmp_path, source="idx", dir=str(data_dir))
    assert_one_line_error(run(repo, "fetch"), "fetch",
                          f"{data_dir}/train-labels-idx1-ubyte: truncated: header announces 30 bytes of data, file holds 10")


def test_bad_params_exit_2(tmp_path):
    repo = make_repo(tmp_path, source="cifar")
    assert_one_line_error(run(repo, "fetch"), "fetch",
                          "params.yaml: data.source = 'cifar': expected one of mnist-5k | mnist | fashion-mnist | idx", 2)


def test_prepare_before_fetch(tmp_path):
    repo = make_repo(tmp_path)
    assert_one_line_error(run(repo, "prepare"), "prepare",
                          "data/raw/manifest.json: not found (run the fetch stage first: dvc repro fetch)")


def test_prepare_refuses_raw_data_of_another_source(tmp_path):
    repo = make_repo(tmp_path)
    assert run(repo, "fetch").returncode == 0
    set_params(repo, source="fashion-mnist")
    assert_one_line_error(run(repo, "prepare"), "prepare", "data/raw holds mnist-5k, but params.yaml asks for "
                          "fashion-mnist: run the fetch stage first (dvc repro does)")
    assert not (repo / "data" / "prepared").exists()


class FullDisk:
    """Files on a disk with `room` bytes left in all: the write that does not fit fails with ENOSPC."""

    def __init__(self, room: int):
        self.room = room
        self.opened = 0

    def fdopen(self, real_fdopen):
        disk = self

        class File:
            def __init__(self, f):
                self.f = f

            def write(self, data) -> int:
                size = memoryview(data).nbytes
                if size > disk.room:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.room -= size
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        def fdopen(fd, *args, **kwargs):
            disk.opened += 1
            return File(real_fdopen(fd, *args, **kwargs))

        return fdopen


def test_a_full_disk_during_prepare_leaves_the_previous_outputs(tmp_path, monkeypatch, capsys):
    repo = make_repo(tmp_path)
    assert run(repo, "fetch").returncode == 0 and run(repo, "prepare").returncode == 0
    before = snapshot(repo / "data" / "prepared")
    set_params(repo, seed=1)  # new outputs would differ from the old ones
    # Room for x_train.npy (12.5 MB) and t_train.npy (32 kB); x_test.npy (3.1 MB) fills the disk.
    disk = FullDisk(room=13_000_000)
    monkeypatch.chdir(repo)
    monkeypatch.setattr(os, "fdopen", disk.fdopen(os.fdopen))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path("stages/prepare.py", run_name="__main__")
    finally:
        signal.signal(signal.SIGTERM, handler)
    monkeypatch.undo()
    assert e.value.code == 1
    assert disk.opened == 3  # it failed on the third file, two having been written in full
    err = capsys.readouterr().err
    assert err == "prepare: error: data/prepared: cannot write (No space left on device); data/prepared was left as it was\n"
    assert snapshot(repo / "data" / "prepared") == before
    assert sorted(os.listdir(repo / "data")) == ["prepared", "raw"]  # no temporary file or folder left


def test_replace_dir_on_interrupt_and_on_success(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with replace_dir(dest) as tmp:
            (tmp / "a").write_text("new")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["out"] and (dest / "a").read_text() == "old"
    with replace_dir(dest) as tmp:
        (tmp / "b").write_text("new")
    assert os.listdir(dest) == ["b"] and os.listdir(tmp_path) == ["out"]
    assert (dest.stat().st_mode & 0o777) == 0o755


def test_replace_dir_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(DataError, match=r"out: is a file, expected a folder of outputs$"):
        with replace_dir(tmp_path / "out"):
            pass


# --- SIGKILL at any point of installing the outputs, then a rerun -------------------------------

# Runs a stage and SIGKILLs it at POINT of installing its folder of outputs. The
# points after `writing` are those of the swap: one exchange where Linux has it,
# else two renames (forced here by having no exchange).
KILL = r"""
import os, runpy, signal, sys
import zerodl.atomic as atomic, zerodl.temps as temps

point, stage, writing = sys.argv[1:4]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
real_stage, real_exchange, real_rename = atomic._stage, temps.exchange, os.rename

def stage_(target, folder):
    temp = real_stage(target, folder)
    if point == "writing" and target.name == writing:
        die()  # the new folder and one of its files half made
    return temp

def exchange(a, b):
    if point == "before-exchange":
        die()
    assert real_exchange(a, b), "renameat2 exchange failed"
    die()

def rename(src, dst):
    real_rename(src, dst)
    done = {"old-moved-away": os.fspath(dst).endswith(".old"), "new-moved-in": os.fspath(src).endswith(".tmp")}
    if done.get(point):
        die()

atomic._stage = stage_
temps.exchange = exchange if point.endswith("exchange") else (lambda a, b: False)
os.rename = rename
sys.argv = ["stages/" + stage + ".py"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Where the kill strikes: what the output folder holds then (None: no folder).
CRASH_POINTS = {
    "writing": "old",
    "before-exchange": "old",
    "after-exchange": "new",  # the old outputs wait under the temporary name
    "old-moved-away": None,   # between the two renames
    "new-moved-in": "new",    # the old outputs wait in .NAME.xxxxxxxx.old
}
OUTPUT = {"fetch": "raw", "prepare": "prepared"}


@pytest.fixture(scope="module")
def fetched_and_prepared(tmp_path_factory):
    """A fetched and prepared repo, and each stage's (old, new) outputs: what a rerun must give is `new`."""
    repo = make_repo(tmp_path_factory.mktemp("crash"))
    assert run(repo, "fetch").returncode == 0
    set_params(repo, seed=1)
    assert run(repo, "prepare").returncode == 0
    new = {"fetch": snapshot(repo / "data" / "raw"), "prepare": snapshot(repo / "data" / "prepared")}
    set_params(repo, seed=0)
    assert run(repo, "prepare").returncode == 0
    (repo / "data" / "raw" / "old.txt").write_text("an output of an older fetch\n")
    old = {"fetch": snapshot(repo / "data" / "raw"), "prepare": snapshot(repo / "data" / "prepared")}
    assert old["prepare"] != new["prepare"]
    (repo / "kill.py").write_text(KILL)
    return repo, old, new


@pytest.mark.parametrize("stage, point", [("prepare", point) for point in CRASH_POINTS] +
                         [("fetch", "writing"), ("fetch", "old-moved-away")])  # the same swap: two will do
def test_sigkill_at_any_point_then_a_rerun_works_and_leaves_nothing(fetched_and_prepared, tmp_path, stage, point):
    base, old, new = fetched_and_prepared
    repo = tmp_path / "repo"
    shutil.copytree(base, repo)
    set_params(repo, seed=1)
    out = repo / "data" / OUTPUT[stage]
    writing = {"fetch": "manifest.json", "prepare": "x_test.npy"}[stage]
    killed = subprocess.run([sys.executable, "kill.py", point, stage, writing], cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    held = CRASH_POINTS[point]
    if held is None:
        assert not out.exists()
    else:
        assert snapshot(out) == (old if held == "old" else new)[stage]  # whole, old or new
    assert [n for n in os.listdir(repo / "data") if n.startswith(".")]  # the dead run's temporaries

    rerun = run(repo, stage)
    assert (rerun.returncode, rerun.stderr) == (0, "")
    assert snapshot(out) == new[stage]
    assert sorted(os.listdir(repo / "data")) == ["prepared", "raw"]  # and they are gone


# Runs a stage that stops just before swapping its outputs in until the file `go` exists.
PAUSE = r"""
import os, runpy, sys, time
import zerodl.temps as temps

real = temps.exchange
def exchange(a, b):
    open("paused", "w").close()
    while not os.path.exists("go"):
        time.sleep(0.01)
    return real(a, b)

temps.exchange = exchange
sys.argv = ["stages/" + sys.argv[1] + ".py"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_two_direct_runs_at_once_leave_each_other_alone(fetched_and_prepared, tmp_path):
    """No DVC lock for `python stages/prepare.py`: a second run must not take the first's
    temporary folder for a dead run's."""
    base, old, new = fetched_and_prepared
    repo = tmp_path / "repo"
    shutil.copytree(base, repo)
    (repo / "pause.py").write_text(PAUSE)
    set_params(repo, seed=1)
    first = subprocess.Popen([sys.executable, "pause.py", "prepare"], cwd=repo, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(6000):
            if (repo / "paused").exists() or first.poll() is not None:
                break
            time.sleep(0.01)
        assert (repo / "paused").exists(), first.communicate()
        staged = [n for n in os.listdir(repo / "data") if n.startswith(".prepared.")]
        assert len(staged) == 1
        set_params(repo, seed=0)
        second = run(repo, "prepare")  # starts and ends while the first waits
        assert (second.returncode, second.stderr) == (0, "")
        assert snapshot(repo / "data" / "prepared") == old["prepare"]
        assert [n for n in os.listdir(repo / "data") if n.startswith(".")] == staged  # left alone
        (repo / "go").touch()
        out, err = first.communicate(timeout=120)
        assert (first.returncode, err) == (0, "")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert snapshot(repo / "data" / "prepared") == new["prepare"]  # the first finished last
    assert sorted(os.listdir(repo / "data")) == ["prepared", "raw"]


@pytest.mark.parametrize("stage", ["fetch", "prepare"])
def test_a_forbidden_data_folder_is_named_not_a_temporary(fetched_and_prepared, tmp_path, monkeypatch, capsys, stage):
    base, old, _ = fetched_and_prepared
    repo = tmp_path / "repo"
    shutil.copytree(base, repo)
    data = repo / "data"
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777, *, dir_fd=None):  # what the kernel answers an ordinary user in a chmod-555 data/
        if Path(path).absolute().parent == data:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.chdir(repo)
    monkeypatch.setattr(os, "mkdir", mkdir)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(f"stages/{stage}.py", run_name="__main__")
    finally:
        signal.signal(signal.SIGTERM, handler)
    monkeypatch.undo()
    assert e.value.code == 1
    assert capsys.readouterr().err == (f"{stage}: error: data: cannot write (Permission denied); "
                                       f"data/{OUTPUT[stage]} was left as it was\n")
    assert snapshot(data / OUTPUT[stage]) == old[stage]
    assert sorted(os.listdir(data)) == ["prepared", "raw"]


@pytest.mark.slow
def test_dvc_repro_then_nothing_to_rerun(tmp_path):
    repo = make_repo(tmp_path)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "zerodl" / "data", repo / "zerodl" / "data", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "zerodl" / "io.py", repo / "zerodl" / "io.py")  # a dependency of both stages
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def sh(*cmd):
        result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    sh("git", "init", "-q")
    sh(str(BIN / "dvc"), "init", "-q")
    sh(str(BIN / "dvc"), "config", "core.analytics", "false")
    first = sh(str(BIN / "dvc"), "repro", "prepare")
    assert "Running stage 'fetch'" in first and "Running stage 'prepare'" in first
    second = sh(str(BIN / "dvc"), "repro", "prepare")
    assert "Running stage" not in second and "Data and pipelines are up to date." in second
    assert (repo / "data" / ".gitignore").read_text().split() == ["/raw", "/prepared"]
