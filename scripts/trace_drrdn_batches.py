"""Print every batch's DRRDN terms and the mean norms of z_s and z_i for the first batches
of notebook 02's cpu-scale DRRDN run (or with other hyperparameters), to see where and how a
run diverges. Nothing is saved (no run folder).

    DRRDN_DATA=<folder with mnist.npz> python scripts/trace_drrdn_batches.py --batches 100 \\
        --hyper '{"rec_form": "sum"}'

docs/method.md quotes this script's output for the printed reconstruction loss (it
diverged at batch 89) and for the relative one (the default, it did not).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drrdn_lib import drrdn_objective, experiments, train  # noqa: E402
from drrdn_lib.notebook_params import parameters_from_file  # noqa: E402


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--params", default=str(ROOT / "notebooks/params/02_main_results/cpu.yaml"))
    args.add_argument("--hyper", default="{}", help="DRRDN hyperparameters as JSON")
    args.add_argument("--batches", type=int, default=100)
    args.add_argument("--float32", action="store_true", help="train in float32, not the file's precision")
    args.add_argument("--threads", type=int, default=1)
    args = args.parse_args(argv)
    torch.set_num_threads(args.threads)
    p = parameters_from_file(ROOT / "notebooks" / "02_main_results.ipynb", args.params)
    kw = experiments.training_kw(epochs=p["epochs"], train_limit=p["train_limit"], batch_size=p["batch_size"],
                                 eps=p["eps"], train_steps=p["train_steps"], lr=p["lr"], model=p["model"],
                                 device=p["device"], data_dir=p["data_dir"],
                                 bf16=p["bf16"] and not args.float32, channels_last=p["channels_last"],
                                 eps_ramp_epochs=p["eps_ramp_epochs"])
    config = experiments.make_config("drrdn", p["dataset"], seed=p["seeds"][0],
                                     hyper=json.loads(args.hyper), **kw)
    original, seen = drrdn_objective.Algorithm1Update.__call__, [0]

    def traced(update, images, labels, budget):
        terms = original(update, images, labels, budget)
        seen[0] += 1
        with torch.no_grad():
            parts = update.model.representations(images[:64])
        norms = {k: round(parts[k].float().norm(dim=1).mean().item(), 2) for k in ("z_s", "z_i")}
        shown = {k: float(f"{v:.4g}") for k, v in terms.items()}
        print(f"batch {seen[0]} eps {budget.eps:.3f} {shown} |z_s| {norms['z_s']} |z_i| {norms['z_i']}",
              flush=True)
        if seen[0] >= args.batches:
            raise SystemExit(f"stopped after {seen[0]} batches")
        return terms

    drrdn_objective.Algorithm1Update.__call__ = traced
    try:
        train.train(config)
    except train.TrainingDiverged as error:
        print("DIVERGED:", error)


if __name__ == "__main__":
    main()
