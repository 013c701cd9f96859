"""What a run's bits depend on, besides params and seed: the machine's numerical libraries.

float32 training is deterministic on one machine, but two machines can round
differently: OpenBLAS picks a GEMM kernel for the CPU (Haswell, SkylakeX, Zen…) and
NumPy picks SIMD loops for its element-wise functions (X86_V3 = AVX2, X86_V4 =
AVX-512), and each sums in its own order. `describe()` records those choices, as
the process running it sees them, so a changed metric after a fresh clone can be
traced to a changed line of data/environment.json.

Nothing here changes them: zerodl never sets OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE or
NPY_DISABLE_CPU_FEATURES (some machines need them set to compute correctly); the
settings found in the environment are recorded.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

# Environment variables that change which kernels run, hence the last bits of results.
KNOBS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "NPY_DISABLE_CPU_FEATURES",
         "NPY_ENABLE_CPU_FEATURES", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# CPU flags that decide the kernels above.
FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni")


def describe() -> dict:
    """The numerical environment of this process: NumPy, its BLAS, the CPU, the settings."""
    blas = [_blas(lib) for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return {
        "numpy": np.__version__,
        "numpy_simd": _numpy_simd(),
        "blas": blas[0] if len(blas) == 1 else blas,
        "cpu": _cpu(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "environment": {k: os.environ[k] for k in KNOBS if k in os.environ},
    }


def _blas(lib: dict) -> dict:
    # The file's path is where the venv lives, not what it computes: left out.
    return {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}


def _numpy_simd() -> dict:
    """NumPy's SIMD levels: built in (baseline), and the dispatched ones this CPU has."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    found = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return {"baseline": list(umath.__cpu_baseline__), "dispatched": found}


def _cpu(cpuinfo: str | None = None) -> dict:
    """Vendor, family/model numbers, model name and the flags that pick kernels (Linux's /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return {"model": platform.processor() or "unknown", "cores": os.cpu_count()}
    first = cpuinfo.split("\n\n")[0]
    fields = {}
    for line in first.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", "unknown"),
        "vendor": fields.get("vendor_id"),
        "family": _int(fields.get("cpu family")),
        "model_number": _int(fields.get("model")),
        "flags": [f for f in FLAGS if f in flags],
        "cores": os.cpu_count(),
    }


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
