"""The `zerodl` command: ask the trained TwoLayerNet about digits, check its gradient, describe it.

    zerodl predict my_digit.png       what digit is this picture?
    zerodl predict --index 7          a digit of the prepared test set, with its true label
    zerodl predict --errors 10        the net's most confident mistakes
    zerodl show --index 0 1 2         draw digits to a PNG (or what the net sees of a picture)
    zerodl gradcheck                  backprop against the numerical gradient (chapter 5)
    zerodl info                       what the model is, how well it does, what data it came from

Every command reads the files the pipeline writes (data/model/model.npz,
data/prepared/*.npy, data/metrics/*.json) relative to the current folder.
Mistakes in the input end in one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .entry import run  # first: from here on, Ctrl-C ends in one line

import numpy as np
from threadpoolctl import threadpool_limits

from . import __version__
from . import io
from .data.prepare import N_CLASSES
from .errors import DataError, ModelError
from .gradient import H, gradient_check
from .metrics import most_confident_errors, predict_proba
from .net import TwoLayerNet

MODEL = Path("data/model/model.npz")
PREPARED = Path("data/prepared")
METRICS = Path("data/metrics")
PARAMS = Path("params.yaml")
SHOW_OUT = Path("digits.png")
GRADCHECK_THRESHOLD = 1e-7  # the book's check on fresh weights gives 1e-10 .. 1e-13
BAR_WIDTH = 20  # characters for probability 1.0
GREEN, RED = "1;32", "1;31"  # ANSI: the predicted class, right or wrong


# --- reading the pipeline's files -------------------------------------------------

def load_net(path: Path) -> TwoLayerNet:
    if not path.is_file():
        hint = "train one with `dvc repro`, or pass --model PATH" if path == MODEL else "expected a zerodl model .npz"
        raise ModelError(f"{path}: no such model file ({hint})")
    return TwoLayerNet.load(path)  # ModelError for anything that is not a zerodl model


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, t) of one split of the prepared data; memory-mapped, so one digit costs one digit."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder (expected the prepared data: run `dvc repro prepare`, "
                        "or pass --data DIR)")
    return io.load_split(data_dir, split, mmap=True,
                         hint="expected the prepared data: run `dvc repro prepare`, or pass --data DIR")


def check_fits(net: TwoLayerNet, x: np.ndarray, where) -> None:
    if x.shape[1] != net.input_size:
        raise DataError(f"{where}: digits of {x.shape[1]} pixels, but the model expects {net.input_size}")


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(content, None), or (None, why not): info reports a missing or broken file, it does not fail."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "not found"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"not readable JSON ({e})"
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


# --- predict -------------------------------------------------------------------------

def cmd_predict(args) -> int:
    net = load_net(args.model)
    if args.images:
        return predict_files(net, args)
    x, t = load_split(args.data, args.split)
    check_fits(net, x, args.data / f"x_{args.split}.npy")
    if args.errors is not None:
        return predict_errors(net, x, t, args)
    for i in args.index:
        check_index(i, len(t), args)
    rows = np.asarray(x[args.index])
    proba = predict_proba(net, rows)
    results = []
    for i, p in zip(args.index, proba):
        y, label = int(p.argmax()), int(t[i])
        results.append({"split": args.split, "index": i, "label": label, "prediction": y,
                        "correct": y == label, "probabilities": p.tolist()})
    if args.json:
        print_json(results)
        return 0
    for n, r in enumerate(results):
        verdict = "right" if r["correct"] else "WRONG"
        print(("\n" if n else "") + f"{args.split} #{r['index']}: true {r['label']}, "
              f"predicted {r['prediction']} ({verdict})")
        mark = {r["prediction"]: GREEN if r["correct"] else RED}
        print("\n".join(chart(np.array(r["probabilities"]), mark)))
    return 0


def check_index(i: int, n: int, args) -> None:
    if i >= n:
        raise DataError(f"--index {i}: out of range for the {args.split} split of {args.data} "
                        f"(expected 0 to {n - 1})")


def predict_files(net: TwoLayerNet, args) -> int:
    from .images import load_digit  # PIL: imported only by the commands that read pictures

    if net.input_size != 28 * 28:
        raise ModelError(f"{args.model}: expects {net.input_size} inputs, but a picture becomes 28x28 = 784")
    rows = np.stack([load_digit(path) for path in args.images])  # all read before any output
    proba = predict_proba(net, rows)
    results = [{"file": str(path), "prediction": int(p.argmax()), "probabilities": p.tolist()}
               for path, p in zip(args.images, proba)]
    if args.json:
        print_json(results)
        return 0
    for n, r in enumerate(results):
        y = r["prediction"]
        print(("\n" if n else "") + f"{r['file']}: {y} ({100 * r['probabilities'][y]:.1f} %)")
        print("\n".join(chart(np.array(r["probabilities"]), {y: GREEN})))
    return 0


def predict_errors(net: TwoLayerNet, x, t, args) -> int:
    proba = predict_proba(net, x)
    n_wrong = int(np.count_nonzero(proba.argmax(axis=1) != t))
    worst = most_confident_errors(proba, t, args.errors)
    results = [{"split": args.split, "index": int(i), "label": int(t[i]), "prediction": int(proba[i].argmax()),
                "probability": float(proba[i].max()), "probabilities": proba[i].tolist()} for i in worst]
    if args.json:
        print_json(results)
        return 0
    if not results:
        print(f"no mistakes: the net gets all {len(t):,} digits of the {args.split} split right")
        return 0
    print(f"The {len(worst)} most confident mistakes in the {args.split} split "
          f"({n_wrong} of {len(t):,} digits are wrong):")
    print(f"{'index':>7} {'true':>5} {'predicted':>10} {'probability':>12}")
    for r in results:
        print(f"{r['index']:>7} {r['label']:>5} {r['prediction']:>10} {r['probability']:>12.3f}")
    return 0


# --- show ----------------------------------------------------------------------------

def cmd_show(args) -> int:
    if args.out.suffix.lower() != ".png":
        raise DataError(f"--out {args.out}: expected a file name ending in .png")
    if not args.out.parent.is_dir():
        # A typo in a folder name should not quietly create that folder.
        what = "is a file, not a folder" if args.out.parent.exists() else "does not exist"
        raise DataError(f"--out {args.out}: {args.out.parent} {what}")
    title = None
    if args.images:
        from .images import load_digit

        rows = np.stack([load_digit(path) for path in args.images])
        titles = [_short(Path(p).name) for p in args.images]
        what = "as the network sees them" if len(rows) > 1 else "as the network sees it"
    else:
        x, t = load_split(args.data, args.split)
        if args.errors is not None:
            net = load_net(args.model)
            check_fits(net, x, args.data / f"x_{args.split}.npy")
            proba = predict_proba(net, x)
            index = most_confident_errors(proba, t, args.errors)
            titles = [f"#{i}: true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in index]
            title = f"The {len(index)} most confident mistakes ({args.split})"
            what = f"the most confident mistakes of the {args.split} split"
        else:
            for i in args.index:
                check_index(i, len(t), args)
            index = args.index
            titles = [f"{args.split} #{i}\ntrue {t[i]}" for i in index]
            what = f"from the {args.split} split"
        rows = np.asarray(x[list(index)], dtype=np.float32)
    if len(rows) == 0:
        print(f"no digits to show: the {args.split} split has no mistakes")
        return 0

    from . import plots  # matplotlib: imported only by the command that draws

    cols = min(args.cols, len(rows))
    try:
        plots.digit_grid(rows, titles, args.out, cols=cols, title=title, frame=True)
    except OSError as e:
        raise DataError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    n_rows = (len(rows) + cols - 1) // cols
    print(f"wrote {args.out}: {len(rows)} digit{'s' if len(rows) > 1 else ''} "
          f"in a {n_rows}x{cols} grid, {what}")
    if len(rows) == 1:
        print(titles[0].replace("\n", ", "))
        print("\n".join(ascii_digit(rows[0])))
    return 0


def near_relu_kink(net: TwoLayerNet, x: np.ndarray) -> int:
    """How many hidden pre-activations a ±h step of one W1 or b1 entry can push across 0."""
    a1 = x @ net.params["W1"] + net.params["b1"]
    reach = H * np.maximum(np.abs(x).max(axis=1, keepdims=True), 1.0)  # h·x[n, i] at most, or h·1 for b1
    return int(np.count_nonzero(np.abs(a1) < reach))


def gradcheck_batch(data_dir: Path, batch: int, seed: int, width: int, n_classes: int):
    """(x, t, what they are): the book's first few training digits, or random numbers if there are none."""
    x_path = data_dir / "x_train.npy"
    if x_path.exists():
        x, t = load_split(data_dir, "train")
        if batch > len(t):
            raise DataError(f"--batch {batch}: {x_path} holds only {len(t)} digits")
        return (np.array(x[:batch], dtype=np.float64), np.array(t[:batch]),
                f"the first {batch} training digits of {data_dir}")
    rng = np.random.default_rng(seed)
    return (rng.random((batch, width)), rng.integers(0, n_classes, batch),
            f"{batch} RANDOM inputs of {width} values in [0, 1] with random labels "
            f"({x_path} not found; the check needs no real digits)")


def _short(name: str, limit: int = 20) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


# --- gradcheck -----------------------------------------------------------------------

def cmd_gradcheck(args) -> int:
    from .params import load_params  # yaml: imported only by the command that reads params.yaml

    if args.model is not None:
        trained = load_net(args.model)
        x_batch, t_batch, source = gradcheck_batch(args.data, args.batch, 0, trained.input_size, trained.output_size)
        check_fits(trained, x_batch, args.data / "x_train.npy")
        # In float64, as the book's check: float32 rounding (~1e-7) is the size of the threshold.
        net = TwoLayerNet(trained.input_size, trained.hidden_size, trained.output_size, dtype=np.float64, seed=0)
        net.set_params(trained.params)
        about = f"the trained weights of {args.model}"
    else:
        params = load_params(args.params)  # ParamsError: one line naming the bad key
        x_batch, t_batch, source = gradcheck_batch(args.data, args.batch, params.seed, 28 * 28, N_CLASSES)
        net = TwoLayerNet(x_batch.shape[1], params.model.hidden_size, N_CLASSES,
                          weight_init_std=params.model.weight_init_std, seed=params.seed, dtype=np.float64)
        about = (f"fresh weights: weight_init_std {params.model.weight_init_std}, seed {params.seed} "
                 f"(from {args.params})")

    diffs = gradient_check(net, x_batch, t_batch)
    print(f"gradient check of TwoLayerNet {net.input_size}-{net.hidden_size}-{net.output_size} in float64, "
          f"{about}")
    print(f"on {source}")
    print(f"mean |backprop - numerical| per parameter (pass: <= {GRADCHECK_THRESHOLD:g}):")
    for key in ("W1", "b1", "W2", "b2"):
        verdict = "ok" if diffs[key] <= GRADCHECK_THRESHOLD else "TOO LARGE"
        print(f"  {key}: {diffs[key]:.3e}  {verdict}")
    bad = [k for k, d in diffs.items() if not d <= GRADCHECK_THRESHOLD]
    if bad:
        print(f"FAILED: backprop and the numerical gradient differ by more than {GRADCHECK_THRESHOLD:g} "
              f"for {', '.join(bad)}")
        kinks = near_relu_kink(net, x_batch)
        if kinks:
            print(f"note: {kinks} hidden pre-activations lie within a step h = {H:g} of the ReLU kink at 0, "
                  "where the central difference itself is wrong; a smaller --batch avoids them")
        return 1
    print(f"passed: backprop agrees with the numerical gradient within {GRADCHECK_THRESHOLD:g}")
    return 0


# --- info ----------------------------------------------------------------------------

def cmd_info(args) -> int:
    net = load_net(args.model)
    meta = getattr(net, "meta", {}) or {}
    shapes = {k: list(v.shape) for k, v in net.params.items()}
    n_weights = int(sum(v.size for v in net.params.values()))
    train_json, train_why = read_json(args.metrics / "train.json")
    eval_json, eval_why = read_json(args.metrics / "eval.json")
    data_meta, data_why = read_json(args.data / "meta.json")
    trained_with = meta.get("params") if isinstance(meta.get("params"), dict) else None

    if args.json:
        print_json({
            "model": {"path": str(args.model), "bytes": args.model.stat().st_size,
                      "input_size": net.input_size, "hidden_size": net.hidden_size,
                      "output_size": net.output_size, "dtype": net.dtype.name,
                      "weights": n_weights, "shapes": shapes, "params": trained_with,
                      "n_train": meta.get("n_train"), "n_test": meta.get("n_test")},
            "metrics": {"train": train_json, "eval": eval_json},
            "data": data_meta,
        })
        return 0

    shape_text = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in shapes.items())
    print(f"model     {args.model} ({args.model.stat().st_size:,} bytes)")
    print(f"network   TwoLayerNet: {net.input_size} inputs -> {net.hidden_size} hidden (ReLU) "
          f"-> {net.output_size} outputs (softmax)")
    print(f"weights   {n_weights:,} {net.dtype.name} numbers: {shape_text}")
    print(f"trained   {describe_training(trained_with, meta)}")
    print(f"accuracy  {describe_accuracy(args.metrics, train_json, train_why, eval_json, eval_why)}")
    print(f"data      {describe_data(args.data / 'meta.json', data_meta, data_why)}")
    return 0


def _get(d, *keys):
    """d[k1][k2]... or None: the files info reads are written by others and may lack a key."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def describe_training(params: dict | None, meta: dict) -> str:
    """Two lines: the loop (optimizer, iterations, step) and the start (init, seed, data)."""
    if params is None:
        return "(the model file does not record the params it was trained with)"
    train = params.get("train") if isinstance(params.get("train"), dict) else {}
    loop = [f"{k} {train[k]}" for k in ("learning_rate", "batch_size", "gradient", "dtype") if k in train]
    first = f"{train.get('iters', '?')} iterations of {train.get('optimizer', '?')}"
    if loop:
        first += f" ({', '.join(loop)})"
    start = [f"{k} {v}" for k, v in (("weight_init_std", _get(params, "model", "weight_init_std")),
                                     ("seed", params.get("seed"))) if v is not None]
    source, n_train = _get(params, "data", "source"), meta.get("n_train")
    if source:
        start.append(f"on {n_train:,} {source} digits" if isinstance(n_train, int) else f"on {source}")
    return first + ("\n          " + ", ".join(start) if start else "")


def describe_accuracy(folder: Path, train_json, train_why, eval_json, eval_why) -> str:
    lines = []
    acc, n, wrong, loss = (_get(eval_json, k) for k in ("accuracy", "n", "errors", "loss"))
    if isinstance(acc, (int, float)):
        detail = f"{wrong:,} of {n:,} wrong" if isinstance(wrong, int) and isinstance(n, int) else ""
        if isinstance(loss, (int, float)):
            detail += (", " if detail else "") + f"loss {loss:.4f}"
        lines.append(f"test {acc:.4f}" + (f" ({detail})" if detail else "") + f"  [{folder / 'eval.json'}]")
    else:
        lines.append(f"no test accuracy: {folder / 'eval.json'} {eval_why or 'has no accuracy'}")
    tr, te, epochs = (_get(train_json, k) for k in ("train_accuracy", "test_accuracy", "epochs"))
    if isinstance(tr, (int, float)):
        after = f" after {epochs:g} epochs" if isinstance(epochs, (int, float)) else ""
        test = f", test {te:.4f}" if isinstance(te, (int, float)) else ""
        lines.append(f"train {tr:.4f}{test}{after}  [{folder / 'train.json'}]")
    else:
        lines.append(f"no training accuracy: {folder / 'train.json'} {train_why or 'has no train_accuracy'}")
    return "\n          ".join(lines)


def describe_data(path: Path, meta: dict | None, why: str | None) -> str:
    if meta is None:
        return f"unknown: {path} {why}"
    parts = [str(meta.get("source", "unknown source"))]
    counts = meta.get("counts")
    if isinstance(_get(counts, "train"), int) and isinstance(_get(counts, "test"), int):
        parts.append(f"{counts['train']:,} train / {counts['test']:,} test digits")
    shape = meta.get("image_shape")
    if isinstance(shape, list) and shape:
        parts.append("x".join(map(str, shape)) + " pixels")
    if meta.get("split"):
        parts.append(f"split {meta['split']}")
    if meta.get("seed") is not None:
        parts.append(f"seed {meta['seed']}")
    return ", ".join(parts) + f"  [{path}]"


# --- the parser ----------------------------------------------------------------------

def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a digit's index (0, 1, 2, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an index >= 0, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _command(sub, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, epilog=example,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _model_option(p) -> None:
    p.add_argument("--model", type=Path, default=MODEL, metavar="PATH",
                   help=f"the trained model (default: {MODEL})")


def _data_options(p) -> None:
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split (default: test)")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR",
                   help=f"the prepared data: x_test.npy, t_test.npy, ... (default: {PREPARED})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerodl", description=__doc__.split("\n\n")[0],
        epilog="Run `zerodl COMMAND --help` for each command's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"zerodl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "predict", "classify pictures of digits, or digits of the prepared data", """\
A picture is made to look like an MNIST digit first (grey, ink bright on black,
cropped, longer side 20 px, centred by its centre of mass in 28x28): any size,
PNG or JPEG, dark ink on light paper or the other way round.

examples:
  zerodl predict my_three.png photo.jpg
  zerodl predict --json my_three.png         # for scripts: file, prediction, probabilities
  zerodl predict --index 42                  # test digit 42, with its true label
  zerodl predict --errors 10 --split train   # the 10 most confident mistakes on the training set
""")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="PNG or JPEG pictures of one digit each")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--index", type=_index, nargs="+", metavar="N", help="digits of the prepared data by index")
    how.add_argument("--errors", type=_count, metavar="K", help="list the K most confident mistakes of the split")
    _data_options(p)
    _model_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of bar charts")
    p.set_defaults(func=cmd_predict, parser=p)

    p = _command(sub, "show", "draw digits to a PNG: prepared digits, mistakes, or pictures as the net sees them",
                 f"""\
Writes a grid of 28x28 digits to --out (default {SHOW_OUT}, replaced if it exists).
A single digit is also drawn in the terminal as text.

examples:
  zerodl show --index 0 1 2 3 4 --out first.png
  zerodl show --errors 25 --out mistakes.png
  zerodl show my_three.png                   # what `zerodl predict my_three.png` feeds the net
""")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="PNG or JPEG pictures, converted as predict does")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--index", type=_index, nargs="+", metavar="N", help="digits of the prepared data by index")
    how.add_argument("--errors", type=_count, metavar="K", help="the K most confident mistakes (needs the model)")
    p.add_argument("--out", type=Path, default=SHOW_OUT, metavar="PATH", help=f"the PNG to write (default: {SHOW_OUT})")
    p.add_argument("--cols", type=_count, default=5, help="digits per row (default: 5)")
    _data_options(p)
    _model_option(p)
    p.set_defaults(func=cmd_show, parser=p)

    p = _command(sub, "gradcheck", "compare backprop with the numerical gradient (the book's chapter-5 check)",
                 f"""\
Builds a TwoLayerNet in float64 from params.yaml (model.hidden_size,
model.weight_init_std, seed), takes the first --batch training digits of the
prepared data (random inputs if there is none), and prints the mean absolute
difference between net.gradient (backprop) and net.numerical_gradient for W1,
b1, W2 and b2. Exit status 0 if all four are <= {GRADCHECK_THRESHOLD:g}, else 1.

examples:
  zerodl gradcheck
  zerodl gradcheck --batch 10 --params experiments/params.yaml
  zerodl gradcheck --model data/model/model.npz   # the trained weights instead
""")
    p.add_argument("--params", type=Path, default=PARAMS, metavar="PATH", help=f"the params file (default: {PARAMS})")
    p.add_argument("--batch", type=_count, default=3, help="how many digits (default: 3, as in the book)")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR", help=f"the prepared data (default: {PREPARED})")
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="check a trained model's weights instead of fresh ones from params.yaml")
    p.set_defaults(func=cmd_gradcheck)

    p = _command(sub, "info", "describe the model: sizes, weights, training params, accuracy, data", f"""\
Reads {MODEL}, {METRICS}/train.json and eval.json, and {PREPARED}/meta.json;
a missing metrics or data file is reported, not an error.

examples:
  zerodl info
  zerodl info --json | python -m json.tool
""")
    _model_option(p)
    p.add_argument("--metrics", type=Path, default=METRICS, metavar="DIR", help=f"train.json, eval.json (default: {METRICS})")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR", help=f"meta.json (default: {PREPARED})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_info)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("predict", "show"):
        chosen = sum([bool(args.images), args.index is not None, args.errors is not None])
        if chosen != 1:
            args.parser.error("expected IMAGE files, or --index N, or --errors K (exactly one of them)")
    return args


def _main(argv=None) -> int:
    try:
        try:
            args = parse_args(argv)
        finally:
            sys.stdout.flush()  # --help's text, before argparse exits
        # One BLAS thread: the same bits as the pipeline's default, whatever the environment says.
        with threadpool_limits(limits=1, user_api="blas"):
            code = args.func(args)
        sys.stdout.flush()  # now, not at interpreter exit, so a closed pipe is caught below
        return code
    except BrokenPipeError:
        # The reader went away (`zerodl info | head -1`): stop quietly, exit 1 as for any
        # unfinished output. Point stdout at /dev/null so Python's own flush at exit cannot
        # fail a second time and print "Exception ignored".
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


def main(argv=None) -> None:
    run(lambda: _main(argv), prog="zerodl")


if __name__ == "__main__":
    main()
