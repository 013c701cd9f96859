"""The `zerodl` command, run for real as a subprocess in a folder laid out like the pipeline's
(tests/cli_support.py): gradcheck, info, help and usage, bad input in one line, closed pipes,
and a start that imports little. predict and show: tests/test_cli_pictures.py."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zerodl import TwoLayerNet

from cli_support import (ITERS, assert_one_line_error, draw_one, run_in_process, zerodl)
from cli_support import project  # noqa: F401 - fixtures


# --- gradcheck ----------------------------------------------------------------------------

def gradcheck_numbers(stdout: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"^  (W1|b1|W2|b2): (\S+)  ok$", stdout, re.M)}


def test_gradcheck_on_the_prepared_digits(project):
    r = zerodl("gradcheck", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    numbers = gradcheck_numbers(r.stdout)
    assert sorted(numbers) == ["W1", "W2", "b1", "b2"]
    assert all(0 <= v <= 1e-7 for v in numbers.values())
    assert "pass: <= 1e-07" in r.stdout and "the first 3 training digits" in r.stdout
    assert "TwoLayerNet 784-50-10 (relu) in float64" in r.stdout


def test_gradcheck_without_data_uses_labelled_random_inputs(tmp_path, project):
    shutil.copy(project / "params.yaml", tmp_path / "params.yaml")
    r = zerodl("gradcheck", "--batch", 2, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 RANDOM inputs of 784 values" in r.stdout
    assert len(gradcheck_numbers(r.stdout)) == 4


def test_gradcheck_of_the_trained_model(project):
    r = zerodl("gradcheck", "--model", "data/model/model.npz", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the trained weights of data/model/model.npz" in r.stdout
    assert len(gradcheck_numbers(r.stdout)) == 4


@pytest.mark.parametrize("weight_decay", [0.01, 0.0])
def test_gradcheck_of_a_trained_model_checks_the_loss_it_was_trained_on(tmp_path, project, weight_decay):
    # The loss backprop descended had weight decay in it: the check is of that loss, whatever params.yaml says now.
    net = TwoLayerNet(784, 20, 10, seed=3, activation="sigmoid", dropout_ratio=0.2)
    net.save(tmp_path / "decayed.npz", params={"train": {"weight_decay": weight_decay}})
    r = zerodl("gradcheck", "--model", tmp_path / "decayed.npz", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    decay = ", weight decay 0.01" if weight_decay else ""
    assert f"TwoLayerNet 784-20-10 (sigmoid, dropout 0.2 (one mask, held){decay}) in float64" in r.stdout, r.stdout
    assert len(gradcheck_numbers(r.stdout)) == 4


def test_gradcheck_refuses_a_model_whose_weight_decay_is_not_a_number(tmp_path, project):
    TwoLayerNet(784, 20, 10, seed=3).save(tmp_path / "odd.npz", params={"train": {"weight_decay": "lots"}})
    r = zerodl("gradcheck", "--model", tmp_path / "odd.npz", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"zerodl: error: {tmp_path / 'odd.npz'}: model params train.weight_decay = 'lots': "
                                "expected a number >= 0")


def test_gradcheck_fails_with_exit_1_when_backprop_is_wrong(project, monkeypatch, capsys):
    backprop = TwoLayerNet.gradient

    def off_by_a_bit(self, x, t):
        grads = backprop(self, x, t)
        return {**grads, "b1": grads["b1"] + 1e-5}  # a bug in one layer's backward

    monkeypatch.setattr(TwoLayerNet, "gradient", off_by_a_bit)
    code, out, _ = run_in_process(["gradcheck"], project, monkeypatch, capsys)
    assert code == 1
    assert re.search(r"^  b1: 1\.0\d\de-05  TOO LARGE$", out, re.M)
    assert out.splitlines()[-1] == "FAILED: backprop and the numerical gradient differ by more than 1e-07 for b1"


def test_gradcheck_names_the_relu_kink_when_a_big_batch_fails(project, monkeypatch, capsys):
    # Measured on the fixture: in 30 digits, 3 hidden pre-activations sit within h of 0.
    code, out, _ = run_in_process(["gradcheck", "--batch", 30], project, monkeypatch, capsys)
    assert code == 1
    assert re.search(r"^note: \d+ hidden pre-activations lie within a step h = 0.0001 of the ReLU kink", out, re.M)


# --- info ---------------------------------------------------------------------------------

def test_info_describes_model_metrics_and_data(project):
    evaluation = json.loads((project / "data" / "live" / "eval" / "metrics.json").read_text())
    r = zerodl("info", cwd=project, script=True)  # through the installed console script
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "TwoLayerNet: 784 inputs -> 50 hidden (ReLU) -> 10 outputs (softmax)" in out
    assert "39,760 float32 numbers: W1 784x50, b1 50, W2 50x10, b2 10" in out
    assert f"{ITERS} iterations of sgd (learning_rate 0.1, batch_size 100, gradient backprop" in out
    assert "weight_init_std 0.01, seed 0, on 4,000 mnist-5k digits" in out
    assert f"test {evaluation['accuracy']:.4f} ({evaluation['errors']} of 1,000 wrong" in out
    assert "mnist-5k, 4,000 train / 1,000 test digits, 28x28 pixels" in out

    info = json.loads(zerodl("info", "--json", cwd=project).stdout)
    assert info["model"]["hidden_size"] == 50 and info["model"]["weights"] == 39760
    assert info["model"]["params"]["train"]["iters"] == ITERS
    assert info["metrics"]["eval"]["accuracy"] == evaluation["accuracy"]
    assert 0.8 < evaluation["accuracy"] < 0.95  # a few hundred iterations: ~85-90%
    assert info["data"]["counts"] == {"train": 4000, "test": 1000}


def test_info_without_metrics_or_data_says_so(project, tmp_path):
    (tmp_path / "data" / "model").mkdir(parents=True)
    shutil.copy(project / "data" / "model" / "model.npz", tmp_path / "data" / "model")
    (tmp_path / "data" / "prepared").mkdir()
    (tmp_path / "data" / "prepared" / "meta.json").write_text("{not json")
    r = zerodl("info", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "data/live/eval/metrics.json not found" in r.stdout
    assert "data/prepared/meta.json not valid JSON (line 1: Expecting property name" in r.stdout


# --- help, usage, bad input, closed pipes --------------------------------------------------
# The bad inputs of the issue run as real subprocesses; the many smaller cases run the
# same `main()` in this process (same code path, a tenth of the time).

@pytest.mark.parametrize("command", ["predict", "show", "gradcheck", "info", "descend"])
def test_every_command_has_help_with_an_example(command, tmp_path, monkeypatch, capsys):
    code, out, _ = run_in_process([command, "--help"], tmp_path, monkeypatch, capsys)
    assert code == 0
    assert "examples:\n  zerodl " + command in out


def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys):
    for args in ([], ["predict"], ["predict", "x.png", "--index", "1"]):
        r = zerodl(*args, cwd=tmp_path)
        assert r.returncode == 2, args
        assert "Traceback" not in r.stderr and "usage: zerodl" in r.stderr, args
    for args in (["show", "--index", "1", "--errors", "2"], ["show"], ["predict", "--index", "-1"],
                 ["predict", "--index", "one"], ["predict", "--errors", "0"], ["gradcheck", "--batch", "x"],
                 ["predict", "--split", "valid", "--index", "1"], ["predict", "--cols", "3", "x.png"]):
        code, out, err = run_in_process(args, tmp_path, monkeypatch, capsys)
        assert code == 2 and "usage: zerodl" in err, args
    code, out, _ = run_in_process(["--version"], tmp_path, monkeypatch, capsys)
    assert code == 0 and out.startswith("zerodl ")


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory):
    bad = tmp_path_factory.mktemp("bad")
    (bad / "notes.png").write_text("not a picture at all")
    draw_one(bad / "whole.png")
    (bad / "cut.png").write_bytes((bad / "whole.png").read_bytes()[:200])
    Image.new("L", (60, 60), 255).save(bad / "blank.png")
    (bad / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(bad / "array.npy", np.zeros(3))
    (bad / "typo.yaml").write_text("model:\n  hiden_size: 50\n")
    (bad / "broken.yaml").write_text("model: [unclosed\n")
    (bad / "empty").mkdir()
    (bad / "a_file").write_text("")
    return bad


def test_bad_input_gets_one_line(project, bad_files):
    bad = bad_files
    cases = [
        (["predict", "--index", 0, "--model", bad / "missing.npz"], ["missing.npz", "no such model file"]),
        (["info", "--model", bad / "garbage.npz"], ["garbage.npz", "not a readable zerodl model"]),
        (["predict", bad / "whole.png", bad / "cut.png"], ["cut.png", "damaged or unreadable image"]),
        (["predict", bad / "notes.png"], ["notes.png", "not an image"]),
        (["predict", "--index", 1000], ["--index 1000", "out of range", "0 to 999"]),
        (["predict", "--errors", 3, "--data", bad / "empty"], ["x_test.npy", "not found", "--data DIR"]),
        (["gradcheck", "--params", bad / "typo.yaml"], ["typo.yaml", "model.hiden_size", "hidden_size"]),
    ]
    for args, words in cases:
        r = zerodl(*args, cwd=project)
        assert_one_line_error(r.returncode, r.stderr, *words)


def test_more_bad_input_gets_one_line(project, bad_files, monkeypatch, capsys):
    bad = bad_files
    cases = [
        (["predict", bad / "whole.png", "--model", bad / "array.npy"], ["array.npy", "not a zerodl model"]),
        (["predict", bad / "nowhere.jpg"], ["nowhere.jpg", "no such file"]),
        (["predict", bad], [str(bad), "is a folder"]),
        (["show", bad / "blank.png"], ["blank.png", "no digit found"]),
        (["show", "--index", 5, 4000, "--split", "train"], ["--index 4000", "train split", "0 to 3999"]),
        (["predict", "--index", 3, "--data", bad / "nothing"], ["nothing", "no such folder", "--data DIR"]),
        (["show", "--errors", 3, "--model", bad / "missing.npz"], ["missing.npz", "no such model file"]),
        (["gradcheck", "--params", bad / "broken.yaml"], ["broken.yaml", "not valid YAML"]),
        (["gradcheck", "--params", bad / "none.yaml"], ["none.yaml", "not found"]),
        (["gradcheck", "--batch", 5000], ["--batch 5000", "4000"]),
        (["show", "--index", 1, "--out", bad / "grid.jpg"], ["--out", "grid.jpg", ".png"]),
        (["show", "--index", 1, "--out", bad / "a_file" / "grid.png"], ["--out", "a_file is a file, not a folder"]),
        (["show", "--index", 1, "--out", bad / "typo" / "grid.png"], ["--out", "typo does not exist"]),
    ]
    for args, words in cases:
        code, _, err = run_in_process(args, project, monkeypatch, capsys)
        assert_one_line_error(code, err, *words)
    assert not (project / "digits.png").exists()


@pytest.mark.parametrize("unbuffered", [None, "1"])  # print fails at once, or at the final flush
def test_a_closed_pipe_is_not_an_error_worth_a_traceback(project, unbuffered):
    for args in (["info"], ["predict", "--errors", 50] if unbuffered else ["predict", "--help"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first byte, like `| head -0`
        try:
            r = zerodl(*args, cwd=project, stdout=write, env={"PYTHONUNBUFFERED": unbuffered})
        finally:
            os.close(write)
        assert r.stderr == "", (args, r.stderr)
        # 1: output was cut short. argparse itself ignores a failed write of --help (exit 0).
        assert r.returncode in ((0, 1) if "--help" in args else (1,)), args


def test_a_real_pipe_into_head(project):
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    cmd = f'"{sys.executable}" -m zerodl.cli predict --errors 200 | head -1'
    r = subprocess.run([sh, "-c", cmd], cwd=project, capture_output=True, encoding="utf-8", timeout=60)
    assert r.stdout.startswith("The ") and r.stdout.count("\n") == 1
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr


def test_plain_bars_when_the_terminal_cannot_show_blocks(project):
    r = zerodl("predict", "--index", 0, cwd=project, env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert re.search(r"^  \d #+ +\d\.\d{3}$", r.stdout, re.M)


# --- the package: quick to start ---------------------------------------------------------

def test_starting_imports_no_pictures_plots_yaml_or_downloads(tmp_path):
    # Every command's module is imported to build the parser, so `zerodl info` and `--help`
    # would pay for Pillow, matplotlib, PyYAML and zerodl.data's download code if a module
    # imported them at its top: only the commands that use them do, when they run.
    probe = ("import sys, zerodl.cli; print(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('PIL', 'matplotlib', 'yaml') or m.startswith('zerodl.data')))")
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"


def test_ctrl_c_while_python_m_still_imports_names_the_command(tmp_path):
    # `python -m zerodl.cli` imports the package (NumPy and all) while sys.argv[0] is still
    # "-m": the one line names zerodl, not "-m". The signal goes once zerodl.entry has loaded.
    probe = "import sys; sys.argv = ['-m']; import zerodl.entry; print('ready', flush=True); import zerodl.cli"
    p = subprocess.Popen([sys.executable, "-c", probe], cwd=tmp_path, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (130, "zerodl: interrupted while starting; nothing was written\n")
