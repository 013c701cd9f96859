"""Reliability, done for real: what the user sees when something goes wrong. Here:
divergence, Ctrl-C and SIGTERM during training, while the report draws, while a stage is
still importing and while prepare writes; the helper process ends with its stage, even on SIGKILL.

Every test runs the real stage scripts (`python stages/<name>.py`) or the real `dvc` in a
temporary copy of the project, does the bad thing and checks what the user gets (one line, no
traceback, the exit code) and that no output was half-written, left as a temporary file, or
touched at all. Shared: tests/reliability_support.py; every case: docs/troubleshooting.md.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zerodl.worker

from reliability_support import (ENV, TRAINING, Terminal, assert_one_line, leftovers, snapshot, stage,
                                 wait_for_file, write_params)
from reliability_support import project  # noqa: F401 - fixtures (base: conftest.py)


# Ctrl-C and SIGTERM: each stops a stage with one line and 128 + the signal.
SIGNALS = pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                                  ids=["SIGINT", "SIGTERM"])


# --- training: divergence, Ctrl-C, SIGTERM --------------------------------------------------

def test_divergence_is_an_error_naming_the_learning_rate(project):
    before = snapshot(project / "data")
    write_params(project, {"train": {"learning_rate": 1e6}})
    p = stage(project, "train")
    assert_one_line(p, 1, "train: error: training diverged", "train.learning_rate = 1000000.0",
                    "try a smaller train.learning_rate")
    assert snapshot(project / "data") == before  # no model written, the previous one untouched
    assert leftovers(project) == []


@SIGNALS
def test_signal_during_training(project, sig, code, word):
    before = snapshot(project / "data")
    write_params(project, {"train": {"iters": 10_000_000}})  # hours: it is surely still training
    term = Terminal([sys.executable, "stages/train.py"], project)
    try:
        term.read_until(TRAINING, timeout=60)  # the progress bar: inside the training loop
        term.proc.send_signal(sig)
        assert term.finish() == code
    finally:
        term.close()
    out = term.text
    assert "Traceback" not in out, out
    # The message has a line of its own, not glued to the end of the progress bar.
    assert out.endswith(f"\ntrain: {word}; nothing half-written was left behind\n"), repr(out)
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"  # a zombie is gone too
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not zerodl.worker.available(), reason="needs 2 cores: the stage runs without a helper")
def test_helper_process_ends_with_the_stage_even_on_sigkill(project):
    # The helper (zerodl.worker) gathers batches and scores epochs on the second core. Ctrl-C
    # and SIGTERM are covered above (the stage stops it); a SIGKILLed stage cannot, so the
    # helper must notice by itself that its parent is gone, not keep a core busy.
    write_params(project, {"train": {"iters": 10_000_000}})
    term = Terminal([sys.executable, "stages/train.py"], project)
    try:
        term.read_until(TRAINING, timeout=60)
        helpers = _children(term.proc.pid)
        assert len(helpers) == 1, helpers
        term.proc.send_signal(signal.SIGKILL)
        assert term.finish(timeout=30) == -signal.SIGKILL  # the pty closes: the helper let go of it too
    finally:
        term.close()
    assert "Traceback" not in term.text  # its parent gone, the helper leaves quietly
    deadline = time.monotonic() + 10
    while not _gone(helpers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helpers[0])
    assert leftovers(project) == []


@SIGNALS
def test_signal_while_report_draws(project, sig, code, word):
    before = snapshot(project / "data")
    write_params(project, {"report": {"misclassified": 24}})  # new outputs would differ
    p = subprocess.Popen([sys.executable, "stages/report.py"], cwd=project, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first figure is written (as a temporary file) and three more are to be drawn.
        assert wait_for_file(project / "data/report", ".loss.png.", p), "report finished before the signal"
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_one_line(subprocess.CompletedProcess(p.args, p.returncode, out, err), code,
                    f"report: {word}; nothing half-written was left behind")
    assert snapshot(project / "data") == before  # all five files of the old report, as they were
    assert leftovers(project) == []


@SIGNALS
def test_signal_while_the_stage_is_still_importing(project, sig, code, word):
    # Python is still importing NumPy: nothing has been read or written yet. The
    # signal goes once zerodl.entry (the stage's first import) has loaded.
    before = snapshot(project / "data")
    probe = ("import sys, runpy; sys.argv = ['stages/train.py']; import zerodl.entry; print('ready', flush=True); "
             "runpy.run_path('stages/train.py', run_name='__main__')")
    p = subprocess.Popen([sys.executable, "-c", probe], cwd=project, env=ENV, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline() == "ready\n"
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (code, f"train: {word} while starting; nothing was written\n")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_sigterm_while_prepare_writes(base, project):
    before = snapshot(project / "data")
    write_params(project, {"seed": 1})  # a different split: the new arrays would differ
    for attempt in range(5):  # its writing lasts ~0.1 s: poll for it, and retry if it was missed
        p = subprocess.Popen([sys.executable, "stages/prepare.py"], cwd=project, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            hit = wait_for_file(project / "data", ".prepared.", p)
            if hit:
                p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if hit and p.returncode != 0:
            break
        shutil.rmtree(project / "data/prepared")  # it finished first: restore the old arrays
        shutil.copytree(base / "data/prepared", project / "data/prepared")
    else:
        pytest.fail("prepare finished before SIGTERM every time")
    assert_one_line(subprocess.CompletedProcess(p.args, p.returncode, out, err), 143,
                    "prepare: terminated (SIGTERM); nothing half-written was left behind")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []
