"""data/environment.json: what a run's bits depend on, recorded by the train stage as the training
process saw it; and the project itself never touches the OpenBLAS settings."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from threadpoolctl import threadpool_info, threadpool_limits

from zerodl.environment import _cpu, describe

from cli_support import make_project

REPO = Path(__file__).resolve().parents[1]

AVX512_CPUINFO = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC 9B14 96-Core Processor
flags		: fpu sse4_2 avx fma avx2 avx512f avx512bw avx512vl avx512_bf16 sha_ni

processor	: 1
vendor_id	: AuthenticAMD
"""


def test_the_cpu_is_read_from_cpuinfo():
    cpu = _cpu(AVX512_CPUINFO)
    assert cpu["model"] == "AMD EPYC 9B14 96-Core Processor"
    assert (cpu["vendor"], cpu["family"], cpu["model_number"]) == ("AuthenticAMD", 25, 17)
    assert cpu["flags"] == ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"]


def test_describe_is_threadpoolctls_view_of_this_process():
    with threadpool_limits(limits=1, user_api="blas"):
        env = describe()
        (lib,) = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert env["numpy"] == np.__version__
    assert env["blas"] == {k: lib[k] for k in ("internal_api", "version", "architecture", "num_threads",
                                                "threading_layer")}
    assert env["blas"]["num_threads"] == 1
    assert env["numpy_simd"]["baseline"]  # NumPy always has one
    json.dumps(env)  # plain JSON, as the stage writes it


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("environment")
    make_project(root, iters=10)
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["train"].update(iters=120, threads=1)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


def _train(root, **env):
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    r = subprocess.run([sys.executable, str(REPO / "stages" / "train.py")], cwd=root, env=full,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return (json.loads((root / "data" / "environment.json").read_text()),
            (root / "data" / "plots" / "loss.csv").read_bytes())


def test_the_train_stage_records_what_its_process_ran_on(project):
    recorded, _ = _train(project)
    with threadpool_limits(limits=1, user_api="blas"):  # train.threads: 1, as the stage ran
        here = describe()
    assert recorded == here  # the same venv on the same machine: the same libraries, kernel and CPU


def test_a_changed_kernel_shows_in_the_record_beside_the_changed_numbers(project):
    # NumPy's own SIMD loops are one of the things that move the last bits: asking it for its
    # baseline loops here changes the losses, and the record says why.
    native, loss_native = _train(project, NPY_DISABLE_CPU_FEATURES=None)
    if not native["numpy_simd"]["dispatched"]:
        pytest.fail("this CPU has no SIMD level above NumPy's baseline to turn off; the test needs one")
    off = " ".join(native["numpy_simd"]["dispatched"])
    changed, loss_changed = _train(project, NPY_DISABLE_CPU_FEATURES=off)
    assert changed["numpy_simd"]["dispatched"] == []
    assert changed["environment"] == {"NPY_DISABLE_CPU_FEATURES": off}
    assert loss_changed != loss_native
    assert {k: v for k, v in changed.items() if k not in ("numpy_simd", "environment")} == \
           {k: v for k, v in native.items() if k not in ("numpy_simd", "environment")}


# Assigning, exporting, deleting or popping the two OpenBLAS settings that some machines need
# set to compute correctly; built from pieces so that this file does not match itself.
_NAMES = "OPENBLAS_" + "(?:CORETYPE|L2_SIZE)"
_TOUCH = re.compile(rf"(?:\b{_NAMES}\s*=|\[[\"']{_NAMES}[\"']\]\s*=|[\"']{_NAMES}[\"']\s*:|"
                    rf"(?:pop|unsetenv|putenv|setdefault)\(\s*[\"']{_NAMES}|del\s+\S*\[[\"']{_NAMES}|"
                    rf"unset\s+{_NAMES}|-u\s*{_NAMES})")


def test_the_project_never_sets_or_unsets_the_openblas_settings():
    files = [REPO / "Makefile", REPO / ".ci" / "run", REPO / "pyproject.toml", REPO / "dvc.yaml"]
    for folder in ("zerodl", "stages", "tests"):
        files += sorted((REPO / folder).rglob("*.py"))
    offenders = [f"{f.relative_to(REPO)}:{n}" for f in files
                 for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if _TOUCH.search(line)]
    assert offenders == []
    assert _TOUCH.search("env['OPENBLAS_" + "CORETYPE'] = 'Haswell'")  # the pattern does catch it
    assert _TOUCH.search("env -u OPENBLAS_" + "L2_SIZE make test")
    assert _TOUCH.search("run(cmd, env={'OPENBLAS_" + "CORETYPE': 'Haswell'})")
    assert not _TOUCH.search("print(os.environ.get('OPENBLAS_" + "CORETYPE'))")  # reading it is fine
