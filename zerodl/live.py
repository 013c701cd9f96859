"""dvclive (DVC's logger) for the stages: how each opens its folder, and the train stage's epochs.

Only the stage scripts import this module; the library proper knows nothing of DVC. Each stage
writes its dvclive folder in place as it goes (zerodl.atomic.live_dir keeps the old one aside),
so a running experiment can be followed by `dvc exp show` and DVC's VS Code extension.
"""
from __future__ import annotations

import atexit
import os
import queue
import threading
import time

SYNC_SECONDS = 1.0  # metrics.json and the step DVC's VS Code extension watches: at most this often


def open_live(folder):
    """dvclive.Live on `folder`, as every stage uses it: no dvc.yaml of its own (dvc.yaml declares
    each plot once), no `dvc exp save` (DVC runs the stage), no report. Imported here: ~0.3 s,
    so a stage pays it only once its params and inputs are known to be good."""
    # Never to DVC Studio, even outside the project (whose .dvc/config says studio.offline) with
    # a token in the environment; DVC_STUDIO_OFFLINE=false is a user's choice, and kept.
    os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")
    import colorama
    import dvclive

    # Importing dvc runs colorama.init(): on a terminal it would write an ANSI reset after the
    # stage's last line at exit, on a pipe it wraps stdout and stderr. The stages print plain lines.
    colorama.deinit()
    atexit.unregister(colorama.initialise.reset_all)
    return dvclive.Live(str(folder), dvcyaml=False, save_dvc_exp=False)


class EpochLog:
    """Each epoch's record to dvclive as a step, from a thread of its own.

    `metrics` maps a dvclive metric name to the record's field. dvclive appends one row per
    metric per call (0.6 ms an epoch of 5 metrics, measured here) and re-reads its whole
    history on each sync (8 ms at 250 steps, growing): in the loop's thread that is 7 % or
    more of an 8 ms epoch. The loop only queues the record; this thread writes the rows and
    syncs at most every SYNC_SECONDS. Step k is the k-th record. The thread starts with the
    first record, after the train stage forked its helper process.
    """

    def __init__(self, live, metrics: dict[str, str]):
        self.live, self.metrics, self.steps, self.error = live, metrics, 0, None
        self._queue = queue.SimpleQueue()
        self._thread = None

    def on_epoch(self, record) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dvclive", daemon=True)
            self._thread.start()
        self._queue.put(record)

    def close(self) -> None:
        """Wait until every queued record is logged; what logging raised is kept in `error`."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        synced = time.monotonic()
        while (record := self._queue.get()) is not None:
            if self.error is not None:
                continue  # drain: nothing more is written after a failed write
            try:
                self.steps += 1
                self.live.step = self.steps
                for name, field in self.metrics.items():
                    self.live.log_metric(name, float(getattr(record, field)))
                if self._queue.empty() and time.monotonic() - synced >= SYNC_SECONDS:
                    self.live.next_step()
                    synced = time.monotonic()
            except Exception as e:  # a full disk, say: the stage raises it once training is over
                self.error = e
