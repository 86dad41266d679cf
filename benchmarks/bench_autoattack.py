"""Standard AutoAttack through this library against pyautoattack called directly, on the
same zoo model and the same official test digits, in one run (round-robin, one call each
unless ``--repeats``): where does our path's time go?

Cases: ``direct`` (``pyautoattack.AutoAttack(version="standard")`` on the NCHW model,
``run_standard_evaluation`` at ``--package-batch``), ``evaluate/nchw`` and
``evaluate/channels_last`` (``drrdn_lib.evaluate.evaluate`` with
``AutoAttackAdapter(version="standard")``, batches of ``--batch-size``, no checks). All three
are the standard AutoAttack; the robust accuracy each reports is printed beside its time.

    python benchmarks/bench_autoattack.py --model-name trades_reference --examples 100
"""
from __future__ import annotations

import argparse
import contextlib
import io
import warnings

import pyautoattack
import torch

from _common import add_zoo_arguments, machine, print_machine, round_robin, zoo_model_and_digits

from drrdn_lib.autoattack_adapter import AutoAttackAdapter
from drrdn_lib.evaluate import evaluate


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_zoo_arguments(p, model_name="trades_reference", examples=100, repeats=1)
    p.add_argument("--batch-size", type=int, default=256, help="evaluate()'s batch")
    p.add_argument("--package-batch", type=int, default=250, help="the direct call's batch")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    model, images, labels = zoo_model_and_digits(args.model_name, args.examples)
    robust = {}

    def direct():
        runner = pyautoattack.AutoAttack(model, eps=args.eps, norm="Linf", version="standard", seed=0)
        with contextlib.redirect_stdout(io.StringIO()):
            adv, _ = runner.run_standard_evaluation(images, labels, batch_size=args.package_batch)
        with torch.no_grad():
            robust["direct"] = float((model(adv).argmax(1) == labels).float().mean())

    def ours(channels_last: bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = evaluate(model, images, labels, {"aa": AutoAttackAdapter(args.eps)},
                              batch_size=args.batch_size, checks="none", progress=False,
                              channels_last=channels_last)
        robust[f"evaluate/{'channels_last' if channels_last else 'nchw'}"] = record.accuracy("aa")

    cases = {"direct": direct, "evaluate/nchw": lambda: ours(False),
             "evaluate/channels_last": lambda: ours(True)}
    median = round_robin(cases, args.repeats, warmup=0)
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print(f"standard AutoAttack, {args.model_name}, {args.examples} official test digits, "
          f"median of {args.repeats}")
    for name, seconds in median.items():
        print(f"{name:<24}{seconds:9.1f} s {seconds / median['direct']:7.3f}x direct  "
              f"robust {robust[name]:.3f}")
    return {"median": median, "robust": robust}


if __name__ == "__main__":
    main()
