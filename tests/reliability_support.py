"""What the reliability tests share (tests/test_reliability_*.py): the small complete params,
the environment the stage scripts run in, helpers that run stages and `dvc` and read what
they left, and the project fixtures: `project` (a fresh copy of conftest.py's `base`, every stage run
once and good, to damage), `shared` (one copy the bad-params cases must leave as it is).
`base` lives in conftest.py so that one test process builds it once for all four files."""
from __future__ import annotations

import copy
import hashlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODEL = "data/model/model.npz"
N_TRAIN = 4000  # mnist-5k with test_fraction 0.2
TRAINING = b"it/s, loss "  # the training bar on a terminal, drawn once an iteration is done

# Small and complete: every key written out, so a concurrent edit of the
# project's own params.yaml cannot change what these tests run.
PARAMS = {
    "seed": 0,
    "data": {"source": "mnist-5k", "dir": None, "test_fraction": 0.2},
    "model": {"hidden_size": 20, "weight_init_std": 0.01},
    "train": {"iters": 200, "batch_size": 50, "learning_rate": 0.1, "optimizer": "sgd",
              "gradient": "backprop", "momentum": 0.9, "dtype": "float32", "threads": 1},
    "report": {"misclassified": 25},
}

# Stage scripts import the working tree's zerodl, whatever is installed.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "DVC_NO_ANALYTICS": "1"}
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    ENV.pop(_var, None)


# --- helpers ---------------------------------------------------------------------------------

def merged(changes: dict | None) -> dict:
    params = copy.deepcopy(PARAMS)
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key].update(value)
        else:
            params[key] = value
    return params


def write_params(proj: Path, changes: dict | None = None) -> None:
    (proj / "params.yaml").write_text(yaml.safe_dump(merged(changes), sort_keys=False))


def stage(proj: Path, name: str, *, env: dict | None = None, timeout: float = 120, **kw):
    return subprocess.run([sys.executable, f"stages/{name}.py"], cwd=proj, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def dvc(repo: Path, *args, check: bool = True, timeout: float = 180):
    p = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def git(repo: Path, *args):
    subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True, timeout=60)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of atomic writes (.NAME.xxxx.tmp / .old) anywhere under folder."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name.endswith((".tmp", ".old")))


def assert_error_after_training(p, code: int, *fragments: str) -> str:
    """As assert_one_line, for a train stage that failed once training was done: stderr (no
    terminal here) holds the training's plain progress lines, the last at 100 %, then that line."""
    *progress, _ = lines = p.stderr.splitlines()
    iters = PARAMS["train"]["iters"]
    assert progress and progress[-1].startswith(f"train: {iters}/{iters} it (100%) in "), p.stderr
    assert all(re.match(r"train: \d+/\d+ it \(\d+%\) ", line) for line in progress), p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return assert_one_line(subprocess.CompletedProcess(p.args, p.returncode, p.stdout, lines[-1] + "\n"),
                           code, *fragments)


def assert_one_line(p, code: int, *fragments: str) -> str:
    """Exit `code`, exactly one line on stderr, no traceback, every fragment in that line."""
    assert p.returncode == code, f"exit {p.returncode}, expected {code}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


class Terminal:
    """A command run on a pseudo-terminal, as a user runs it: progress bars are drawn,
    and a signal can be sent to its process group like a Ctrl-C from the keyboard."""

    def __init__(self, args, cwd, env=None):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, cwd=cwd, env=env or ENV, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = b""

    def read_until(self, marker: bytes | None, timeout: float) -> str:
        """Read until marker appears (None: until the command closes the terminal)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker is not None and marker in self.output:
                return self.text
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    chunk = b""
                if not chunk:
                    if marker is None:
                        return self.text
                    break
                self.output += chunk
        raise AssertionError(f"timed out waiting for {marker!r}; output so far:\n{self.text}")

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace").replace("\r\n", "\n")

    def signal_group(self, sig) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 120) -> int:
        self.read_until(None, timeout)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        os.close(self.master)


def wait_for_file(folder: Path, prefix: str, proc, timeout: float = 60) -> str:
    """Poll until a file or folder named prefix*.tmp appears in folder (the process is mid-write)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(folder):
            if name.startswith(prefix) and name.endswith(".tmp"):
                return name
        if proc.poll() is not None:
            return ""
        time.sleep(0.002)
    raise AssertionError(f"no {prefix}*.tmp appeared in {folder}")


# --- the project: fetched, prepared, trained, evaluated, reported -----------------------------

@pytest.fixture
def project(base, tmp_path) -> Path:
    """A fresh copy of `base` (copied, not linked) for one test to damage."""
    proj = tmp_path / "project"
    shutil.copytree(base, proj)
    return proj


@pytest.fixture(scope="module")
def shared(base, tmp_path_factory) -> Path:
    """One copy of `base` for the bad-params cases, which must leave it exactly as it is."""
    proj = tmp_path_factory.mktemp("shared") / "project"
    shutil.copytree(base, proj, ignore=shutil.ignore_patterns("raw"))
    return proj
