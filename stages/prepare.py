"""Stage prepare: data/raw -> data/prepared/{x_train,t_train,x_test,t_test}.npy and meta.json.

x is float32 (N, 784) in [0, 1]; t is int64 (N,). The 5,000-digit sample is
split here (stratified, seeded by params `seed`, `data.test_fraction` to test).
"""
from zerodl.entry import run  # first: from here on, Ctrl-C ends in one line

from pathlib import Path

from zerodl.data import prepare, replace_dir
from zerodl.errors import DataError
from zerodl.io import save_npy, write_json
from zerodl.params import load_params

RAW = Path("data/raw")
PREPARED = Path("data/prepared")


def main() -> None:
    p = load_params("params.yaml")
    data = prepare(RAW, seed=p.seed, test_fraction=p.data.test_fraction)
    if data.meta["source"] != p.data.source:
        raise DataError(f"{RAW} holds {data.meta['source']}, but params.yaml asks for {p.data.source}: "
                        "run the fetch stage first (dvc repro does)")
    with replace_dir(PREPARED) as out:
        for name, array in data.arrays().items():
            save_npy(out / f"{name}.npy", array)
        write_json(out / "meta.json", data.meta)
    counts = data.meta["counts"]
    print(f"prepare: {data.meta['source']}: {counts['train']} train, {counts['test']} test -> {PREPARED}")


if __name__ == "__main__":
    run(main, prog="prepare")
