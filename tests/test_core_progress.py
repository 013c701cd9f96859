"""zerodl.progress: tqdm's bar on a terminal; off one, sparse complete lines and a last one when done."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

import zerodl.progress
from zerodl.progress import DownloadBars, ProgressBar, TrainingBar

ANSI = re.compile(r"\x1b\[")
EPOCH = SimpleNamespace(train_accuracy=0.91234, test_accuracy=0.8975)


class Tty(io.StringIO):
    def isatty(self):
        return True


def plain_lines(text: str) -> list[str]:
    """The lines of a log: each complete, no carriage return, no escape codes."""
    assert text.endswith("\n") and "\r" not in text and not ANSI.search(text), repr(text)
    return text.splitlines()


def run_training(bar: TrainingBar, iters: int, stop: int | None = None) -> None:
    for i in range(1, (stop or iters) + 1):
        bar.on_iteration(i, 1.0 / i)
        if i == iters // 2:
            bar.on_epoch(EPOCH)
    bar.close()


def test_a_log_gets_a_line_per_tenth_then_the_last(monkeypatch):
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 0)  # only the 10 % steps pace the lines
    out = io.StringIO()  # not a terminal: a pipe or a log file
    run_training(TrainingBar(100, file=out), 100)
    lines = plain_lines(out.getvalue())
    assert [line.split(" it ")[0] for line in lines] == [f"train: {n}/100" for n in range(10, 101, 10)]
    assert lines[0].startswith("train: 10/100 it (10%) ") and ", ETA " in lines[0]
    assert lines[0].endswith(", loss 0.1000")  # no accuracy before the first epoch's
    assert lines[-1].startswith("train: 100/100 it (100%) in ")
    assert lines[-1].endswith(", loss 0.0100, train acc 0.9123, test acc 0.8975")


def test_a_log_gets_no_line_sooner_than_line_seconds(monkeypatch):
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 3600)
    out = io.StringIO()
    run_training(TrainingBar(1000, file=out), 1000)
    [line] = plain_lines(out.getvalue())  # all of it within the hour: the last line alone
    assert re.fullmatch(r"train: 1000/1000 it \(100%\) in \d+\.\ds, \d+ it/s, loss 0\.0010, "
                        r"train acc 0\.9123, test acc 0\.8975", line), line


def test_a_log_of_a_run_stopped_early_has_no_last_line(monkeypatch):
    # An error or Ctrl-C then prints the last line itself, as the first thing on its own line.
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 0)
    out = io.StringIO()
    run_training(TrainingBar(100, file=out), 100, stop=35)
    assert [line.split(" it ")[0] for line in plain_lines(out.getvalue())] == ["train: 10/100", "train: 20/100",
                                                                               "train: 30/100"]
    out = io.StringIO()
    run_training(TrainingBar(100, file=out), 100, stop=3)
    assert out.getvalue() == ""


def test_the_status_is_formatted_only_when_a_line_is_drawn(monkeypatch):
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 3600)

    class Loss(float):
        formatted = 0

        def __format__(self, spec):
            Loss.formatted += 1
            return super().__format__(spec)

    bar = TrainingBar(10_000, file=io.StringIO())
    for i in range(1, 10_001):
        bar.on_iteration(i, Loss(0.5))
    assert Loss.formatted == 0
    bar.close()
    assert Loss.formatted == 1


def test_a_terminal_gets_the_tqdm_bar_and_a_line_end_even_when_stopped_early(monkeypatch):
    screen = Tty()  # reports no width: 80 columns, tqdm trims the end rather than wrap the line
    run_training(TrainingBar(100, file=screen), 100)
    text = screen.getvalue()
    assert text.startswith("\rtrain:   0%|") and text.endswith("\n") and text.count("\n") == 1
    assert max(len(s.rstrip("\n")) for s in text.split("\r")) == 79
    monkeypatch.setattr(zerodl.progress, "_width", lambda stream: 200)
    screen = Tty()
    run_training(TrainingBar(100, file=screen), 100)
    last = screen.getvalue().rsplit("\r", 1)[1]
    assert last.startswith("train: 100%|") and "| 100/100 [" in last and "it/s" in last
    assert last.endswith(", loss 0.0100, train acc 0.9123, test acc 0.8975]\n"), last
    screen = Tty()
    run_training(TrainingBar(100, file=screen), 100, stop=7)
    assert screen.getvalue().endswith("\n")  # what follows starts on a line of its own
    assert "  7%|" in screen.getvalue().rsplit("\r", 1)[1]


@pytest.mark.parametrize("terminal", [True, False])
def test_download_bars_count_bytes_one_bar_per_file(monkeypatch, terminal):
    monkeypatch.setattr(zerodl.progress, "LINE_SECONDS", 0)
    out = io.StringIO()
    with DownloadBars(file=out, terminal=terminal) as progress:
        for done in range(1_000_000, 8_000_001, 1_000_000):
            progress("a.gz", done, 8_000_000)
        progress("b.gz", 300, None)      # a length not announced...
        progress("b.gz", 600, None)
        progress("b.gz", 600, 600)       # ...is closed once known
        progress("c.gz", 500, 1000)      # a mirror failing midway,
        progress("c.gz", 100, 1000)      # the next one starts over
        progress("c.gz", 1000, 1000)
        progress("d.gz", 10, 1000)       # a failure the `with` ends
    text = out.getvalue()
    if terminal:
        bars = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
        assert any(s.startswith("a.gz: 100%|") and "8.00M/8.00M [" in s and "B/s" in s for s in bars), bars
        assert "b.gz: 0.00B [" in bars[2] and bars[3].startswith("b.gz: 100%|")
        assert text.endswith("\n")  # each bar ends its line, d's too:
        ended = [line.rsplit("\r", 1)[1] for line in text.split("\n")[:-1]]
        assert [line.split(":")[0] for line in ended] == ["a.gz", "b.gz", "c.gz", "c.gz", "d.gz"]
        assert ended[2].startswith("c.gz:  50%|") and ended[4].startswith("d.gz:   1%|")
    else:
        lines = plain_lines(text)
        a = [line for line in lines if line.startswith("a.gz: ")]
        assert a[0].startswith("a.gz: 1.00MB/8.00MB (12%) ") and a[-1].startswith("a.gz: 8.00MB/8.00MB (100%) in ")
        assert re.search(r", [\d.]+[kMGT]?B/s$", a[-1]), a[-1]
        assert [line.split(" ")[1] for line in lines if not line.startswith("a.gz")] == [
            "300B", "600B", "600B/600B", "500B/1.00kB", "100B/1.00kB", "1.00kB/1.00kB"]  # none for d.gz


def test_the_terminal_is_detected():
    assert TrainingBar(5, file=Tty()).terminal
    assert not ProgressBar(5, "x", file=io.StringIO()).terminal
