"""A one-line progress bar for a terminal; silent when the stream is not one.

Thirty lines instead of a dependency: the stages need a bar for training and
downloads, nothing more.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 enabled: bool | None = None, min_interval: float = 0.1):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.min_interval = min_interval
        self._last = float("-inf")  # nothing drawn yet: the first update draws
        self._start = time.perf_counter()

    def due(self, done: int) -> bool:
        """Whether update(done) would draw now: lets a caller skip formatting its info."""
        return self.enabled and (done >= self.total or time.perf_counter() - self._last >= self.min_interval)

    def update(self, done: int, info: str = "", force: bool = False) -> None:
        if not self.enabled or not (force or self.due(done)):
            return
        now = time.perf_counter()
        self._last = now
        frac = min(done / self.total, 1.0)
        width = 24
        filled = int(frac * width)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = now - self._start
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {elapsed:5.1f}s {info}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
