"""The chapter-4 numerical gradient of TwoLayerNet: the plain way vs zerodl's, for ReLU and sigmoid.

    .venv/bin/python benchmarks/numerical_gradient.py [--sample K | --full] [--batch 100] [--activation relu]

The plain way (written here, in float64, as chapter 4 does it): for every
weight, set w + h, run the whole forward pass and the loss, set w - h, again,
restore w, and take (L(+h) - L(-h)) / 2h with h = 1e-4. The loss is the
cross entropy computed by log-sum-exp from the logits, averaged over the batch.
That is 2 x 39,760 forward passes for 784-50-10: about a minute.

zerodl's way: `zerodl.TwoLayerNet(..., dtype=float64).numerical_gradient(x, t)`,
which gives the same central differences for all the weights at once, in closed
form (zerodl/numerical.py). Both are measured for the chapter-5 net (ReLU) and
chapter 4's own (sigmoid hidden layer), each on its own line.

By default the plain way is run on --sample K weights of each parameter, chosen
at random (all of a parameter with at most K weights), and its time for all
39,760 weights is extrapolated from the time per weight, per parameter; --full
runs it on every weight. zerodl's version always computes every weight, and
the two are compared on the weights the plain way computed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import bench_data
import harness

H = 1e-4
TARGET_SPEEDUP = 1000.0
TARGET_MAXDIFF = 1e-9
LINE = dict(label_width=18, text_width=0, indent="")  # the layout of the target lines


# ---- the plain chapter-4 way ------------------------------------------------------------
def loss(params, x, t, activation="relu"):
    """Mean cross entropy of the logits of x, by log-sum-exp: a whole forward pass."""
    a1 = x @ params["W1"] + params["b1"]
    z1 = np.maximum(a1, 0.0) if activation == "relu" else 1.0 / (1.0 + np.exp(-a1))
    z2 = z1 @ params["W2"] + params["b2"]
    m = z2.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z2 - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - z2[np.arange(len(t)), t]))


def plain_numerical_gradient(params, x, t, name, idx, activation, h=H):
    """d loss / d params[name].flat[i] for i in idx, one weight at a time (perturbed in place)."""
    flat = params[name].reshape(-1)   # a view: writes perturb params[name], which loss() reads
    g = np.empty(len(idx))
    for n, i in enumerate(idx):
        orig = flat[i]
        flat[i] = orig + h
        fxh1 = loss(params, x, t, activation)
        flat[i] = orig - h
        fxh2 = loss(params, x, t, activation)
        flat[i] = orig
        g[n] = (fxh1 - fxh2) / (2 * h)
    return g


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=200, metavar="K",
                    help="plain way on K random weights per parameter, time extrapolated (default 200)")
    ap.add_argument("--full", action="store_true", help="plain way on all 39,760 weights (about a minute)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=50)
    ap.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    ap.add_argument("--trained", type=int, default=300, metavar="N",
                    help="first take N SGD steps (backprop, lr 0.1), so the weights are not all "
                         "near zero and some ReLUs sit near their kink (0 = fresh init)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both (default 1)")
    ap.add_argument("--repeat", type=int, default=20, help="runs of zerodl's version (min is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--activation", choices=("relu", "sigmoid", "both"), default="both")
    args = ap.parse_args(argv)

    harness.limit_blas(args.threads)
    x, t, desc = bench_data.train_sample(args.batch, args.data, args.seed)
    print(f"== numerical gradient of TwoLayerNet 784-{args.hidden}-10, float64, h = {H}, central difference ==")
    for line in harness.machine_lines():
        print(line)
    print(f"data        {desc}; BLAS threads: {args.threads}")

    try:
        from zerodl import TwoLayerNet
    except ImportError as e:
        TwoLayerNet = None
        print(f"NOTE: zerodl.TwoLayerNet is not importable ({e}): timing the plain way only")
    ok = True
    for activation in ("relu", "sigmoid") if args.activation == "both" else (args.activation,):
        print(f"\n-- hidden layer: {activation} --")
        ok &= measure(TwoLayerNet, activation, x, t, args)
    return 0 if ok else 1


def measure(TwoLayerNet, activation, x, t, args) -> bool:
    rng = np.random.default_rng(args.seed)
    if TwoLayerNet is not None:
        net = TwoLayerNet(x.shape[1], args.hidden, 10, weight_init_std=0.01, dtype=np.float64, rng=rng,
                          activation=activation)
        if args.trained:
            # A few hundred backprop steps on batches of the same data set kind, so the
            # gradient is checked at a point that looks like training, not only at init.
            xs, ts, _ = bench_data.train_sample(1000, args.data, args.seed + 1)
            for _ in range(args.trained):
                pick = rng.choice(len(ts), 100)
                g = net.gradient(xs[pick], ts[pick])
                for k in net.params:
                    net.params[k] -= 0.1 * g[k]
        params = {k: np.array(v, dtype=np.float64) for k, v in net.params.items()}
    else:
        params = {"W1": 0.01 * rng.standard_normal((x.shape[1], args.hidden)), "b1": np.zeros(args.hidden),
                  "W2": 0.01 * rng.standard_normal((args.hidden, 10)), "b2": np.zeros(10)}
    sizes = {k: v.size for k, v in params.items()}
    total = sum(sizes.values())
    print(f"weights     {total:,} ({', '.join(f'{k} {v:,}' for k, v in sizes.items())})"
          + (f"; after {args.trained} SGD steps" if TwoLayerNet is not None and args.trained else "; fresh init"))

    # -- plain ------------------------------------------------------------------------------
    if args.full:
        which = None
    else:
        pick_rng = np.random.default_rng(args.seed + 2)
        which = {k: (np.sort(pick_rng.choice(n, args.sample, replace=False)) if n > args.sample else np.arange(n))
                 for k, n in sizes.items()}
    per_param = {}
    plain = {}
    work = {k: v.copy() for k, v in params.items()}
    for name in params:   # one parameter at a time, so each gets its own time per weight
        idx = np.arange(sizes[name]) if which is None else which[name]
        t0 = time.perf_counter()
        g = plain_numerical_gradient(work, x, t, name, idx, activation)
        per_param[name] = (len(idx), time.perf_counter() - t0)
        plain[name] = (idx, g)
    for k in params:
        assert np.array_equal(work[k], params[k]), "the plain way must restore every weight exactly"
    measured = sum(s for _, s in per_param.values())
    plain_total = sum(s / n * sizes[k] for k, (n, s) in per_param.items())
    done = sum(n for n, _ in per_param.values())
    print()
    print("plain way (perturb one weight, whole forward pass + loss, twice):")
    for k, (n, s) in per_param.items():
        print(f"  {k:3} {n:6,} of {sizes[k]:6,} weights in {s:7.3f} s  ({s / n * 1e3:.3f} ms per weight)")
    if args.full:
        print(f"  all {total:,} weights: {plain_total:.2f} s (measured)")
    else:
        print(f"  {done:,} weights in {measured:.2f} s; all {total:,} weights: {plain_total:.1f} s "
              f"(EXTRAPOLATED from the time per weight of each parameter; --full measures it)")

    if TwoLayerNet is None:
        return True

    # -- zerodl -----------------------------------------------------------------------------
    times, fast = harness.seconds(lambda: net.numerical_gradient(x, t), args.repeat)
    fast_s = min(times)
    print()
    print(f"zerodl.TwoLayerNet.numerical_gradient (all {total:,} weights): {fast_s * 1e3:.2f} ms "
          f"(min of {len(times)}; median {statistics.median(times) * 1e3:.2f} ms)")

    # -- compare ----------------------------------------------------------------------------
    maxdiff, where = 0.0, None
    for k, (idx, g) in plain.items():
        d = np.abs(np.asarray(fast[k], dtype=np.float64).reshape(-1)[idx] - g)
        if d.size and d.max() > maxdiff:
            maxdiff, where = float(d.max()), (k, int(idx[d.argmax()]))
    bp = net.gradient(x, t)
    bp_diff = {k: float(np.max(np.abs(np.asarray(bp[k], np.float64).reshape(-1)[idx] - g)))
               for k, (idx, g) in plain.items()}
    scale = max(float(np.max(np.abs(g))) for _, g in plain.values())
    speedup = plain_total / fast_s
    print()
    passed = speedup >= TARGET_SPEEDUP and maxdiff <= TARGET_MAXDIFF
    print(harness.check("speed-up", f"{speedup:8.0f} x   (plain {plain_total:.1f} s{'' if args.full else ' extrapolated'} / "
                        f"zerodl {fast_s * 1e3:.2f} ms; target >= {TARGET_SPEEDUP:.0f} x)", speedup >= TARGET_SPEEDUP, **LINE))
    print(harness.check("max |difference|", f"{maxdiff:8.1e}     (on the {done:,} weights compared, largest at "
                        f"{where[0]}[{where[1]}]; |gradient| up to {scale:.1e}; target <= {TARGET_MAXDIFF:.0e})",
                        maxdiff <= TARGET_MAXDIFF, **LINE))
    print("for reference      max |plain - backprop| on the same weights: "
          + ", ".join(f"{k} {v:.1e}" for k, v in bp_diff.items())
          + ("\n                   (W1/b1 larger: a step of h moves some hidden units across the ReLU kink,"
             "\n                   where the central difference is not the derivative; both numerical versions agree there)"
             if activation == "relu" else "\n                   (the central difference's own error, ~h² × the third derivative)"))
    return passed


if __name__ == "__main__":
    sys.exit(main())
