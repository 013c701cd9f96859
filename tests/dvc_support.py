"""Shared by the tests that run real DVC in temporary git repos (test_pipeline, test_dvc_sharing):
the project copied into a repo, commands on the project's .venv, params, experiments, the queue,
and what DVC's offline plots page drew in headless Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMALL = {"train": {"iters": 200, "batch_size": 50}, "model": {"hidden_size": 20}}
COPY = ["dvc.yaml", "params.yaml", "stages", "zerodl", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore"]
# DVC's colours for the 1st, 2nd, 3rd... revision on a plot (dvc_render's OPTIONAL_ANCHOR_RANGES).
REV_COLOURS = ["#945dd6", "#13adc7", "#f46837", "#48bb78", "#4299e1", "#ed8936", "#f56565"]


def run(repo, *args, check=True, timeout=300, env=None):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    p = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def git(repo, *args):
    return run(repo, "git", "-c", "user.email=test@example.com", "-c", "user.name=test", *args)


def set_params(repo: Path, changes: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def make_repo(repo: Path, changes: dict = SMALL) -> Path:
    """The project's pipeline in a new git repo at `repo`, with `changes` to params.yaml, committed."""
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    set_params(repo, changes)
    run(repo, "git", "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    return repo


def link_node_modules(repo: Path) -> None:
    """The page's vega, vega-lite and vega-embed: the project's node_modules (`make setup` runs npm ci)."""
    src = ROOT / "node_modules"
    missing = [p for p in ("vega", "vega-lite", "vega-embed") if not (src / p / "package.json").exists()]
    assert not missing, f"{src}: no {', '.join(missing)}; run `make setup` (npm ci)"
    (repo / "node_modules").symlink_to(src)


# DVC's queue marks a task active before it has made the run's workspace
# (.dvc/tmp/exps/tmp*/) and written its executor info (.dvc/tmp/exps/run/<rev>/<rev>.run,
# rewritten in place at each change of state), and `dvc exp show` reads both unguarded
# (celery.py, collect_active_data). Polled once a second through a run's start, it failed in 3 of
# 4 starts here, about 1.7 s in, with one of these messages.
_STARTING = re.compile(r"(No such file or directory: '|unable to read: ')[^']*\.dvc/tmp/exps/run/[^']*\.run'"
                       r"|directory '[^']*\.dvc/tmp/exps/tmp[^/']*/\.dvc' does not exist")


def exp_rows(repo, starting_retries: int = 0) -> list[dict]:
    """Every experiment `dvc exp show --json` lists: name, params, eval and train metrics, state
    (queued, running, success, failed; None for one that is simply in git), error. A poller of a
    run that may be starting passes `starting_retries`: DVC's start-up race above is retried, no
    other failure is."""
    for attempt in range(starting_retries + 1):
        p = run(repo, "dvc", "exp", "show", "--json", check=False)
        if p.returncode == 0 or attempt == starting_retries or not _STARTING.search(p.stderr):
            break
        time.sleep(0.5)
    if p.returncode != 0:
        raise AssertionError(f"dvc exp show --json exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    rows = json.loads(p.stdout)
    out = []
    for commit in rows:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                metrics = data.get("metrics", {})
                out.append({"name": rev.get("name"),
                            "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                            "metrics": metrics.get("data/live/eval/metrics.json", {}).get("data", {}),
                            "train": metrics.get("data/live/train/metrics.json", {}).get("data", {}),
                            "state": (exp.get("executor") or {}).get("state"), "error": rev.get("error")})
    return out


def start_queue(repo, jobs: int) -> None:
    """`dvc queue start -j jobs`, returning at once: its workers would hold a captured stdout open
    until the queue is empty, so they get none."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env, check=True, timeout=120,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_queue(repo, timeout: float = 240) -> str:
    """`dvc queue status` once nothing is queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        status = run(repo, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"queue did not finish:\n{status}")
        time.sleep(2)


# Per plot of DVC's page (its div's id): for a vega plot, how many pixels of its canvas have
# each revision's colour and how many any strong colour (marks; axes and text are grey); for
# an image plot, the natural width of each image (0: not loaded).
_DRAWN = """(colours) => {
  const rgb = colours.map(c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16)));
  const out = {};
  for (const div of document.querySelectorAll('body > div[id]')) {
    const canvas = div.querySelector('canvas');
    if (canvas) {
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const counts = rgb.map(() => 0);
      let coloured = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] < 200) continue;
        if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) coloured++;
        rgb.forEach((c, k) => { if (Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]) < 40) counts[k]++; });
      }
      out[div.id.trim()] = {revs: counts, coloured};
    } else {
      out[div.id.trim()] = {images: [...div.querySelectorAll('img')].map(im => im.complete ? im.naturalWidth : 0)};
    }
  }
  return out;
}"""


def drawn(page, n_vega: int, timeout_ms: int = 30000) -> dict:
    """What the plots page drew, once its `n_vega` vega plots each have a canvas (or the timeout passed)."""
    from playwright.sync_api import TimeoutError as PageTimeout

    try:
        page.wait_for_function(f"document.querySelectorAll('body > div[id] canvas').length >= {n_vega}",
                               timeout=timeout_ms)
        page.wait_for_timeout(300)  # the canvases are drawn in the frame after they are added
    except PageTimeout:  # a page that draws nothing: what it has is the answer
        pass
    return page.evaluate(_DRAWN, REV_COLOURS)
