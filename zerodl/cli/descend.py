"""`zerodl descend`: the book's chapter-4 gradient descent on f(x0, x1) = x0² + x1², and its path."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..gradient import H, gradient_descent, numerical_gradient
from .common import add_command, check_png_out, print_json

DESCEND_OUT = Path("descent.png")
START, LR, STEPS = (-3.0, 4.0), 0.1, 100  # the book's init_x, lr and step_num
MAX_STEPS = 100_000
MAX_START = 1e6  # further out, h = 1e-4 drowns in float64 rounding of x² and the gradient is noise
CONVERGED = 1e-6  # converged: the distance to the minimum fell below this fraction of the start's
LITTLE = 0.01  # barely moved / diverged: the distance changed by less / more than this fraction


def function_2(x):
    """The book's f(x0, x1) = x0² + x1²; on x of shape (2, n), f of n points at once."""
    return x[0] ** 2 + x[1] ** 2


def add_parser(sub):
    p = add_command(sub, "descend", "the book's gradient descent on f(x0, x1) = x0² + x1², with a PNG of its path",
                    f"""\
Runs chapter 4's gradient_descent (the numerical gradient, h = {H:g}) from --start,
prints where it ends and what became of it, and draws the path over the contour lines
of f to --out (default {DESCEND_OUT}, replaced if it exists). What became of it:
  converged          the distance to the minimum fell below {CONVERGED:g} of the start's
  diverged           the distance grew by more than {LITTLE:.0%}, or f overflowed float64
  barely moved       the path stayed within {LITTLE:.0%} of that distance of the start
  oscillating        the distance changed by less than {LITTLE:.0%}, but the points jumped
                     across the minimum and back
  not converged yet  anything else: closer, not there

examples:
  zerodl descend                       # the book: from (-3, 4), lr 0.1, 100 steps
  zerodl descend --lr 10               # too large: diverges
  zerodl descend --lr 1e-10            # too small: barely moves
  zerodl descend --start 2 -0.5 --lr 0.3 --steps 20 --out path.png
  zerodl descend --json                # the path, the end, f there and the verdict
""")
    p.add_argument("--start", type=start_arg, nargs=2, default=list(START), metavar=("X0", "X1"),
                   help=f"the start point, the book's init_x (default: {START[0]:g} {START[1]:g}; "
                        "write a negative number as -0.001, not -1e-3, which reads as an option)")
    p.add_argument("--lr", type=lr_arg, default=LR, help=f"the learning rate (default: {LR:g})")
    p.add_argument("--steps", type=steps_arg, default=STEPS, metavar="N",
                   help=f"how many steps, the book's step_num (default: {STEPS})")
    p.add_argument("--out", type=Path, default=DESCEND_OUT, metavar="PATH",
                   help=f"the PNG to write (default: {DESCEND_OUT})")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON instead of text (the PNG is written too)")
    return p


def start_arg(text: str) -> float:
    value = _number(text, "a number")
    if not abs(value) <= MAX_START:
        raise argparse.ArgumentTypeError(
            f"expected a number from {-MAX_START:,.0f} to {MAX_START:,.0f}, got {text!r}")
    return value


def lr_arg(text: str) -> float:
    value = _number(text, "a finite number > 0")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def steps_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_STEPS}, got {text!r}")
    return value


def _number(text: str, expected: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


@dataclass
class Descent:
    """One run of gradient_descent on function_2, and what became of it."""

    raw: np.ndarray  # every x the descent made: the start, then x after each step
    points: np.ndarray  # the path: raw, cut before an overflow
    f: np.ndarray  # function_2 of each point of the path
    d: np.ndarray  # each point's distance to the minimum (0, 0)
    overflow: int | None  # the first step where f (or x) no longer fits in a float64
    verdict: str
    stopped: int | None = None  # the step after which x never changed again, if before the end


def descend(start, lr: float, steps: int) -> Descent:
    history = []
    # A too large lr can overflow float64: looked for below and reported, not warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        gradient_descent(function_2, start, lr=lr, step_num=steps, history=history)
        raw = np.array(history)
        f = function_2(raw.T)
    bad = np.flatnonzero(~np.isfinite(f))
    overflow = int(bad[0]) if bad.size else None
    points, f = (raw, f) if overflow is None else (raw[:overflow], f[:overflow])
    d = np.hypot(points[:, 0], points[:, 1])
    result = Descent(raw, points, f, d, overflow, verdict(points, d, overflow))
    if overflow is None and result.verdict != "converged":
        moved = np.flatnonzero(np.any(points[1:] != points[:-1], axis=1))
        last = int(moved[-1]) + 1 if moved.size else 0
        result.stopped = last if last < steps else None
    return result


def verdict(points, d, overflow) -> str:
    d0, d1 = d[0], d[-1]
    if overflow is not None or d1 > (1 + LITTLE) * d0:
        return "diverged"
    if d1 <= CONVERGED * d0:
        return "converged"
    if d1 >= (1 - LITTLE) * d0:
        moved = np.hypot(*(points - points[0]).T).max()
        return "barely moved" if moved <= LITTLE * d0 else "oscillating"
    return "not converged yet"


def run(args) -> int:
    check_png_out(args.out)
    result = descend(args.start, args.lr, args.steps)

    from .. import plots  # matplotlib: imported only by the commands that draw

    drawn = result.points
    if result.overflow is not None and np.all(np.isfinite(result.raw[result.overflow])):
        drawn = result.raw[:result.overflow + 1]  # only f overflowed there: the point still shows where the path went
    try:
        left = plots.descent_path(drawn, args.out, title(args, result), end=result.overflow is None)
    except OSError as e:
        raise DataError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    if args.json:
        ended = result.overflow is None
        print_json({
            "function": "x0**2 + x1**2", "start": list(args.start), "lr": args.lr, "steps": args.steps, "h": H,
            "verdict": result.verdict,
            "end": result.points[-1].tolist() if ended else None, "f_end": float(result.f[-1]) if ended else None,
            "distance_start": float(result.d[0]), "distance_end": float(result.d[-1]) if ended else None,
            "overflow_step": result.overflow, "stopped_moving_after_step": result.stopped,
            "left_window_at_step": left, "png": str(args.out),
            "path": result.points.tolist(),  # x after 0, 1, ..., steps steps; cut before overflow_step
        })
    else:
        for line in report(args, result, left):
            print(line)
    return 0


def title(args, result: Descent) -> str:
    points, d = result.points, result.d
    head = (f"Gradient descent on $f(x_0, x_1) = x_0^2 + x_1^2$\n"
            f"lr {args.lr:.10g}, {args.steps} steps from {point(points[0])}\n")
    if result.overflow is not None:
        return head + f"diverged, f overflows at step {result.overflow}"
    if result.verdict in ("converged", "diverged"):
        return head + f"{result.verdict} to {point(points[-1])}"
    p = digits(d[0], d[-1])
    return head + f"{result.verdict}, distance to (0, 0) {d[0]:.{p}g} → {d[-1]:.{p}g}"


def report(args, result: Descent, left) -> list[str]:
    raw, points, f, d, overflow = result.raw, result.points, result.f, result.d, result.overflow
    lines = [f"gradient descent on f(x0, x1) = x0^2 + x1^2 (the book's function_2), numerical gradient, h = {H:g}",
             f"start {point(points[0])}, lr {args.lr:.10g}, {args.steps} steps"]
    if overflow is not None:
        what = (f"x = {point(raw[overflow])}, where f overflows float64" if np.all(np.isfinite(raw[overflow]))
                else f"x itself overflows float64: {point(raw[overflow])}")
        lines += [f"end   none: after step {overflow} {what} (the last finite point, after step {overflow - 1}: "
                  f"{point(points[-1])}, f = {f[-1]:.3g})"]
    else:
        lines += [f"end   {point(points[-1], digits(points[0], points[-1]))}, f = {f[-1]:.3g}"]
        p = digits(d[0], d[-1])
        lines += [f"distance to the minimum (0, 0): {d[0]:.{p}g} at the start, {d[-1]:.{p}g} at the end"]
    lines += [conclusion(result.verdict, args.lr, args.steps, d)]
    if result.stopped is not None:
        x = points[-1].copy()
        why = ("x + h and x - h round back to x there, so the numerical gradient is 0"
               if not np.any(numerical_gradient(function_2, x)) else "lr * gradient is below the rounding of x there")
        lines += [f"note: the points stopped moving after step {result.stopped} ({why}); "
                  "exact gradient descent would go on"]
    where = f" (the path leaves the drawn window at step {left})" if left is not None else ""
    lines += [f"wrote {args.out}{where}"]
    return lines


def conclusion(verdict: str, lr: float, steps: int, d) -> str:
    """The verdict in a sentence, with the reason this f gives for it."""
    factor = 1 - 2 * lr  # an exact step of this f: x <- x - lr * 2x
    factor = (f"an exact step multiplies x by 1 - 2*lr = {factor:.6g}" if math.isfinite(factor)
              else f"an exact step multiplies x by 1 - 2*lr, about -2 * {lr:.3g}")
    if verdict == "converged" and d[0] == 0:
        return "converged: the start is the minimum, where the gradient is 0"
    if verdict == "converged":
        return f"converged: the end is within {CONVERGED:g} of the start's distance from the minimum"
    if verdict == "diverged":
        return f"diverged: lr {lr:.10g} is too large, each step overshoots the minimum ({factor})"
    if verdict == "oscillating":
        return f"oscillating: lr {lr:.10g} is at the edge ({factor}), the points jump across the minimum and back"
    if verdict == "barely moved":
        change = d[0] - d[-1]
        return (f"barely moved: lr {lr:.10g} is too small; {steps} steps took the point "
                f"{abs(change):.3g} {'closer to' if change >= 0 else 'farther from'} the minimum")
    return (f"not converged yet: the distance fell by a factor of {d[0] / d[-1]:.3g}; "
            "more --steps (or an lr closer to 0.5) get closer")


def digits(a, b) -> int:
    """The fewest significant digits (3 at least) that tell a from b apart, elementwise."""
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    for p in range(3, 18):
        if any(f"{x:.{p}g}" != f"{y:.{p}g}" for x, y in zip(a, b)):
            return p
    return 3


def point(x, p: int = 3) -> str:
    return f"({x[0]:.{p}g}, {x[1]:.{p}g})"
