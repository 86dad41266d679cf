"""Does bfloat16 training change the science? The same short MNIST run trained in float32
(NCHW) and in bfloat16 autocast (channels_last), both evaluated in float32 on the same
stratified official test digits: clean and PGD-40 accuracy with 95% Wilson intervals.

    DRRDN_DATA=<folder with mnist.npz> python scripts/compare_precisions.py \\
        --method trades --train-limit 20000 --epochs 2 --eps-ramp-epochs 1 --test 1000 \
        > docs/bf16_check.json

The run: SmallCNN, eps 0.3, training PGD-40 step 0.01, SGD lr 0.01 momentum 0.9, batch 128,
seed 0, the cpu scale's eps ramp (docs/protocol.md); TRADES (beta 6). On 10,000 digits for
one epoch without the ramp TRADES had not left chance (15.5% clean in float32), so a
shorter run would compare two models that have not learned. Prints
JSON: per precision the accuracies, intervals, training seconds and provenance, and
whether the two intervals overlap.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import experiments  # noqa: E402
from drrdn_lib.attacks import PGD  # noqa: E402
from drrdn_lib.data import load_dataset  # noqa: E402
from drrdn_lib.stats import accuracy_cell  # noqa: E402
from drrdn_lib.provenance import provenance  # noqa: E402
from drrdn_lib.train import evaluate_accuracy, train  # noqa: E402


def cell(accuracy: float, n: int) -> dict:
    """The metrics' accuracy cell of a fraction of n examples right."""
    return accuracy_cell(round(accuracy * n), n)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="trades")
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--test", type=int, default=1000, help="stratified official test digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eps-ramp-epochs", type=float, default=1)
    args = p.parse_args(argv)
    x, y = load_dataset("mnist", "test", limit=args.test, seed=0)
    attack = PGD(0.3, 0.01, 40, seed=0)
    out = {"command": "python scripts/compare_precisions.py " + " ".join(sys.argv[1:]), "runs": {}}
    for name, fast in (("float32", False), ("bfloat16", True)):
        config = experiments.make_config(args.method, "mnist", epochs=args.epochs, seed=args.seed,
                                         train_limit=args.train_limit, val_limit=200,
                                         bf16=fast, channels_last=fast, progress=False,
                                         eps_ramp_epochs=args.eps_ramp_epochs)
        started = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - started
        clean, robust = evaluate_accuracy(result.model.eval(), x, y, attack)  # float32
        out["runs"][name] = {"clean": cell(clean, len(y)), "pgd40": cell(robust, len(y)),
                             "train_seconds": seconds,
                             "provenance": provenance("cpu", name)}
        print(f"{name}: clean {clean:.4f}, PGD-40 {robust:.4f}, {seconds:.0f} s", file=sys.stderr)
    a, b = out["runs"]["float32"], out["runs"]["bfloat16"]
    out["overlap"] = {k: a[k]["lo"] <= b[k]["hi"] and b[k]["lo"] <= a[k]["hi"] for k in ("clean", "pgd40")}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
