"""Where the time of one training step goes: torch.profiler's operator table (self CPU
time) for a method's step, after one warm-up step.

    python benchmarks/profile_step.py --method drrdn --model smallcnn --dataset mnist
    python benchmarks/profile_step.py --method pgd_at --model preact_resnet18 \\
        --dataset cifar10 --batch-size 32 --steps 2
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from _common import DATASETS, VARIANTS, Step, batch, machine, print_machine

from drrdn_lib.protocol import paper_recipe
from drrdn_lib.attacks import AttackBudget

PROTOCOL = {name: (paper_recipe(name).train.eps, paper_recipe(name).train.step_size)
            for name in ("mnist", "mnist5k", "cifar10")}  # eps, training PGD step (the paper's)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="drrdn", choices=list(VARIANTS))
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="PGD steps of the inner attack")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    images, labels = batch(args.dataset, args.batch_size)
    budget = AttackBudget(*PROTOCOL[args.dataset], args.steps)
    step = Step(args.method, args.model, images, labels, budget, channels_last=args.channels_last)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print_machine(machine(args.threads))
    print(f"{args.method} step, {args.model} on {args.dataset}, batch {args.batch_size}, "
          f"PGD-{args.steps}, channels_last={args.channels_last}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
