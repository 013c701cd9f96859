"""What benchmarks/train_speed.py prints once every contender has run: the table of wall and
loop times, memory and accuracy; the FLOP count and the lower bound; the targets of issue 6.
"""
from __future__ import annotations

import statistics

from harness import N_TEST, N_TRAIN, check, row

# Targets (issue 6).
TARGET_VS_TEXTBOOK = 0.25
TARGET_VS_TORCH = 0.5
TARGET_VS_BOUND = 2.5
TARGET_ACC_DROP = 0.005

# The table's columns after the name, and their widths.
WIDTHS = [18, 18, 10, 10, 6, 6, 6, 9, 9, 8]


def threads(n: int) -> str:
    return f"{n} thread{'s' if n > 1 else ''}"


def min_median(values: list[float]) -> str:
    """'min / median' of several runs, or the one value."""
    if len(values) == 1:
        return f"{values[0]:7.2f}"
    return f"{min(values):7.2f} / {statistics.median(values):6.2f}"



def print_table(contenders: list, runs: dict, repeat: int, fl: dict, peak: float, n_threads: int):
    """The contenders' rows and the bound's; returns the best wall and loop times by name."""
    stat = "min / median" if repeat > 1 else ""
    print(row("", ["wall s " + stat, "loop s " + stat, "start-up s", "max RSS MB", "user s", "sys s", "others",
                   "test acc", "train acc", "scorings"], WIDTHS, 10))
    wall, loop = {}, {}
    nan = float("nan")
    for name, what, _ in contenders:
        rs = runs[name]
        walls = [r.wall for r in rs]
        loops = [float(r.result.get("loop_seconds") or nan) for r in rs]
        wall[name], loop[name] = min(walls), min(loops)
        res = rs[0].result
        accs = {r.result.get("test_accuracy") for r in rs}
        best = min(rs, key=lambda r: r.wall)
        print(row(name, [min_median(walls), min_median(loops),
                         f"{statistics.median([w - lp for w, lp in zip(walls, loops)]):.2f}",
                         f"{max(r.maxrss_kb for r in rs) / 1024:.0f}",
                         f"{best.cpu - best.sys_s:.1f}", f"{best.sys_s:.1f}", f"{max(r.others for r in rs):.2f}",
                         f"{res.get('test_accuracy', nan):.4f}", f"{res.get('train_accuracy', nan):.4f}",
                         str(res.get("evaluations", "?"))], WIDTHS, 10)
              + ("" if len(accs) == 1 else f"   (test acc varies: {sorted(accs)})"))
    print(row("bound", [f"{fl['total'] / peak:.2f}", f"{fl['train'] / peak + fl['eval'] / peak:.2f}"], 18, 10)
          + f"   {fl['total'] / 1e9:.1f} GFLOP / {peak / 1e9:.1f} GFLOP/s ({threads(n_threads)})")
    for name, what, _ in contenders:
        print(f"  {name:9} {what}")
    if "pytorch" in runs or "pytorch1" in runs:
        pt = runs["pytorch" if "pytorch" in runs else "pytorch1"][0].result
        print(f"  (pytorch: import torch took {pt.get('import_torch_seconds', nan):.2f} s of its start-up; "
              f"{pt.get('blas')}, CPU capability {pt.get('cpu_capability')})")
    print("  start-up = wall - loop: interpreter, imports, loading the .npy files, net set-up, writing results"
          " (textbook/pytorch also score the final weights on the test set after the loop).")
    print("  user s / sys s = the process's CPU time (of the fastest repeat; user above wall: more than one core"
          " busy; sys is mostly page faults of fresh memory, slow on this VM); others = CPU the rest of the"
          " machine used during the run, in cores (worst repeat; > 0.15 means the timing is disturbed).")
    return wall, loop


def print_flops(iters: int, fl: dict, peaks: dict, n_threads: int, why: str) -> None:
    peak = peaks[n_threads]["peak_gflops"] * 1e9
    print()
    print("FLOP count (GEMMs; a multiply-add counts 2):")
    print(f"  per iteration  {fl['per_iter'] / 1e6:.2f} MFLOP: x@W1, z1@W2 forward; dW1, dW2, dz1 backward. "
          f"NOT counted: the first layer's input gradient da1@W1.T ({fl['dx_per_iter'] / 1e6:.2f} MFLOP), "
          f"which an optimal implementation skips (with it: {fl['per_iter_with_dx'] / 1e6:.2f} MFLOP)")
    print(f"  training       {iters} x {fl['per_iter'] / 1e6:.2f} MFLOP = {fl['train'] / 1e9:.1f} GFLOP")
    print(f"  scoring        {fl['evals']} x forward on {N_TRAIN + N_TEST:,} samples "
          f"({fl['per_eval'] / 1e9:.2f} GFLOP each) = {fl['eval'] / 1e9:.1f} GFLOP")
    print(f"  total          {fl['total'] / 1e9:.1f} GFLOP  (element-wise work, ~{fl['elementwise_per_iter'] / 1e3:.0f} "
          f"kFLOP per iteration, is not counted)")
    print(f"  lower bound    {fl['total'] / 1e9:.1f} GFLOP / {peak / 1e9:.1f} GFLOP/s = {fl['total'] / peak:.2f} s "
          f"(peak float32 GEMM at {threads(n_threads)})")
    print(f"                 why {n_threads}: {why}")
    print("                 " + "; ".join(f"at {threads(t)}: {fl['total'] / (pk['peak_gflops'] * 1e9):.2f} s"
                                       for t, pk in sorted(peaks.items())))
    shp = peaks[n_threads]["shapes"]
    it_s = sum(v["seconds"] for k, v in shp.items() if not k.startswith(("(", "eval")))
    ev_rate = shp[next(k for k in shp if k.startswith("eval"))]["gflops"] * 1e9
    print(f"  at the real shapes (each GEMM timed alone, {n_threads} BLAS thread{'s' if n_threads > 1 else ''}):"
          f" {it_s * 1e6:.0f} us of GEMMs per iteration, scoring at {ev_rate / 1e9:.0f} GFLOP/s -> "
          f"{iters * it_s + fl['eval'] / ev_rate:.2f} s of pure GEMM for the whole run")


def print_targets(runs: dict, wall: dict, loop: dict, bound: float) -> None:
    print("zerodl against the targets (whole-process wall time, best of the repeats):")
    z = wall["zerodl"]
    for name, target in (("textbook", TARGET_VS_TEXTBOOK), ("textbook1", None),
                         ("pytorch", TARGET_VS_TORCH), ("pytorch1", None)):
        if name in runs:
            r, lr = z / wall[name], loop["zerodl"] / loop[name]
            label = f"zerodl / {name.rstrip('1')}" + (" at 1 thread" if name.endswith("1") else "")
            if target is None:
                print(check(label, f"{r:.3f}  (for reference; loop only {lr:.3f})"))
            else:
                print(check(label, f"{r:.3f}  (target <= {target}; loop only {lr:.3f})", r <= target))
    r = z / bound
    print(check("zerodl / lower bound", f"{r:.2f}  (target <= {TARGET_VS_BOUND}; loop only {loop['zerodl'] / bound:.2f})",
                r <= TARGET_VS_BOUND))
    tb = "textbook" if "textbook" in runs else ("textbook1" if "textbook1" in runs else None)
    if tb:
        za = runs["zerodl"][0].result["test_accuracy"]
        ta = runs[tb][0].result["test_accuracy"]
        print(check("test accuracy zerodl - textbook", f"{za - ta:+.4f}  ({za:.4f} vs {ta:.4f}; "
                    f"target >= -{TARGET_ACC_DROP})", za >= ta - TARGET_ACC_DROP))
