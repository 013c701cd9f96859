"""Contender 3: the same TwoLayerNet and loop in PyTorch on the CPU.

784-50-10, Linear -> ReLU -> Linear, cross entropy from the logits (log-sum-exp,
mean over the batch), weights N(0, 0.01^2) and zero biases, plain SGD lr 0.1,
batches of 100 drawn with replacement each iteration (as np.random.choice),
float32, and the whole train and test sets scored under no_grad every epoch,
on the same schedule as the textbook loop (i % 600 == 0). Autograd does what
backprop does; it skips the input gradient of the first layer, as an optimal
implementation does (the data does not require grad).

    python torch_loop.py WORKDIR [--iters N] [--threads 2] [--out result.json]

WORKDIR holds data/prepared/*.npy (see bench_data.prepare); harness.py and bench_data.py give this
loop only its command line, the data files and the result file.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T_IMPORTED = time.perf_counter()

import bench_data  # noqa: E402
import harness  # noqa: E402


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
    ap = harness.contender_parser(__doc__, threads=2)
    ap.add_argument("--optim", choices=("manual", "torch"), default="manual",
                    help="manual: p -= lr * p.grad under no_grad (the PyTorch tutorial's way); "
                         "torch: torch.optim.SGD (same math; its first construction imports "
                         "torch._dynamo, ~1 s)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    (x_train, t_train), (x_test, t_test) = bench_data.load_prepared(args.workdir)
    x_train, x_test = torch.from_numpy(x_train), torch.from_numpy(x_test)
    t_train, t_test = torch.from_numpy(t_train.astype(np.int64)), torch.from_numpy(t_test.astype(np.int64))
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
    }
    harness.write_result(result, args.out)


if __name__ == "__main__":
    main()
