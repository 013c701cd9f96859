"""Contender 3: the same TwoLayerNet and loop in PyTorch on the CPU.

784-50-10, Linear -> ReLU -> Linear, cross entropy from the logits (log-sum-exp,
mean over the batch), weights N(0, 0.01^2) and zero biases, plain SGD lr 0.1,
batches of 100 drawn with replacement each iteration (as np.random.choice),
float32, and the whole train and test sets scored under no_grad every epoch,
on the same schedule as the textbook loop (i % 600 == 0). Autograd does what
backprop does; it skips the input gradient of the first layer, as an optimal
implementation does (the data does not require grad).

    python torch_loop.py WORKDIR [--iters N] [--threads 2] [--out result.json]
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T_IMPORTED = time.perf_counter()


def make_net(input_size, hidden_size, output_size, weight_init_std):
    net = nn.Sequential(nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, output_size))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, weight_init_std)
                m.bias.zero_()
    return net


@torch.no_grad()
def accuracy(net, x, t):
    return (net(x).argmax(dim=1) == t).sum().item() / len(t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=50)
    ap.add_argument("--weight-init-std", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--optim", choices=("manual", "torch"), default="manual",
                    help="manual: p -= lr * p.grad under no_grad (the PyTorch tutorial's way); "
                         "torch: torch.optim.SGD (same math; its first construction imports "
                         "torch._dynamo, ~1 s)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    d = args.workdir / "data" / "prepared"
    x_train = torch.from_numpy(np.load(d / "x_train.npy"))
    t_train = torch.from_numpy(np.load(d / "t_train.npy").astype(np.int64))
    x_test = torch.from_numpy(np.load(d / "x_test.npy"))
    t_test = torch.from_numpy(np.load(d / "t_test.npy").astype(np.int64))
    assert x_train.dtype == torch.float32

    net = make_net(x_train.shape[1], args.hidden, 10, args.weight_init_std)
    params = list(net.parameters())
    if args.optim == "torch":
        opt = torch.optim.SGD(params, lr=args.lr)
    train_size = x_train.shape[0]
    iter_per_epoch = max(train_size // args.batch_size, 1)
    losses, train_accs, test_accs = [], [], []

    t_loop = time.perf_counter()
    for i in range(args.iters):
        idx = torch.randint(0, train_size, (args.batch_size,))
        loss = F.cross_entropy(net(x_train[idx]), t_train[idx])
        if args.optim == "torch":
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= args.lr * p.grad
        losses.append(loss.detach())      # no .item() sync per step; turned into floats at the end

        if i % iter_per_epoch == 0:
            train_accs.append(accuracy(net, x_train, t_train))
            test_accs.append(accuracy(net, x_test, t_test))
    loop_seconds = time.perf_counter() - t_loop

    final_test = accuracy(net, x_test, t_test)
    result = {
        "name": "pytorch",
        "loop_seconds": loop_seconds,
        "startup_seconds": t_loop - T_START,
        "import_torch_seconds": T_IMPORTED - T_START,
        "evaluations": len(test_accs),
        "last_epoch_test_accuracy": test_accs[-1] if test_accs else None,
        "last_epoch_train_accuracy": train_accs[-1] if train_accs else None,
        "test_accuracy": final_test,
        "train_accuracy": train_accs[-1] if train_accs else None,  # last epoch's
        "final_loss": float(losses[-1]) if losses else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "optim": args.optim,
        "blas": "MKL" if torch.backends.mkl.is_available() else "?",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "dtype": str(net[0].weight.dtype),
        "vm_hwm_kb": _vm_hwm_kb(),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def _vm_hwm_kb():
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
