"""Training and evaluation throughput of every method, and the peak memory of each case.

- training: examples/s of one step (objective with its inner PGD, backward, SGD step),
  methods timed round-robin, median of ``--repeats``; seconds per epoch EXTRAPOLATED as
  ceil(train size / batch) x seconds per step (no validation, no data loading);
- evaluation: PGD-20 (CE, random start) examples/s on a standard and a DRRDN network;
- AutoAttack (standard version, ``drrdn_lib.autoattack_adapter``): seconds per example
  on ``--aa-examples`` examples labelled with the model's own predictions (so every one
  is attacked), at each ``--aa-eps``; a tiny eps keeps examples robust so that all four
  attacks run on every one (the most an example can cost);
- ``--memory``: each case once more in a fresh subprocess; CPU: the peak resident set
  (``VmHWM``, reset through ``/proc/self/clear_refs`` once model and batch are loaded)
  minus the resident set at that moment, with glibc's mmap threshold fixed at 64 KiB
  so that freed tensors go back to the system instead of hiding in the heap; CUDA:
  ``torch.cuda.max_memory_allocated`` minus the memory allocated before.

Models are freshly initialised and batches synthetic (uniform pixels, random labels):
speed and memory do not depend on the values. Protocol budgets: MNIST eps 0.3, step
0.01, PGD-40 training; CIFAR-10 eps 0.031, step 0.007, PGD-10 training; PGD-20 eval.

    python benchmarks/bench_throughput.py --model smallcnn --dataset mnist --memory
    python benchmarks/bench_throughput.py --model preact_resnet18 --dataset cifar10 \\
        --batch-size 32 --repeats 2 --aa-examples 2 --memory
    python benchmarks/bench_throughput.py ... --device cuda   # untested here (no GPU)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import (DATASETS, VARIANTS, Step, batch, build, machine, print_machine,
                     round_robin, sync)

from drrdn_lib.attacks import PGD, AttackBudget
from drrdn_lib.protocol import paper_recipe
from drrdn_lib.autoattack_adapter import AutoAttackAdapter

PROTOCOL = {name: tuple(paper_recipe(name).train.to_dict().values())
            for name in ("mnist", "mnist5k", "cifar10")}  # eps, step size, training PGD steps
EVAL_STEPS = 20


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="training PGD steps (protocol)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per case")
    p.add_argument("--methods", default="standard,pgd_at,trades,mart,drrdn")
    p.add_argument("--aa-examples", type=int, default=8, help="0 skips AutoAttack")
    p.add_argument("--aa-eps", default="protocol,0.001",
                   help="comma-separated radii for AutoAttack ('protocol' = the budget's)")
    p.add_argument("--memory", action="store_true", help="peak memory per case (subprocesses)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def budget_of(args) -> tuple[AttackBudget, AttackBudget]:
    """(training budget, PGD-20 evaluation budget) of the protocol for ``args.dataset``."""
    eps, step, steps = PROTOCOL[args.dataset]
    return AttackBudget(eps, step, args.steps or steps), AttackBudget(eps, step, EVAL_STEPS)


def eval_case(method: str, args, images, labels, budget: AttackBudget):
    """A PGD-20 attack on a freshly initialised ``method`` network, as a callable."""
    net = build(method, args.model, images.shape[1], args.device).eval()
    attack = PGD(budget.eps, budget.step_size, budget.steps, seed=0)
    return lambda: attack(net, images, labels)


def make_cases(args, images, labels, only: str | None = None) -> dict:
    """name -> zero-argument callable: ``train:<variant>`` and ``pgd20:<method>``
    (only the case named ``only`` when given)."""
    train_budget, eval_budget = budget_of(args)
    names = [f"train:{v}" for v in args.methods.split(",")] + ["pgd20:pgd_at", "pgd20:drrdn"]
    cases = {}
    for name in names if only is None else [only]:
        kind, what = name.split(":")
        cases[name] = (Step(what, args.model, images, labels, train_budget, args.device)
                       if kind == "train" else eval_case(what, args, images, labels, eval_budget))
    return cases


def autoattack_seconds(args, eps: float) -> dict:
    """Standard AutoAttack on ``--aa-examples`` examples (labels = the model's own
    predictions): seconds per example and what each attack fooled."""
    images, _ = batch(args.dataset, args.aa_examples, args.device, seed=1)
    net = build("pgd_at", args.model, images.shape[1], args.device).eval()
    with torch.no_grad():
        labels = net(images).argmax(1)
    attack = AutoAttackAdapter(eps, version="standard", seed=0)
    sync(args.device)
    start = time.perf_counter()
    attack(net, images, labels)
    sync(args.device)
    seconds = time.perf_counter() - start
    return {"eps": eps, "n": args.aa_examples, "s_per_example": seconds / args.aa_examples,
            "fooled": attack.last_report.fooled}


# ------------------------------------------------------------------------------ memory
def memory_case(args) -> None:
    """Run in a subprocess: one case, print its peak memory increase (MiB) as JSON."""
    torch.set_num_threads(args.threads)
    images, labels = batch(args.dataset, args.batch_size, args.device)
    if args.memory_case == "autoattack":
        eps = PROTOCOL[args.dataset][0]
        images, _ = batch(args.dataset, args.aa_examples, args.device, seed=1)
        net = build("pgd_at", args.model, images.shape[1], args.device).eval()
        attack = AutoAttackAdapter(eps, version="standard", seed=0)
        with torch.no_grad():
            labels = net(images).argmax(1)
        case = lambda: attack(net, images, labels)  # noqa: E731
    else:
        case = make_cases(args, images, labels, only=args.memory_case)[args.memory_case]
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _proc_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    case()
    case()
    peak = torch.cuda.max_memory_allocated() if cuda else _proc_status("VmHWM")
    print(json.dumps({"case": args.memory_case, "peak_mib": (peak - base) / 2 ** 20,
                      "baseline_mib": base / 2 ** 20}))


def _proc_status(field: str) -> int:
    """A size field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(argv: list[str], names: list[str]) -> dict[str, dict]:
    """Peak memory of each case, each in a fresh subprocess."""
    out = {}
    for name in names:
        cmd = [sys.executable, __file__, *argv, "--memory-case", name]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        out[name] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------ report
def report(args, median: dict, memory: dict, aa: list[dict]) -> None:
    """Print the table: s/step, examples/s, s/epoch (extrapolated), ratio, memory."""
    n_train = DATASETS[args.dataset][1]
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    train_budget, _ = budget_of(args)
    print(f"{args.model} on {args.dataset}: batch {args.batch_size}, training PGD-"
          f"{train_budget.steps} (eps {train_budget.eps:.4g}, step {train_budget.step_size:.4g}), "
          f"eval PGD-{EVAL_STEPS}; median of {args.repeats}; s/epoch = {steps_per_epoch} "
          f"steps x s/step (extrapolated, {n_train} examples)")
    print(f"{'case':<22}{'s/call':>9}{'ex/s':>9}{'s/epoch':>9}{'x pgd_at':>9}{'peak MiB':>10}")
    for name, seconds in median.items():
        epoch = f"{steps_per_epoch * seconds:9.0f}" if name.startswith("train:") else f"{'':>9}"
        ref = median.get("train:pgd_at") if name.startswith("train:") else median.get("pgd20:pgd_at")
        mem = memory.get(name, {}).get("peak_mib")
        print(f"{name:<22}{seconds:9.3f}{args.batch_size / seconds:9.1f}{epoch}"
              f"{seconds / ref if ref else math.nan:9.3f}{'' if mem is None else f'{mem:10.0f}'}")
    for row in aa:
        print(f"autoattack(standard) eps {row['eps']:.4g}: {row['s_per_example']:.2f} s/example "
              f"over {row['n']} (fooled per attack: {row['fooled']})")
    if "autoattack" in memory:
        print(f"autoattack peak MiB: {memory['autoattack']['peak_mib']:.0f}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.memory_case:
        return memory_case(args)
    torch.set_num_threads(args.threads)
    info = machine(args.threads, args.device)
    images, labels = batch(args.dataset, args.batch_size, args.device)
    cases = make_cases(args, images, labels)
    median = round_robin(cases, args.repeats, args.device)
    aa = []
    if args.aa_examples:
        for eps in args.aa_eps.split(","):
            aa.append(autoattack_seconds(args, PROTOCOL[args.dataset][0] if eps == "protocol"
                                         else float(eps)))
    memory = {}
    if args.memory:
        names = list(cases) + (["autoattack"] if args.aa_examples else [])
        memory = measure_memory([a for a in argv if a != "--memory"], names)
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    report(args, median, memory, aa)


if __name__ == "__main__":
    main()
