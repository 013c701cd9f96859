"""`zerodl show`: draw digits to a PNG, the prepared ones or pictures as the net sees them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..metrics import most_confident_errors, predict_proba
from .common import (add_command, ascii_digit, check_digits, check_fits, check_index, check_one_source,
                     check_png_out, count_arg, data_options, digit_names, digit_options, load_net, load_split,
                     model_option)

SHOW_OUT = Path("digits.png")
MAX_DIGITS = 100  # a 10x10 grid takes matplotlib ~10 s and 130 MB; 400 took 30 s and 290 MB


def add_parser(sub):
    p = add_command(sub, "show", "draw digits to a PNG: prepared digits, mistakes, or pictures as the net sees them",
                    f"""\
Writes a grid of 28x28 digits (at most {MAX_DIGITS}) to --out (default {SHOW_OUT}, replaced if it exists).
A single digit is also drawn in the terminal as text.

examples:
  zerodl show --index 0 1 2 3 4 --out first.png
  zerodl show --errors 25 --out mistakes.png
  zerodl show my_three.png                   # what `zerodl predict my_three.png` feeds the net
""")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="PNG or JPEG pictures, converted as predict does")
    digit_options(p, errors_help="the K most confident mistakes (needs the model)")
    p.add_argument("--out", type=Path, default=SHOW_OUT, metavar="PATH", help=f"the PNG to write (default: {SHOW_OUT})")
    p.add_argument("--cols", type=count_arg, default=5, help="digits per row (default: 5)")
    data_options(p)
    model_option(p)
    return p


def run(args) -> int:
    check_one_source(args)
    asked = len(args.images) or args.errors or len(args.index)
    if asked > MAX_DIGITS:
        args.parser.error(f"{asked} digits asked for: show draws at most {MAX_DIGITS} in one PNG; "
                          "ask for fewer, or run it again for the rest")
    check_png_out(args.out)
    title = None
    if args.images:
        from ..images import load_digit  # PIL: imported only by the commands that read pictures

        rows = np.stack([load_digit(path) for path in args.images])
        titles = [_short(Path(p).name) for p in args.images]
        what = "as the network sees them" if len(rows) > 1 else "as the network sees it"
    else:
        x, t = load_split(args.data, args.split)
        if args.errors is not None:
            net = load_net(args.model)
            check_fits(net, x, args.data / f"x_{args.split}.npy")
            check_digits(x, args)
            proba = predict_proba(net, x, model=args.model, name=digit_names(args))
            index = most_confident_errors(proba, t, args.errors)
            titles = [f"#{i}: true {t[i]} → {proba[i].argmax()}\np = {proba[i].max():.2f}" for i in index]
            title = f"The {len(index)} most confident mistakes ({args.split})"
            what = f"the most confident mistakes of the {args.split} split"
        else:
            for i in args.index:
                check_index(i, len(t), args)
            check_digits(x, args, args.index)
            index = args.index
            titles = [f"{args.split} #{i}\ntrue {t[i]}" for i in index]
            what = f"from the {args.split} split"
        rows = np.asarray(x[list(index)], dtype=np.float32)
    if len(rows) == 0:
        print(f"no digits to show: the {args.split} split has no mistakes")
        return 0

    from .. import plots  # matplotlib: imported only by the command that draws

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


def _short(name: str, limit: int = 20) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
