"""Progress for the stages, built on tqdm: a bar on a terminal, sparse plain lines elsewhere.

On a terminal, tqdm's bar (rate, ETA) redrawn at most every 0.1 s. On a pipe or a
log file (`dvc exp run --queue`, `2> log`), a complete line each time another 10 %
is done and at least LINE_SECONDS have passed since the last line, plus one when
the work is done: no "\\r", no ANSI codes. A bar closed before its end (an error,
Ctrl-C) writes no last plain line, so the error that follows is the last line.

The library only calls the callbacks it is handed; the stages make the bars.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm

LINE_SECONDS = 1.0  # off a terminal: at most one line a second, and one per 10 % of the total


class ProgressBar(tqdm):
    """tqdm on a terminal, plain lines otherwise (terminal=None: whether `file`, default
    stderr, is one); `status()` is the text after the numbers, formatted only when drawn."""

    monitor_interval = 0  # no monitor thread: the train stage forks a helper process

    def __init__(self, total: int | None, desc: str, *, file=None, terminal: bool | None = None, **kw):
        self.terminal = _isatty(file) if terminal is None else terminal
        self._printed = None  # (n, total) of the last plain line: none twice
        if self.terminal:
            # Sized once, as tqdm does; a terminal reporting 0 columns (a bare pty) made it draw nothing.
            kw.update(ncols=_width(file) - 1, nrows=24)  # rows only matter to stacked bars
        else:
            # tqdm draws once both are reached: that is the plain lines' pace.
            kw.update(mininterval=LINE_SECONDS, miniters=total / 10 if total else None)
        super().__init__(total=total, desc=desc, file=file, disable=False, **kw)

    def status(self) -> str:
        return ""

    @property
    def format_dict(self):
        d = super().format_dict
        d["postfix"] = self.status() or None
        return d

    def display(self, msg=None, pos=None):
        if self.terminal:
            return super().display(msg, pos)
        if msg is not None or not self.n or self._printed == (self.n, self.total):
            return False  # a clearing, the start, or the line just written
        self._printed = (self.n, self.total)
        self.fp.write(_plain_line(self.format_dict) + "\n")
        self.fp.flush()
        return True

    def close(self):
        if not (self.terminal or self.disable):
            if self.total is not None and self.n >= self.total:
                self.display()  # the last line
            self.leave = False  # tqdm's close then only clears the bar, which display() skips
        super().close()


class TrainingBar(ProgressBar):
    """The train stage's bar: hand `on_iteration` and `on_epoch` to zerodl.train.train.
    on_iteration only stores the loss and counts; tqdm decides whether to draw."""

    def __init__(self, iters: int, *, file=None, terminal: bool | None = None):
        self.loss = None
        self.record = None
        super().__init__(iters, "train", file=file, terminal=terminal, unit="it")

    def on_iteration(self, i: int, loss: float) -> None:
        self.loss = loss
        self.update(i - self.n)

    def on_epoch(self, record) -> None:
        self.record = record

    def status(self) -> str:
        parts = [] if self.loss is None else [f"loss {self.loss:.4f}"]
        if self.record is not None:
            parts.append(f"train acc {self.record.train_accuracy:.4f}, test acc {self.record.test_accuracy:.4f}")
        return ", ".join(parts)


class DownloadBars:
    """The `progress(label, done, total)` callback of zerodl.data: one byte-counting bar per
    file, a new one when the label changes or the count starts over (the next mirror).
    Use it in a `with` block: a download that fails still ends its bar's line."""

    def __init__(self, *, file=None, terminal: bool | None = None):
        self.file, self.terminal = file, terminal
        self.bar: ProgressBar | None = None

    def __call__(self, label: str, done: int, total: int | None) -> None:
        bar = self.bar
        if bar is None or bar.desc != label or done == 0 or done < bar.n:
            self.close()
            bar = self.bar = ProgressBar(total, label, file=self.file, terminal=self.terminal,
                                         unit="B", unit_scale=True)
        if total is not None and bar.total is None:
            bar.total = total  # a length not announced, known at the end
        bar.update(done - bar.n)
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _plain_line(d: dict) -> str:
    """One log line from tqdm's format_dict, e.g.
    `train: 2500/10000 it (25%) 0.6s elapsed, ETA 1.8s, 4200 it/s, loss 0.1234`."""
    n, total, elapsed, unit, scaled = d["n"], d["total"], d["elapsed"], d["unit"], d["unit_scale"]

    def num(x):
        return tqdm.format_sizeof(x, unit, d["unit_divisor"]) if scaled else f"{x:.0f}"

    count = f"{num(n)}/{num(total)}" if total else num(n)
    if not scaled:
        count += f" {unit}"
    if total:
        count += f" ({100 * n / total:.0f}%)"
    rate = n / elapsed if elapsed > 0 else None  # the average: a log line has no use for a smoothed one
    if total and n >= total:
        when = f"in {_seconds(elapsed)}"
    elif total and rate:
        when = f"{_seconds(elapsed)} elapsed, ETA {_seconds((total - n) / rate)}"
    else:
        when = f"{_seconds(elapsed)} elapsed"
    parts = [f"{d['prefix']}: {count} {when}"]
    if rate:
        parts.append(f"{num(rate)}/s" if scaled else f"{rate:.0f} {unit}/s")
    if d["postfix"]:
        parts.append(d["postfix"])
    return ", ".join(parts)


def _seconds(t: float) -> str:
    return f"{t:.1f}s" if t < 60 else tqdm.format_interval(t)


def _width(stream) -> int:
    try:
        return os.get_terminal_size((stream or sys.stderr).fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _isatty(stream) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
