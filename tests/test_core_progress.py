"""zerodl.progress.ProgressBar: draws on a terminal, at most every min_interval, always at the end."""
from __future__ import annotations

import io

from zerodl.progress import ProgressBar


def test_due_paces_the_bar_and_update_follows_it():
    out = io.StringIO()
    bar = ProgressBar(10, label="train", stream=out, enabled=True, min_interval=3600)
    assert bar.due(1)  # nothing drawn yet
    bar.update(1, "first")
    assert not bar.due(2)  # within the interval: the caller can skip formatting
    bar.update(2, "skipped")
    assert bar.due(10)  # the last step is always drawn
    bar.update(10, "last")
    bar.update(3, "forced", force=True)
    text = out.getvalue()
    assert "first" in text and "last" in text and "forced" in text and "skipped" not in text


def test_off_the_terminal_nothing_is_due_or_drawn():
    out = io.StringIO()  # not a tty
    bar = ProgressBar(5, stream=out)
    assert not bar.enabled and not bar.due(5)
    bar.update(5, "x", force=True)
    bar.close()
    assert out.getvalue() == ""
