"""dvclive (DVC's logger) for the stages: how each opens its folder, and the train stage's epochs.

Only the stage scripts import this module; the library proper knows nothing of DVC. Each stage
writes its dvclive folder in place as it goes (zerodl.atomic.live_dir puts the old one back if
it fails), so a running experiment can be followed by `dvc exp show` and DVC's VS Code extension.
"""
from __future__ import annotations

import atexit
import os
import time

from .atomic import naming
from .errors import ZerodlError

SYNC_SECONDS = 1.0  # the rows, metrics.json and the step DVC's VS Code extension watches: at most this often
SYNC_SHARE = 0.01   # and never more than this share of the time


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
    from scmrepo.exceptions import SCMError

    try:
        return dvclive.Live(str(folder), dvcyaml=False, save_dvc_exp=False)
    except SCMError as e:  # dvclive reads HEAD before it checks there is one (3.49)
        if "empty git repo" in str(e).lower():
            raise ZerodlError(f"{folder}: dvclive needs the project's git repository to have a commit, and it "
                              "has none yet; commit the project (git add -A && git commit -m project) and "
                              "run again") from None
        raise ZerodlError(f"{folder}: dvclive could not read the project's git repository: {e}") from None


class EpochLog:
    """Each epoch's record to dvclive as a step: a row of plots/custom/<name>.json (`log_plot`,
    with its step), and the latest values and step in the summary (`log_metric(plot=False)`).

    `fields` maps a column's name to the record's field. Per epoch the loop only appends the
    row; dvclive writes at a sync: once SYNC_SECONDS have passed, and never so often that
    syncing takes more than SYNC_SHARE of the time (the file is written whole, so a sync costs
    more as the epochs add up), then at `close`. One `log_metric` row per value and epoch
    instead cost the default run's loop about 7 % (benchmarks/dvclive_cost.py). A write that
    fails names the folder (a full disk names no file).
    """

    def __init__(self, live, fields: dict[str, str], name: str = "epochs"):
        self.live, self.fields, self.name, self.rows = live, fields, name, []
        self._next = time.monotonic() + SYNC_SECONDS

    @property
    def steps(self) -> int:
        return len(self.rows)

    def on_epoch(self, record) -> None:
        self.rows.append({"step": len(self.rows) + 1,
                          **{column: float(getattr(record, field)) for column, field in self.fields.items()}})
        if time.monotonic() >= self._next:
            self.sync()

    def sync(self) -> None:
        """Write the rows so far, the latest values and the step (metrics.json and dvclive's step
        signal, which DVC's VS Code extension watches)."""
        start = time.perf_counter()
        with naming(self.live.dir):
            self.live.step = self.steps
            for column in self.fields:
                self.live.log_metric(column, self.rows[-1][column], plot=False)
            self.live.log_plot(self.name, self.rows, x="step", y=list(self.fields), template="linear")
            self.live.next_step()
        self._next = time.monotonic() + max(SYNC_SECONDS, (time.perf_counter() - start) / SYNC_SHARE)

    def close(self) -> None:
        """The last sync: every row is written."""
        if self.rows:
            self.sync()
