"""The DVC workflow end to end, as a user runs it, in a temporary git repo.

One real `dvc repro` on small params (offline, the mnist-5k default), then
what users do next: repro again, change a param, compare metrics, run
experiments one by one and in DVC's parallel queue.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMALL = {"train": {"iters": 200, "batch_size": 50}, "model": {"hidden_size": 20}}
COPY = ["dvc.yaml", "params.yaml", "stages", "zerodl", ".dvc/config", ".dvcignore", ".gitignore"]


def run(repo, *args, check=True, timeout=300):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def set_params(repo: Path, changes: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pipeline")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    set_params(repo, SMALL)
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "git", "config", "user.email", "test@example.com")
    run(repo, "git", "config", "user.name", "test")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "project")
    first = run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "baseline run")
    yield repo, first.stdout
    run(repo, "dvc", "queue", "stop", "--kill", check=False)


def test_repro_runs_every_stage_and_writes_outputs(repo):
    repo, first = repo
    assert ran_stages(first) == {"fetch", "prepare", "train", "evaluate", "report"}
    ev = json.loads((repo / "data/metrics/eval.json").read_text())
    tr = json.loads((repo / "data/metrics/train.json").read_text())
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


def test_second_repro_reruns_nothing(repo):
    repo, _ = repo
    p = run(repo, "dvc", "repro")
    assert ran_stages(p.stdout) == set()
    assert "Data and pipelines are up to date." in p.stdout


def test_same_params_and_seed_give_identical_model_and_metrics(repo):
    repo, _ = repo
    files = ("data/model/model.npz", "data/metrics/eval.json", "data/plots/loss.csv",
             "data/plots/epochs.csv", "data/plots/predictions.csv", "data/report/report.md",
             "data/report/confusion.png", "data/report/draw.html")
    before = {f: sha(repo / f) for f in files}
    train_before = json.loads((repo / "data/metrics/train.json").read_text())
    for f in files + ("data/metrics/train.json",):
        (repo / f).unlink()  # nothing of the old run can be left to compare with itself
    p = run(repo, "dvc", "repro", "--force", "--downstream", "train")
    assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
    assert {f: sha(repo / f) for f in files} == before
    train_after = json.loads((repo / "data/metrics/train.json").read_text())
    del train_before["seconds"], train_after["seconds"]  # wall time: the one number that may differ
    assert train_after == train_before


def test_changing_learning_rate_reruns_only_downstream_and_metrics_diff_shows_it(repo):
    repo, _ = repo
    old = json.loads((repo / "data/metrics/eval.json").read_text())["accuracy"]
    set_params(repo, {"train": {"learning_rate": 0.01}})
    try:
        p = run(repo, "dvc", "repro")
        assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
        new = json.loads((repo / "data/metrics/eval.json").read_text())["accuracy"]
        assert new != old
        diff = run(repo, "dvc", "metrics", "diff", "--json")
        changes = json.loads(diff.stdout)["data/metrics/eval.json"]["accuracy"]
        assert changes["old"] == pytest.approx(old) and changes["new"] == pytest.approx(new)
        text = run(repo, "dvc", "metrics", "diff").stdout
        assert "accuracy" in text
        pdiff = json.loads(run(repo, "dvc", "params", "diff", "--json").stdout)
        lr = pdiff["params.yaml"]["train.learning_rate"]
        assert (lr["old"], lr["new"]) == (0.1, 0.01)
    finally:
        run(repo, "git", "checkout", "--", "params.yaml", "dvc.lock", "data/metrics", "data/plots")
        run(repo, "dvc", "checkout", "--force")
    assert ran_stages(run(repo, "dvc", "repro").stdout) == set()


def _exp_rows(repo):
    rows = json.loads(run(repo, "dvc", "exp", "show", "--json").stdout)
    out = []
    for commit in rows:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("data/metrics/eval.json", {}).get("data", {})
                out.append({"name": rev.get("name"), "params": params, "metrics": metrics,
                            "error": rev.get("error")})
    return out


def test_exp_run_with_set_param_and_exp_show(repo):
    repo, _ = repo
    p = run(repo, "dvc", "exp", "run", "-n", "wide", "-S", "model.hidden_size=30")
    assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
    rows = {r["name"]: r for r in _exp_rows(repo)}
    assert rows["wide"]["params"]["model"]["hidden_size"] == 30
    assert 0.5 < rows["wide"]["metrics"]["accuracy"] < 1.0
    table = run(repo, "dvc", "exp", "show", "--csv").stdout.splitlines()
    header = table[0].split(",")
    wide = next(line.split(",") for line in table if line.startswith("wide,"))
    assert float(wide[header.index("accuracy")]) == rows["wide"]["metrics"]["accuracy"]
    assert wide[header.index("model.hidden_size")] == "30"
    # The workspace keeps the experiment's results until the user applies or resets.
    run(repo, "git", "checkout", "--", ".")
    run(repo, "dvc", "checkout", "--force")


def test_queued_sweep_runs_in_parallel_workers(repo):
    repo, _ = repo
    run(repo, "dvc", "exp", "run", "--queue", "-S", "train.learning_rate=0.01,0.1,0.5")
    run(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 240
    while True:
        status = run(repo, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"queue did not finish:\n{status}")
        time.sleep(2)
    assert status.count("Success") >= 3, status
    lrs = {}
    for r in _exp_rows(repo):
        lr = r["params"].get("train", {}).get("learning_rate")
        if r["name"] != "wide" and lr is not None:
            lrs[lr] = r["metrics"].get("accuracy")
    assert set(lrs) >= {0.01, 0.1, 0.5}, lrs
    assert len({lrs[0.01], lrs[0.1], lrs[0.5]}) == 3  # different rates, different results
