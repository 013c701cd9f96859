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
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import bench_data
import harness
from harness import BATCH, HIDDEN, INPUT, N_TEST, N_TRAIN, OUTPUT, STAGE, Run
from speed_report import print_flops, print_table, print_targets, threads

HERE = harness.HERE

# The contenders besides zerodl: name, script, its options beyond --iters/--seed, what the row is.
SCRIPTS = [
    ("textbook", "textbook_loop.py", [], "book-style NumPy, float64 weights, numpy default threads"),
    ("textbook1", "textbook_loop.py", ["--threads", "1"], "the same, limited to 1 BLAS thread (threadpoolctl)"),
    ("pytorch", "torch_loop.py", ["--threads", "2"], "torch CPU, float32, torch.set_num_threads(2)"),
    ("pytorch1", "torch_loop.py", ["--threads", "1"], "the same, torch.set_num_threads(1), for reference"),
]
WARM_MODULES = {  # imported once, untimed, before each timed run (see warm_up)
    "zerodl": ["numpy", "yaml", "threadpoolctl", "zerodl", "zerodl.net", "zerodl.train", "zerodl.io",
               "zerodl.params", "zerodl.optim", "zerodl.progress", "zerodl.entry"],
    "textbook": ["numpy", "threadpoolctl"],
    "pytorch": ["numpy", "torch", "torch.nn.functional"],
}
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


# ---------------------------------------------------------------------------- the runs
def wait_quiet(limit: float, threshold: float = 0.1) -> float:
    """Wait (at most `limit` s) until the machine has been idle for 2 s; returns the seconds waited."""
    if limit <= 0:
        return 0.0
    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < limit:
        b0 = harness.busy_seconds()
        time.sleep(1.0)
        b1 = harness.busy_seconds()
        if b0 is None or b1 is None:
            return 0.0
        quiet = quiet + 1 if b1 - b0 < threshold else 0
        if quiet >= 2:
            break
    return time.perf_counter() - t0


def warm_up(name: str, workdir: Path, env: dict) -> None:
    """Untimed: import the contender's modules once in a child and read the data files, so every
    contender starts from a warm page cache (this VM pages cold memory out, page cache
    included, and a cold `import torch` then takes 5-12 s instead of 1.5 s)."""
    modules = WARM_MODULES.get(name.rstrip("1"), [])
    if modules:
        code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
        subprocess.run([sys.executable, "-c", code, *modules], cwd=workdir, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for f in sorted((workdir / "data" / "prepared").glob("*")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def run_zerodl(workdir: Path, env: dict, logdir: Path, tag: str) -> Run:
    for sub in ("model", "live", "plots"):
        shutil.rmtree(workdir / "data" / sub, ignore_errors=True)
    log = logdir / f"zerodl{tag}.log"
    run = harness.run_measured("zerodl (stages/train.py)", [sys.executable, str(STAGE)], workdir, env, log)
    m = json.loads((workdir / "data" / "live" / "train" / "metrics.json").read_text())
    # Its `seconds` is the loop's wall time; the stage also prints "... in 5.1 s: ...".
    said = re.search(r" in ([0-9.]+) s:", log.read_text())
    run.result = {"test_accuracy": m.get("test_accuracy"), "train_accuracy": m.get("train_accuracy"),
                  "loop_seconds": float(said.group(1)) if said else None, "raw": m}
    epochs = workdir / "data" / "live" / "train" / "plots" / "metrics" / "test_accuracy.tsv"  # dvclive's: a row a step
    if epochs.is_file():
        with open(epochs) as f:
            run.result["evaluations"] = sum(1 for _ in csv.DictReader(f, delimiter="\t"))
    return run


def run_script(name: str, script: str, args: list[str], cwd: Path, env: dict, logdir: Path) -> Run:
    """One of our scripts as a measured child; what it wrote to --out as run.result."""
    out = logdir / f"{name}.json"
    out.unlink(missing_ok=True)
    run = harness.run_measured(f"{name} ({script})", [sys.executable, str(HERE / script), *args, "--out", str(out)],
                               cwd, env, logdir / f"{name}.log")
    run.result = json.loads(out.read_text())
    return run


def peak_gemm(n_threads: int, env: dict, logdir: Path, tag: str = "") -> dict:
    return run_script(f"peak_gemm_{n_threads}{tag}", "peak_gemm.py", ["--threads", str(n_threads)],
                      HERE, env, logdir).result


def measure_peaks(args, env: dict, logs: Path) -> dict[int, dict]:
    print("measuring the peak float32 GEMM rate (numpy matmul, n = 1024..3072, best of several) ...", flush=True)
    peaks = {}
    for t in sorted({1, os.cpu_count() or 1, args.bound_threads or 1}):
        wait_quiet(args.wait_quiet)
        peaks[t] = peak_gemm(t, env, logs)
    for t, pk in peaks.items():
        by_n = ", ".join(f"n={n}: {g:.1f}" for n, g in pk["peak_gflops_by_n"].items())
        print(f"  {threads(t):9}: peak {pk['peak_gflops']:6.1f} GFLOP/s  ({by_n})")
    if "OPENBLAS_CORETYPE" in env:
        # A pinned kernel may leave the hardware's wider vector units idle, for the bound and
        # every contender alike: say what OpenBLAS's own choice would reach (this one command only).
        free = {k: v for k, v in env.items() if k != "OPENBLAS_CORETYPE"}
        t = max(peaks)
        wait_quiet(args.wait_quiet)
        own = peak_gemm(t, free, logs, tag="_unpinned")
        kernel = ", ".join(str(b[2]) for b in own["blas"]) or "?"
        print(f"  note: this environment pins OpenBLAS's kernel (OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}); "
              f"unpinned, OpenBLAS picks {kernel} here and peaks at {own['peak_gflops']:.1f} GFLOP/s at "
              f"{threads(t)}. Everything below uses the environment as it is; "
              f"`env -u OPENBLAS_CORETYPE` measures it all the other way.")
    return peaks


def run_all(contenders: list, args, work: Path, env: dict) -> dict[str, list[Run]]:
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
    return runs


def bound_threads(args, runs: dict, zthreads: int) -> tuple[int, str]:
    """The fair bound uses as many cores as zerodl keeps busy: its BLAS threads, or all the
    machine's cores if it runs work in other threads too (CPU time > wall time)."""
    zcores = statistics.median(r.cpu / r.wall for r in runs["zerodl"]) if runs.get("zerodl") else 1.0
    if args.bound_threads:
        return args.bound_threads, "--bound-threads"
    if zcores > 1.15:
        n = os.cpu_count() or 1
        return n, (f"zerodl kept {zcores:.2f} cores busy on average (CPU time / wall time), more than one: "
                   f"the bound gets all {n} cores too")
    return zthreads, f"zerodl's train.threads, and it kept {zcores:.2f} cores busy on average"


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
    try:
        torch_line = f"torch       {metadata.version('torch')} (not imported by this process)"
    except metadata.PackageNotFoundError:
        torch_line = "torch       NOT INSTALLED: `.venv/bin/pip install torch==2.13.0`; the PyTorch row is skipped"
        skip.add("pytorch")
    for line in harness.machine_lines(torch_line, env_note=" (the same environment is passed to every contender)"):
        print(line)
    if "pytorch" in skip:
        skip.add("pytorch1")        # the reference row goes with its contender
    if not STAGE.is_file():
        print(f"NOTE: {STAGE} does not exist yet: the zerodl row is skipped")
        skip.add("zerodl")

    env = dict(os.environ)
    with harness.scratch("zerodl-bench-", keep=args.keep) as work:
        logs = work / "logs"
        logs.mkdir()
        t0 = time.perf_counter()
        desc, source = bench_data.prepare(work, args.data)
        print(f"data        {desc}")
        print(f"            prepared in {time.perf_counter() - t0:.1f} s into {work}/data/prepared "
              f"(IDX decoded by {bench_data.idx_reader()[1]})")
        raw = bench_data.write_params(work, args.iters, args.seed, args.zerodl_threads, source)
        zthreads = int(raw.get("train", {}).get("threads", 1))
        print(f"iterations  {args.iters} ({math.ceil(args.iters / (N_TRAIN // BATCH))} scorings of the whole "
              f"train+test sets), repeat {args.repeat}, seed {args.seed}")
        print()

        peaks = measure_peaks(args, env, logs)
        contenders = []
        if "zerodl" not in skip:
            contenders.append(("zerodl", f"stages/train.py, float32, {zthreads} BLAS thread(s)",
                               lambda tag: run_zerodl(work, env, logs, tag)))
        for name, script, extra, what in SCRIPTS:
            if name not in skip:
                opts = ["--iters", str(args.iters), "--seed", str(args.seed), *extra]
                contenders.append((name, what, lambda tag, name=name, script=script, opts=opts:
                                   run_script(name + tag, script, [str(work), *opts], work, env, logs)))
        runs = run_all(contenders, args, work, env)

        fl = flop_count(args.iters)
        n_threads, why = bound_threads(args, runs, zthreads)
        if n_threads not in peaks:
            peaks[n_threads] = peak_gemm(n_threads, env, logs)
        peak = peaks[n_threads]["peak_gflops"] * 1e9
        wall, loop = print_table(contenders, runs, args.repeat, fl, peak, n_threads)
        print_flops(args.iters, fl, peaks, n_threads, why)
        print()
        if "zerodl" in runs:
            print_targets(runs, wall, loop, fl["total"] / peak)
        if source == "synthetic":
            print("NOTE: these figures are on SYNTHETIC data (see 'data' above).")
        if args.keep:
            print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
