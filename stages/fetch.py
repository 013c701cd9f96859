"""Stage fetch: put the verified files of params `data.source` into data/raw.

data/raw holds the source files as fetched (or copied) and manifest.json with
the sha256 of each one's content. Downloads are also kept in data/cache/, which
DVC does not track: DVC deletes data/raw before rerunning this stage, and the
download cache must outlive that so MNIST is downloaded once.
"""
from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

import sys
from pathlib import Path

from zerodl.data import fetch, replace_dir
from zerodl.io import write_json
from zerodl.params import load_params
from zerodl.progress import DownloadBars

RAW = Path("data/raw")
CACHE = Path("data/cache")


def main() -> None:
    p = load_params("params.yaml")
    with replace_dir(RAW) as out, DownloadBars(file=sys.stderr) as progress:
        fetched = fetch(p.data.source, out, data_dir=p.data.dir, cache_dir=CACHE, reuse_dir=RAW,
                        progress=progress)
        write_json(out / "manifest.json", fetched.manifest)
    for name, origin in fetched.origins.items():
        print(f"fetch: {RAW / name} <- {origin}")


if __name__ == "__main__":
    run(main, prog="fetch")
