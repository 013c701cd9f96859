"""Where does zerodl's `stages/train.py` spend its time? cProfile on the standard run.

    .venv/bin/python benchmarks/profile_train.py [--iters 10000] [--data fashion-mnist] [--top 25]

Prepares the same temporary folder as train_speed.py, runs the stage under
cProfile in a child process (so the profile holds the stage alone), and prints
the functions by their own time, then by cumulative time. The profiler adds
about 1 us per Python call (there are about 70 per iteration), so the totals
run a little above the unprofiled wall time.
"""
from __future__ import annotations

import argparse
import pstats
import shutil
import sys
from pathlib import Path

import bench_data
import harness


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, help="also keep the raw profile here (for snakeviz, pstats)")
    args = ap.parse_args(argv)
    if not harness.STAGE.is_file():
        sys.exit(f"{harness.STAGE} does not exist yet")

    for line in harness.machine_lines():
        print(line)
    with harness.scratch("zerodl-prof-") as work:
        desc, source = bench_data.prepare(work, args.data)
        bench_data.write_params(work, args.iters, 0, None, source)
        prof = work / "train.prof"
        run = harness.run_measured("stages/train.py under cProfile",
                                   [sys.executable, "-m", "cProfile", "-o", str(prof), str(harness.STAGE)], work)
        print(f"{desc}\nstages/train.py under cProfile: {run.wall:.2f} s wall\n")
        st = pstats.Stats(str(prof))
        st.strip_dirs().sort_stats("tottime").print_stats(args.top)
        st.sort_stats("cumulative").print_stats(args.top)
        if args.out:
            shutil.copy(prof, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
