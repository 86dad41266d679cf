"""Before/after, in one round-robin run, of the library changes made for speed that can
be switched at run time (median seconds per training step, ratio to "after"):

- ``frozen``: attacks switch off the parameters' requires_grad (``unfrozen`` = before),
  eager and with ``torch.compile`` (whose backward otherwise computes weight gradients);
- ``relu``: SmallCNN's ReLUs in place (``relu copy`` = before); SmallCNN only.

    python benchmarks/bench_changes.py --model smallcnn --dataset mnist --steps 10
    python benchmarks/bench_changes.py --model preact_resnet18 --dataset cifar10 \\
        --batch-size 32 --steps 2 --repeats 3
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

from _common import DATASETS, Step, batch, machine, print_machine, round_robin

from drrdn_lib.protocol import paper_recipe
from drrdn_lib.attacks import AttackBudget

PROTOCOL = {name: (paper_recipe(name).train.eps, paper_recipe(name).train.step_size)
            for name in ("mnist", "mnist5k", "cifar10")}  # eps, training PGD step (the paper's)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="PGD steps of the inner attack")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--method", default="pgd_at")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled cases")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def relu_copies(step: Step) -> Step:
    """The step with every nn.ReLU out of place (the model as it was before)."""
    for module in step.model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return step


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    images, labels = batch(args.dataset, args.batch_size)
    budget = AttackBudget(*PROTOCOL[args.dataset], args.steps)
    make = lambda **kw: Step(args.method, args.model, images, labels, budget, **kw)  # noqa: E731
    cases = {"after": make(), "unfrozen": make(unfrozen=True)}
    if args.model == "smallcnn":
        cases["relu copy"] = relu_copies(make())
    if not args.no_compile:
        cases["compile"] = make(compile=True)
        cases["compile unfrozen"] = make(compile=True, unfrozen=True)
    median = round_robin(cases, args.repeats, warmup=2)
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print(f"{args.method} step, {args.model} on {args.dataset}, batch {args.batch_size}, "
          f"PGD-{args.steps}, median of {args.repeats}")
    for name, seconds in median.items():
        ref = median["compile" if name.startswith("compile") else "after"]
        print(f"{name:<18}{seconds:9.3f} s/step {seconds / ref:7.3f}x")
    return median


if __name__ == "__main__":
    main()
