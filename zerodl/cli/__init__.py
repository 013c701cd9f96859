"""The `zerodl` command: ask the trained TwoLayerNet about digits, check its gradient, describe it.

    zerodl predict my_digit.png       what digit is this picture?
    zerodl predict --index 7          a digit of the prepared test set, with its true label
    zerodl predict --errors 10        the net's most confident mistakes
    zerodl show --index 0 1 2         draw digits to a PNG (or what the net sees of a picture)
    zerodl gradcheck                  backprop against the numerical gradient (chapter 5)
    zerodl info                       what the model is, how well it does, what data it came from
    zerodl descend --lr 0.1           the book's gradient descent on x0² + x1², and a PNG of its path

Every command reads the files the pipeline writes (data/model/model.npz,
data/prepared/*.npy, data/live/*/metrics.json) relative to the current folder.
Mistakes in the input end in one line on stderr and a non-zero exit.

Each command is one module with `add_parser(sub)` (its help, example and options; returns
its parser) and `run(args)` (returns the exit code). A new command is a new module and
its name in COMMANDS. What the commands share is in common.py.
"""
from __future__ import annotations

from ..entry import run  # first, even before argparse: from here on, Ctrl-C ends in one line

import argparse
import os
import sys

from threadpoolctl import threadpool_limits

from .. import __version__
from . import descend, gradcheck, info, predict, show

COMMANDS = (predict, show, gradcheck, info, descend)  # in the order `zerodl --help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerodl", description=__doc__.split("\n\n")[0],
        epilog="Run `zerodl COMMAND --help` for each command's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"zerodl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = command.add_parser(sub)
        p.set_defaults(func=command.run, parser=p)  # parser: for usage errors found after parsing
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


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
