"""What the benchmarks share: their data, child processes, timers, BLAS threads and printed lines.

`prepare(DIR, kind)` writes the layout the train stage reads, from Debian's
`dataset-fashion-mnist` (or synthetic data of the same shapes): DIR/data/prepared/
{x,t}_{train,test}.npy (x float32 (N, 784) in [0, 1], t integer labels) and meta.json.
The contenders (textbook_loop.py, torch_loop.py) import it for their command line, data
files and result file only, so whatever else it needs (zerodl, threadpoolctl, yaml,
subprocess) is imported by the function that needs it: a contender's start-up stays its own.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGE = ROOT / "stages" / "train.py"
PARAMS = ROOT / "params.yaml"

# The standard run (the book's train_neuralnet.py).
INPUT, HIDDEN, OUTPUT = 784, 50, 10
BATCH, LR, INIT_STD = 100, 0.1, 0.01
N_TRAIN, N_TEST = 60000, 10000

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"x_train": "train-images-idx3-ubyte.gz", "t_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "t_test": "t10k-labels-idx1-ubyte.gz"}
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
LABEL_DTYPE = np.int64


# ---------------------------------------------------------------------------- data
def _read_idx_minimal(path: Path) -> np.ndarray:
    """Decode one (optionally gzip'd) IDX file of unsigned bytes: magic 0x0000 08 NDIM."""
    import gzip
    import struct

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, code, ndim = struct.unpack_from(">HBB", raw, 0)
    if zero != 0 or code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data for shape {shape}")
    return data.reshape(shape)


def idx_reader():
    """(read_idx, its name): zerodl's reader when there is one (it validates more), else ours,
    so the benchmarks do not depend on the code they measure."""
    try:
        from zerodl.data.idx import read_idx
    except ImportError:
        return _read_idx_minimal, "the benchmark's minimal decoder"
    return read_idx, "zerodl.data.idx.read_idx"


def fashion_mnist_available() -> bool:
    return all((DEBIAN_DIR / name).is_file() for name in FILES.values())


def make_synthetic(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0) -> dict[str, np.ndarray]:
    """Same shapes and dtypes as Fashion-MNIST; labels from a fixed random linear
    teacher on sparse 'images', so the net has something learnable to fit."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.random((n, 784), dtype=np.float32)
        x[x < 0.5] = 0.0                     # about half the pixels dark, like the real thing
        out[f"x_{split}"] = x
        out[f"t_{split}"] = (x @ teacher).argmax(axis=1).astype(LABEL_DTYPE)
    return out


def load(kind: str) -> tuple[dict[str, np.ndarray], str]:
    """(arrays, a one-line description). kind: fashion-mnist (falls back to synthetic) | synthetic."""
    if kind == "synthetic":
        return make_synthetic(), "SYNTHETIC data (60,000/10,000, 784 features, 10 classes), as asked"
    if kind != "fashion-mnist":
        raise ValueError(f"unknown data kind {kind!r}")
    if not fashion_mnist_available():
        return make_synthetic(), (f"SYNTHETIC data (60,000/10,000, 784 features, 10 classes): "
                                  f"{DEBIAN_DIR} is missing; `apt-get install dataset-fashion-mnist` for the real set")
    read_idx, _ = idx_reader()
    out = {}
    for key, name in FILES.items():
        a = read_idx(DEBIAN_DIR / name)
        out[key] = (a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0) if key.startswith("x")
                    else a.astype(LABEL_DTYPE))
    return out, f"Fashion-MNIST 60,000/10,000 from {DEBIAN_DIR} (Debian dataset-fashion-mnist)"


def prepare(workdir: Path, kind: str) -> tuple[str, str]:
    """Write data/prepared/ under workdir; returns (description line, source: fashion-mnist | synthetic)."""
    arrays, desc = load(kind)
    out = Path(workdir) / "data" / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        np.save(out / f"{key}.npy", np.ascontiguousarray(a))
    source = "synthetic" if desc.startswith("SYNTHETIC") else "fashion-mnist"
    names = [str(i) for i in range(10)] if source == "synthetic" else CLASS_NAMES
    meta = {
        "source": source, "n_train": int(len(arrays["t_train"])), "n_test": int(len(arrays["t_test"])),
        "input_size": 784, "image_shape": [28, 28], "num_classes": 10, "output_size": 10,
        "classes": names, "class_names": names, "normalize": "x / 255, float32",
        "x_dtype": "float32", "t_dtype": np.dtype(LABEL_DTYPE).name,
        "note": "written by benchmarks/harness.py",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return desc, source


def load_prepared(workdir: Path):
    """(x_train, t_train), (x_test, t_test) from what prepare() wrote, as the book's load_mnist returns them."""
    d = Path(workdir) / "data" / "prepared"
    return ((np.load(d / "x_train.npy"), np.load(d / "t_train.npy")),
            (np.load(d / "x_test.npy"), np.load(d / "t_test.npy")))


def train_sample(n: int, kind: str, seed: int):
    """(x float64 in [0, 1], t, description): n random training images, or n synthetic samples."""
    rng = np.random.default_rng(seed)
    if kind == "fashion-mnist" and fashion_mnist_available():
        read_idx, _ = idx_reader()
        x_all, t_all = (read_idx(DEBIAN_DIR / FILES[k]) for k in ("x_train", "t_train"))
        pick = rng.choice(len(t_all), n, replace=False)
        x = x_all[pick].reshape(n, -1).astype(np.float64) / 255.0
        return x, t_all[pick].astype(np.int64), f"{n} random Fashion-MNIST training images"
    d = make_synthetic(n_train=n, n_test=1, seed=seed)
    return d["x_train"].astype(np.float64), d["t_train"], f"{n} SYNTHETIC samples (Fashion-MNIST not installed or not asked for)"


def write_params(workdir: Path, iters: int, seed: int, threads: int | None, source: str) -> dict:
    """workdir/params.yaml: the repository's, with the model and train keys of the standard run."""
    import yaml

    raw = (yaml.safe_load(PARAMS.read_text()) if PARAMS.is_file() else {}) or {}
    raw["seed"] = seed
    raw.setdefault("data", {})
    if source == "fashion-mnist":
        raw["data"]["source"] = "fashion-mnist"   # irrelevant to the train stage; for the record
    raw.setdefault("model", {}).update(hidden_size=HIDDEN, weight_init_std=INIT_STD)
    train = raw.setdefault("train", {})
    train.update(iters=iters, batch_size=BATCH, learning_rate=LR, optimizer="sgd",
                 gradient="backprop", dtype="float32")
    if threads is not None:
        train["threads"] = threads
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


@contextmanager
def scratch(prefix: str, keep: bool = False):
    """A temporary folder, removed afterwards unless keep."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------- processes
@dataclass
class Run:
    wall: float
    maxrss_kb: int
    cpu: float          # the child's own user + system CPU seconds
    sys_s: float        # of which system time (page faults of fresh memory show up here)
    others: float       # CPU seconds the rest of the machine used meanwhile, in cores (0 = quiet)
    log: Path | None
    result: dict = field(default_factory=dict)


def busy_seconds() -> float | None:
    """CPU seconds all CPUs have been busy since boot (/proc/stat; None if unreadable)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)          # idle + iowait
    busy = sum(v[:8]) - idle                            # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def run_measured(what: str, cmd: list[str], cwd: Path, env: dict | None = None, log: Path | None = None) -> Run:
    """Run cmd to completion (its output into log, or to our terminal): the wall time around it
    and its own rusage from wait4. Stops here, with the end of its output, if it fails."""
    import subprocess

    sys.stdout.flush()                   # what we printed comes before what it prints
    out = open(log, "wb") if log else None
    try:
        b0 = busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                             stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        b1 = busy_seconds()
    finally:
        if out:
            out.close()
    p.returncode = rc = os.waitstatus_to_exitcode(status)   # reaped here: Popen must not wait again
    if rc != 0:
        tail = f"; its output:\n{log.read_text(errors='replace')[-3000:]}" if log else ""
        sys.exit(f"{what} failed (exit {rc}){tail}")
    cpu = ru.ru_utime + ru.ru_stime
    others = float("nan") if b0 is None or b1 is None else max(b1 - b0 - cpu, 0.0) / wall
    return Run(wall, ru.ru_maxrss, cpu, ru.ru_stime, others, log)


# ---------------------------------------------------------------------------- timers, BLAS
def seconds(fn, repeat: int = 3, budget: float = 0.0, warm: bool = False):
    """(the seconds of each call, the last result): fn called at least `repeat` times and
    until `budget` seconds have passed, after one untimed call if warm."""
    if warm:
        fn()  # page in, thread start-up, kernel selection
    times, t_end = [], time.perf_counter() + budget
    while len(times) < max(repeat, 1) or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def limit_blas(threads: int | None):
    """threadpoolctl's limit of the BLAS threads (0 or None: numpy's default); also a context manager."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads or None, user_api="blas")


def blas_info() -> list[tuple]:
    """(library, threads, kernel, version) of each BLAS numpy has loaded."""
    from threadpoolctl import threadpool_info

    return [(i["internal_api"], i["num_threads"], i.get("architecture"), i.get("version"))
            for i in threadpool_info() if i["user_api"] == "blas"]


# ---------------------------------------------------------------------------- printed lines
def _proc(name: str) -> str:
    try:
        return Path("/proc", name).read_text()
    except OSError:                      # not Linux: the line says "?"
        return ""


def machine_lines(*more: str, env_note: str = "") -> list[str]:
    """The CPU, numpy's BLAS, `more`, the BLAS/OpenMP environment variables as they are
    (OPENBLAS_CORETYPE among them when set), and the load average."""
    import platform

    from threadpoolctl import threadpool_info

    cpu = re.search(r"^model name\s*:\s*(.*)$", _proc("cpuinfo"), re.M)
    cpu = cpu.group(1).strip() if cpu else "?"
    blas = [f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} "
            f"threads={i['num_threads']} ({Path(i['filepath']).name})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    knobs = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "GOTO", "OMP_", "MKL_", "BLIS", "KMP_"))}
    load1 = os.getloadavg()[0]
    return [f"machine     {cpu}, {os.cpu_count()} logical CPUs, Linux {platform.release()}, "
            f"python {platform.python_version()}",
            f"numpy       {np.__version__}; BLAS: {'; '.join(blas) or 'none found'}",
            *more,
            "environment " + (", ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
                              or "no OPENBLAS_*/OMP_*/MKL_* variables set") + env_note,
            f"load        {load1:.2f} (1-min average before the run"
            + ("; other work is running: expect noise, repeat the run)" if load1 > 0.5 else ")")]


def row(label: str, cells: list[str], width, label_width: int, sep: str = " ") -> str:
    """One line of an aligned table: the label left-aligned, each cell right-aligned in its width
    (one width for all, or one per cell)."""
    widths = width if isinstance(width, (list, tuple)) else [width] * len(cells)
    return f"{label:{label_width}}" + "".join(f"{sep}{c:>{w}}" for c, w in zip(cells, widths))


def check(label: str, text: str, ok: bool | None = None, label_width: int = 34, text_width: int = 48,
          indent: str = "  ") -> str:
    """A line of a result against its target: PASS or FAIL at the end, nothing when for reference (ok None)."""
    line = f"{indent}{label:{label_width}} {text:{text_width}}"
    return line.rstrip() if ok is None else f"{line} {'PASS' if ok else 'FAIL'}"


# ---------------------------------------------------------------------------- the contenders' side
def contender_parser(doc: str, threads: int, threads_help: str | None = None) -> argparse.ArgumentParser:
    """The command line train_speed.py gives a contender: WORKDIR, the standard run's settings, --out."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="holds data/prepared/*.npy (see harness.prepare)")
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--weight-init-std", type=float, default=INIT_STD)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=threads, help=threads_help)
    ap.add_argument("--out", type=Path, help="also write the result here, as JSON")
    return ap


def write_result(result: dict, out: Path | None) -> None:
    """The contender's result, with its own peak memory (VmHWM), to `out` and stdout."""
    hwm = re.search(r"VmHWM:\s*(\d+)", _proc("self/status"))
    result["vm_hwm_kb"] = int(hwm.group(1)) if hwm else None
    if out:
        out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
