"""`zerodl gradcheck`: backprop against the numerical gradient, the book's chapter-5 check."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, ModelError
from ..io import N_CLASSES
from ..gradient import H, gradient_check
from ..net import TwoLayerNet
from .common import PREPARED, add_command, check_fits, count_arg, load_net, load_split

PARAMS = Path("params.yaml")
GRADCHECK_THRESHOLD = 1e-7  # the book's check on fresh weights gives 1e-10 .. 1e-13


def add_parser(sub):
    p = add_command(sub, "gradcheck", "compare backprop with the numerical gradient (the book's chapter-5 check)",
                    f"""\
Builds a TwoLayerNet in float64 from params.yaml (model.hidden_size,
model.weight_init_std, model.activation, model.dropout, train.weight_decay,
seed), takes the first --batch training digits of the
prepared data (random inputs if there is none), and prints the mean absolute
difference between net.gradient (backprop) and net.numerical_gradient for W1,
b1, W2 and b2. With dropout, both gradients are of the same network: one mask,
drawn once and held. Exit status 0 if all four are <= {GRADCHECK_THRESHOLD:g}, else 1.

examples:
  zerodl gradcheck
  zerodl gradcheck --batch 10 --params experiments/params.yaml
  zerodl gradcheck --model data/model/model.npz   # the trained weights instead
                                                  # (and the weight decay they were trained with)
""")
    p.add_argument("--params", type=Path, default=PARAMS, metavar="PATH", help=f"the params file (default: {PARAMS})")
    p.add_argument("--batch", type=count_arg, default=3, help="how many digits (default: 3, as in the book)")
    p.add_argument("--data", type=Path, default=PREPARED, metavar="DIR", help=f"the prepared data (default: {PREPARED})")
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="check a trained model's weights instead of fresh ones from params.yaml")
    return p


def trained_weight_decay(net: TwoLayerNet, path: Path) -> float:
    """The λ a model was trained with (its params, in the model file): its loss is the one
    backprop descended. Models trained before weight decay, or outside the pipeline: 0."""
    params = net.meta.get("params")
    train = params.get("train") if isinstance(params, dict) else None
    lam = train.get("weight_decay", 0.0) if isinstance(train, dict) else 0.0
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam < float("inf"):
        raise ModelError(f"{path}: model params train.weight_decay = {lam!r}: expected a number >= 0")
    return float(lam)


def run(args) -> int:
    from ..params import load_params  # yaml: imported only by the command that reads params.yaml

    if args.model is not None:
        trained = load_net(args.model)
        x_batch, t_batch, source = gradcheck_batch(args.data, args.batch, 0, trained.input_size, trained.output_size)
        check_fits(trained, x_batch, args.data / "x_train.npy")
        # In float64, as the book's check: float32 rounding (~1e-7) is the size of the threshold.
        net = TwoLayerNet(trained.input_size, trained.hidden_size, trained.output_size, dtype=np.float64, seed=0,
                          activation=trained.activation, dropout_ratio=trained.dropout_ratio,
                          weight_decay_lambda=trained_weight_decay(trained, args.model))
        net.set_params(trained.params)
        about = f"the trained weights of {args.model}"
    else:
        params = load_params(args.params)  # ParamsError: one line naming the bad key
        x_batch, t_batch, source = gradcheck_batch(args.data, args.batch, params.seed, 28 * 28, N_CLASSES)
        net = TwoLayerNet(x_batch.shape[1], params.model.hidden_size, N_CLASSES,
                          weight_init_std=params.model.weight_init_std, seed=params.seed, dtype=np.float64,
                          activation=params.model.activation, dropout_ratio=params.model.dropout,
                          weight_decay_lambda=params.train.weight_decay)
        about = (f"fresh weights: weight_init_std {params.model.weight_init_std}, seed {params.seed} "
                 f"(from {args.params})")

    diffs = gradient_check(net, x_batch, t_batch)
    extras = [net.activation] + [f"dropout {net.dropout_ratio:g} (one mask, held)"] * bool(net.dropout_ratio) \
        + [f"weight decay {net.weight_decay_lambda:g}"] * bool(net.weight_decay_lambda)
    print(f"gradient check of TwoLayerNet {net.input_size}-{net.hidden_size}-{net.output_size} "
          f"({', '.join(extras)}) in float64, {about}")
    print(f"on {source}")
    print(f"mean |backprop - numerical| per parameter (pass: <= {GRADCHECK_THRESHOLD:g}):")
    for key in ("W1", "b1", "W2", "b2"):
        verdict = "ok" if diffs[key] <= GRADCHECK_THRESHOLD else "TOO LARGE"
        print(f"  {key}: {diffs[key]:.3e}  {verdict}")
    bad = [k for k, d in diffs.items() if not d <= GRADCHECK_THRESHOLD]
    if bad:
        print(f"FAILED: backprop and the numerical gradient differ by more than {GRADCHECK_THRESHOLD:g} "
              f"for {', '.join(bad)}")
        kinks = near_relu_kink(net, x_batch) if net.activation == "relu" else 0
        if kinks:
            lie = "hidden pre-activation lies" if kinks == 1 else "hidden pre-activations lie"
            print(f"note: {kinks} {lie} within a step h = {H:g} of the ReLU kink at 0, "
                  "where the central difference itself is wrong; a smaller --batch avoids them")
        return 1
    print(f"passed: backprop agrees with the numerical gradient within {GRADCHECK_THRESHOLD:g}")
    return 0


def gradcheck_batch(data_dir: Path, batch: int, seed: int, width: int, n_classes: int):
    """(x, t, what they are): the book's first few training digits, or random numbers if there are none."""
    x_path = data_dir / "x_train.npy"
    if x_path.exists():
        x, t = load_split(data_dir, "train")
        if batch > len(t):
            raise DataError(f"--batch {batch}: {x_path} holds only {len(t)} digits")
        return (np.array(x[:batch], dtype=np.float64), np.array(t[:batch]),
                f"the first {batch} training digits of {data_dir}")
    rng = np.random.default_rng(seed)
    return (rng.random((batch, width)), rng.integers(0, n_classes, batch),
            f"{batch} RANDOM inputs of {width} values in [0, 1] with random labels "
            f"({x_path} not found; the check needs no real digits)")


def near_relu_kink(net: TwoLayerNet, x: np.ndarray) -> int:
    """How many hidden pre-activations a ±h step of one W1 or b1 entry can push across 0."""
    a1 = x @ net.params["W1"] + net.params["b1"]
    reach = H * np.maximum(np.abs(x).max(axis=1, keepdims=True), 1.0)  # h·x[n, i] at most, or h·1 for b1
    return int(np.count_nonzero(np.abs(a1) < reach))
