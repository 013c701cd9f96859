"""Reliability, done for real: what the user sees when something goes wrong. Here:
the same bits whatever BLAS threads the environment sets, and the faults seen through `dvc`
in a temporary git repo: a params error, an interrupted `dvc repro`, two at once.

Every test runs the real stage scripts (`python stages/<name>.py`) or the real `dvc` in a
temporary copy of the project, does the bad thing and checks what the user gets (one line, no
traceback, the exit code) and that no output was half-written, left as a temporary file, or
touched at all. Shared: tests/reliability_support.py; every case: docs/troubleshooting.md.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from zerodl import TwoLayerNet

from reliability_support import (BIN, ENV, MODEL, ROOT, TRAINING, Terminal, dvc, git, leftovers, stage,
                                 write_params)


# --- determinism whatever the environment's BLAS threads ---------------------------------------

def _train_and_evaluate(proj: Path, env: dict) -> dict:
    for name in ("train", "evaluate"):
        p = stage(proj, name, env=env)
        assert p.returncode == 0, p.stderr
    train = json.loads((proj / "data/live/train/metrics.json").read_text())
    del train["seconds"]  # wall time
    with np.load(proj / MODEL, allow_pickle=False) as z:
        weights = {k: z[k] for k in ("W1", "b1", "W2", "b2")}
    return {"model": (proj / MODEL).read_bytes(), "train": train,
            "eval": (proj / "data/live/eval/metrics.json").read_bytes(),
            "plots": [(proj / f).read_bytes() for f in ("data/plots/loss.csv", "data/plots/norms.csv",
                                                        "data/live/train/plots/custom/epochs.json",
                                                        "data/live/eval/plots/sklearn/confusion_matrix.json")],
            "weights": weights, "accuracy": json.loads((proj / "data/live/eval/metrics.json").read_text())["accuracy"]}


def test_same_seed_same_bits_whatever_blas_threads_the_environment_sets(base, tmp_path):
    variants = {  # (train.threads, the user's environment)
        "threads1-unset": (1, {}),
        "threads1-openblas1": (1, {"OPENBLAS_NUM_THREADS": "1"}),
        "threads1-openblas2": (1, {"OPENBLAS_NUM_THREADS": "2"}),
        "threads1-omp2": (1, {"OMP_NUM_THREADS": "2"}),
        "threads2-unset": (2, {}),
        "threads2-openblas1": (2, {"OPENBLAS_NUM_THREADS": "1"}),
    }
    projects = {}
    for name, (threads, _) in variants.items():
        proj = tmp_path / name
        shutil.copytree(base, proj, ignore=shutil.ignore_patterns("raw", "report"))
        write_params(proj, {"train": {"threads": threads}})
        projects[name] = proj
    # Three at a time on this machine's cores: the runs also compete with each other.
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_train_and_evaluate, projects[name], {**ENV, **env})
                   for name, (_, env) in variants.items()}
        results = {name: f.result() for name, f in futures.items()}

    def same(a, b):
        return all(results[a][k] == results[b][k] for k in ("model", "train", "eval", "plots"))

    # A fixed train.threads gives the same bytes whatever the environment says.
    for name in ("threads1-openblas1", "threads1-openblas2", "threads1-omp2"):
        assert same("threads1-unset", name), name
    assert same("threads2-unset", "threads2-openblas1")
    # train.threads 1 vs 2: other summation orders in the GEMMs. Measured (see
    # docs/troubleshooting.md): at most float32 rounding, no change in accuracy.
    one, two = results["threads1-unset"], results["threads2-unset"]
    diff = max(float(np.max(np.abs(one["weights"][k].astype(np.float64) - two["weights"][k])))
               for k in one["weights"])
    assert diff <= 1e-3, diff
    assert abs(one["accuracy"] - two["accuracy"]) <= 0.005
    ev1, ev2 = json.loads(one["eval"]), json.loads(two["eval"])
    assert ev2["loss"] == pytest.approx(ev1["loss"], rel=1e-5)


# --- through dvc, in a temporary git repo ------------------------------------------------------

DVC_COPY = ["dvc.yaml", "stages", "zerodl", ".dvc/config", ".dvcignore", ".gitignore"]
UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project in a git repo after one committed `dvc repro` (as tests/test_pipeline.py makes it)."""
    repo = tmp_path_factory.mktemp("repo")
    for name in DVC_COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    write_params(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline run")
    return repo


def back_to_baseline(repo: Path) -> None:
    """What a user does after a failed run: the committed params, outputs back from git and DVC's cache."""
    git(repo, "checkout", "--", "params.yaml", "dvc.lock", "data/live", "data/plots", "data/environment.json")
    dvc(repo, "checkout", "--force")
    assert UP_TO_DATE in dvc(repo, "status").stdout


def test_dvc_repro_shows_the_params_error_and_fails(repo):
    try:
        write_params(repo, {"train": {"learnig_rate": 0.1}})
        p = dvc(repo, "repro", check=False)
        assert p.returncode != 0
        out = p.stdout + p.stderr
        assert "train: error: params.yaml: unknown key 'train.learnig_rate' (did you mean 'learning_rate'?)" in out
        assert "failed to reproduce 'train': failed to run: python stages/train.py, exited with 2" in out
        assert "Traceback" not in out
        back_to_baseline(repo)  # the recovery docs/troubleshooting.md gives

        # YAML that does not parse: DVC reads params.yaml itself first, and says so.
        (repo / "params.yaml").write_text("train: [\n  iters: 5\n")
        p = dvc(repo, "repro", check=False)
        assert p.returncode != 0
        assert "unable to read: 'params.yaml', YAML file structure is corrupted" in p.stderr
        assert "Traceback" not in p.stdout + p.stderr
    finally:
        back_to_baseline(repo)


# DVC runs a stage's cmd with $SHELL -c, or /bin/sh -c when SHELL is unset (cron, CI, containers).
# bash execs the command, so DVC sees the stage's own 130. dash forks and, being in the
# foreground group, is itself killed by the Ctrl-C: DVC reports the shell's death, -2.
SHELLS = {"bash": ("/bin/bash", "130"),
          "sh": (None, "-2" if os.path.realpath("/bin/sh").endswith("dash") else "130")}


@pytest.mark.parametrize("shell", SHELLS)
def test_interrupted_dvc_repro_then_repro_reruns_cleanly(repo, shell):
    path, reported = SHELLS[shell]
    env = {k: v for k, v in ENV.items() if k != "SHELL"} | ({"SHELL": path} if path else {})
    try:
        write_params(repo, {"train": {"iters": 4000}})  # a second or two: interrupted mid-way
        term = Terminal([str(BIN / "dvc"), "repro"], repo, env=env)
        try:
            term.read_until(TRAINING, timeout=120)
            term.signal_group(signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
            code = term.finish()
        finally:
            term.close()
        out = term.text
        assert code != 0, out
        assert "\ntrain: interrupted; nothing half-written was left behind\n" in out
        assert f"failed to reproduce 'train': failed to run: python stages/train.py, exited with {reported}\n" in out
        assert "Traceback" not in out
        assert leftovers(repo / "data") == []  # finish() waited for the stage itself to close the terminal

        p = dvc(repo, "repro")
        assert "Running stage 'train'" in p.stdout and "Running stage 'report'" in p.stdout
        assert UP_TO_DATE in dvc(repo, "status").stdout
        assert leftovers(repo / "data") == []
        assert TwoLayerNet.load(repo / MODEL).hidden_size == 20
        assert json.loads((repo / "data/live/train/metrics.json").read_text())["iterations"] == 4000
    finally:
        back_to_baseline(repo)


def test_two_dvc_repro_at_once(repo):
    try:
        write_params(repo, {"train": {"iters": 8000, "learning_rate": 0.05}})
        first = Terminal([str(BIN / "dvc"), "repro"], repo)
        try:
            first.read_until(TRAINING, timeout=120)
            second = dvc(repo, "repro", check=False)
            assert first.proc.poll() is None, "the second repro waited for the first instead of failing fast"
            assert first.finish() == 0, first.text
        finally:
            first.close()
        assert second.returncode != 0
        assert "is busy, it is being blocked by:" in second.stderr, second.stderr
        assert f"(PID {first.proc.pid}): " in second.stderr and "dvc repro" in second.stderr
        assert "Traceback" not in second.stderr
        # The first one's outputs are whole, and DVC agrees they are up to date.
        assert UP_TO_DATE in dvc(repo, "status").stdout
        assert leftovers(repo / "data") == []
        assert json.loads((repo / "data/live/train/metrics.json").read_text())["iterations"] == 8000
        assert TwoLayerNet.load(repo / MODEL).hidden_size == 20
    finally:
        back_to_baseline(repo)
