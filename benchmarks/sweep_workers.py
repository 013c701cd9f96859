"""How the wall time of a queued sweep scales with DVC's queue workers on this machine.

In a temporary git repo made from the project (the committed params.yaml: the default
run), after one `dvc repro`: queue a sweep of learning rates, `dvc queue start -j N`,
and time from the start until the last experiment is done, for each N. The same sweep
(the same experiments, removed in between) for every N.

    .venv/bin/python benchmarks/sweep_workers.py [--rates 0.01,0.05,0.2,0.5] [--jobs 1,2]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COPY = ["dvc.yaml", "params.yaml", "stages", "zerodl", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore"]
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
           PYTHONDONTWRITEBYTECODE="1")


def sh(repo: Path, *args: str, quiet: bool = False) -> str:
    p = subprocess.run(args, cwd=repo, env=ENV, text=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                       stderr=subprocess.DEVNULL if quiet else subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout or ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="0.01,0.05,0.2,0.5", help="train.learning_rate values to sweep")
    ap.add_argument("--jobs", default="1,2", help="queue worker counts to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        for name in COPY:
            src, dst = ROOT / name, repo / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
             else shutil.copy2(src, dst))
        (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
        git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
        sh(repo, "git", "init", "-q", "-b", "main")
        sh(repo, *git, "add", "-A")
        sh(repo, *git, "commit", "-q", "-m", "project")
        sh(repo, "dvc", "repro", quiet=True)
        sh(repo, *git, "add", "-A")
        sh(repo, *git, "commit", "-q", "-m", "baseline")
        n = len(args.rates.split(","))
        for jobs in (int(j) for j in args.jobs.split(",")):
            sh(repo, "dvc", "exp", "run", "--queue", "-S", f"train.learning_rate={args.rates}")
            start = time.monotonic()
            sh(repo, "dvc", "queue", "start", "-j", str(jobs), quiet=True)  # its workers keep no pipe of ours
            while re.search(r"\b(Queued|Running)\b", status := sh(repo, "dvc", "queue", "status")):
                time.sleep(0.5)
            seconds = time.monotonic() - start
            done = status.count("Success")
            print(f"-j {jobs}: {n} experiments in {seconds:.1f} s ({seconds / n:.1f} s each), {done} succeeded",
                  flush=True)
            sh(repo, "dvc", "queue", "stop", quiet=True)
            sh(repo, "dvc", "queue", "remove", "--all", quiet=True)
            sh(repo, "dvc", "exp", "remove", "--all-commits", quiet=True)


if __name__ == "__main__":
    main()
