"""Choose DRRDN's lambda_rec (and report lambda_mi's neighbours) for the relative L_REC form
on the official MNIST VALIDATION split (never the test split); writes
docs/lambda_search.json and prints the table of docs/lambda_search.md.

    python scripts/search_lambdas.py [--workers 2] [--train-limit 10000]
    python scripts/search_lambdas.py --paired      # per-digit validation of the kept epochs
    python scripts/search_lambdas.py --report      # the table from the json only

The proxy: cpu.yaml's recipe exactly (official MNIST, SmallCNN on TRADES's initialisation,
eps 0.3, training PGD-40 at step 0.01, 6 epochs with lr x0.1 after epochs 3, 4 and 5, the
training eps ramped over epoch 1, channels_last, bfloat16 where the CPU has it
(``--bf16 auto``), seed 0) on a class-stratified
``--train-limit`` subset of the 59,000 training digits, so one run costs about a sixth of a
cpu-scale run. Every run is validated after each epoch with PGD-40 (step 0.01) on all 1,000
validation digits and keeps its best epoch (highest validation PGD-40), as training does.
Resumable: each run trains into results/lambda_search/<name>; a rerun loads finished runs
and continues unfinished ones from their last epoch.

``--paired`` re-scores each run's kept checkpoint on the same 1,000 validation digits with a
seeded PGD-40 (step 0.01), keeps which digits each gets right, and compares every run with
the best one by exact McNemar (Holm over the family): the runs share their validation
digits, so interval overlap would be the wrong test. Still validation only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: (lambda_mi, lambda_rec): lambda_rec over two decades and 0 (the ablation) at the current
#: lambda_mi 0.1; lambda_mi is not searched (see docs/lambda_search.md)
GRID = ((0.1, 0.01), (0.1, 0.0), (0.1, 0.001), (0.1, 0.1))
ROOT = REPO / "results" / "lambda_search"
JSON = REPO / "docs" / "lambda_search.json"


def _name(mi: float, rec: float) -> str:
    return f"drrdn-mi{mi:g}-rec{rec:g}"


def _train(args: tuple) -> dict:
    import torch
    torch.set_num_threads(1)
    from drrdn_lib import experiments
    mi, rec, train_limit, bf16 = args
    config = experiments.make_config(
        "drrdn", "mnist", epochs=6, train_limit=train_limit, eps_ramp_epochs=1, bf16=bf16,
        channels_last=True, progress=False, model_kwargs={"init": "trades"}, hyper={"lambda_mi": mi, "lambda_rec": rec},
        out_dir=str(ROOT / _name(mi, rec)))
    started = time.time()
    result = experiments.train_or_resume(config)
    print(f"{_name(mi, rec)}: best epoch {result.best['epoch']}, val PGD-40 "
          f"{result.best['val_robust_acc']:.4f} ({time.time() - started:.0f} s)", flush=True)
    return {"name": _name(mi, rec), "hyper": config.hyper, "best_epoch": result.best["epoch"],
            "val_clean_acc": result.best["val_clean_acc"],
            "val_robust_acc": result.best["val_robust_acc"],
            "history": result.history, "seconds_this_call": time.time() - started,
            "config": config.to_dict()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    parser.add_argument("--train-limit", type=int, default=10_000,
                        help="training digits (class-stratified subset of the 59,000)")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="bfloat16 training; auto: on where the CPU has native bfloat16 "
                             "(AVX-512 BF16), off elsewhere (emulated bfloat16 is ~70x slower)")
    parser.add_argument("--paired", action="store_true",
                        help="re-score the finished runs per validation digit (McNemar against the best)")
    parser.add_argument("--report", action="store_true",
                        help="only print the table of docs/lambda_search.json")
    args = parser.parse_args(argv)
    if args.report:
        return write_report()
    if args.paired:
        return add_paired(args.workers)
    from drrdn_lib.data import load_dataset
    from drrdn_lib.stats import binomial_ci
    bf16 = {"on": True, "off": False}.get(args.bf16)
    if bf16 is None:
        import torch
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    print(f"training in {'bfloat16' if bf16 else 'float32'}", flush=True)
    jobs = [(mi, rec, args.train_limit, bf16) for mi, rec in GRID]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_train, jobs))
    n = len(load_dataset("mnist", "val")[1])
    for row in rows:
        row["val_robust_ci"] = list(binomial_ci(round(row["val_robust_acc"] * n), n))
    from drrdn_lib.files import write_text_atomic
    write_text_atomic(JSON, json.dumps(
        {"command": "python scripts/search_lambdas.py " + " ".join(argv or sys.argv[1:]),
         "grid": [list(g) for g in GRID], "train_limit": args.train_limit,
         "validation_examples": n, "runs": rows}, indent=1))
    return write_report()


def _validation_flags(row: dict) -> "np.ndarray":
    """(1000,) bool: which validation digits the run's kept checkpoint gets right under a
    seeded PGD-40 at eps 0.3, step 0.01 (one thread)."""
    import torch
    torch.set_num_threads(1)
    from drrdn_lib import experiments
    from drrdn_lib.attacks import PGD
    from drrdn_lib.data import load_dataset
    from drrdn_lib.torch_utils import predict_labels
    from drrdn_lib.train_config import config_from_dict
    model = experiments.train_or_resume(config_from_dict(row["config"], recorded=True)).best_model
    x, y = load_dataset("mnist", "val")
    adv = PGD(0.3, 0.01, 40, seed=0)(model, x, y)
    return (predict_labels(model, adv) == y).numpy()


def add_paired(workers: int) -> int:
    """Per-digit validation of every run's kept epoch, each compared with the best run."""
    from drrdn_lib.stats import accuracy_cell, paired_rows
    data = json.loads(JSON.read_text())
    with ProcessPoolExecutor(workers) as pool:
        flags = dict(zip((r["name"] for r in data["runs"]), pool.map(_validation_flags, data["runs"])))
    for r in data["runs"]:
        r["val_pgd40_rescored"] = accuracy_cell(int(flags[r["name"]].sum()), len(flags[r["name"]]))
    best = max(data["runs"], key=lambda r: r["val_pgd40_rescored"]["value"])["name"]
    data["paired"] = paired_rows(flags, [(r["name"], best) for r in data["runs"] if r["name"] != best],
                                 what="validation PGD-40 (seeded), kept epochs")
    from drrdn_lib.files import write_text_atomic
    write_text_atomic(JSON, json.dumps(data, indent=1))
    return write_report()


def _epoch_seconds(row: dict) -> float:
    return sum(h.get("seconds", 0.0) for h in row["history"])


def write_report() -> int:
    """Print the table of docs/lambda_search.json in grid order."""
    data = json.loads(JSON.read_text())
    lines = ["| lambda_mi | lambda_rec | best epoch | val clean | val PGD-40 [95% Wilson] "
             "| val PGD-40 at the last epoch | core-seconds |", "|---|---|---|---|---|---|---|"]
    for r in data["runs"]:
        last = r["history"][-1]
        lines.append(f"| {r['hyper']['lambda_mi']:g} | {r['hyper']['lambda_rec']:g} | "
                     f"{r['best_epoch']} | {100 * r['val_clean_acc']:.1f} | "
                     f"{100 * r['val_robust_acc']:.1f} [{100 * r['val_robust_ci'][0]:.1f}, "
                     f"{100 * r['val_robust_ci'][1]:.1f}] | {100 * last['val_robust_acc']:.1f} | "
                     f"{_epoch_seconds(r):.0f} |")
    from drrdn_lib.stats import paired_words
    for row in data.get("paired", []):
        lines.append(f"\n{row['a']} against {row['b']} (re-scored, {row['what']}): "
                     f"{100 * row['acc_a']:.1f}% vs {100 * row['acc_b']:.1f}%, {paired_words(row)}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
