"""Reliability, done for real: what the user sees when something goes wrong.

Every test runs the real stage scripts (`python stages/<name>.py`) or the real
`dvc` in a temporary copy of the project and does the bad thing: a bad
params.yaml, a hostile or damaged model file, Ctrl-C and SIGTERM mid-run, a
full disk, two pipelines at once, another BLAS thread count. Then it checks
what the user gets (one line, no traceback, the exit code) and that no output
was half-written, left as a temporary file, or touched at all.

The data stages' own faults (IDX, downloads, checksums, a full disk during
prepare) are tested in tests/test_data_*.py. docs/troubleshooting.md lists
every case with its message.
"""
from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import pickle
import pty
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

import zerodl.worker
from zerodl import TwoLayerNet
from zerodl.entry import run as entry_run

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

@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A copy of the project with a complete good run of every stage (real mnist-5k data)."""
    proj = tmp_path_factory.mktemp("base")
    shutil.copytree(ROOT / "stages", proj / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(proj)
    for name in ("fetch", "prepare", "train", "evaluate", "report"):
        p = stage(proj, name)
        assert p.returncode == 0, f"{name}: {p.stdout}{p.stderr}"
    return proj


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


# --- params.yaml: every key checked before any work ------------------------------------------

TRAIN_BAD_PARAMS = {
    # id: (changes to PARAMS, or raw text of params.yaml, or None for no file; fragments of the line)
    "typo": ({"train": {"learnig_rate": 0.1}},
             ["params.yaml: unknown key 'train.learnig_rate'", "did you mean 'learning_rate'",
              "allowed: iters, epochs, batch_size, learning_rate"]),
    "typo-section": ({"trian": {"iters": 5}}, ["unknown key 'trian'", "did you mean 'train'"]),
    "lr-text": ({"train": {"learning_rate": "fast"}},
                ["train.learning_rate = 'fast'", "expected a finite number > 0"]),
    "lr-zero": ({"train": {"learning_rate": 0}}, ["train.learning_rate = 0", "expected a finite number > 0"]),
    "lr-negative": ({"train": {"learning_rate": -0.1}},
                    ["train.learning_rate = -0.1", "expected a finite number > 0"]),
    "lr-nan": ({"train": {"learning_rate": float("nan")}},
               ["train.learning_rate = nan", "expected a finite number > 0"]),
    "iters-zero": ({"train": {"iters": 0}}, ["train.iters = 0", "expected an integer from 1 to 10000000"]),
    "iters-negative": ({"train": {"iters": -5}}, ["train.iters = -5", "expected an integer from 1 to 10000000"]),
    "iters-float": ({"train": {"iters": 1.5}}, ["train.iters = 1.5", "expected an integer from 1 to 10000000"]),
    "iters-bool": ({"train": {"iters": True}}, ["train.iters = true", "expected an integer from 1 to 10000000"]),
    "batch-zero": ({"train": {"batch_size": 0}}, ["train.batch_size = 0", "expected an integer >= 1"]),
    "batch-negative": ({"train": {"batch_size": -100}}, ["train.batch_size = -100", "expected an integer >= 1"]),
    "batch-too-big": ({"train": {"batch_size": N_TRAIN + 1}},
                      [f"train.batch_size = {N_TRAIN + 1}", f"expected at most the training set size ({N_TRAIN})"]),
    "hidden-zero": ({"model": {"hidden_size": 0}},
                    ["model.hidden_size = 0", "expected an integer from 1 to 100000"]),
    "hidden-text": ({"model": {"hidden_size": "fifty"}},
                    ["model.hidden_size = 'fifty'", "expected an integer from 1 to 100000"]),
    "optimizer": ({"train": {"optimizer": "sgdd"}},
                  ["train.optimizer = 'sgdd'", "expected one of sgd | momentum | adagrad | rmsprop | adam"]),
    "source": ({"data": {"source": "mnist-10k"}},
               ["data.source = 'mnist-10k'", "expected one of mnist-5k | mnist | fashion-mnist | idx"]),
    "idx-without-dir": ({"data": {"source": "idx"}}, ["data.dir = null", "expected a folder path when data.source is idx"]),
    "threads-zero": ({"train": {"threads": 0}}, ["train.threads = 0", "expected an integer from 1 to 256"]),
    "section-not-a-mapping": ({"train": 5}, ["train = 5", "expected a mapping of keys"]),
    "duplicate-key": ("__good__seed: 1\n", ["params.yaml: not valid YAML at line",
                                            "key 'seed' is written twice", "keep one"]),
    "not-yaml": ("train: [\n  iters: 5\n", ["params.yaml: not valid YAML at line"]),
    "not-a-mapping": ("- 1\n- 2\n", ["params.yaml: expected a mapping of sections", "got list"]),
    "missing": (None, ["params.yaml: file not found"]),
}


def put_params(proj: Path, spec) -> None:
    path = proj / "params.yaml"
    if spec is None:
        path.unlink()
    elif isinstance(spec, str):
        good = yaml.safe_dump(PARAMS, sort_keys=False)
        path.write_text(spec.replace("__good__", good))
    else:
        write_params(proj, spec)


@pytest.mark.parametrize("case", list(TRAIN_BAD_PARAMS))
def test_bad_params_stop_train_before_any_work(shared, case):
    spec, fragments = TRAIN_BAD_PARAMS[case]
    before = snapshot(shared / "data")
    assert MODEL in {f"data/{k}" for k in before}
    put_params(shared, spec)
    try:
        p = stage(shared, "train")
    finally:
        write_params(shared)
    line = assert_one_line(p, 2, *fragments)
    assert line.startswith("train: error: params.yaml: "), line
    assert snapshot(shared / "data") == before  # model.npz and every other file untouched
    assert leftovers(shared) == []


# One bad key for each stage: each validates the whole file before it reads or writes anything.
STAGE_BAD_PARAMS = {
    "fetch": ({"data": {"source": "mnist-10k"}}, "data.source = 'mnist-10k'"),
    "prepare": ({"data": {"test_fraction": 1.5}}, "data.test_fraction = 1.5: expected a number between 0 and 1"),
    "train": ({"train": {"learnig_rate": 0.1}}, "unknown key 'train.learnig_rate'"),
    "evaluate": ({"train": {"threads": 0}}, "train.threads = 0: expected an integer from 1 to 256"),
    "report": ({"report": {"misclassified": -1}}, "report.misclassified = -1: expected an integer from 0 to 400"),
}


@pytest.mark.parametrize("name", list(STAGE_BAD_PARAMS))
def test_bad_params_stop_every_stage(project, name):
    changes, fragment = STAGE_BAD_PARAMS[name]
    before = snapshot(project / "data")
    write_params(project, changes)
    p = stage(project, name)
    assert assert_one_line(p, 2, fragment).startswith(f"{name}: error: params.yaml: ")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


MISSING_INPUTS = {
    # id: (stage, what to break, the line)
    "train-before-prepare": ("train", "data/prepared",
                             "train: error: data/prepared/x_train.npy: not found (run `dvc repro prepare` first)"),
    "damaged-array": ("train", "data/prepared/x_train.npy",
                      "train: error: data/prepared/x_train.npy: not a readable .npy array (not a .npy array, "
                      "or one of Python objects, which zerodl never unpickles); rerun `dvc repro -f prepare`"),
    "evaluate-before-train": ("evaluate", MODEL,
                              f"evaluate: error: {MODEL}: no such model file (train one with `dvc repro`)"),
    "report-before-evaluate": ("report", "data/live/eval/metrics.json",
                               "report: error: data/live/eval/metrics.json: not found (run `dvc repro` to make it)"),
    "report-without-norms": ("report", "data/plots/norms.csv",
                             "report: error: data/plots/norms.csv: not found (run `dvc repro train` to make it)"),
    "norms-without-ratios": ("report", "data/plots/norms.csv",
                             "report: error: data/plots/norms.csv: expected the columns epoch, <param>_norm and "
                             "<param>_update_ratio (rerun `dvc repro train` to make it)"),
}


@pytest.mark.parametrize("case", list(MISSING_INPUTS))
def test_missing_or_damaged_input(project, case):
    name, path, line = MISSING_INPUTS[case]
    target = project / path
    if case == "damaged-array":
        target.write_bytes(b"not an array\n")
    elif case == "norms-without-ratios":  # the loss per iteration in its place
        shutil.copy(project / "data/plots/loss.csv", target)
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    before = snapshot(project / "data")
    p = stage(project, name)
    assert assert_one_line(p, 1) == line
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


# --- the report: what the network learned -----------------------------------------------------

def _csv(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


def test_train_logs_the_norms_and_the_report_shows_what_the_net_learned(base):
    header, norms = _csv(base / "data/plots/norms.csv")
    epochs = json.loads((base / "data/live/train/plots/custom/epochs.json").read_text())
    keys = ("W1", "b1", "W2", "b2")
    assert header == ["epoch", "iteration", *(f"{k}_norm" for k in keys), *(f"{k}_update" for k in keys),
                      *(f"{k}_update_ratio" for k in keys)]
    # a row per epoch record: after 80, 160 and 200 iterations
    np.testing.assert_array_equal(norms[:, 0], [r["epochs"] for r in epochs])
    col = {name: norms[:, j] for j, name in enumerate(header)}
    with np.load(base / MODEL, allow_pickle=False) as z:
        for k in keys:
            # the last row is the trained net's; every ratio is its update over its norm
            assert col[f"{k}_norm"][-1] == pytest.approx(np.linalg.norm(z[k].astype(np.float64)), rel=1e-6)
            np.testing.assert_allclose(col[f"{k}_update_ratio"], col[f"{k}_update"] / col[f"{k}_norm"], rtol=1e-15)
            assert np.all(col[f"{k}_update"] > 0)
        W1, b1 = z["W1"].astype(np.float64), z["b1"].astype(np.float64)
    report = (base / "data/report/report.md").read_text()
    for png in ("weights.png", "hidden.png", "norms.png"):
        assert (base / "data/report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    # the dead units, counted here in float64 from the model file and the test digits
    x = np.load(base / "data/prepared/x_test.npy")
    dead = int(np.count_nonzero(~np.any(x @ W1 + b1 > 0, axis=0)))
    verb = "is" if dead == 1 else "are"
    assert f"{dead} of 20 hidden units {verb} dead: never active on any of the 1,000 test digits." in report
    assert "What each hidden unit looks for" in report and "A rule of thumb puts a good learning rate near 1e-3" in report


def test_dvc_yaml_declares_the_norms_and_their_plots(base):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    train, report = spec["stages"]["train"], spec["stages"]["report"]
    assert {"data/plots/norms.csv": {"cache": False}} in train["outs"]
    assert "data/plots/norms.csv" in report["deps"]
    header, _ = _csv(base / "data/plots/norms.csv")
    drawn = {}
    for plot in spec["plots"]:
        for title, p in plot.items() if isinstance(plot, dict) else ():
            if "data/plots/norms.csv" in p.get("y", {}):
                assert p["x"] == "epoch"
                drawn[title] = p["y"]["data/plots/norms.csv"]
    assert drawn == {"Weight norms per epoch": [f"{k}_norm" for k in ("W1", "b1", "W2", "b2")],
                     "Update / weight per epoch": [f"{k}_update_ratio" for k in ("W1", "b1", "W2", "b2")]}
    assert all(c in header for columns in drawn.values() for c in columns)


# Ctrl-C and SIGTERM: each stops a stage with one line and 128 + the signal.
SIGNALS = pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                                  ids=["SIGINT", "SIGTERM"])


# --- training: divergence, Ctrl-C, SIGTERM --------------------------------------------------

def test_divergence_is_an_error_naming_the_learning_rate(project):
    before = snapshot(project / "data")
    write_params(project, {"train": {"learning_rate": 1e6}})
    p = stage(project, "train")
    assert_one_line(p, 1, "train: error: training diverged", "train.learning_rate = 1000000.0",
                    "try a smaller train.learning_rate")
    assert snapshot(project / "data") == before  # no model written, the previous one untouched
    assert leftovers(project) == []


@SIGNALS
def test_signal_during_training(project, sig, code, word):
    before = snapshot(project / "data")
    write_params(project, {"train": {"iters": 10_000_000}})  # hours: it is surely still training
    term = Terminal([sys.executable, "stages/train.py"], project)
    try:
        term.read_until(TRAINING, timeout=60)  # the progress bar: inside the training loop
        term.proc.send_signal(sig)
        assert term.finish() == code
    finally:
        term.close()
    out = term.text
    assert "Traceback" not in out, out
    # The message has a line of its own, not glued to the end of the progress bar.
    assert out.endswith(f"\ntrain: {word}; nothing half-written was left behind\n"), repr(out)
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"  # a zombie is gone too
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not zerodl.worker.available(), reason="needs 2 cores: the stage runs without a helper")
def test_helper_process_ends_with_the_stage_even_on_sigkill(project):
    # The helper (zerodl.worker) gathers batches and scores epochs on the second core. Ctrl-C
    # and SIGTERM are covered above (the stage stops it); a SIGKILLed stage cannot, so the
    # helper must notice by itself that its parent is gone, not keep a core busy.
    write_params(project, {"train": {"iters": 10_000_000}})
    term = Terminal([sys.executable, "stages/train.py"], project)
    try:
        term.read_until(TRAINING, timeout=60)
        helpers = _children(term.proc.pid)
        assert len(helpers) == 1, helpers
        term.proc.send_signal(signal.SIGKILL)
        assert term.finish(timeout=30) == -signal.SIGKILL  # the pty closes: the helper let go of it too
    finally:
        term.close()
    assert "Traceback" not in term.text  # its parent gone, the helper leaves quietly
    deadline = time.monotonic() + 10
    while not _gone(helpers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helpers[0])
    assert leftovers(project) == []


@SIGNALS
def test_signal_while_report_draws(project, sig, code, word):
    before = snapshot(project / "data")
    write_params(project, {"report": {"misclassified": 24}})  # new outputs would differ
    p = subprocess.Popen([sys.executable, "stages/report.py"], cwd=project, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first figure is written (as a temporary file) and three more are to be drawn.
        assert wait_for_file(project / "data/report", ".loss.png.", p), "report finished before the signal"
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_one_line(subprocess.CompletedProcess(p.args, p.returncode, out, err), code,
                    f"report: {word}; nothing half-written was left behind")
    assert snapshot(project / "data") == before  # all five files of the old report, as they were
    assert leftovers(project) == []


@SIGNALS
def test_signal_while_the_stage_is_still_importing(project, sig, code, word):
    # Python is still importing NumPy: nothing has been read or written yet. The
    # signal goes once zerodl.entry (the stage's first import) has loaded.
    before = snapshot(project / "data")
    probe = ("import sys, runpy; sys.argv = ['stages/train.py']; import zerodl.entry; print('ready', flush=True); "
             "runpy.run_path('stages/train.py', run_name='__main__')")
    p = subprocess.Popen([sys.executable, "-c", probe], cwd=project, env=ENV, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline() == "ready\n"
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (code, f"train: {word} while starting; nothing was written\n")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_sigterm_while_prepare_writes(base, project):
    before = snapshot(project / "data")
    write_params(project, {"seed": 1})  # a different split: the new arrays would differ
    for attempt in range(5):  # its writing lasts ~0.1 s: poll for it, and retry if it was missed
        p = subprocess.Popen([sys.executable, "stages/prepare.py"], cwd=project, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            hit = wait_for_file(project / "data", ".prepared.", p)
            if hit:
                p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if hit and p.returncode != 0:
            break
        shutil.rmtree(project / "data/prepared")  # it finished first: restore the old arrays
        shutil.copytree(base / "data/prepared", project / "data/prepared")
    else:
        pytest.fail("prepare finished before SIGTERM every time")
    assert_one_line(subprocess.CompletedProcess(p.args, p.returncode, out, err), 143,
                    "prepare: terminated (SIGTERM); nothing half-written was left behind")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


# --- model files: refused with one line, never unpickled --------------------------------------

class _Exploit:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _good_model_arrays(base: Path) -> dict:
    with np.load(base / MODEL, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # numpy's own writer: object arrays are pickled inside


def make_bad_model(kind: str, path: Path, base: Path, marker: Path) -> None:
    good = _good_model_arrays(base)
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"W1": _Exploit(marker)}))
    elif kind == "pickle-in-npz":
        _savez(path, {**good, "W1": np.array([_Exploit(marker)], dtype=object)})
    elif kind == "object-array":
        _savez(path, {**good, "b1": np.array([1, "x", None], dtype=object)})
    elif kind == "truncated":
        data = (base / MODEL).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong-arrays":
        _savez(path, {"a": np.zeros(3), "b": np.ones(2)})
    elif kind == "wrong-shapes":
        _savez(path, {**good, "W1": good["W1"][:, :5]})
    elif kind == "nan-weights":
        w = good["W2"].copy()
        w[0, 0] = np.nan
        _savez(path, {**good, "W2": w})
    elif kind == "single-npy":
        with open(path, "wb") as f:
            np.save(f, good["W1"])
    elif kind == "text":
        path.write_text("W1: [[0.1, 0.2], [0.3, 0.4]]\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    else:
        raise ValueError(kind)


BAD_MODELS = {
    "pickle": "is a Python pickle, not a zerodl model; zerodl never unpickles",
    "pickle-in-npz": "refused to load (Object arrays cannot be loaded when allow_pickle=False)",
    "object-array": "refused to load (Object arrays cannot be loaded when allow_pickle=False)",
    "truncated": "not a readable zerodl model (BadZipFile",
    "wrong-arrays": "not a zerodl model (no 'meta' entry; has ['a', 'b'])",
    "wrong-shapes": "W1 has shape (784, 5), expected (784, 20)",
    "nan-weights": "W2 holds NaN or infinite values",
    "single-npy": "not a zerodl model (a single .npy array, not an .npz archive)",
    "text": "not a zerodl model (not an .npz archive; it starts with b'W1: [[0.'",
    "empty": "is empty, not a zerodl model",
    "folder": "is a folder, not a model file",
}


@pytest.fixture
def bad_model(shared, base, request, tmp_path):
    """Put a bad data/model/model.npz in `shared`; give back the good one afterwards."""
    kind = request.param
    marker = tmp_path / "PWNED"
    path = shared / MODEL
    path.unlink()
    make_bad_model(kind, path, base, marker)
    yield kind, marker
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()
    shutil.copy2(base / MODEL, path)


@pytest.mark.parametrize("name", ["evaluate", "report"])
@pytest.mark.parametrize("bad_model", list(BAD_MODELS), indirect=True)
def test_bad_model_is_refused(shared, bad_model, name):
    kind, marker = bad_model
    before = {k: v for k, v in snapshot(shared / "data").items() if k != "model/model.npz"}
    p = stage(shared, name)
    assert_one_line(p, 1, f"{name}: error: {MODEL}: {BAD_MODELS[kind]}")
    assert not marker.exists(), "the pickle was executed"
    after = {k: v for k, v in snapshot(shared / "data").items() if k != "model/model.npz"}
    assert after == before
    assert leftovers(shared) == []


@pytest.mark.parametrize("kind", ["pickle", "pickle-in-npz", "text"])
def test_cli_info_refuses_a_bad_model(base, tmp_path, kind):
    if not (ROOT / "zerodl" / "cli" / "__init__.py").exists():
        pytest.fail("zerodl/cli/__init__.py is missing")
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.npz"
    make_bad_model(kind, path, base, marker)
    p = subprocess.run([sys.executable, "-m", "zerodl.cli", "info", "--model", str(path)], cwd=base,
                       env=ENV, capture_output=True, text=True, timeout=60)
    assert_one_line(p, 1, f"zerodl: error: {path}: {BAD_MODELS[kind]}")
    assert not marker.exists(), "the pickle was executed"


# --- a full disk, a read-only or forbidden folder --------------------------------------------

# Runs a stage with one fault injected at the OS boundary: `write-ENOSPC` makes
# every write to the named output's temporary file fail as a full disk does
# (OSError 28 from write(2), which names no file); `open-EACCES` / `open-EROFS`
# make creating it fail as a forbidden or read-only folder does.
FAULT = '''
import errno, os, runpy, sys
fault, target, stage = sys.argv[1:4]
how, code = fault.split("-")
code = getattr(errno, code)
ours = lambda name: os.path.basename(name).startswith("." + target + ".")
real_fdopen, real_open = os.fdopen, os.open

class Failing:
    def __init__(self, f): self._f = f
    def write(self, data): raise OSError(code, os.strerror(code))
    def __getattr__(self, name): return getattr(self._f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self._f.close()

def fdopen(fd, *args, **kwargs):
    f = real_fdopen(fd, *args, **kwargs)
    return Failing(f) if ours(os.readlink(f"/proc/self/fd/{fd}")) else f

def open_(path, flags, mode=0o777, *, dir_fd=None):
    if ours(os.fspath(path)) and flags & os.O_CREAT:
        raise OSError(code, os.strerror(code), os.fspath(path))
    return real_open(path, flags, mode, dir_fd=dir_fd)

if how == "write":
    os.fdopen = fdopen
else:
    os.open = open_
sys.argv = ["stages/" + stage + ".py"]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def run_with_fault(proj: Path, fault: str, target: str, name: str):
    (proj / "fault.py").write_text(FAULT)
    return subprocess.run([sys.executable, "fault.py", fault, target, name], cwd=proj, env=ENV,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, target, path", [
    ("train", "model.npz", "data/model/model.npz"),     # the first of train's four outputs
    ("train", "loss.csv", "data/plots/loss.csv"),  # the last: the model was already written
])
def test_full_disk_keeps_every_previous_output(project, name, target, path):
    if name == "train":
        write_params(project, {"train": {"learning_rate": 0.05}})  # the new outputs would differ
    before = snapshot(project / "data")
    p = run_with_fault(project, "write-ENOSPC", target, name)
    check = assert_error_after_training if name == "train" else assert_one_line
    check(p, 1, f"{name}: error: {path}: No space left on device; free some disk space and run again")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


@pytest.mark.parametrize("fault, message", [
    ("open-EACCES", "Permission denied; check the permissions of that path"),
    ("open-EROFS", "Read-only file system; the file system is read-only"),
])
def test_unwritable_model_folder(project, fault, message):
    write_params(project, {"train": {"learning_rate": 0.05}})
    before = snapshot(project / "data")
    p = run_with_fault(project, fault, "model.npz", "train")
    assert_error_after_training(p, 1, f"train: error: data/model: {message}")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_file_size_limit_for_real(project):
    """A real write failure from the kernel, no monkeypatching: `ulimit -f` below the model's size."""
    write_params(project, {"train": {"learning_rate": 0.05}})
    before = snapshot(project / "data")
    limit = 20_000  # the model is 66 kB; the CSVs and JSON are smaller than this

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = stage(project, "train", preexec_fn=limited)
    assert_error_after_training(p, 1, "train: error: data/model/model.npz: File too large")
    assert snapshot(project / "data") == before
    assert leftovers(project) == []


def test_programming_errors_keep_their_traceback(capsys):
    """entry.run turns the machine's state into one line, not bugs."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(ZeroDivisionError):
            entry_run(lambda: 1 / 0, prog="x")
        with pytest.raises(FileNotFoundError):  # a path the code got wrong: a bug, not the disk
            entry_run(lambda: open("/nonexistent/zerodl/file"), prog="x")

        def full():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/model/model.npz")

        with pytest.raises(SystemExit) as e:
            entry_run(full, prog="x")
        assert e.value.code == 1
        assert capsys.readouterr().err == ("x: error: data/model/model.npz: No space left on device; "
                                           "free some disk space and run again\n")
    finally:
        signal.signal(signal.SIGTERM, handler)


def test_all_or_nothing_installs_every_file_or_none(tmp_path):
    from zerodl.io import all_or_nothing, write_text

    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    write_text(a, "old a")
    with pytest.raises(KeyboardInterrupt):
        with all_or_nothing():
            write_text(a, "new a")
            assert a.read_text() == "old a"  # staged, not installed
            with all_or_nothing():  # nested blocks install with the outermost
                write_text(b, "new b")
            raise KeyboardInterrupt
    assert a.read_text() == "old a" and not b.exists()
    assert leftovers(tmp_path) == []
    with all_or_nothing():
        write_text(a, "new a")
        write_text(b, "new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert leftovers(tmp_path) == []


# --- determinism whatever the environment's BLAS threads ---------------------------------------

def _train_and_evaluate(proj: Path, env: dict) -> dict:
    for name in ("train", "evaluate"):
        p = stage(proj, name, env=env)
        assert p.returncode == 0, p.stderr
    train = json.loads((proj / "data/live/train/metrics.json").read_text())
    del train["seconds"]  # wall time
    with np.load(proj / MODEL, allow_pickle=False) as z:
        weights = {k: z[k] for k in ("W1", "b1", "W2", "b2")}
    return {"model": (proj / MODEL).read_bytes(), "train": train,
            "eval": (proj / "data/live/eval/metrics.json").read_bytes(),
            "plots": [(proj / f).read_bytes() for f in ("data/plots/loss.csv", "data/plots/norms.csv",
                                                        "data/live/train/plots/custom/epochs.json",
                                                        "data/live/eval/plots/sklearn/confusion_matrix.json")],
            "weights": weights, "accuracy": json.loads((proj / "data/live/eval/metrics.json").read_text())["accuracy"]}


def test_same_seed_same_bits_whatever_blas_threads_the_environment_sets(base, tmp_path):
    variants = {  # (train.threads, the user's environment)
        "threads1-unset": (1, {}),
        "threads1-openblas1": (1, {"OPENBLAS_NUM_THREADS": "1"}),
        "threads1-openblas2": (1, {"OPENBLAS_NUM_THREADS": "2"}),
        "threads1-omp2": (1, {"OMP_NUM_THREADS": "2"}),
        "threads2-unset": (2, {}),
        "threads2-openblas1": (2, {"OPENBLAS_NUM_THREADS": "1"}),
    }
    projects = {}
    for name, (threads, _) in variants.items():
        proj = tmp_path / name
        shutil.copytree(base, proj, ignore=shutil.ignore_patterns("raw", "report"))
        write_params(proj, {"train": {"threads": threads}})
        projects[name] = proj
    # Three at a time on this machine's cores: the runs also compete with each other.
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_train_and_evaluate, projects[name], {**ENV, **env})
                   for name, (_, env) in variants.items()}
        results = {name: f.result() for name, f in futures.items()}

    def same(a, b):
        return all(results[a][k] == results[b][k] for k in ("model", "train", "eval", "plots"))

    # A fixed train.threads gives the same bytes whatever the environment says.
    for name in ("threads1-openblas1", "threads1-openblas2", "threads1-omp2"):
        assert same("threads1-unset", name), name
    assert same("threads2-unset", "threads2-openblas1")
    # train.threads 1 vs 2: other summation orders in the GEMMs. Measured (see
    # docs/troubleshooting.md): at most float32 rounding, no change in accuracy.
    one, two = results["threads1-unset"], results["threads2-unset"]
    diff = max(float(np.max(np.abs(one["weights"][k].astype(np.float64) - two["weights"][k])))
               for k in one["weights"])
    assert diff <= 1e-3, diff
    assert abs(one["accuracy"] - two["accuracy"]) <= 0.005
    ev1, ev2 = json.loads(one["eval"]), json.loads(two["eval"])
    assert ev2["loss"] == pytest.approx(ev1["loss"], rel=1e-5)


# --- through dvc, in a temporary git repo ------------------------------------------------------

DVC_COPY = ["dvc.yaml", "stages", "zerodl", ".dvc/config", ".dvcignore", ".gitignore"]
UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project in a git repo after one committed `dvc repro` (as tests/test_pipeline.py makes it)."""
    repo = tmp_path_factory.mktemp("repo")
    for name in DVC_COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    write_params(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline run")
    return repo


def back_to_baseline(repo: Path) -> None:
    """What a user does after a failed run: the committed params, outputs back from git and DVC's cache."""
    git(repo, "checkout", "--", "params.yaml", "dvc.lock", "data/live", "data/plots", "data/environment.json")
    dvc(repo, "checkout", "--force")
    assert UP_TO_DATE in dvc(repo, "status").stdout


def test_dvc_repro_shows_the_params_error_and_fails(repo):
    try:
        write_params(repo, {"train": {"learnig_rate": 0.1}})
        p = dvc(repo, "repro", check=False)
        assert p.returncode != 0
        out = p.stdout + p.stderr
        assert "train: error: params.yaml: unknown key 'train.learnig_rate' (did you mean 'learning_rate'?)" in out
        assert "failed to reproduce 'train': failed to run: python stages/train.py, exited with 2" in out
        assert "Traceback" not in out
        back_to_baseline(repo)  # the recovery docs/troubleshooting.md gives

        # YAML that does not parse: DVC reads params.yaml itself first, and says so.
        (repo / "params.yaml").write_text("train: [\n  iters: 5\n")
        p = dvc(repo, "repro", check=False)
        assert p.returncode != 0
        assert "unable to read: 'params.yaml', YAML file structure is corrupted" in p.stderr
        assert "Traceback" not in p.stdout + p.stderr
    finally:
        back_to_baseline(repo)


# DVC runs a stage's cmd with $SHELL -c, or /bin/sh -c when SHELL is unset (cron, CI, containers).
# bash execs the command, so DVC sees the stage's own 130. dash forks and, being in the
# foreground group, is itself killed by the Ctrl-C: DVC reports the shell's death, -2.
SHELLS = {"bash": ("/bin/bash", "130"),
          "sh": (None, "-2" if os.path.realpath("/bin/sh").endswith("dash") else "130")}


@pytest.mark.parametrize("shell", SHELLS)
def test_interrupted_dvc_repro_then_repro_reruns_cleanly(repo, shell):
    path, reported = SHELLS[shell]
    env = {k: v for k, v in ENV.items() if k != "SHELL"} | ({"SHELL": path} if path else {})
    try:
        write_params(repo, {"train": {"iters": 4000}})  # a second or two: interrupted mid-way
        term = Terminal([str(BIN / "dvc"), "repro"], repo, env=env)
        try:
            term.read_until(TRAINING, timeout=120)
            term.signal_group(signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
            code = term.finish()
        finally:
            term.close()
        out = term.text
        assert code != 0, out
        assert "\ntrain: interrupted; nothing half-written was left behind\n" in out
        assert f"failed to reproduce 'train': failed to run: python stages/train.py, exited with {reported}\n" in out
        assert "Traceback" not in out
        assert leftovers(repo / "data") == []  # finish() waited for the stage itself to close the terminal

        p = dvc(repo, "repro")
        assert "Running stage 'train'" in p.stdout and "Running stage 'report'" in p.stdout
        assert UP_TO_DATE in dvc(repo, "status").stdout
        assert leftovers(repo / "data") == []
        assert TwoLayerNet.load(repo / MODEL).hidden_size == 20
        assert json.loads((repo / "data/live/train/metrics.json").read_text())["iterations"] == 4000
    finally:
        back_to_baseline(repo)


def test_two_dvc_repro_at_once(repo):
    try:
        write_params(repo, {"train": {"iters": 8000, "learning_rate": 0.05}})
        first = Terminal([str(BIN / "dvc"), "repro"], repo)
        try:
            first.read_until(TRAINING, timeout=120)
            second = dvc(repo, "repro", check=False)
            assert first.proc.poll() is None, "the second repro waited for the first instead of failing fast"
            assert first.finish() == 0, first.text
        finally:
            first.close()
        assert second.returncode != 0
        assert "is busy, it is being blocked by:" in second.stderr, second.stderr
        assert f"(PID {first.proc.pid}): " in second.stderr and "dvc repro" in second.stderr
        assert "Traceback" not in second.stderr
        # The first one's outputs are whole, and DVC agrees they are up to date.
        assert UP_TO_DATE in dvc(repo, "status").stdout
        assert leftovers(repo / "data") == []
        assert json.loads((repo / "data/live/train/metrics.json").read_text())["iterations"] == 8000
        assert TwoLayerNet.load(repo / MODEL).hidden_size == 20
    finally:
        back_to_baseline(repo)
