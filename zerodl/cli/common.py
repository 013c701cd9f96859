"""What the commands share: reading the pipeline's files, printing to the terminal, common options."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .. import io
from ..errors import DataError, ModelError
from ..net import TwoLayerNet

MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
METRICS = Path("data/live")  # dvclive's folders of the stages: train/metrics.json, eval/metrics.json
BAR_WIDTH = 20  # characters for probability 1.0
GREEN, RED = "1;32", "1;31"  # ANSI: the predicted class, right or wrong


# --- reading the pipeline's files -------------------------------------------------

def load_net(path: Path) -> TwoLayerNet:
    if io.path_kind(path) == "nothing":
        hint = "train one with `dvc repro`, or pass --model PATH" if path == MODEL else "expected a zerodl model .npz"
        raise ModelError(f"{path}: no such model file ({hint})")
    return TwoLayerNet.load(path)  # ModelError for anything that is not a zerodl model


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, t) of one split of the prepared data; memory-mapped, so one digit costs one digit."""
    kind = io.path_kind(data_dir)
    if kind != "a folder":
        what = "no such folder" if kind == "nothing" else f"is {kind}, not a folder"
        raise DataError(f"{data_dir}: {what} (expected the prepared data: run `dvc repro prepare`, "
                        "or pass --data DIR)")
    return io.load_split(data_dir, split, mmap=True,
                         hint="expected the prepared data: run `dvc repro prepare`, or pass --data DIR")


def check_fits(net: TwoLayerNet, x: np.ndarray, where) -> None:
    if x.shape[1] != net.input_size:
        raise DataError(f"{where}: digits of {x.shape[1]} pixels, but the model expects {net.input_size}")


def check_digits(x: np.ndarray, args, rows=None) -> None:
    """DataError if a digit of the split (each one, or those in `rows`) holds NaN or an infinity."""
    io.check_pixels(x, args.data / f"x_{args.split}.npy", args.split, rows)


def digit_names(args, index=None):
    """Row i of the net's input -> how a message names it: "test digit 42"."""
    return lambda i: f"{args.split} digit {i if index is None else index[i]}"


def check_index(i: int, n: int, args) -> None:
    if i >= n:
        raise DataError(f"--index {i}: out of range for the {args.split} split of {args.data} "
                        f"(expected 0 to {n - 1})")


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(content, None), or (None, why not): info reports a missing or broken file, it does not fail."""
    try:
        content = io.read_json(path)
    except FileNotFoundError:
        return None, "not found"
    except ValueError as e:
        return None, str(e)
    if not isinstance(content, dict):
        return None, "not a JSON object"
    return content, None


# --- terminal output ----------------------------------------------------------------

def can_print(text: str) -> bool:
    """True if stdout can encode `text` (block characters fail on a latin-1 or ASCII terminal)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def use_colour() -> bool:
    # Colour only for a person at a terminal: never in a pipe, a file, or with NO_COLOR set.
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(p: float, width: int = BAR_WIDTH, unicode: bool = True) -> str:
    """A horizontal bar for a probability: full blocks, then an eighth-block for the rest."""
    if not unicode:
        return "#" * int(p * width)
    eighths = int(p * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def chart(proba: np.ndarray, mark: dict[int, str] | None = None) -> list[str]:
    """One line per class: `3 ███████████████████▏ 0.962`; `mark` colours some rows (class -> ANSI)."""
    unicode = can_print("█" + EIGHTHS)
    colour = use_colour()
    lines = []
    for k, p in enumerate(proba):
        line = f"  {k} {bar(float(p), unicode=unicode):<{BAR_WIDTH}} {p:.3f}"
        if colour and mark and k in mark:
            line = f"\033[{mark[k]}m{line}\033[0m"
        lines.append(line)
    return lines


def ascii_digit(row: np.ndarray) -> list[str]:
    """A 28x28 digit as text, two characters per pixel so it keeps its shape, inside a frame."""
    ramp = " .:-=+*#%@"
    side = int(round(np.sqrt(row.size)))
    img = np.asarray(row, dtype=np.float64).reshape(side, side)
    levels = np.clip((img * (len(ramp) - 1)).round().astype(int), 0, len(ramp) - 1)
    frame = "+" + "-" * (2 * side) + "+"
    return [frame] + ["|" + "".join(ramp[v] * 2 for v in r) + "|" for r in levels] + [frame]


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- options more than one command takes ---------------------------------------------

def index_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a digit's index (0, 1, 2, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an index >= 0, got {value}")
    return value


def count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def add_command(sub, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows `help` and then `example` as written (line breaks kept)."""
    return sub.add_parser(name, help=help, description=help, epilog=example,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def model_option(p) -> None:
    p.add_argument("--model", type=Path, default=MODEL, metavar="PATH",
                   help=f"the trained model (default: {MODEL})")


def data_options(p) -> None:
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split (default: test)")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR",
                   help=f"the prepared data: x_test.npy, t_test.npy, ... (default: {PREPARED})")


def digit_options(p, errors_help: str) -> None:
    """--index N... or --errors K, after the IMAGE files: which digits (check_one_source: exactly one)."""
    how = p.add_mutually_exclusive_group()
    how.add_argument("--index", type=index_arg, nargs="+", metavar="N", help="digits of the prepared data by index")
    how.add_argument("--errors", type=count_arg, metavar="K", help=errors_help)


def check_png_out(path: Path) -> None:
    """--out must name a .png in a folder that exists."""
    if path.suffix.lower() != ".png":
        raise DataError(f"--out {path}: expected a file name ending in .png")
    if not path.parent.is_dir():
        # A typo in a folder name should not quietly create that folder.
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise DataError(f"--out {path}: {path.parent} {what}")


def check_one_source(args) -> None:
    # The group above refuses --index with --errors; "exactly one, IMAGE files included" is said here.
    chosen = sum([bool(args.images), args.index is not None, args.errors is not None])
    if chosen != 1:
        args.parser.error("expected IMAGE files, or --index N, or --errors K (exactly one of them)")
