"""What the stages log through dvclive, and how a failure leaves it: zerodl.live (how each stage
opens dvclive, the train stage's epochs off the loop's thread), zerodl.atomic.live_dir (a folder
written in place, put back as it was on an error) and naming, and the stages failing for real
while dvclive writes. The logged files of a whole `dvc repro` are checked in test_pipeline.py."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import zerodl.live
from zerodl.errors import DataError
from zerodl.io import live_dir, naming
from zerodl.live import EpochLog, open_live

from cli_support import make_project

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "DVC_NO_ANALYTICS": "1"}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name.endswith((".tmp", ".old")))


# --- live_dir and naming ------------------------------------------------------------------------

def old_folder(tmp_path: Path) -> Path:
    dest = tmp_path / "live"
    (dest / "plots" / "metrics").mkdir(parents=True)
    (dest / "metrics.json").write_text('{"old": 1}\n')
    (dest / "plots" / "metrics" / "loss.tsv").write_text("step\tloss\n1\t0.5\n")
    (dest / "plots" / "empty").mkdir()
    return dest


def test_live_dir_starts_empty_and_keeps_what_the_run_wrote(tmp_path):
    dest = old_folder(tmp_path)
    with live_dir(dest) as folder:
        assert folder == dest and list(dest.iterdir()) == []  # written in place: readable while it runs
        (dest / "metrics.json").write_text('{"new": 2}\n')
    assert snapshot(dest) == {"metrics.json": hashlib.sha256(b'{"new": 2}\n').hexdigest()}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_live_dir_puts_the_old_contents_back_on_an_error(tmp_path, error):
    dest = old_folder(tmp_path)
    before = snapshot(dest)
    with pytest.raises(error):
        with live_dir(dest):
            (dest / "metrics.json").write_text("half")
            (dest / "new.tsv").write_text("step\n")
            raise error
    assert snapshot(dest) == before and (dest / "plots" / "empty").is_dir()
    assert leftovers(tmp_path) == []


def test_live_dir_of_a_new_folder_leaves_none_on_an_error(tmp_path):
    dest = tmp_path / "a" / "live"
    with pytest.raises(OSError):
        with live_dir(dest):
            (dest / "x").write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not dest.exists() and leftovers(tmp_path) == []


def test_live_dir_that_cannot_write_the_old_contents_back_says_so(tmp_path, monkeypatch):
    dest = old_folder(tmp_path)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DataError) as e:
        with live_dir(dest):
            monkeypatch.setattr(Path, "write_bytes", full)
            raise ValueError("boom")
    assert str(e.value) == (f"{dest}: the run stopped (boom) and its old contents could not be written back "
                            "(No space left on device); run the stage again")
    assert not dest.exists() and leftovers(tmp_path) == []


def test_live_dir_refuses_a_file(tmp_path):
    (tmp_path / "live").write_text("a file")
    with pytest.raises(DataError, match="is a file, expected a folder of outputs"):
        with live_dir(tmp_path / "live"):
            pass


def test_naming_gives_a_nameless_os_error_the_path_and_keeps_its_kind():
    with pytest.raises(OSError) as e:
        with naming("data/live/train"):
            raise OSError(errno.ENOSPC, "No space left on device")  # what a failed write(2) raises
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, "data/live/train")
    with pytest.raises(FileNotFoundError) as e:
        with naming("data/live/train"):
            open("/nonexistent/zerodl")
    assert e.value.filename == "/nonexistent/zerodl"  # named already: unchanged
    with pytest.raises(BrokenPipeError):
        with naming("x"):
            raise OSError(errno.EPIPE, "Broken pipe")


# --- EpochLog and open_live -------------------------------------------------------------------

class FakeLive:
    """What EpochLog calls on dvclive.Live, recorded: each sync as (step, summary, rows)."""

    def __init__(self, fail: bool = False):
        self.dir, self.step, self.summary, self.syncs, self.fail = "data/live/train", 0, {}, [], fail
        self.rows = None

    def log_metric(self, name, value, plot=True):
        assert plot is False  # one row per value and epoch: what EpochLog avoids
        self.summary[name] = value

    def log_plot(self, name, rows, x, y, template):
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk fails write(2)
        assert (name, x, y, template) == ("epochs", "step", ["epochs", "test_accuracy"], "linear")
        self.rows = [dict(r) for r in rows]

    def next_step(self):
        self.syncs.append((self.step, dict(self.summary), self.rows))
        self.step += 1


def record(epoch, acc):
    return SimpleNamespace(epoch=epoch, test_accuracy=acc)


METRICS = {"epochs": "epoch", "test_accuracy": "test_accuracy"}


def test_epoch_log_keeps_each_record_as_the_next_step_and_writes_them_all_at_close(monkeypatch):
    monkeypatch.setattr(zerodl.live, "SYNC_SECONDS", 3600.0)  # no sync before close in this test's time
    live = FakeLive()
    log = EpochLog(live, METRICS)
    for k, acc in enumerate([0.5, 0.7, 0.75], start=1):
        log.on_epoch(record(k if k < 3 else 2.5, acc))
    assert live.syncs == [] and log.steps == 3
    log.close()
    rows = [{"step": 1, "epochs": 1.0, "test_accuracy": 0.5}, {"step": 2, "epochs": 2.0, "test_accuracy": 0.7},
            {"step": 3, "epochs": 2.5, "test_accuracy": 0.75}]
    assert live.syncs == [(3, {"epochs": 2.5, "test_accuracy": 0.75}, rows)]
    assert all(type(v) is float for r in live.rows for k, v in r.items() if k != "step")  # not np.float64


@pytest.mark.parametrize("share, synced", [(1.0, [1, 2, 3, 3]), (1e-9, [1, 3])])
def test_epoch_log_syncs_when_the_time_has_come_and_never_more_than_its_share(monkeypatch, share, synced):
    monkeypatch.setattr(zerodl.live, "SYNC_SECONDS", 0.0)
    monkeypatch.setattr(zerodl.live, "SYNC_SHARE", share)  # 1e-9: one sync makes the next wait ~forever
    live = FakeLive()
    log = EpochLog(live, METRICS)
    for k in (1, 2):
        log.on_epoch(record(k, 0.5))
        time.sleep(0.01)
    log.on_epoch(record(3, 0.5))
    log.close()  # the last rows are written whatever the time
    assert [step for step, _, _ in live.syncs] == synced
    assert all([r["step"] for r in rows] == list(range(1, step + 1)) for step, _, rows in live.syncs)


def test_epoch_log_that_cannot_write_names_the_folder(monkeypatch):
    log = EpochLog(FakeLive(fail=True), METRICS)
    log.on_epoch(record(1, 0.5))
    with pytest.raises(OSError) as e:
        log.close()
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, "data/live/train")


def test_epoch_log_with_no_record_writes_nothing():
    live = FakeLive()
    EpochLog(live, METRICS).close()
    assert live.syncs == []


def test_open_live_writes_the_rows_and_summary_without_timestamps_and_no_dvc_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    live = open_live(tmp_path / "out")
    log = EpochLog(live, METRICS)
    log.on_epoch(record(1, 0.5))
    log.on_epoch(record(2, 0.625))
    log.close()
    assert json.loads((tmp_path / "out/plots/custom/epochs.json").read_text()) == [
        {"step": 1, "epochs": 1.0, "test_accuracy": 0.5}, {"step": 2, "epochs": 2.0, "test_accuracy": 0.625}]
    assert json.loads((tmp_path / "out/metrics.json").read_text()) == {"epochs": 2.0, "test_accuracy": 0.625,
                                                                       "step": 2}
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["custom", "epochs.json", "metrics.json",
                                                                     "plots"]
    assert not any(tmp_path.rglob("dvc.yaml"))


STUDIO_PROBE = """
from zerodl.live import open_live
live = open_live("out")
live.summary = {"x": 1}
live.end()
print(live._dvc_studio_config)  # what dvclive would post with: empty is nothing
"""


@pytest.mark.parametrize("where", ["project", "elsewhere"])
def test_dvclive_never_posts_to_studio_even_with_a_token(tmp_path, where):
    env = {**ENV, "DVC_STUDIO_TOKEN": "not-a-token", "DVC_STUDIO_REPO_URL": "https://example.com/zerodl.git"}
    env.pop("DVC_STUDIO_OFFLINE", None)
    if where == "project":  # the project's .dvc/config (studio.offline) decides, whatever the environment says
        env["DVC_STUDIO_OFFLINE"] = "false"
        (tmp_path / ".dvc").mkdir()
        (tmp_path / ".dvc" / "config").write_text((ROOT / ".dvc" / "config").read_text())
        for args in (["init", "-q"], ["add", ".dvc"], ["-c", "user.email=t@example.com", "-c", "user.name=t",
                                                      "commit", "-q", "-m", "project"]):
            subprocess.run(["git", *args], cwd=tmp_path, check=True)
    p = subprocess.run([sys.executable, "-c", STUDIO_PROBE], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "{}\n"
    assert "studio" not in p.stderr.lower(), p.stderr  # a post tried (and refused, offline) warns


# --- the stages, failing while dvclive writes ---------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Prepared data, a model and its metrics (tests/test_cli.py), then evaluate's dvclive folder."""
    root = tmp_path_factory.mktemp("live")
    make_project(root, iters=10)
    (root / "stages").symlink_to(ROOT / "stages")
    p = stage(root, "evaluate")
    assert p.returncode == 0, p.stderr
    return root


def stage(root: Path, name: str, prelude: str = "", **kw) -> subprocess.CompletedProcess:
    code = f"import runpy, sys; sys.argv = ['stages/{name}.py']\n{prelude}\nrunpy.run_path(sys.argv[0], run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=ENV, capture_output=True, text=True,
                          timeout=300, **kw)


def test_a_stage_in_a_git_repository_with_no_commit_says_to_commit_in_one_line(project, tmp_path):
    """dvclive reads HEAD before it checks there is one: a copy of the project in a fresh
    `git init`, not yet committed, gets one line and its old outputs, not dvclive's traceback."""
    root = tmp_path / "copy"
    shutil.copytree(project, root, symlinks=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    before = snapshot(root / "data")
    p = stage(root, "evaluate")
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines() == [
        "evaluate: error: data/live/eval: dvclive needs the project's git repository to have a commit, and it "
        "has none yet; commit the project (git add -A && git commit -m project) and run again"]
    assert snapshot(root / "data") == before and leftovers(root) == []
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "project"], cwd=root, check=True)
    p = stage(root, "evaluate")
    assert p.returncode == 0, p.stderr


# The fault: dvclive's write of the confusion matrix fails as a full disk does (OSError 28, no file named).
FULL_JSON = """
import errno, dvclive.plots.sklearn as sk
def dump_json(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
sk.dump_json = dump_json
"""


def test_evaluate_on_a_full_disk_leaves_its_dvclive_folder_as_it_was(project):
    before = snapshot(project / "data")
    assert "live/eval/plots/sklearn/confusion_matrix.json" in before
    p = stage(project, "evaluate", FULL_JSON)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.splitlines() == ["evaluate: error: data/live/eval: No space left on device; "
                                     "free some disk space and run again"]
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_train_whose_dvclive_rows_hit_a_full_disk_says_so_after_training_and_leaves_data_as_it_was(project):
    # The fault: dvclive's write of the epochs' rows fails as a full disk does.
    prelude = """
import errno, dvclive.plots.custom as c
def dump_json(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
c.dump_json = dump_json
"""
    before = snapshot(project / "data")
    p = stage(project, "train", prelude)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    *progress, last = p.stderr.splitlines()
    assert progress and progress[-1].startswith("train: 10/10 it (100%)"), p.stderr
    assert last == "train: error: data/live/train: No space left on device; free some disk space and run again"
    assert snapshot(project / "data") == before  # the model, the loss and the old dvclive folders
    assert leftovers(project) == []
