"""Choose DRRDN's lambda_mi and lambda_rec (not given in the paper) by a grid search on the
mnist5k VALIDATION split (never the test split); writes docs/lambda_search.json and prints
a table. Resumable: each run trains into results/lambda_search/<name> and a rerun loads it.

    python scripts/search_lambdas.py [--workers 2] [--epochs 5]

Recipe (the affordable scale on 2 CPU cores, see docs/method.md): a standard SmallCNN
trained on the 3,500 mnist5k training digits; every DRRDN configuration starts from its
weights (init_from: the encoder g) and trains for ``--epochs`` epochs at the paper's eps
0.3 with PGD-10 (step 0.075) instead of PGD-40, lr 0.01; each run's best epoch by
validation PGD-20 accuracy (500 validation digits) is compared.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LAMBDA_MI = (0.0, 0.1, 1.0)
LAMBDA_REC = (0.0, 0.01, 0.1)
ROOT = REPO / "results" / "lambda_search"


def _config(method: str, epochs: int, **kw):
    from drrdn_lib import experiments
    return experiments.make_config(method, "mnist5k", epochs=epochs, train_steps=10,
                                   val_steps=20, progress=False, **kw)


def _train(args: tuple) -> dict:
    import torch
    torch.set_num_threads(1)
    from drrdn_lib import experiments
    name, method, epochs, kw = args
    config = _config(method, epochs, out_dir=str(ROOT / name), **kw)
    started = time.time()
    result = experiments.train_or_resume(config)
    return {"name": name, "hyper": config.hyper, "best_epoch": result.best["epoch"],
            "val_clean_acc": result.best["val_clean_acc"],
            "val_robust_acc": result.best["val_robust_acc"],
            "history": result.history, "seconds": time.time() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--report", action="store_true",
                        help="only print the table of docs/lambda_search.json (for docs/lambda_search.md)")
    args = parser.parse_args(argv)
    if args.report:
        return write_report()
    standard = _train(("standard", "standard", 8, {"lr": 0.05}))
    jobs = [(f"drrdn-mi{mi}-rec{rec}", "drrdn", args.epochs,
             {"hyper": {"lambda_mi": mi, "lambda_rec": rec},
              "init_from": str(ROOT / "standard")})
            for mi, rec in itertools.product(LAMBDA_MI, LAMBDA_REC)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_train, jobs))
    from drrdn_lib.bounds import binomial_ci
    from drrdn_lib.data import load_dataset
    n = len(load_dataset("mnist5k", "val")[1])
    for row in rows:
        row["val_robust_ci"] = list(binomial_ci(round(row["val_robust_acc"] * n), n))
        print(f"{row['name']:>24}  clean {row['val_clean_acc']:.3f}  PGD-20 "
              f"{row['val_robust_acc']:.3f} [{row['val_robust_ci'][0]:.3f}, "
              f"{row['val_robust_ci'][1]:.3f}]  best epoch {row['best_epoch']}")
    (REPO / "docs" / "lambda_search.json").write_text(json.dumps(
        {"command": "python scripts/search_lambdas.py " + " ".join(argv or sys.argv[1:]),
         "grid": {"lambda_mi": LAMBDA_MI, "lambda_rec": LAMBDA_REC}, "epochs": args.epochs,
         "validation_examples": n, "standard": standard, "runs": rows}, indent=1))
    return write_report()


def write_report() -> int:
    """Print the table of docs/lambda_search.json, best first (docs/lambda_search.md has it)."""
    data = json.loads((REPO / "docs" / "lambda_search.json").read_text())
    rows = sorted(data["runs"], key=lambda r: -r["val_robust_acc"])
    best = rows[0]
    lines = ["| lambda_mi | lambda_rec | val clean | val PGD-20 [95% Wilson] | best epoch | "
             "overlaps the best |", "|---|---|---|---|---|---|"]
    for r in rows:
        overlap = r["val_robust_ci"][1] >= best["val_robust_ci"][0]
        lines.append(f"| {r['hyper']['lambda_mi']:g} | {r['hyper']['lambda_rec']:g} | "
                     f"{100 * r['val_clean_acc']:.1f} | {100 * r['val_robust_acc']:.1f} "
                     f"[{100 * r['val_robust_ci'][0]:.1f}, {100 * r['val_robust_ci'][1]:.1f}] | "
                     f"{r['best_epoch']} | {'yes' if overlap else 'no'} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
