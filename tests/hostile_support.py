"""Shared by tests that feed zerodl hostile files: cheap bombs, a command's peak memory, and a
small pipeline-shaped project to damage (the `project` fixture).

A bomb is cheap to make: zeros compress ~1000:1 and are compressed in chunks,
so a file that inflates to hundreds of MB takes a fraction of a second to
build and a few MB of memory.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from zerodl import TwoLayerNet
from zerodl.model_file import npz_bytes

from cli_support import run_in_process

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}

# Runs the command as its only child, then reports the child's peak RSS. A fresh process
# for each measurement: RUSAGE_CHILDREN of the pytest worker would report the largest of
# every child it ever waited for.
_MEASURE = r"""
import json, resource, subprocess, sys
a = json.loads(sys.argv[1])
p = subprocess.run(a["cmd"], cwd=a["cwd"], env=a["env"], capture_output=True, text=True, timeout=a["timeout"])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"returncode": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "peak_mb": peak / 1024}))
"""


def run_measured(cmd, cwd, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """Run cmd in cwd; (its CompletedProcess, its peak resident memory in MB)."""
    cmd = [str(c) for c in cmd]
    arg = json.dumps({"cmd": cmd, "cwd": str(cwd), "env": ENV, "timeout": timeout})
    wrapper = subprocess.run([sys.executable, "-c", _MEASURE, arg], capture_output=True, text=True,
                             timeout=timeout + 30, check=True)
    r = json.loads(wrapper.stdout)
    return subprocess.CompletedProcess(cmd, r["returncode"], r["stdout"], r["stderr"]), r["peak_mb"]


def zerodl_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "zerodl.cli", *map(str, args)]


def assert_one_line(p: subprocess.CompletedProcess, code: int, prog: str, *fragments: str) -> str:
    """Exit `code`, one line on stderr (`prog: error: ...`), no traceback, every fragment in it."""
    assert p.returncode == code, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), p.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def npy_header(dtype, shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def zip_bomb_model(path: Path, meta: dict, shapes: dict[str, tuple], dtype="<f8") -> Path:
    """A model .npz whose members announce `shapes` in their .npy headers and hold that many
    zeros, deflated: a few MB on disk for hundreds of MB inflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("meta.npy", npy_header(f"<U{len(json.dumps(meta))}", ()) +
                    json.dumps(meta).encode("utf-32-le"))
        chunk = bytes(1 << 24)
        for name, shape in shapes.items():
            left = int(np.prod(shape)) * np.dtype(dtype).itemsize
            with zf.open(f"{name}.npy", "w", force_zip64=True) as m:
                m.write(npy_header(dtype, shape))
                while left > 0:
                    m.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
    return path


def gzip_zeros(path: Path, header: bytes, n: int, data: bytes = b"") -> Path:
    """A gzip file of `header`, then `data`, then zeros up to n bytes of data: a gzip bomb."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(1 << 24)
    left = n - len(data)
    with open(path, "wb") as f:
        f.write(c.compress(header + data))
        while left > 0:
            f.write(c.compress(chunk[:min(left, len(chunk))]))
            left -= len(chunk)
        f.write(c.flush())
    return path


def idx_header(code: int, *shape: int) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


# --- the hostile tests' small project: prepared test digits, a model, params.yaml ------------------


META = {"format": "zerodl.TwoLayerNet", "version": 1, "input_size": 784, "hidden_size": 8, "output_size": 10,
        "dtype": "float32", "activation": "relu", "dropout_ratio": 0.0, "weight_init_std": 0.01}
FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_model(path: Path, scale: float = 0.1) -> TwoLayerNet:
    net = TwoLayerNet(784, 8, 10, weight_init_std=scale, seed=0)
    net.save(path)
    return net


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "x_test.npy", rng.random((60, 784), dtype=np.float32))
    np.save(prepared / "t_test.npy", np.arange(60) % 10)
    write_model(tmp_path / "data" / "model" / "model.npz")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def run_cli(args, cwd, monkeypatch, capsys) -> tuple[int, str, str]:
    """cli.main(args) in this process, run from cwd: (exit code, stdout, stderr)."""
    return run_in_process(args, cwd, monkeypatch, capsys)


def cli_error(args, cwd, monkeypatch, capsys, *fragments: str) -> str:
    """The command fails with exit 1 and one line holding every fragment; nothing on stdout."""
    code, out, err = run_cli(args, cwd, monkeypatch, capsys)
    assert_one_line(subprocess.CompletedProcess(args, code, out, err), 1, "zerodl", *fragments)
    assert out == ""
    return err


def huge_model(path: Path) -> Path:
    """Finite weights whose products overflow float32: the outputs become inf and NaN."""
    net = TwoLayerNet(784, 8, 10, seed=0)
    net.params["W1"][...] = np.float32(3e38)
    net.save(path)
    return path




def model_with(tmp_path, **members) -> Path:
    good = {"W1": np.zeros((784, 8), np.float32), "b1": np.zeros(8, np.float32),
            "W2": np.zeros((8, 10), np.float32), "b2": np.zeros(10, np.float32), "meta": np.array(json.dumps(META))}
    path = tmp_path / "m.npz"
    blob = npz_bytes(good)
    with zipfile.ZipFile(path, "w") as zf:
        with zipfile.ZipFile(io.BytesIO(blob)) as src:
            for info in src.infolist():
                name = info.filename[:-4]
                zf.writestr(info, members.get(name, src.read(info)))
    return path



def npz_member(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()
