"""The reader's journey through the stages: chapter 4's sigmoid net trained with the numerical
gradient and counted in epochs, then chapter 6's cures; the model file rebuilds the very network
that was trained, so evaluate, the report and every command score that one."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from zerodl import TwoLayerNet

from cli_support import make_project, zerodl

REPO = Path(__file__).resolve().parents[1]


def stage(name: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def with_params(root: Path, model=None, train=None) -> None:
    path = root / "params.yaml"
    p = yaml.safe_load(path.read_text())
    p["model"].update(model or {})
    p["train"].update(train or {})
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey")
    make_project(root, iters=10)
    return root


def _metrics(root):
    return (json.loads((root / "data" / "live" / name / "metrics.json").read_text()) for name in ("train", "eval"))


def test_chapter_4_sigmoid_numerical_in_epochs(root):
    with_params(root, model={"activation": "sigmoid"},
                train={"gradient": "numerical", "iters": None, "epochs": 2, "batch_size": 100})
    r = stage("train", root)
    assert r.returncode == 0, r.stderr
    # 4,000 digits in batches of 100: 40 iterations an epoch
    assert "train: 80 iterations (2 epochs)" in r.stdout
    assert "gradient numerical (net.numerical_gradient)" in r.stdout
    assert "train: 80/80 it (100%)" in r.stderr  # the plain progress lines of a log
    e = stage("evaluate", root)
    assert e.returncode == 0, e.stderr
    train, evaluation = _metrics(root)
    assert (train["iterations"], train["epochs"], train["iter_per_epoch"]) == (80, 2.0, 40)
    # evaluate rebuilt the sigmoid net from the file: the same accuracy the training loop measured
    assert evaluation["accuracy"] == train["test_accuracy"]
    assert evaluation["loss"] == pytest.approx(train["test_loss"], rel=1e-6)
    net = TwoLayerNet.load(root / "data" / "model" / "model.npz")
    assert net.activation == "sigmoid" and list(net.layers)[1] == "Sigmoid1"
    # the mismatch a reader hit: the same weights in a ReLU net score something else
    relu = TwoLayerNet(784, net.hidden_size, 10, seed=0)
    relu.set_params(net.params)
    x, t = (np.load(root / "data" / "prepared" / f"{k}_test.npy") for k in "xt")
    assert relu.evaluate(x, t)[1] != evaluation["accuracy"]
    info = zerodl("info", cwd=root)
    assert info.returncode == 0, info.stderr
    assert "hidden (sigmoid)" in info.stdout and "80 iterations (2 epochs) of sgd" in info.stdout
    check = zerodl("gradcheck", "--model", "data/model/model.npz", cwd=root)
    assert check.returncode == 0 and "(sigmoid) in float64" in check.stdout, check.stdout + check.stderr
    # the report counts the sigmoid's saturated units (of the trained net, on the test digits), not dead ReLUs
    rep = stage("report", root)
    assert rep.returncode == 0, rep.stderr
    text = (root / "data" / "report" / "report.md").read_text()
    h = 1 / (1 + np.exp(-(x.astype(np.float64) @ net.params["W1"] + net.params["b1"])))
    saturated = int(np.count_nonzero(np.mean((h <= 0.02) | (h >= 0.98), axis=0) >= 0.99))
    assert (f"{saturated} of {net.hidden_size} hidden units {'is' if saturated == 1 else 'are'} saturated: "
            f"outside (0.02, 0.98) on at least 99 % of the {len(x):,} test digits.") in text
    assert "dead: never active" not in text


def test_chapter_6_dropout_and_weight_decay(root):
    with_params(root, model={"activation": "relu", "dropout": 0.3},
                train={"gradient": "backprop", "iters": 60, "epochs": None, "weight_decay": 0.01})
    r = stage("train", root)
    assert r.returncode == 0, r.stderr
    assert "gradient layers" in r.stdout and "Dropout" in r.stdout  # the fused path does not know it: said so
    assert stage("evaluate", root).returncode == 0
    train, evaluation = _metrics(root)
    assert evaluation["accuracy"] == train["test_accuracy"]  # test time: no dropout, outputs scaled
    net = TwoLayerNet.load(root / "data" / "model" / "model.npz")
    assert net.dropout_ratio == 0.3 and list(net.layers) == ["Affine1", "Relu1", "Dropout1", "Affine2"]
    info = zerodl("info", cwd=root).stdout
    assert "dropout 0.3 in training" in info and "weight_decay 0.01" in info
    check = zerodl("gradcheck", cwd=root)  # fresh weights from params.yaml: dropout held, decay added
    assert check.returncode == 0, check.stdout
    assert "(relu, dropout 0.3 (one mask, held), weight decay 0.01)" in check.stdout


def test_setting_both_iters_and_epochs_is_one_line(root):
    with_params(root, train={"iters": 50, "epochs": 3})
    r = stage("train", root)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "train: error: params.yaml: train.iters = 50, train.epochs = 3: expected exactly one of them, the other "
        "null (both are set; to count in epochs, set train.iters: null)"]
