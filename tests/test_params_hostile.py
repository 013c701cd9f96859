"""A hostile params.yaml costs what its bytes do: one line, exit code 2, little memory, no traceback.

The file that started it: 400 bytes of YAML aliases nested nine deep stand for a
billion values. PyYAML loads them as shared references, cheaply, but the error
message once printed repr() of the whole: 6 GB and a minute, then a MemoryError.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerodl.errors import ParamsError
from zerodl.params import load_params, parse_params

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PEAK_MB = 300  # the child loads Python, numpy, yaml and pydantic: ~50 MB; the old message needed 6 GB


def alias_bomb(levels: int = 9) -> str:
    """`seed: [&a0 [x, x, ...], &a1 [*a0, *a0, ...], ...]`: 10**levels values in ~400 bytes."""
    lists = ["&a0 [" + ",".join("x" * 10) + "]"]
    lists += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "seed: [" + ", ".join(lists) + "]\n"


# Run in a wrapper process of its own, so that ru_maxrss of its children is this child's
# alone. The address-space cap only keeps a regression from taking the machine's memory
# (the cases that could take much memory run here, not in the test process).
WRAPPER = """
import json, resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "peak_mb": peak_kb / 1024}))
"""


def run_measured(cmd: list[str], cwd: Path) -> dict:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=180, check=True)
    return json.loads(p.stdout)


@pytest.mark.parametrize("name", ["gradcheck", "train"])
def test_alias_bomb_is_one_line_exit_2_and_little_memory(tmp_path, name):
    (tmp_path / "params.yaml").write_text(alias_bomb())
    assert len((tmp_path / "params.yaml").read_bytes()) < 500
    cmd = {"gradcheck": [str(BIN / "zerodl"), "gradcheck", "--params", "params.yaml"],
           "train": [sys.executable, str(ROOT / "stages" / "train.py")]}[name]
    r = run_measured(cmd, tmp_path)
    assert r["rc"] == 2, r
    assert "Traceback" not in r["stderr"] and r["stdout"] == ""
    lines = r["stderr"].splitlines()
    assert len(lines) == 1, r["stderr"]
    prefix = "zerodl" if name == "gradcheck" else "train"
    assert lines[0] == f"{prefix}: error: params.yaml: seed = *a0: expected a value written out, not a YAML alias (line 1)"
    assert r["peak_mb"] < PEAK_MB, r
    assert not (tmp_path / "data").exists()  # train stopped before it read or wrote anything


def _error(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 300, msg
    return msg.removeprefix(f"{path}: ")


@pytest.mark.parametrize("text, line", [
    ("train:\n  iters: &n 5\n  batch_size: *n\n", "train.batch_size = *n: expected a value written out, not a YAML alias (line 3)"),
    ("seed: &s [*s]\n", "seed = *s: expected a value written out, not a YAML alias (line 1)"),  # a list holding itself
    ("base: &b {iters: 5}\ntrain: {<<: *b}\n", "train.<< = *b: expected a value written out, not a YAML alias (line 2)"),
    ("seed: " + "[" * 5000 + "]" * 5000 + "\n", "seed: lists or mappings nested too deep (line 1); expected a plain value"),
    ("seed: " + "1" * 5000 + "\n", "not valid YAML at line 1: Exceeds the limit (4300 digits) for integer string "
                                   "conversion: value has 5000 digits"),
    ("train: {iters: 2024-13-01}\n", "not valid YAML at line 1: month must be in 1..12"),
    (b"seed: 0\n" + b"#" * (1 << 20), "more than 1 MiB; expected a small file of settings"),
], ids=["alias", "list-holding-itself", "merge-key", "nested-5000-deep", "int-of-5000-digits", "bad-date", "over-1-MiB"])
def test_hostile_file(tmp_path, text, line):
    assert _error(tmp_path, text) == line


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device"),
                                        ("pipe", "a named pipe (FIFO)")])
def test_a_device_or_a_pipe_is_no_params_file(tmp_path, path, kind):
    # Before: /dev/zero was read up to the 1 MiB limit, /dev/null passed as an empty file
    # (all defaults), and a named pipe waited for a writer forever.
    if path == "pipe":
        os.mkfifo(tmp_path / "pipe")
        path = str(tmp_path / "pipe")
    r = run_measured([str(BIN / "zerodl"), "gradcheck", "--params", path], tmp_path)
    assert (r["rc"], r["stdout"]) == (2, ""), r
    assert r["stderr"] == f"zerodl: error: {path}: is {kind}, not a params file (expected YAML like params.yaml)\n"
    assert r["peak_mb"] < PEAK_MB, r


def test_an_anchor_alone_is_fine(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: &s 3\ntrain: &t {iters: 5}\n")
    p = load_params(tmp_path / "params.yaml")
    assert (p.seed, p.train.iters) == (3, 5)


def test_a_huge_value_is_shown_cut_without_walking_it():
    # Shared references, as an alias bomb loads: 10**7 strings. repr() of it would be 50 MB.
    x = ["x"] * 10
    for _ in range(6):
        x = [x] * 10
    for raw, key, allowed in [({"seed": x}, "seed", "an integer from 0 to 4294967295"),
                              ({"train": x}, "train", "a mapping of keys"),
                              ({"model": {"weight_init_std": x}}, "model.weight_init_std", "he | xavier")]:
        with pytest.raises(ParamsError) as e:
            parse_params(raw, "cfg")
        msg = str(e.value)
        assert msg.startswith(f"cfg: {key} = [[[[[[['x', 'x', "), msg
        assert "…: expected " in msg and msg.endswith(allowed) and len(msg) < 160, msg


def test_long_text_and_long_keys_are_cut(tmp_path):
    msg = _error(tmp_path, "train:\n  optimizer: " + "adam" * 100 + "\n")
    assert msg == ("train.optimizer = '" + "adam" * 14 + "ad…: expected one of sgd | momentum | adagrad | rmsprop | adam")
    msg = _error(tmp_path, "train:\n  " + "k" * 1000 + ": 1\n")
    assert msg.startswith("unknown key 'train.kkkk") and "k…' (allowed: iters," in msg


def test_values_are_shown_as_yaml_spells_them():
    with pytest.raises(ParamsError) as e:
        parse_params({"seed": [None, True, 1e-3, "t", {"a": False}]}, "cfg")
    assert str(e.value) == "cfg: seed = [null, true, 0.001, 't', {'a': false}]: expected an integer from 0 to 4294967295"
