"""Evaluate the finished runs of the main-results notebook (02) for a parameter file, one
model at a time, in the background, into the notebook's evaluation cache; the notebook
then loads every result instead of computing it.

    nohup python scripts/evaluate_main_runs.py notebooks/params/02_main_results/cpu.yaml \\
        --methods standard --threads 1 > results/evaluate_standard.log 2>&1 &

Each model's white-box evaluation and its transfer examples (as a surrogate) are what the
notebook computes, with the same arguments (``experiments.evaluate_for_notebook``), so
they land under the same cache keys in ``results/02_main_results/cache`` (or
``--out-dir``/cache). A run that has not finished training is refused, never trained
(``experiments.RunNotFinished``): train it with ``scripts/train_main_runs.py`` first. Killed
and started again, the command skips every part already in the cache (white box on all
test images, then AutoAttack, the checks and the worst case on the AutoAttack subset), and
resumes a model's attacks after the last finished batch of 256 images
(``cache/evaluate-*.partial.pt``, small: commit it when a session ends mid-model). A bar
over each model's batches goes to stderr.

``--full-set-only`` runs the first stage only (the paper's attacks and the transfer examples
on all test images) for every model given, so that a session can finish those before
AutoAttack's stage; the next call without it does the rest.

``--from-zoo`` evaluates the zoo's checkpoints instead of run folders: the zoo model whose
card records exactly the file's training parameters (``experiments.zoo_run``); the cpu
scale's four runs are in zoo/, so its evaluation needs no training first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drrdn_lib import experiments, zoo  # noqa: E402
from drrdn_lib.notebook_params import parameters_from_file  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "02_main_results.ipynb"
EVALUATION = ("eval_limit", "autoattack", "autoattack_limit", "eps", "attack_steps",
              "black_box_steps", "checks", "check_samples", "square_queries", "data_dir")


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("params", help="a notebooks/params/02_main_results/*.yaml file")
    args.add_argument("--methods", default=None, help="comma-separated subset of the file's methods")
    args.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args.add_argument("--from-zoo", action="store_true",
                      help="evaluate the zoo's models trained with these parameters, not run folders")
    args.add_argument("--full-set-only", action="store_true",
                      help="only the stage on all test images (not AutoAttack's subset)")
    args.add_argument("--out-dir", default=str(ROOT / "results" / "02_main_results"),
                      help="the notebook's output folder (its cache/ is filled)")
    args = args.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = parameters_from_file(NOTEBOOK, args.params)
    methods = args.methods.split(",") if args.methods else params["methods"]
    unknown = sorted(set(methods) - set(params["methods"]))
    if unknown:
        raise SystemExit(f"--methods {unknown} not in {args.params}'s methods {params['methods']}")
    if params["init_from_standard"]:
        raise SystemExit("this script evaluates from-scratch runs (init_from_standard: false); "
                         "the CI scale is fast enough to run in the notebook.")
    started = time.perf_counter()
    training = {**experiments.notebook_training_kw(params), "from_zoo": args.from_zoo}
    evaluation = {k: params[k] for k in EVALUATION}
    for method in methods:
        try:
            runs = experiments.train_for_notebook([method], params["dataset"], params["seeds"],
                                                  load_only=True, **training)
        except (experiments.RunNotFinished, zoo.ZooError) as error:
            raise SystemExit(str(error)) from None
        for seed in params["seeds"]:
            _, _, frame = experiments.evaluate_for_notebook(
                {seed: {method: runs[(method, seed)].best_model}}, params["dataset"],
                cache_dir=Path(args.out_dir) / "cache", subset_stage=not args.full_set_only,
                progress=True, **evaluation)
            shown = ", ".join(f"{r.column} {100 * r.accuracy:.1f}% (n {r.n})" for r in frame.itertuples()
                              if not r.column.startswith("bb_"))
            print(f"{method} seed {seed}: {shown} ({time.perf_counter() - started:.0f} s so far)",
                  flush=True)


if __name__ == "__main__":
    main()
