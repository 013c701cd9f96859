"""Stage prepare: data/raw -> data/prepared/{x_train,t_train,x_test,t_test}.npy and meta.json.

x is float32 (N, 784) in [0, 1]; t is int64 (N,). The 5,000-digit sample is
split here (stratified, seeded by params `seed`, `data.test_fraction` to test).
"""
from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

from pathlib import Path

from zerodl.data import prepare, replace_dir
from zerodl.data.prepare import read_manifest
from zerodl.errors import DataError
from zerodl.io import write_json
from zerodl.params import load_params

RAW = Path("data/raw")
PREPARED = Path("data/prepared")


def main() -> None:
    p = load_params("params.yaml")
    source = read_manifest(RAW)["source"]
    if source != p.data.source:
        raise DataError(f"{RAW} holds {source}, but params.yaml asks for {p.data.source}: "
                        "run the fetch stage first (dvc repro does)")
    with replace_dir(PREPARED) as out:  # prepare writes the arrays into it as it converts them
        meta = prepare(RAW, out, seed=p.seed, test_fraction=p.data.test_fraction)
        write_json(out / "meta.json", meta)
    counts = meta["counts"]
    print(f"prepare: {meta['source']}: {counts['train']} train, {counts['test']} test -> {PREPARED}")


if __name__ == "__main__":
    run(main, prog="prepare")
