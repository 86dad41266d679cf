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
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib.attacks import AttackBudget  # noqa: E402
from drrdn_lib.data import load_dataset  # noqa: E402
from drrdn_lib.methods import METHODS  # noqa: E402
from drrdn_lib.train import build_run_model  # noqa: E402

# name -> (method, hyperparameters); the DRRDN variants show what its options cost
VARIANTS = {
    "standard": ("standard", {}),
    "pgd_at": ("pgd_at", {}),
    "trades": ("trades", {"beta": 6.0}),
    "mart": ("mart", {"beta": 6.0}),
    "drrdn": ("drrdn", {}),
    "drrdn(two passes)": ("drrdn", {"joint_pass": False}),
    "drrdn(+mi)": ("drrdn", {"w_mi": 1.0}),
}


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
    p.add_argument("--methods", type=str, default=",".join(VARIANTS),
                   help=f"comma-separated subset of {list(VARIANTS)}")
    return p.parse_args(argv)


class _Step:
    """One method's model, optimizer and a timed training step."""

    def __init__(self, variant: str, images, labels, budget, args):
        self.method, self.hyper = VARIANTS[variant]
        torch.manual_seed(0)
        spec = {"method": self.method, "model": args.model, "num_classes": 10,
                "in_channels": images.shape[1], "model_kwargs": {}}
        self.model = build_run_model(spec).to(args.device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.images, self.labels, self.budget, self.device = images, labels, budget, args.device

    def __call__(self) -> float:
        """Seconds for one step (synchronised on CUDA)."""
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss, _ = METHODS[self.method](self.model, self.images, self.labels, self.budget,
                                       **self.hyper)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start


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
    steps = {v: _Step(v, images, labels, budget, args) for v in variants}
    for step in steps.values():  # warm-up
        step()
    times = {v: [] for v in variants}
    for _ in range(args.repeats):
        for v, step in steps.items():
            times[v].append(step())
    median = {v: statistics.median(t) for v, t in times.items()}
    print(f"{args.model} on {args.dataset}, batch {args.batch_size}, PGD-{args.steps}, "
          f"device {args.device}, {args.threads} thread(s), median of {args.repeats} steps")
    print(f"{'method':<20}{'s/step':>10}{'x pgd_at':>10}")
    for v in variants:
        print(f"{v:<20}{median[v]:>10.4f}{median[v] / median['pgd_at']:>10.3f}")
    return median


if __name__ == "__main__":
    main()
