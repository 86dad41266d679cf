"""Train the runs of the main-results notebook (02) for a parameter file, in the
background and resumably, so that the notebook then loads them instead of training.

    nohup python scripts/train_main_runs.py notebooks/params/02_main_results/cpu.yaml \\
        > results/train_cpu.log 2>&1 &

Each run is a :func:`drrdn_lib.experiments.shared_run` folder under results/runs/: killed
and started again, the command continues every run from its last epoch (a finished run is
only loaded). One line per finished run is printed; ``metrics.json`` in each run folder
has the learning curve so far. ``--threads`` sets torch's threads: on a machine shared with
other work, use 1 (two threads that wait for each other at every operation slow down
far more than twofold when the cores are oversubscribed: measured here, 16 s per
PGD-40 batch with 2 threads at load 6 against 1.7 s with 1 thread on an idle core).
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

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_main_results.ipynb"


def parameters(path: str) -> dict:
    """The notebook's defaults overridden by the YAML file (checked as papermill would)."""
    return parameters_from_file(NOTEBOOK, path)


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("params", help="a notebooks/params/02_main_results/*.yaml file")
    args.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args.add_argument("--seeds", default=None, help="comma-separated subset of the file's seeds")
    args.add_argument("--device", default=None,
                      help="cpu, cuda or cuda:N (default: the file's; not part of a run's identity, "
                           "and float32 stays float32 on a GPU: TF32 is turned off)")
    args.add_argument("--methods", default=None,
                      help="comma-separated subset of the file's methods (e.g. to train two "
                           "methods in two 1-thread processes at once)")
    args = args.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = parameters(args.params)
    started = time.perf_counter()
    kw = experiments.notebook_training_kw(params)
    if args.device:
        kw["device"] = args.device
    if kw.get("from_zoo"):
        raise SystemExit(f"{args.params} sets from_zoo: true, so the notebook takes the zoo's "
                         "models and there is nothing to train; remove it to train the runs.")
    methods = params["methods"]
    if args.methods:
        methods = args.methods.split(",")
        unknown = sorted(set(methods) - set(params["methods"]))
        if unknown:
            raise SystemExit(f"--methods {unknown} not in {args.params}'s methods {params['methods']}")
    seeds = chosen_seeds(args.seeds, params["seeds"], args.params)
    for method in methods:  # one at a time, so each finished run is reported
        for seed in seeds:
            run = experiments.train_for_notebook([method], params["dataset"], [seed], **kw)
            result = run[(method, seed)]
            print(f"{method} seed {seed}: best epoch {result.best['epoch']}, val clean "
                  f"{result.best['val_clean_acc']:.4f}, val PGD {result.best['val_robust_acc']:.4f}"
                  f" ({result.out_dir}; {time.perf_counter() - started:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
