"""Shared by tests that feed zerodl hostile files: cheap bombs, and a command's peak memory.

A bomb is cheap to make: zeros compress ~1000:1 and are compressed in chunks,
so a file that inflates to hundreds of MB takes a fraction of a second to
build and a few MB of memory.
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

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
