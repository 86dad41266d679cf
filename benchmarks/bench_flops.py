"""How close a training step comes to the machine's dense matmul limit.

Measured in one run: float32 matmul FLOP/s (``--matmul-n`` square, median, taken before
and after the steps; the larger is the limit), the FLOPs of one training step of each
method counted with ``torch.utils.flop_counter.FlopCounterMode`` (the inner attack's
forward and input-gradient passes included; matmuls and convolutions only, so
elementwise work such as batch norm and ReLU is time without counted FLOPs), the median
seconds per step (round-robin), and the achieved fraction = step FLOPs / step seconds /
matmul FLOP/s. Each method runs in every ``--variants`` setting: ``eager``,
``cl`` (channels_last), ``compile`` (torch.compile of the model), ``cl+compile``, and the
bfloat16-autocast ones ``bf16``, ``cl+bf16``, ``cl+compile+bf16``. The limit is measured in
float32 and in bfloat16; a bf16 setting's fraction is of the bfloat16 limit, and the
last column gives its speed-up over float32 eager.

    python benchmarks/bench_flops.py --model smallcnn --dataset mnist --steps 40 \
        --methods pgd_at,trades,drrdn --variants eager,cl,bf16,cl+bf16 --threads 2

    python benchmarks/bench_flops.py --model preact_resnet18 --dataset cifar10 \\
        --batch-size 32 --steps 2 --methods standard,pgd_at,drrdn
    python benchmarks/bench_flops.py --model smallcnn --dataset mnist --steps 10
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import (DATASETS, Step, batch, count_flops, machine, matmul_flops, print_machine,
                     round_robin)

from drrdn_lib.protocol import paper_recipe
from drrdn_lib.attacks import AttackBudget

PROTOCOL = {name: (paper_recipe(name).train.eps, paper_recipe(name).train.step_size)
            for name in ("mnist", "mnist5k", "cifar10")}  # eps, training PGD step (the paper's)
SETTINGS = {"eager": (False, False, False), "cl": (True, False, False),  # channels_last,
            "compile": (False, True, False), "cl+compile": (True, True, False),  # compile,
            "bf16": (False, False, True), "cl+bf16": (True, False, True),  # bf16 autocast
            "cl+compile+bf16": (True, True, True)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="preact_resnet18")
    p.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=2, help="PGD steps of the inner attack")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default="standard,pgd_at,drrdn")
    p.add_argument("--variants", default="eager,cl,compile,cl+compile",
                   help=f"comma-separated subset of {list(SETTINGS)}")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def make_steps(args, images, labels, budget) -> tuple[dict, dict, dict]:
    """Steps per (method, setting), their FLOPs, and each compiled step's first-call
    seconds (compilation included)."""
    steps, flops, compile_s = {}, {}, {}
    for method in args.methods.split(","):
        for setting in args.variants.split(","):
            channels_last, compile, bf16 = SETTINGS[setting]
            step = Step(method, args.model, images, labels, budget, args.device,
                        channels_last, compile, bf16=bf16)
            name = f"{method}/{setting}"
            if compile:
                start = time.perf_counter()
                step()
                compile_s[name] = time.perf_counter() - start
            else:
                flops[method] = flops.get(method) or count_flops(step)
            steps[name] = step
    return steps, flops, compile_s


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads, args.device)
    images, labels = batch(args.dataset, args.batch_size, args.device)
    budget = AttackBudget(*PROTOCOL[args.dataset], args.steps)
    dtypes = {"float32": torch.float32}
    if any(SETTINGS[v][2] for v in args.variants.split(",")):
        dtypes["bfloat16"] = torch.bfloat16  # only when asked for: emulated on AVX2, ~70x slower
    before = {k: matmul_flops(args.matmul_n, device=args.device, dtype=d) for k, d in dtypes.items()}
    steps, flops, compile_s = make_steps(args, images, labels, budget)
    median = round_robin(steps, args.repeats, args.device)
    limit = {k: max(before[k], matmul_flops(args.matmul_n, device=args.device, dtype=d))
             for k, d in dtypes.items()}
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print("matmul " + "; ".join(f"{args.matmul_n}^2 {k}: {limit[k] / 1e9:.1f} GFLOP/s (before "
                                f"{before[k] / 1e9:.1f})" for k in dtypes)
          + f"; {args.model} on {args.dataset}, batch {args.batch_size}, PGD-{args.steps}, "
          f"median of {args.repeats}")
    print(f"{'step':<26}{'GFLOP':>9}{'s/step':>9}{'GFLOP/s':>9}{'of matmul':>10}{'x eager':>9}"
          f"{'compile s':>10}")
    for name, seconds in median.items():
        method, setting = name.split("/")
        rate = flops[method] / seconds
        own = limit["bfloat16" if SETTINGS[setting][2] else "float32"]
        eager = median.get(f"{method}/eager")
        print(f"{name:<26}{flops[method] / 1e9:9.1f}{seconds:9.3f}{rate / 1e9:9.1f}"
              f"{rate / own:10.1%}{seconds / eager if eager else float('nan'):9.3f}"
              f"{compile_s.get(name, float('nan')):10.1f}")
    return {"limit": limit, "median": median, "flops": flops}


if __name__ == "__main__":
    main()
