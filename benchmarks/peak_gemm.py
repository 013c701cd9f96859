"""The machine's measured float32 GEMM rate through NumPy (its OpenBLAS).

    python peak_gemm.py [--threads K] [--out result.json]

Two numbers, both best-of-several (the least disturbed run):
  peak    large square float32 GEMMs (n = 1024 .. 3072): the rate an ideal
          implementation of any GEMM could at best reach on this machine;
  shapes  the GEMMs of one 784-50-10 training iteration at batch 100 (forward,
          dW2, dz1, dW1; not the first layer's input gradient) and of scoring
          a whole set (chunks of 512 rows, as zerodl.net.EVAL_CHUNK, forward
          only), each timed alone in a tight loop: what these small, skinny
          GEMMs really run at.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import harness


def best_seconds(fn, min_reps=3, budget=0.6):
    """The least disturbed of several timed calls, after an untimed one."""
    return min(harness.seconds(fn, min_reps, budget, warm=True)[0])


def peak(dtype=np.float32):
    rng = np.random.default_rng(0)
    rates = {}
    for n in (1024, 2048, 3072):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        c = np.empty((n, n), dtype=dtype)
        s = best_seconds(lambda: np.matmul(a, b, out=c))
        rates[n] = 2.0 * n ** 3 / s / 1e9
    return rates


def shapes(batch=100, d=784, h=50, o=10, chunk=512, dtype=np.float32):
    """GFLOP/s of each GEMM a training iteration / an evaluation chunk does."""
    rng = np.random.default_rng(0)
    mk = lambda *s: rng.random(s, dtype=np.float32).astype(dtype)  # noqa: E731
    x, W1, a1 = mk(batch, d), mk(d, h), mk(batch, h)
    W2, dz2 = mk(h, o), mk(batch, o)
    xc = mk(chunk, d)
    gemms = {
        # name: (m, k, n, callable)
        "fwd1 x@W1": (batch, d, h, lambda: x @ W1),
        "fwd2 z1@W2": (batch, h, o, lambda: a1 @ W2),
        "dW2 z1.T@dout": (h, batch, o, lambda: a1.T @ dz2),
        "dz1 dout@W2.T": (batch, o, h, lambda: dz2 @ W2.T),
        "dW1 x.T@da1": (d, batch, h, lambda: x.T @ a1),
        "(dx da1@W1.T, skippable)": (batch, h, d, lambda: a1 @ W1.T),
        f"eval fwd1 ({chunk} rows)": (chunk, d, h, lambda: xc @ W1),
    }
    out = {}
    for name, (m, k, n, fn) in gemms.items():
        s = best_seconds(fn, min_reps=50, budget=0.15)
        out[name] = {"m": m, "k": k, "n": n, "seconds": s, "gflops": 2.0 * m * k * n / s / 1e9}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with harness.limit_blas(args.threads):
        info = harness.blas_info()
        rates = peak()
        per_shape = shapes()
    result = {"threads": args.threads, "blas": info, "peak_gflops_by_n": rates,
              "peak_gflops": max(rates.values()), "shapes": per_shape}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
