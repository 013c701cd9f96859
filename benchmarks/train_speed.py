"""How fast does zerodl train TwoLayerNet, next to the textbook, PyTorch and the FLOP lower bound?

    .venv/bin/python benchmarks/train_speed.py [--iters 10000] [--repeat 1] [--data fashion-mnist]

One run, one prepared data set (in a temporary folder), the standard settings
(784-50-10, batch 100, lr 0.1, weight_init_std 0.01, SGD, the whole train and
test sets scored once per 600-iteration epoch), and each contender as its own
process, one after another:

  zerodl     `python stages/train.py` in the temp folder (its own params.yaml;
             BLAS threads from train.threads, default 1)
  textbook   benchmarks/textbook_loop.py: the book's float64 layer objects,
             numpy's default BLAS threads (and again at 1 thread, for reference)
  pytorch    benchmarks/torch_loop.py: torch 2.13.0 CPU, float32, 2 threads
  bound      GEMM FLOPs of the run / the measured peak float32 GEMM rate
             (benchmarks/peak_gemm.py, large square GEMMs through numpy)

Wall time is the whole process (python start-up, imports, data loading,
training, writing results), measured by the parent around the child; peak
memory is the child's max RSS from wait4(2). The loop time is what each
contender times itself around its training loop (zerodl: the "in X s" of its last line).
Not part of the pytest suite; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGE = ROOT / "stages" / "train.py"
PARAMS = ROOT / "params.yaml"

# The standard run (the book's train_neuralnet.py).
INPUT, HIDDEN, OUTPUT = 784, 50, 10
BATCH, LR, INIT_STD = 100, 0.1, 0.01
N_TRAIN, N_TEST = 60000, 10000

# Targets (issue 6).
TARGET_VS_TEXTBOOK = 0.25
TARGET_VS_TORCH = 0.5
TARGET_VS_BOUND = 2.5
TARGET_ACC_DROP = 0.005


# ---------------------------------------------------------------------------- FLOPs
def flop_count(iters: int, batch: int = BATCH, n_train: int = N_TRAIN, n_test: int = N_TEST,
               d: int = INPUT, h: int = HIDDEN, o: int = OUTPUT) -> dict:
    """GEMM floating-point operations (a multiply-add = 2) of the standard run."""
    fwd = 2 * batch * (d * h + h * o)                 # x@W1, z1@W2
    bwd = 2 * (d * batch * h + h * batch * o)         # dW1 = x.T@da1, dW2 = z1.T@dout
    bwd += 2 * batch * o * h                          # dz1 = dout@W2.T
    dx = 2 * batch * h * d                            # da1@W1.T: the data's gradient, never needed
    iters_per_epoch = max(n_train // batch, 1)
    evals = math.ceil(iters / iters_per_epoch)        # book: i % 600 == 0; zerodl: epoch ends + last
    per_eval = 2 * (n_train + n_test) * (d * h + h * o)
    # Element-wise work (bias adds, ReLU, softmax, SGD update ~ 2*39,760 per step) is
    # memory-bound and < 1 % of the GEMM FLOPs: not counted.
    elementwise = batch * (h + o) * 2 + batch * h * 2 + batch * o * 5 + 2 * (d * h + h + h * o + o)
    return {
        "per_iter": fwd + bwd, "per_iter_with_dx": fwd + bwd + dx, "dx_per_iter": dx,
        "train": iters * (fwd + bwd), "train_with_dx": iters * (fwd + bwd + dx),
        "evals": evals, "per_eval": per_eval, "eval": evals * per_eval,
        "total": iters * (fwd + bwd) + evals * per_eval,
        "total_with_dx": iters * (fwd + bwd + dx) + evals * per_eval,
        "elementwise_per_iter": elementwise,
    }


# ---------------------------------------------------------------------------- processes
@dataclass
class Run:
    wall: float
    maxrss_kb: int
    cpu: float          # the child's own user + system CPU seconds
    sys_s: float        # of which system time (page faults of fresh memory show up here)
    others: float       # CPU seconds the rest of the machine used meanwhile, in cores (0 = quiet)
    rc: int
    log: Path
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


def wait_quiet(limit: float, threshold: float = 0.1) -> float:
    """Wait (at most `limit` s) until the machine has been idle for 2 s; returns the seconds waited."""
    if limit <= 0:
        return 0.0
    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < limit:
        b0 = busy_seconds()
        time.sleep(1.0)
        b1 = busy_seconds()
        if b0 is None or b1 is None:
            return 0.0
        quiet = quiet + 1 if b1 - b0 < threshold else 0
        if quiet >= 2:
            break
    return time.perf_counter() - t0


WARM_MODULES = {
    "zerodl": ["numpy", "yaml", "threadpoolctl", "zerodl", "zerodl.net", "zerodl.train", "zerodl.io",
               "zerodl.params", "zerodl.optim", "zerodl.progress", "zerodl.entry"],
    "textbook": ["numpy", "threadpoolctl"],
    "pytorch": ["numpy", "torch", "torch.nn.functional"],
}


def warm_up(name: str, workdir: Path, env: dict) -> None:
    """Untimed: import the contender's modules once and read the data files, so every
    contender starts from a warm page cache (this VM pages cold memory out, page cache
    included, and a cold `import torch` then takes 5-12 s instead of 1.5 s)."""
    mods = WARM_MODULES.get(name.rstrip("1"), [])
    if mods:
        code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
        subprocess.run([sys.executable, "-c", code, *mods], cwd=workdir, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for f in sorted((workdir / "data" / "prepared").glob("*")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def run_measured(cmd: list[str], cwd: Path, env: dict, log: Path) -> Run:
    """Run cmd to completion; wall time around it, and its own rusage from wait4."""
    with open(log, "wb") as out:
        b0 = busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        b1 = busy_seconds()
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    others = float("nan") if b0 is None or b1 is None else max(b1 - b0 - cpu, 0.0) / wall
    return Run(wall, ru.ru_maxrss, cpu, ru.ru_stime, others, p.returncode, log)


def fail(run: Run, what: str):
    text = run.log.read_text(errors="replace")[-3000:]
    sys.exit(f"{what} failed (exit {run.rc}); its output:\n{text}")


def write_params(workdir: Path, iters: int, seed: int, threads: int | None, source: str) -> dict:
    import yaml

    raw = yaml.safe_load(PARAMS.read_text()) if PARAMS.is_file() else {}
    raw = raw or {}
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


def run_zerodl(workdir: Path, env: dict, logdir: Path, tag: str) -> Run:
    for sub in ("model", "metrics", "plots"):
        shutil.rmtree(workdir / "data" / sub, ignore_errors=True)
    run = run_measured([sys.executable, str(STAGE)], workdir, env, logdir / f"zerodl{tag}.log")
    if run.rc != 0:
        fail(run, "zerodl (stages/train.py)")
    m = json.loads((workdir / "data" / "metrics" / "train.json").read_text())
    # train.json holds no time (DVC hashes it); the stage prints "... in 5.1 s: ...".
    said = re.search(r" in ([0-9.]+) s:", (logdir / f"zerodl{tag}.log").read_text())
    res = {"test_accuracy": m.get("test_accuracy"), "train_accuracy": m.get("train_accuracy"),
           "loop_seconds": float(said.group(1)) if said else None, "raw": m}
    epochs = workdir / "data" / "plots" / "epochs.csv"
    if epochs.is_file():
        with open(epochs) as f:
            res["evaluations"] = sum(1 for _ in csv.DictReader(f))
    run.result = res
    return run


def run_script(name: str, script: str, workdir: Path, env: dict, logdir: Path, tag: str, extra: list[str]) -> Run:
    out = logdir / f"{name}{tag}.json"
    out.unlink(missing_ok=True)
    run = run_measured([sys.executable, str(HERE / script), str(workdir), "--out", str(out), *extra],
                       workdir, env, logdir / f"{name}{tag}.log")
    if run.rc != 0:
        fail(run, name)
    run.result = json.loads(out.read_text())
    return run


def peak_gemm(threads: int, env: dict, logdir: Path, tag: str = "") -> dict:
    out = logdir / f"peak_gemm_{threads}{tag}.json"
    run = run_measured([sys.executable, str(HERE / "peak_gemm.py"), "--threads", str(threads), "--out", str(out)],
                       HERE, env, logdir / f"peak_gemm_{threads}{tag}.log")
    if run.rc != 0:
        fail(run, "peak_gemm.py")
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------- report
def describe_machine() -> list[str]:
    lines = []
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines.append(f"machine     {cpu}, {os.cpu_count()} logical CPUs, Linux {platform.release()}, "
                 f"python {platform.python_version()}")
    import numpy as np
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} "
            f"threads={i['num_threads']} ({Path(i['filepath']).name})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    lines.append(f"numpy       {np.__version__}; BLAS: {'; '.join(blas) or 'none found'}")
    try:
        lines.append(f"torch       {metadata.version('torch')} (not imported by this process)")
    except metadata.PackageNotFoundError:
        lines.append("torch       NOT INSTALLED: `.venv/bin/pip install torch==2.13.0`; the PyTorch row is skipped")
    knobs = {k: v for k, v in os.environ.items()
             if k.startswith(("OPENBLAS", "GOTO", "OMP_", "MKL_", "BLIS", "KMP_"))}
    lines.append("environment " + (", ".join(f"{k}={v}" for k, v in sorted(knobs.items())) or
                                   "no OPENBLAS_*/OMP_*/MKL_* variables set")
                 + " (the same environment is passed to every contender)")
    load1 = os.getloadavg()[0]
    lines.append(f"load        {load1:.2f} (1-min average before the run"
                 + ("; other work is running: expect noise, use --repeat 3)" if load1 > 0.5 else ")"))
    return lines


def fmt_s(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:7.2f}"
    return f"{min(values):7.2f} / {statistics.median(values):6.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10000, help="training iterations (default 10000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each contender; >1 prints min / median")
    ap.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist",
                    help="Debian's Fashion-MNIST (synthetic if it is not installed), or synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zerodl-threads", type=int, default=None,
                    help="override train.threads for zerodl (default: params.yaml's, i.e. 1)")
    ap.add_argument("--bound-threads", type=int, default=None,
                    help="threads of the peak GEMM the lower bound divides by (default: zerodl's BLAS "
                         "threads, or all cores if zerodl keeps more than one core busy)")
    ap.add_argument("--skip", default="", help="comma list of contenders to skip: zerodl,textbook,textbook1,pytorch,pytorch1 "
                         "(textbook1 and pytorch1 are the 1-thread reference rows)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each run, wait up to S seconds for the other processes to go idle "
                         "(a shared machine: others' test runs disturb the timings)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed) with logs and outputs")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    print("== zerodl training speed: TwoLayerNet 784-50-10, batch 100, lr 0.1, init std 0.01, SGD ==")
    for line in describe_machine():
        print(line)

    has_torch = True
    try:
        metadata.version("torch")
    except metadata.PackageNotFoundError:
        has_torch = False
    if not has_torch:
        skip.add("pytorch")
    if not STAGE.is_file():
        print(f"NOTE: {STAGE} does not exist yet: the zerodl row is skipped")
        skip.add("zerodl")

    work = Path(tempfile.mkdtemp(prefix="zerodl-bench-"))
    logs = work / "logs"
    logs.mkdir()
    env = dict(os.environ)
    try:
        t0 = time.perf_counter()
        sys.path.insert(0, str(HERE))
        import bench_data

        desc = bench_data.prepare(work, args.data)
        print(f"data        {desc}")
        print(f"            prepared in {time.perf_counter() - t0:.1f} s into {work}/data/prepared "
              f"(IDX decoded by {bench_data.IDX_READER})")
        synthetic = desc.startswith("SYNTHETIC")
        raw = write_params(work, args.iters, args.seed, args.zerodl_threads,
                           "synthetic" if synthetic else "fashion-mnist")
        zthreads = int(raw.get("train", {}).get("threads", 1))
        print(f"iterations  {args.iters} ({math.ceil(args.iters / (N_TRAIN // BATCH))} scorings of the whole "
              f"train+test sets), repeat {args.repeat}, seed {args.seed}")
        print()

        # -- peak GEMM rate -------------------------------------------------------
        print("measuring the peak float32 GEMM rate (numpy matmul, n = 1024..3072, best of several) ...", flush=True)
        peaks = {}
        for t in sorted({1, os.cpu_count() or 1, args.bound_threads or 1}):
            wait_quiet(args.wait_quiet)
            peaks[t] = peak_gemm(t, env, logs)
        for t, pk in peaks.items():
            by_n = ", ".join(f"n={n}: {g:.1f}" for n, g in pk["peak_gflops_by_n"].items())
            print(f"  {t} thread{'s' if t > 1 else ' '}: peak {pk['peak_gflops']:6.1f} GFLOP/s  ({by_n})")
        if "OPENBLAS_CORETYPE" in env:
            # A pinned kernel may leave the hardware's wider vector units idle, for the bound and
            # every contender alike: say what OpenBLAS's own choice would reach.
            free = {k: v for k, v in env.items() if k != "OPENBLAS_CORETYPE"}
            t = max(peaks)
            wait_quiet(args.wait_quiet)
            own = peak_gemm(t, free, logs, tag="_unpinned")
            kernel = ", ".join(str(b[2]) for b in own["blas"]) or "?"
            print(f"  note: this environment pins OpenBLAS's kernel (OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}); "
                  f"unpinned, OpenBLAS picks {kernel} here and peaks at {own['peak_gflops']:.1f} GFLOP/s at "
                  f"{t} thread{'s' if t > 1 else ''}. Everything below uses the environment as it is; "
                  f"`env -u OPENBLAS_CORETYPE` measures it all the other way.")

        # -- contenders -------------------------------------------------------------
        contenders = []
        if "zerodl" not in skip:
            contenders.append(("zerodl", f"stages/train.py, float32, {zthreads} BLAS thread(s)",
                               lambda tag: run_zerodl(work, env, logs, tag)))
        if "textbook" not in skip:
            contenders.append(("textbook", "book-style NumPy, float64 weights, numpy default threads",
                               lambda tag: run_script("textbook", "textbook_loop.py", work, env, logs, tag,
                                                      ["--iters", str(args.iters), "--seed", str(args.seed)])))
        if "textbook1" not in skip:
            contenders.append(("textbook1", "the same, limited to 1 BLAS thread (threadpoolctl)",
                               lambda tag: run_script("textbook1", "textbook_loop.py", work, env, logs, tag,
                                                      ["--iters", str(args.iters), "--seed", str(args.seed),
                                                       "--threads", "1"])))
        if "pytorch" not in skip:
            contenders.append(("pytorch", "torch CPU, float32, torch.set_num_threads(2)",
                               lambda tag: run_script("pytorch", "torch_loop.py", work, env, logs, tag,
                                                      ["--iters", str(args.iters), "--seed", str(args.seed),
                                                       "--threads", "2"])))
        if "pytorch1" not in skip and "pytorch" not in skip:
            contenders.append(("pytorch1", "the same, torch.set_num_threads(1), for reference",
                               lambda tag: run_script("pytorch1", "torch_loop.py", work, env, logs, tag,
                                                      ["--iters", str(args.iters), "--seed", str(args.seed),
                                                       "--threads", "1"])))
        runs: dict[str, list[Run]] = {name: [] for name, _, _ in contenders}
        for r in range(args.repeat):       # interleaved, so slow drift hits everyone alike
            for name, _, fn in contenders:
                warm_up(name, work, env)
                waited = wait_quiet(args.wait_quiet)
                print(f"running {name} ({r + 1}/{args.repeat}) ..." + (f" (waited {waited:.0f} s for quiet)"
                                                                       if waited >= 3 else ""), end=" ", flush=True)
                run = fn(f"_{r}")
                runs[name].append(run)
                noisy = "  <- other processes were busy: noisy" if run.others > 0.15 else ""
                loop_s = run.result.get("loop_seconds")
                print(f"{run.wall:.2f} s (loop {loop_s if loop_s is not None else float('nan'):.2f} s; CPU "
                      f"{run.cpu:.1f} s; others {run.others:.2f} cores){noisy}", flush=True)
        print()

        # -- table --------------------------------------------------------------------
        fl = flop_count(args.iters)
        # The fair bound uses as many cores as zerodl keeps busy: its BLAS threads, or all
        # the machine's cores if it runs work in other threads too (CPU time > wall time).
        zcores = (statistics.median(r.cpu / r.wall for r in runs["zerodl"]) if runs.get("zerodl") else 1.0)
        if args.bound_threads:
            bound_threads, why = args.bound_threads, "--bound-threads"
        elif zcores > 1.15:
            bound_threads = os.cpu_count() or 1
            why = (f"zerodl kept {zcores:.2f} cores busy on average (CPU time / wall time), more than one: "
                   f"the bound gets all {bound_threads} cores too")
        else:
            bound_threads = zthreads
            why = f"zerodl's train.threads, and it kept {zcores:.2f} cores busy on average"
        if bound_threads not in peaks:
            peaks[bound_threads] = peak_gemm(bound_threads, env, logs)
        peak = peaks[bound_threads]["peak_gflops"] * 1e9
        bound = fl["total"] / peak
        stat = "min / median" if args.repeat > 1 else ""
        print(f"{'':10} {'wall s ' + stat:>18} {'loop s ' + stat:>18} {'start-up s':>10} {'max RSS MB':>10} "
              f"{'user s':>6} {'sys s':>6} {'others':>6} {'test acc':>9} {'train acc':>9} {'scorings':>8}")
        wall, loop = {}, {}
        for name, what, _ in contenders:
            rs = runs[name]
            walls = [r.wall for r in rs]
            loops = [float(r.result.get("loop_seconds") or float("nan")) for r in rs]
            wall[name], loop[name] = min(walls), min(loops)
            res = rs[0].result
            accs = {r.result.get("test_accuracy") for r in rs}
            start = statistics.median([w - l for w, l in zip(walls, loops)])
            rss = max(r.maxrss_kb for r in rs) / 1024
            best = min(rs, key=lambda r: r.wall)
            others = max(r.others for r in rs)
            print(f"{name:10} {fmt_s(walls):>18} {fmt_s(loops):>18} {start:10.2f} {rss:10.0f} "
                  f"{best.cpu - best.sys_s:6.1f} {best.sys_s:6.1f} {others:6.2f} "
                  f"{res.get('test_accuracy', float('nan')):9.4f} {res.get('train_accuracy', float('nan')):9.4f} "
                  f"{str(res.get('evaluations', '?')):>8}"
                  + ("" if len(accs) == 1 else f"   (test acc varies: {sorted(accs)})"))
        print(f"{'bound':10} {bound:18.2f} {fl['train'] / peak + fl['eval'] / peak:18.2f}"
              f"   {fl['total'] / 1e9:.1f} GFLOP / {peak / 1e9:.1f} GFLOP/s ({bound_threads} thread"
              f"{'s' if bound_threads > 1 else ''})")
        for name, what, _ in contenders:
            print(f"  {name:9} {what}")
        if "pytorch" in runs or "pytorch1" in runs:
            pt = runs["pytorch" if "pytorch" in runs else "pytorch1"][0].result
            print(f"  (pytorch: import torch took {pt.get('import_torch_seconds', float('nan')):.2f} s of its start-up; "
                  f"{pt.get('blas')}, CPU capability {pt.get('cpu_capability')})")
        print("  start-up = wall - loop: interpreter, imports, loading the .npy files, net set-up, writing results"
              " (textbook/pytorch also score the final weights on the test set after the loop).")
        print("  user s / sys s = the process's CPU time (of the fastest repeat; user above wall: more than one core"
              " busy; sys is mostly page faults of fresh memory, slow on this VM); others = CPU the rest of the"
              " machine used during the run, in cores (worst repeat; > 0.15 means the timing is disturbed).")

        # -- FLOPs ----------------------------------------------------------------------
        print()
        print("FLOP count (GEMMs; a multiply-add counts 2):")
        print(f"  per iteration  {fl['per_iter'] / 1e6:.2f} MFLOP: x@W1, z1@W2 forward; dW1, dW2, dz1 backward. "
              f"NOT counted: the first layer's input gradient da1@W1.T ({fl['dx_per_iter'] / 1e6:.2f} MFLOP), "
              f"which an optimal implementation skips (with it: {fl['per_iter_with_dx'] / 1e6:.2f} MFLOP)")
        print(f"  training       {args.iters} x {fl['per_iter'] / 1e6:.2f} MFLOP = {fl['train'] / 1e9:.1f} GFLOP")
        print(f"  scoring        {fl['evals']} x forward on {N_TRAIN + N_TEST:,} samples "
              f"({fl['per_eval'] / 1e9:.2f} GFLOP each) = {fl['eval'] / 1e9:.1f} GFLOP")
        print(f"  total          {fl['total'] / 1e9:.1f} GFLOP  (element-wise work, ~{fl['elementwise_per_iter'] / 1e3:.0f} "
              f"kFLOP per iteration, is not counted)")
        print(f"  lower bound    {fl['total'] / 1e9:.1f} GFLOP / {peak / 1e9:.1f} GFLOP/s = {bound:.2f} s "
              f"(peak float32 GEMM at {bound_threads} thread{'s' if bound_threads > 1 else ''})")
        print(f"                 why {bound_threads}: {why}")
        print("                 " + "; ".join(f"at {t} thread{'s' if t > 1 else ''}: {fl['total'] / (pk['peak_gflops'] * 1e9):.2f} s"
                                       for t, pk in sorted(peaks.items())))
        shp = peaks[bound_threads]["shapes"]
        it_s = sum(v["seconds"] for k, v in shp.items() if not k.startswith(("(", "eval")))
        ev_key = next(k for k in shp if k.startswith("eval"))
        ev_rate = shp[ev_key]["gflops"] * 1e9
        gemm_only = args.iters * it_s + fl["eval"] / ev_rate
        print(f"  at the real shapes (each GEMM timed alone, {bound_threads} BLAS thread{'s' if bound_threads > 1 else ''}):"
              f" {it_s * 1e6:.0f} us of GEMMs per "
              f"iteration, scoring at {ev_rate / 1e9:.0f} GFLOP/s -> {gemm_only:.2f} s of pure GEMM for the whole run")

        # -- ratios and targets -------------------------------------------------------------
        print()
        if "zerodl" in runs:
            print("zerodl against the targets (whole-process wall time, best of the repeats):")

            def check(label, ok, text):
                print(f"  {label:34} {text:48} {'PASS' if ok else 'FAIL'}")

            z = wall["zerodl"]
            if "textbook" in runs:
                r = z / wall["textbook"]
                check("zerodl / textbook", r <= TARGET_VS_TEXTBOOK,
                      f"{r:.3f}  (target <= {TARGET_VS_TEXTBOOK}; loop only {loop['zerodl'] / loop['textbook']:.3f})")
            if "textbook1" in runs:
                r = z / wall["textbook1"]
                print(f"  {'zerodl / textbook at 1 thread':34} {r:.3f}  (for reference; loop only "
                      f"{loop['zerodl'] / loop['textbook1']:.3f})")
            if "pytorch" in runs:
                r = z / wall["pytorch"]
                check("zerodl / pytorch", r <= TARGET_VS_TORCH,
                      f"{r:.3f}  (target <= {TARGET_VS_TORCH}; loop only {loop['zerodl'] / loop['pytorch']:.3f})")
            if "pytorch1" in runs:
                r = z / wall["pytorch1"]
                print(f"  {'zerodl / pytorch at 1 thread':34} {r:.3f}  (for reference; loop only "
                      f"{loop['zerodl'] / loop['pytorch1']:.3f})")
            r = z / bound
            check("zerodl / lower bound", r <= TARGET_VS_BOUND,
                  f"{r:.2f}  (target <= {TARGET_VS_BOUND}; loop only {loop['zerodl'] / bound:.2f})")
            tb = "textbook" if "textbook" in runs else ("textbook1" if "textbook1" in runs else None)
            if tb:
                za = runs["zerodl"][0].result["test_accuracy"]
                ta = runs[tb][0].result["test_accuracy"]
                check("test accuracy zerodl - textbook", za >= ta - TARGET_ACC_DROP,
                      f"{za - ta:+.4f}  ({za:.4f} vs {ta:.4f}; target >= -{TARGET_ACC_DROP})")
        if synthetic:
            print("NOTE: these figures are on SYNTHETIC data (see 'data' above).")
        if args.keep:
            print(f"kept {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
