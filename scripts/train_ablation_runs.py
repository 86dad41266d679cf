"""Train the DRRDN variants of the ablation notebook (03) for a parameter file, in the
background and resumably, so that the notebook then loads them instead of training.

    nohup python scripts/train_ablation_runs.py notebooks/params/03_ablation/cpu.yaml \\
        --variants "without MI" --threads 1 > results/logs/ablation_no_mi.log 2>&1 &

Each variant is a :func:`drrdn_lib.experiments.shared_run` folder under results/runs/ (the
same run the notebook asks for): killed and started again, the command continues from the
last finished epoch. With ``from_zoo: true`` the full DRRDN is the zoo's model and is not
trained here. ``--evaluate-into REPORT_DIR`` then evaluates each variant as the notebook
does, into ``REPORT_DIR/cache`` (resumable batch by batch), so that the notebook run into
REPORT_DIR loads every evaluation. ``--threads``: see scripts/train_main_runs.py (use 1
beside other work).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import experiments  # noqa: E402
from drrdn_lib.notebook_params import chosen_seeds, parameters_from_file  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_ablation.ipynb"


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("params", help="a notebooks/params/03_ablation/*.yaml file")
    args.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args.add_argument("--seeds", default=None, help="comma-separated subset of the file's seeds")
    args.add_argument("--variants", default=None,
                      help="comma-separated subset of the file's variants (names of "
                           "drrdn_lib.experiments.ABLATIONS), e.g. one per 1-thread process")
    args.add_argument("--device", default=None,
                      help="cpu, cuda or cuda:N (default: the file's; see scripts/train_main_runs.py)")
    args.add_argument("--evaluate-into", default=None, metavar="REPORT_DIR",
                      help="then evaluate each variant into REPORT_DIR/cache, as the notebook does")
    args = args.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = parameters_from_file(NOTEBOOK, args.params)
    if args.device:
        params["device"] = args.device
    variants = experiments.ablation_variants(params["variants"])
    if args.variants:
        chosen = [v.strip() for v in args.variants.split(",")]
        unknown = [v for v in chosen if v not in variants]
        if unknown:
            raise SystemExit(f"--variants {unknown} not among {args.params}'s variants {list(variants)}")
        variants = {v: variants[v] for v in chosen}
    train_kw = experiments.ablation_training_kw(params)
    seeds = chosen_seeds(args.seeds, params["seeds"], args.params)
    started = time.perf_counter()
    for variant in variants:
        if params["from_zoo"] and variant == experiments.FULL_DRRDN:
            print(f"{variant}: the zoo's DRRDN (from_zoo), nothing to train", flush=True)
            if not args.evaluate_into:
                continue
        for seed in seeds:
            run = experiments.ablation_run(variant, params["dataset"], seed=seed,
                                           from_zoo=params["from_zoo"],
                                           base_hyper=params["base_hyper"], **train_kw)
            print(f"{variant} seed {seed}: best epoch {run.best['epoch']}, val clean "
                  f"{run.best['val_clean_acc']:.4f}, val PGD {run.best['val_robust_acc']:.4f} "
                  f"({run.out_dir}; {time.perf_counter() - started:.0f} s so far)", flush=True)
            if args.evaluate_into:
                frame, checks, _, _ = experiments.evaluate_ablation_run(
                    run.best_model, variant, seed, params, Path(args.evaluate_into) / "cache", progress=True)
                cells = ", ".join(f"{r.column} {100 * r.accuracy:.1f}% (n {r.n})" for r in frame.itertuples())
                failed = ", ".join(checks.check[checks.passed.eq(False)]) or "none"
                print(f"{variant} seed {seed}: {cells}; failed checks: {failed} "
                      f"({time.perf_counter() - started:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
