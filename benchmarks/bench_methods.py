"""Seconds per training step of every objective, as a ratio to PGD-AT.

One step = the objective (its inner attack included) + backward + SGD step, on the same
model, batch and attack budget for every method. Methods are timed round-robin (so that
load from other processes hits them alike) and the median over repeats is printed.

    python benchmarks/bench_methods.py                       # SmallCNN, mnist5k, CPU
    python benchmarks/bench_methods.py --model preact_resnet18 --dataset cifar10 \\
        --eps 0.0313725 --step-size 0.0078431 --steps 10 --device cuda
"""
from __future__ import annotations

import argparse

import torch

from _common import VARIANTS, Step, machine, print_machine, round_robin

from drrdn_lib.attacks import AttackBudget
from drrdn_lib.data import load_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=str, default="smallcnn")
    p.add_argument("--dataset", type=str, default="mnist5k")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eps", type=float, default=0.3, help="L-inf radius, [0, 1] pixel units")
    p.add_argument("--step-size", type=float, default=0.03)
    p.add_argument("--steps", type=int, default=10, help="PGD steps of the inner attack")
    p.add_argument("--repeats", type=int, default=7, help="timed steps per method")
    p.add_argument("--device", type=str, default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--channels-last", action="store_true", help="model and batch in NHWC")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--methods", type=str, default=",".join(VARIANTS),
                   help=f"comma-separated subset of {list(VARIANTS)}")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = args.methods.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "pgd_at" not in variants:
        raise SystemExit(f"--methods must include pgd_at and name only {list(VARIANTS)}; got {unknown or variants}")
    images, labels = load_dataset(args.dataset, "train", limit=args.batch_size)
    images, labels = images.to(args.device), labels.to(args.device)
    budget = AttackBudget(args.eps, args.step_size, args.steps)
    steps = {v: Step(v, args.model, images, labels, budget, args.device, args.channels_last,
                     args.compile) for v in variants}
    median = round_robin(steps, args.repeats, args.device)
    print_machine(machine(args.threads, args.device))
    print(f"{args.model} on {args.dataset}, batch {args.batch_size}, PGD-{args.steps}, "
          f"device {args.device}, {args.threads} thread(s), channels_last={args.channels_last}, "
          f"compile={args.compile}, median of {args.repeats} steps")
    print(f"{'method':<20}{'s/step':>10}{'x pgd_at':>10}")
    for v in variants:
        print(f"{v:<20}{median[v]:>10.4f}{median[v] / median['pgd_at']:>10.3f}")
    return median


if __name__ == "__main__":
    main()
