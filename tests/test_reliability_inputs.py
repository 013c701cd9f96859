"""Reliability, done for real: what the user sees when something goes wrong. Here:
bad params.yaml (every key checked before any work, through every stage), missing or
damaged inputs, and the report's figures of what the network learned.

Every test runs the real stage scripts (`python stages/<name>.py`) or the real `dvc` in a
temporary copy of the project, does the bad thing and checks what the user gets (one line, no
traceback, the exit code) and that no output was half-written, left as a temporary file, or
touched at all. Shared: tests/reliability_support.py; every case: docs/troubleshooting.md.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml


from reliability_support import (MODEL, N_TRAIN, PARAMS, ROOT, assert_one_line, leftovers, snapshot, stage,
                                 write_params)
from reliability_support import project, shared  # noqa: F401 - fixtures (base: conftest.py)


# --- params.yaml: every key checked before any work ------------------------------------------

TRAIN_BAD_PARAMS = {
    # id: (changes to PARAMS, or raw text of params.yaml, or None for no file; fragments of the line)
    "typo": ({"train": {"learnig_rate": 0.1}},
             ["params.yaml: unknown key 'train.learnig_rate'", "did you mean 'learning_rate'",
              "allowed: iters, epochs, batch_size, learning_rate"]),
    "typo-section": ({"trian": {"iters": 5}}, ["unknown key 'trian'", "did you mean 'train'"]),
    "lr-text": ({"train": {"learning_rate": "fast"}},
                ["train.learning_rate = 'fast'", "expected a finite number > 0"]),
    "lr-zero": ({"train": {"learning_rate": 0}}, ["train.learning_rate = 0", "expected a finite number > 0"]),
    "lr-negative": ({"train": {"learning_rate": -0.1}},
                    ["train.learning_rate = -0.1", "expected a finite number > 0"]),
    "lr-nan": ({"train": {"learning_rate": float("nan")}},
               ["train.learning_rate = nan", "expected a finite number > 0"]),
    "iters-zero": ({"train": {"iters": 0}}, ["train.iters = 0", "expected an integer from 1 to 10000000"]),
    "iters-negative": ({"train": {"iters": -5}}, ["train.iters = -5", "expected an integer from 1 to 10000000"]),
    "iters-float": ({"train": {"iters": 1.5}}, ["train.iters = 1.5", "expected an integer from 1 to 10000000"]),
    "iters-bool": ({"train": {"iters": True}}, ["train.iters = true", "expected an integer from 1 to 10000000"]),
    "batch-zero": ({"train": {"batch_size": 0}}, ["train.batch_size = 0", "expected an integer >= 1"]),
    "batch-negative": ({"train": {"batch_size": -100}}, ["train.batch_size = -100", "expected an integer >= 1"]),
    "batch-too-big": ({"train": {"batch_size": N_TRAIN + 1}},
                      [f"train.batch_size = {N_TRAIN + 1}", f"expected at most the training set size ({N_TRAIN})"]),
    "hidden-zero": ({"model": {"hidden_size": 0}},
                    ["model.hidden_size = 0", "expected an integer from 1 to 100000"]),
    "hidden-text": ({"model": {"hidden_size": "fifty"}},
                    ["model.hidden_size = 'fifty'", "expected an integer from 1 to 100000"]),
    "optimizer": ({"train": {"optimizer": "sgdd"}},
                  ["train.optimizer = 'sgdd'", "expected one of sgd | momentum | adagrad | rmsprop | adam"]),
    "source": ({"data": {"source": "mnist-10k"}},
               ["data.source = 'mnist-10k'", "expected one of mnist-5k | mnist | fashion-mnist | idx"]),
    "idx-without-dir": ({"data": {"source": "idx"}}, ["data.dir = null", "expected a folder path when data.source is idx"]),
    "threads-zero": ({"train": {"threads": 0}}, ["train.threads = 0", "expected an integer from 1 to 256"]),
    "section-not-a-mapping": ({"train": 5}, ["train = 5", "expected a mapping of keys"]),
    "duplicate-key": ("__good__seed: 1\n", ["params.yaml: not valid YAML at line",
                                            "key 'seed' is written twice", "keep one"]),
    "not-yaml": ("train: [\n  iters: 5\n", ["params.yaml: not valid YAML at line"]),
    "not-a-mapping": ("- 1\n- 2\n", ["params.yaml: expected a mapping of sections", "got list"]),
    "missing": (None, ["params.yaml: file not found"]),
}


def put_params(proj: Path, spec) -> None:
    path = proj / "params.yaml"
    if spec is None:
        path.unlink()
    elif isinstance(spec, str):
        good = yaml.safe_dump(PARAMS, sort_keys=False)
        path.write_text(spec.replace("__good__", good))
    else:
        write_params(proj, spec)


@pytest.mark.parametrize("case", list(TRAIN_BAD_PARAMS))
def test_bad_params_stop_train_before_any_work(shared, case):
    spec, fragments = TRAIN_BAD_PARAMS[case]
    before = snapshot(shared / "data")
    assert MODEL in {f"data/{k}" for k in before}
    put_params(shared, spec)
    try:
        p = stage(shared, "train")
    finally:
        write_params(shared)
    line = assert_one_line(p, 2, *fragments)
    assert line.startswith("train: error: params.yaml: "), line
    assert snapshot(shared / "data") == before  # model.npz and every other file untouched
    assert leftovers(shared) == []


# One bad key for each stage: each validates the whole file before it reads or writes anything.
STAGE_BAD_PARAMS = {
    "fetch": ({"data": {"source": "mnist-10k"}}, "data.source = 'mnist-10k'"),
    "prepare": ({"data": {"test_fraction": 1.5}}, "data.test_fraction = 1.5: expected a number between 0 and 1"),
    "train": ({"train": {"learnig_rate": 0.1}}, "unknown key 'train.learnig_rate'"),
    "evaluate": ({"train": {"threads": 0}}, "train.threads = 0: expected an integer from 1 to 256"),
    "report": ({"report": {"misclassified": -1}}, "report.misclassified = -1: expected an integer from 0 to 400"),
}


@pytest.mark.parametrize("name", list(STAGE_BAD_PARAMS))
def test_bad_params_stop_every_stage(project, name):
    changes, fragment = STAGE_BAD_PARAMS[name]
    before = snapshot(project / "data")
    write_params(project, changes)
    p = stage(project, name)
    assert assert_one_line(p, 2, fragment).startswith(f"{name}: error: params.yaml: ")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


MISSING_INPUTS = {
    # id: (stage, what to break, the line)
    "train-before-prepare": ("train", "data/prepared",
                             "train: error: data/prepared/x_train.npy: not found (run `dvc repro prepare` first)"),
    "damaged-array": ("train", "data/prepared/x_train.npy",
                      "train: error: data/prepared/x_train.npy: not a readable .npy array (not a .npy array, "
                      "or one of Python objects, which zerodl never unpickles); rerun `dvc repro -f prepare`"),
    "evaluate-before-train": ("evaluate", MODEL,
                              f"evaluate: error: {MODEL}: no such model file (train one with `dvc repro`)"),
    "report-before-evaluate": ("report", "data/live/eval/metrics.json",
                               "report: error: data/live/eval/metrics.json: not found (run `dvc repro` to make it)"),
    "report-without-norms": ("report", "data/plots/norms.csv",
                             "report: error: data/plots/norms.csv: not found (run `dvc repro train` to make it)"),
    "norms-without-ratios": ("report", "data/plots/norms.csv",
                             "report: error: data/plots/norms.csv: expected the columns epoch, <param>_norm and "
                             "<param>_update_ratio (rerun `dvc repro train` to make it)"),
}


@pytest.mark.parametrize("case", list(MISSING_INPUTS))
def test_missing_or_damaged_input(project, case):
    name, path, line = MISSING_INPUTS[case]
    target = project / path
    if case == "damaged-array":
        target.write_bytes(b"not an array\n")
    elif case == "norms-without-ratios":  # the loss per iteration in its place
        shutil.copy(project / "data/plots/loss.csv", target)
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    before = snapshot(project / "data")
    p = stage(project, name)
    assert assert_one_line(p, 1) == line
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


# --- the report: what the network learned -----------------------------------------------------

def _csv(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


def test_train_logs_the_norms_and_the_report_shows_what_the_net_learned(base):
    header, norms = _csv(base / "data/plots/norms.csv")
    epochs = json.loads((base / "data/live/train/plots/custom/epochs.json").read_text())
    keys = ("W1", "b1", "W2", "b2")
    assert header == ["epoch", "iteration", *(f"{k}_norm" for k in keys), *(f"{k}_update" for k in keys),
                      *(f"{k}_update_ratio" for k in keys)]
    # a row per epoch record: after 80, 160 and 200 iterations
    np.testing.assert_array_equal(norms[:, 0], [r["epochs"] for r in epochs])
    col = {name: norms[:, j] for j, name in enumerate(header)}
    with np.load(base / MODEL, allow_pickle=False) as z:
        for k in keys:
            # the last row is the trained net's; every ratio is its update over its norm
            assert col[f"{k}_norm"][-1] == pytest.approx(np.linalg.norm(z[k].astype(np.float64)), rel=1e-6)
            np.testing.assert_allclose(col[f"{k}_update_ratio"], col[f"{k}_update"] / col[f"{k}_norm"], rtol=1e-15)
            assert np.all(col[f"{k}_update"] > 0)
        W1, b1 = z["W1"].astype(np.float64), z["b1"].astype(np.float64)
    report = (base / "data/report/report.md").read_text()
    for png in ("weights.png", "hidden.png", "norms.png"):
        assert (base / "data/report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    # the dead units, counted here in float64 from the model file and the test digits
    x = np.load(base / "data/prepared/x_test.npy")
    dead = int(np.count_nonzero(~np.any(x @ W1 + b1 > 0, axis=0)))
    verb = "is" if dead == 1 else "are"
    assert f"{dead} of 20 hidden units {verb} dead: never active on any of the 1,000 test digits." in report
    assert "What each hidden unit looks for" in report and "A rule of thumb puts a good learning rate near 1e-3" in report


def test_dvc_yaml_declares_the_norms_and_their_plots(base):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    train, report = spec["stages"]["train"], spec["stages"]["report"]
    assert {"data/plots/norms.csv": {"cache": False}} in train["outs"]
    assert "data/plots/norms.csv" in report["deps"]
    header, _ = _csv(base / "data/plots/norms.csv")
    drawn = {}
    for plot in spec["plots"]:
        for title, p in plot.items() if isinstance(plot, dict) else ():
            if "data/plots/norms.csv" in p.get("y", {}):
                assert p["x"] == "epoch"
                drawn[title] = p["y"]["data/plots/norms.csv"]
    assert drawn == {"Weight norms per epoch": [f"{k}_norm" for k in ("W1", "b1", "W2", "b2")],
                     "Update / weight per epoch": [f"{k}_update_ratio" for k in ("W1", "b1", "W2", "b2")]}
    assert all(c in header for columns in drawn.values() for c in columns)
