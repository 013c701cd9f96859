"""`zerodl info`: what the model is, how well it does, what data it came from."""
from __future__ import annotations

from pathlib import Path

from .common import METRICS, MODEL, PREPARED, add_command, load_net, model_option, print_json, read_json

TRAIN, EVAL = "train/metrics.json", "eval/metrics.json"  # the summaries dvclive writes for train and evaluate
ENVIRONMENT = Path("data/environment.json")


def add_parser(sub):
    p = add_command(sub, "info", "describe the model: sizes, weights, training params, accuracy, data", f"""\
Reads {MODEL}, {METRICS}/{TRAIN} and {EVAL}, {PREPARED}/meta.json, and
{ENVIRONMENT} (what the training's last bits depend on: NumPy, OpenBLAS and
its kernel, the CPU); a missing metrics or data file is reported, not an error.

examples:
  zerodl info
  zerodl info --json | python -m json.tool
""")
    model_option(p)
    p.add_argument("--metrics", type=Path, default=METRICS, metavar="DIR", help=f"{TRAIN}, {EVAL} (default: {METRICS})")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR", help=f"meta.json (default: {PREPARED})")
    p.add_argument("--environment", type=Path, default=ENVIRONMENT, metavar="FILE",
                   help=f"the training run's environment record (default: {ENVIRONMENT})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def run(args) -> int:
    net = load_net(args.model)
    meta = getattr(net, "meta", {}) or {}
    shapes = {k: list(v.shape) for k, v in net.params.items()}
    n_weights = int(sum(v.size for v in net.params.values()))
    train_json, train_why = read_json(args.metrics / TRAIN)
    eval_json, eval_why = read_json(args.metrics / EVAL)
    data_meta, data_why = read_json(args.data / "meta.json")
    env, env_why = read_json(args.environment)
    trained_with = meta.get("params") if isinstance(meta.get("params"), dict) else None

    if args.json:
        print_json({
            "model": {"path": str(args.model), "bytes": args.model.stat().st_size,
                      "input_size": net.input_size, "hidden_size": net.hidden_size,
                      "output_size": net.output_size, "dtype": net.dtype.name,
                      "activation": net.activation, "dropout_ratio": net.dropout_ratio,
                      "weights": n_weights, "shapes": shapes, "params": trained_with,
                      "n_train": meta.get("n_train"), "n_test": meta.get("n_test")},
            "metrics": {"train": train_json, "eval": eval_json},
            "data": data_meta,
            "environment": env,
        })
        return 0

    shape_text = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in shapes.items())
    print(f"model     {args.model} ({args.model.stat().st_size:,} bytes)")
    hidden = {"relu": "ReLU", "sigmoid": "sigmoid"}[net.activation]
    if net.dropout_ratio:
        hidden += f", dropout {net.dropout_ratio:g} in training"
    print(f"network   TwoLayerNet: {net.input_size} inputs -> {net.hidden_size} hidden ({hidden}) "
          f"-> {net.output_size} outputs (softmax)")
    print(f"weights   {n_weights:,} {net.dtype.name} numbers: {shape_text}")
    print(f"trained   {describe_training(trained_with, meta)}")
    print(f"accuracy  {describe_accuracy(args.metrics, train_json, train_why, eval_json, eval_why)}")
    print(f"data      {describe_data(args.data / 'meta.json', data_meta, data_why)}")
    print(f"computed  {describe_environment(args.environment, env, env_why)}")
    return 0


def _get(d, *keys):
    """d[k1][k2]... or None: the files info reads are written by others and may lack a key."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def describe_training(params: dict | None, meta: dict) -> str:
    """Two lines: the loop (optimizer, iterations, step) and the start (init, seed, data)."""
    if params is None:
        return "(the model file does not record the params it was trained with)"
    train = params.get("train") if isinstance(params.get("train"), dict) else {}
    loop = [f"{k} {train[k]}" for k in ("learning_rate", "batch_size", "gradient", "dtype") if k in train]
    if train.get("weight_decay"):
        loop.append(f"weight_decay {train['weight_decay']}")
    iters = meta.get("iterations", train.get("iters"))  # the model records them since train.epochs
    first = f"{iters if iters is not None else '?'} iterations"
    if train.get("epochs") is not None:
        first += f" ({train['epochs']} epochs)"
    first += f" of {train.get('optimizer', '?')}"
    if loop:
        first += f" ({', '.join(loop)})"
    start = [f"{k} {v}" for k, v in (("weight_init_std", _get(params, "model", "weight_init_std")),
                                     ("seed", params.get("seed"))) if v is not None]
    source, n_train = _get(params, "data", "source"), meta.get("n_train")
    if source:
        start.append(f"on {n_train:,} {source} digits" if isinstance(n_train, int) else f"on {source}")
    return first + ("\n          " + ", ".join(start) if start else "")


def describe_accuracy(folder: Path, train_json, train_why, eval_json, eval_why) -> str:
    lines = []
    acc, n, wrong, loss = (_get(eval_json, k) for k in ("accuracy", "n", "errors", "loss"))
    if isinstance(acc, (int, float)):
        detail = f"{wrong:,} of {n:,} wrong" if isinstance(wrong, int) and isinstance(n, int) else ""
        if isinstance(loss, (int, float)):
            detail += (", " if detail else "") + f"loss {loss:.4f}"
        lines.append(f"test {acc:.4f}" + (f" ({detail})" if detail else "") + f"  [{folder / EVAL}]")
    else:
        lines.append(f"no test accuracy: {folder / EVAL} {eval_why or 'has no accuracy'}")
    tr, te, epochs = (_get(train_json, k) for k in ("train_accuracy", "test_accuracy", "epochs"))
    if isinstance(tr, (int, float)):
        after = f" after {epochs:g} epochs" if isinstance(epochs, (int, float)) else ""
        test = f", test {te:.4f}" if isinstance(te, (int, float)) else ""
        lines.append(f"train {tr:.4f}{test}{after}  [{folder / TRAIN}]")
    else:
        lines.append(f"no training accuracy: {folder / TRAIN} {train_why or 'has no train_accuracy'}")
    return "\n          ".join(lines)


def describe_data(path: Path, meta: dict | None, why: str | None) -> str:
    if meta is None:
        return f"unknown: {path} {why}"
    parts = [str(meta.get("source", "unknown source"))]
    counts = meta.get("counts")
    if isinstance(_get(counts, "train"), int) and isinstance(_get(counts, "test"), int):
        parts.append(f"{counts['train']:,} train / {counts['test']:,} test digits")
    shape = meta.get("image_shape")
    if isinstance(shape, list) and shape:
        parts.append("x".join(map(str, shape)) + " pixels")
    if meta.get("split"):
        parts.append(f"split {meta['split']}")
    if meta.get("seed") is not None:
        parts.append(f"seed {meta['seed']}")
    return ", ".join(parts) + f"  [{path}]"


def describe_environment(path: Path, env: dict | None, why: str | None) -> str:
    """The libraries and CPU the training ran on: what its float32 bits depend on."""
    if env is None:
        return f"unknown: {path} {why}"
    blas, cpu, simd = env.get("blas"), env.get("cpu"), env.get("numpy_simd")
    parts = [f"NumPy {env.get('numpy', '?')}"
             + (f" (SIMD {' '.join(_get(simd, 'dispatched') or _get(simd, 'baseline') or ['?'])})"
                if isinstance(simd, dict) else "")]
    if isinstance(blas, dict):
        threads = blas.get("num_threads")
        parts.append(f"{blas.get('internal_api', 'BLAS')} {blas.get('version', '?')}, "
                     f"{blas.get('architecture', '?')} kernel, {threads} thread{'s' * (threads != 1)}")
    if isinstance(cpu, dict):
        parts.append(f"{cpu.get('model', '?')} (family {cpu.get('family')}, model {cpu.get('model_number')}, "
                     f"{' '.join(cpu.get('flags') or [])})")
    knobs = env.get("environment")
    if isinstance(knobs, dict) and knobs:
        parts.append("with " + " ".join(f"{k}={v}" for k, v in knobs.items()))
    return "\n          ".join(parts) + f"  [{path}]"

