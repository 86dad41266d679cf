"""Has the paper's PGD converged? PGD accuracy of the zoo's models against the number of
steps, the step size, restarts and the loss, on the stratified test digits that notebook
02's cpu-scale report ran standard AutoAttack on, beside that AutoAttack number.

    python scripts/attack_convergence.py --models pgd_at,trades,drrdn --threads 1 \\
        --out-dir reports/attack_convergence_cpu

The paper's PGD-40 at step 0.01 moves at most 0.4 in L-inf over its 40 steps against a
ball of radius 0.3: barely enough to cross it once, so its failures to find an adversarial
example may be the optimiser's, not the model's. Prints a table and writes
``metrics.json`` (every accuracy with its 95% Wilson interval, provenance) to --out-dir,
keeping the rows of models that an earlier run there measured on the same digits.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import provenance, results, zoo  # noqa: E402
from drrdn_lib.attacks import PGD  # noqa: E402
from drrdn_lib.stats import binomial_ci  # noqa: E402
from drrdn_lib.data import load_dataset  # noqa: E402
from drrdn_lib.torch_utils import predict_labels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "02_main_results_cpu" / "metrics.json"
EPS = 0.3
#: (name, steps, step size, restarts, loss): the paper's two PGDs first, then larger steps,
#: restarts and the margin loss
ATTACKS = [("PGD-40, step 0.01 (paper)", 40, 0.01, 1, "ce"),
           ("PGD-100, step 0.01 (paper)", 100, 0.01, 1, "ce"),
           ("PGD-40, step 0.03", 40, 0.03, 1, "ce"),
           ("PGD-100, step 0.03", 100, 0.03, 1, "ce"),
           ("PGD-100, step 0.03, 5 restarts", 100, 0.03, 5, "ce"),
           ("CW-100 (margin), step 0.03", 100, 0.03, 1, "cw")]


def robust_flags(model, x, y, attack: PGD, batch_size: int = 500) -> torch.Tensor:
    """(n,) bool: clean-correct and still correct on ``attack``'s example."""
    out = []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        correct = predict_labels(model, xb) == yb
        adv = attack(model, xb, yb)
        out.append(correct & (predict_labels(model, adv) == yb))
    return torch.cat(out)


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--models", default="pgd_at,trades,drrdn", help="zoo names, comma-separated")
    args.add_argument("--limit", type=int, default=None,
                      help="stratified test digits (default: the report's AutoAttack subset)")
    args.add_argument("--threads", type=int, default=None)
    args.add_argument("--out-dir", default=None, help="where metrics.json goes (default: print only)")
    args = args.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = json.loads(REPORT.read_text())
    limit = args.limit or report["n_autoattack"]
    path = Path(args.out_dir or ".") / "metrics.json"
    old = json.loads(path.read_text()) if args.out_dir and path.is_file() else {}
    if old.get("parameters", {}).get("limit") not in (None, limit):
        raise SystemExit(f"{path} holds rows on {old['parameters']['limit']} digits, not {limit}; "
                         "choose another --out-dir")
    x, y = load_dataset("mnist", "test", limit=limit, seed=0)  # the report's subset (seed 0)
    rows, commit = [], provenance.git_commit()  # one commit for every row of this run
    for name in args.models.split(","):
        model = zoo.load_pretrained(name)
        aa = report["accuracy"][name]["autoattack"] if limit == report["n_autoattack"] else None
        for label, steps, step, restarts, loss in ATTACKS:
            started = time.perf_counter()
            attack = PGD(EPS, step, steps, restarts=restarts, loss=loss, seed=0)
            k = int(robust_flags(model, x, y, attack).sum())
            lo, hi = binomial_ci(k, limit)
            rows.append({"model": name, "attack": label, "steps": steps, "step_size": step,
                         "restarts": restarts, "loss": loss, "n_correct": k, "n": limit,
                         "accuracy": k / limit, "lo": lo, "hi": hi,
                         "seconds": round(time.perf_counter() - started, 1),
                         "autoattack": aa, "commit": commit})
            print(f"{name:7s} {label:40s} {100 * k / limit:5.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
                  + (f"   AutoAttack {100 * aa['value']:.1f}%" if aa else "")
                  + f"  ({rows[-1]['seconds']:.0f} s)", flush=True)
    if args.out_dir:  # other models' rows already there (same digits) are kept
        done = {r["model"] for r in rows}
        rows = [r for r in old.get("rows", []) if r["model"] not in done] + rows
        models = ",".join(dict.fromkeys(r["model"] for r in rows))
        results.save_metrics(Path(args.out_dir), {"parameters": {"models": models, "limit": limit,
                                                                 "eps": EPS, "seed": 0},
                                                  "rows": rows})


if __name__ == "__main__":
    main()
