"""The DVC workflow end to end, as a user runs it, in a temporary git repo.

One real `dvc repro` on small params (offline, the mnist-5k default), then
what users do next: repro again, change a param, compare metrics, run
experiments one by one and in DVC's parallel queue, follow a running one.
What the stages log through dvclive (data/live/) is checked here too.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dvc_support import (exp_rows, git, make_repo, ran_stages, run, set_params, start_queue,
                         wait_for_queue)

pytestmark = pytest.mark.slow

LIVE = "data/live"
TRAIN_METRICS = "data/live/train/metrics.json"
EVAL_METRICS = "data/live/eval/metrics.json"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logged_files(repo: Path) -> dict[str, str]:
    """sha256 of every file the stages log or write under data/ but the raw and prepared data."""
    files = {str(f.relative_to(repo)): sha(f) for d in ("data/live", "data/plots", "data/report", "data/model")
             for f in sorted((repo / d).rglob("*")) if f.is_file()}
    return {**files, "data/environment.json": sha(repo / "data/environment.json")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("pipeline"))
    run(repo, "git", "config", "user.email", "test@example.com")
    run(repo, "git", "config", "user.name", "test")
    first = run(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline run")
    yield repo, first.stdout
    run(repo, "dvc", "queue", "stop", "--kill", check=False)


def test_repro_runs_every_stage_and_writes_outputs(repo):
    repo, first = repo
    assert ran_stages(first) == {"fetch", "prepare", "train", "evaluate", "report"}
    ev = json.loads((repo / EVAL_METRICS).read_text())
    tr = json.loads((repo / TRAIN_METRICS).read_text())
    # 200 iterations of a 20-unit net on real digits: well above chance (0.1), not perfect.
    assert 0.5 < ev["accuracy"] < 1.0
    assert ev["accuracy"] == pytest.approx(tr["test_accuracy"])
    assert len(ev["confusion_matrix"]) == 10 and sum(map(sum, ev["confusion_matrix"])) == ev["n"] == 1000
    for png in ("loss.png", "accuracy.png", "confusion.png", "misclassified.png"):
        assert (repo / "data/report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (repo / "data/report/report.md").read_text()
    assert f"{100 * ev['accuracy']:.2f} %" in report and "learning_rate: 0.1" in report
    assert "](draw.html)" in report and "const MODEL = " in (repo / "data/report/draw.html").read_text()
    loss_rows = (repo / "data/plots/loss.csv").read_text().splitlines()
    assert loss_rows[0] == "iteration,loss" and len(loss_rows) == 201


def test_train_logs_each_epoch_as_a_dvclive_step_with_its_params_and_summary(repo):
    repo, _ = repo
    live = repo / "data/live/train"
    # 200 iterations of batches of 50 on 4,000 digits: epochs 1 and 2 (80 iterations each), then half a third.
    rows = json.loads((live / "plots/custom/epochs.json").read_text())
    columns = ["step", "train_accuracy", "test_accuracy", "train_loss", "test_loss", "epochs"]
    assert [list(r) for r in rows] == [columns] * 3  # no timestamp
    assert [r["step"] for r in rows] == [1, 2, 3] and [r["epochs"] for r in rows] == [1.0, 2.0, 2.5]
    summary = json.loads((live / "metrics.json").read_text())
    assert list(summary) == ["train_accuracy", "test_accuracy", "train_loss", "test_loss", "epochs", "step",
                             "final_batch_loss", "iterations", "iter_per_epoch", "seconds"]
    assert summary["step"] == 3 and summary["iterations"] == 200 and summary["iter_per_epoch"] == 80
    assert {k: summary[k] for k in columns} == rows[-1]  # the latest step, as `dvc exp show` shows it
    logged = yaml.safe_load((live / "params.yaml").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert logged == {"seed": params["seed"], "model": params["model"], "train": params["train"]}
    # evaluate: its metrics, and the confusion matrix as dvclive logs a classifier's
    ev = json.loads((repo / EVAL_METRICS).read_text())
    pairs = json.loads((repo / "data/live/eval/plots/sklearn/confusion_matrix.json").read_text())
    assert len(pairs) == ev["n"] == 1000 and set(pairs[0]) == {"actual", "predicted"}
    counts = [[0] * 10 for _ in range(10)]
    for pair in pairs:
        counts[int(pair["actual"])][int(pair["predicted"])] += 1
    assert counts == ev["confusion_matrix"]
    # report: the gallery and the weights, logged as images for DVC's image plots: the report's
    # pictures, pixel for pixel (dvclive saves them again through Pillow)
    for png in ("misclassified.png", "weights.png"):
        with Image.open(repo / "data/live/report/plots/images" / png) as logged, \
                Image.open(repo / "data/report" / png) as drawn:
            assert logged.format == "PNG" and logged.size == drawn.size
            assert np.array_equal(np.asarray(logged.convert("RGBA")), np.asarray(drawn.convert("RGBA")))
    # Every plot declared once, in dvc.yaml: dvclive wrote no dvc.yaml of its own.
    assert sorted(f.relative_to(repo).as_posix() for f in repo.rglob("dvc.yaml")) == ["dvc.yaml"]
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert sorted(plots) == ["Accuracy per epoch", "Confusion matrix", "Loss per epoch",
                             "Training loss per iteration", "Update / weight per epoch", "Weight norms per epoch",
                             "data/live/report/plots/images/misclassified.png", "data/live/report/plots/images/weights.png"]


def test_second_repro_reruns_nothing(repo):
    repo, _ = repo
    p = run(repo, "dvc", "repro")
    assert ran_stages(p.stdout) == set()
    assert "Data and pipelines are up to date." in p.stdout


def test_same_params_and_seed_give_identical_model_and_every_logged_file(repo):
    repo, _ = repo
    before = logged_files(repo)
    train_before = json.loads((repo / TRAIN_METRICS).read_text())
    for f in before:
        (repo / f).unlink()  # nothing of the old run can be left to compare with itself
    p = run(repo, "dvc", "repro", "--force", "--downstream", "train")
    assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
    after = logged_files(repo)
    train_after = json.loads((repo / TRAIN_METRICS).read_text())
    assert set(after) == set(before)
    # Every file byte for byte, but the one that holds the wall time, and in it only that.
    assert {f: h for f, h in after.items() if f != TRAIN_METRICS} == {f: h for f, h in before.items()
                                                                      if f != TRAIN_METRICS}
    del train_before["seconds"], train_after["seconds"]
    assert train_after == train_before


def test_changing_learning_rate_reruns_only_downstream_and_metrics_diff_shows_it(repo):
    repo, _ = repo
    old = json.loads((repo / EVAL_METRICS).read_text())["accuracy"]
    set_params(repo, {"train": {"learning_rate": 0.01}})
    try:
        p = run(repo, "dvc", "repro")
        assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
        new = json.loads((repo / EVAL_METRICS).read_text())["accuracy"]
        assert new != old
        diff = run(repo, "dvc", "metrics", "diff", "--json")
        changes = json.loads(diff.stdout)[EVAL_METRICS]["accuracy"]
        assert changes["old"] == pytest.approx(old) and changes["new"] == pytest.approx(new)
        text = run(repo, "dvc", "metrics", "diff").stdout
        assert "accuracy" in text
        pdiff = json.loads(run(repo, "dvc", "params", "diff", "--json").stdout)
        lr = pdiff["params.yaml"]["train.learning_rate"]
        assert (lr["old"], lr["new"]) == (0.1, 0.01)
    finally:
        run(repo, "git", "checkout", "--", "params.yaml", "dvc.lock", LIVE, "data/plots")
        run(repo, "dvc", "checkout", "--force")
    assert ran_stages(run(repo, "dvc", "repro").stdout) == set()


def test_exp_run_with_set_param_and_exp_show(repo):
    repo, _ = repo
    p = run(repo, "dvc", "exp", "run", "-n", "wide", "-S", "model.hidden_size=30")
    assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
    rows = {r["name"]: r for r in exp_rows(repo)}
    assert rows["wide"]["params"]["model"]["hidden_size"] == 30
    assert 0.5 < rows["wide"]["metrics"]["accuracy"] < 1.0
    assert rows["wide"]["train"]["step"] == 3  # dvclive's step: epochs 1, 2 and the last half
    table = run(repo, "dvc", "exp", "show", "--csv").stdout.splitlines()
    header = table[0].split(",")
    wide = next(line.split(",") for line in table if line.startswith("wide,"))
    assert float(wide[header.index("accuracy")]) == rows["wide"]["metrics"]["accuracy"]
    assert wide[header.index("model.hidden_size")] == "30"
    assert wide[header.index("step")] == "3"
    # The workspace keeps the experiment's results until the user applies or resets.
    run(repo, "git", "checkout", "--", ".")
    run(repo, "dvc", "checkout", "--force")


def test_queued_sweep_runs_in_parallel_workers(repo):
    repo, _ = repo
    run(repo, "dvc", "exp", "run", "--queue", "-S", "train.learning_rate=0.01,0.1,0.5")
    start_queue(repo, 2)
    status = wait_for_queue(repo)
    assert status.count("Success") >= 3, status
    lrs = {}
    for r in exp_rows(repo):
        lr = r["params"].get("train", {}).get("learning_rate")
        if r["name"] != "wide" and lr is not None:
            lrs[lr] = r["metrics"].get("accuracy")
    assert set(lrs) >= {0.01, 0.1, 0.5}, lrs
    assert len({lrs[0.01], lrs[0.1], lrs[0.5]}) == 3  # different rates, different results


def signalled_step(path: Path) -> int:
    for _ in range(50):  # dvclive rewrites the file in place: a read can fall between truncate and write
        try:
            return json.loads(path.read_text())["step"]
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"{path}: no step")


def test_a_running_experiment_shows_its_latest_step(repo):
    """What DVC's VS Code extension and `dvc exp show` follow while a queued experiment trains:
    its dvclive metrics.json in the run's workspace, and dvclive's step signal in the repo."""
    repo, _ = repo
    run(repo, "dvc", "exp", "run", "--queue", "-n", "long", "-S", "train.iters=10000000")  # hours
    start_queue(repo, 1)
    signal_file = repo / ".dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED"
    seen, deadline = [], time.monotonic() + 180
    try:
        while len(seen) < 2 and time.monotonic() < deadline:
            row = next((r for r in exp_rows(repo, starting_retries=10) if r["name"] == "long"), {})
            live = row.get("train", {})
            # A summary written mid-training has no `seconds` (the run's workspace starts with the
            # baseline's files, which have, until train's first sync replaces them).
            if row.get("state") == "running" and "step" in live and "seconds" not in live \
                    and (not seen or live["step"] > seen[-1]):
                seen.append(live["step"])
                assert 0 < live["test_accuracy"] <= 1
                assert signalled_step(signal_file) >= live["step"]  # dvclive's signal for VS Code
            time.sleep(1)
    finally:
        run(repo, "dvc", "queue", "kill", "long", check=False)
        wait_for_queue(repo, timeout=60)
        run(repo, "dvc", "queue", "remove", "long", check=False)
    assert len(seen) == 2, f"no growing step seen for the running experiment: {seen}"
