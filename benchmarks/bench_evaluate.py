"""Evaluation throughput of ``drrdn_lib.evaluate.evaluate`` (clean + PGD-20, no checks):
this working tree against the ``attacks.py`` / ``evaluate.py`` of a git revision,
timed round-robin in one process (median of ``--repeats``).

    python benchmarks/bench_evaluate.py --against e1d2b6d              # SmallCNN, MNIST budget
    python benchmarks/bench_evaluate.py --model preact_resnet18 --dataset cifar10 \\
        --batch-size 64 --against e1d2b6d
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from _common import batch, build, machine, print_machine, round_robin

import drrdn_lib
from drrdn_lib import evaluate as current
from drrdn_lib.protocol import paper_recipe

PROTOCOL = {name: (paper_recipe(name).train.eps, paper_recipe(name).train.step_size)
            for name in ("mnist", "mnist5k", "cifar10")}  # eps, training PGD step (the paper's)
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--dataset", default="mnist", choices=sorted(PROTOCOL))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--against", default=None, help="git revision to compare with")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def _load(name: str, source: str):
    """Import ``source`` as ``drrdn_lib.<name>`` (relative imports resolve in drrdn_lib)."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"drrdn_lib.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def old_evaluate(revision: str):
    """The evaluate module of ``revision``, on that revision's attacks module."""
    show = lambda f: subprocess.run(["git", "show", f"{revision}:drrdn_lib/{f}"], cwd=REPO,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout
    attacks = _load("_old_attacks", show("attacks.py"))
    source = show("evaluate.py").replace("from .attacks import", "from ._old_attacks import")
    return attacks, _load("_old_evaluate", source)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads, args.device)
    images, _ = batch(args.dataset, args.batch_size, args.device)
    net = build("pgd_at", args.model, images.shape[1], args.device).eval()
    with torch.no_grad():  # label every example with the prediction, so PGD attacks all
        labels = net(images).argmax(1)
    eps, step = PROTOCOL[args.dataset]
    versions = {"working tree": (current.PGD, current)}
    if args.against:
        old_attacks, old = old_evaluate(args.against)
        versions[args.against] = (old_attacks.PGD, old)
    cases = {name: (lambda pgd=pgd, mod=mod: mod.evaluate(
        net, images, labels, {"pgd": pgd(eps, step, 20, seed=0)}, checks="none", progress=False))
        for name, (pgd, mod) in versions.items()}
    median = round_robin(cases, args.repeats, args.device)
    records = {name: fn().summary() for name, fn in cases.items()}
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print(f"evaluate(clean + PGD-20) {args.model} on {args.dataset}, {args.batch_size} examples, "
          f"median of {args.repeats}; drrdn_lib at {drrdn_lib.__file__}")
    base = median["working tree"]
    for name, seconds in median.items():
        print(f"{name:<14}{seconds:9.3f} s {args.batch_size / seconds:9.1f} ex/s "
              f"{seconds / base:7.3f}x  accuracies {records[name]}")
    return median


if __name__ == "__main__":
    main()
