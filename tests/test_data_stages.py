"""stages/fetch.py and stages/prepare.py as a user runs them: outputs whole or not at all, one line on error."""
from __future__ import annotations

import errno
import os
import runpy
import shutil
import signal
import subprocess
import sys
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
