"""`zerodl predict`: what digit is this picture, or this digit of the prepared data?"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metrics import most_confident_errors, predict_proba
from ..net import TwoLayerNet
from .common import (GREEN, RED, add_command, chart, check_digits, check_fits, check_index, check_one_source,
                     data_options, digit_names, digit_options, load_net, load_split, model_option, print_json)


def add_parser(sub):
    p = add_command(sub, "predict", "classify pictures of digits, or digits of the prepared data", """\
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
    digit_options(p, errors_help="list the K most confident mistakes of the split")
    data_options(p)
    model_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of bar charts")
    return p


def run(args) -> int:
    check_one_source(args)
    net = load_net(args.model)
    if args.images:
        return predict_files(net, args)
    x, t = load_split(args.data, args.split)
    check_fits(net, x, args.data / f"x_{args.split}.npy")
    if args.errors is not None:
        return predict_errors(net, x, t, args)
    for i in args.index:
        check_index(i, len(t), args)
    check_digits(x, args, args.index)
    rows = np.asarray(x[args.index])
    proba = predict_proba(net, rows, model=args.model, name=digit_names(args, args.index))
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


def predict_files(net: TwoLayerNet, args) -> int:
    from ..images import load_digit  # PIL: imported only by the commands that read pictures

    if net.input_size != 28 * 28:
        raise ModelError(f"{args.model}: expects {net.input_size} inputs, but a picture becomes 28x28 = 784")
    rows = np.stack([load_digit(path) for path in args.images])  # all read before any output
    proba = predict_proba(net, rows, model=args.model, name=lambda i: str(args.images[i]))
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
    check_digits(x, args)
    proba = predict_proba(net, x, model=args.model, name=digit_names(args))
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
