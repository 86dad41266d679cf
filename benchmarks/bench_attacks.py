"""Per attack, the FLOP/s an evaluation attack achieves as a fraction of the float32 matmul
limit measured in the same run, with the model's kernels in NCHW and in channels_last.

A zoo model on the first ``--examples`` stratified official test digits (real digits: how
many examples an attack keeps working on depends on the values). Attacks: the paper's FGSM,
PGD and CW (``--steps``), and AutoAttack's four run one at a time through
``AutoAttackAdapter(version="custom")`` (pyautoattack's own code) with ``--iters``
iterations and ``--queries`` Square queries: a BENCHMARK budget, reduced for time, not the
standard AutoAttack (whose per-iteration work is the same). FLOPs (matmuls and
convolutions: forward and input-gradient passes) are counted by
``torch.utils.flop_counter`` in one untimed call per attack; each layout is then timed
round-robin (median of ``--repeats``). The matmul limit (2048^2, float32) is measured
before and after, the larger kept.

    python benchmarks/bench_attacks.py --model-name pgd_at --examples 256 --threads 1
"""
from __future__ import annotations

import argparse
import warnings

import torch

from _common import (add_zoo_arguments, count_flops, machine, matmul_flops, print_machine,
                     round_robin, zoo_model_and_digits)

from drrdn_lib.attacks import FGSM, PGD, CWInf
from drrdn_lib.autoattack_adapter import AutoAttackAdapter
from drrdn_lib.torch_utils import channels_last_layout, eval_mode

AUTOATTACK = {"apgd-ce": "apgd-ce", "apgd-t": "apgd-t", "fab-t": "fab-t", "square": "square"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_zoo_arguments(p, model_name="pgd_at", examples=256, repeats=3)
    p.add_argument("--attacks", default="fgsm,pgd,cw,apgd-ce,apgd-t,fab-t,square")
    p.add_argument("--steps", type=int, default=40, help="PGD and CW steps")
    p.add_argument("--iters", type=int, default=10, help="APGD/FAB iterations (standard: 100)")
    p.add_argument("--queries", type=int, default=200, help="Square queries (standard: 5000)")
    return p.parse_args(argv)


def make_attack(name: str, args):
    """The attack ``name`` at the benchmark's budget."""
    step = 0.01
    if name == "fgsm":
        return FGSM(args.eps)
    if name == "pgd":
        return PGD(args.eps, step, args.steps, seed=0)
    if name == "cw":
        return CWInf(args.eps, step, args.steps, seed=0)
    return AutoAttackAdapter(args.eps, version="custom", attacks=[AUTOATTACK[name]], n_iter=args.iters,
                             n_queries=args.queries, batch_size=args.examples, seed=0)


def run(attack, model, images, labels, channels_last: bool):
    """One attack call on the whole batch, kernels in the given layout."""
    with eval_mode(model), channels_last_layout(model, channels_last), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attack(model, images, labels)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    model, images, labels = zoo_model_and_digits(args.model_name, args.examples)
    before = matmul_flops()
    flops, cases = {}, {}
    for name in args.attacks.split(","):
        attack = make_attack(name, args)
        flops[name] = count_flops(lambda: run(attack, model, images, labels, False))
        for layout in (False, True):
            cases[(name, layout)] = (lambda a=attack, cl=layout: run(a, model, images, labels, cl))
    median = round_robin(cases, args.repeats)
    limit = max(before, matmul_flops())
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print(f"matmul 2048^2 float32: {limit / 1e9:.1f} GFLOP/s; {args.model_name} on {args.examples} "
          f"official test digits; PGD/CW {args.steps} steps, APGD/FAB {args.iters} iterations, "
          f"Square {args.queries} queries (benchmark budgets); median of {args.repeats}")
    print(f"{'attack':<9}{'GFLOP':>8}{'NCHW s':>9}{'of limit':>9}{'CL s':>9}{'of limit':>9}{'CL/NCHW':>9}")
    for name in flops:
        nchw, cl = median[(name, False)], median[(name, True)]
        rate = lambda s: flops[name] / s / limit  # noqa: E731
        print(f"{name:<9}{flops[name] / 1e9:8.1f}{nchw:9.3f}{rate(nchw):9.1%}{cl:9.3f}{rate(cl):9.1%}"
              f"{cl / nchw:9.3f}")
    return {"limit": limit, "flops": flops, "median": {f"{k[0]}/{'cl' if k[1] else 'nchw'}": v
                                                        for k, v in median.items()}}


if __name__ == "__main__":
    main()
