"""What the benchmarks share: the standard run's sizes, child processes, timers, BLAS threads
and printed lines (their data: bench_data.py).

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
