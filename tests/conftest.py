"""Fixtures built once per test process for several test files (a fixture imported into a
module is that module's own: session-scoped, it would be built once per file)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reliability_support import ROOT, stage, write_params


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """For tests/test_reliability_*.py: a copy of the project with a complete good run of every
    stage (real mnist-5k data), which their `project` and `shared` copy before damaging."""
    proj = tmp_path_factory.mktemp("base")
    shutil.copytree(ROOT / "stages", proj / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(proj)
    for name in ("fetch", "prepare", "train", "evaluate", "report"):
        p = stage(proj, name)
        assert p.returncode == 0, f"{name}: {p.stdout}{p.stderr}"
    return proj
