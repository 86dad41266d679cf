"""Add the TRADES authors' published MNIST SmallCNN to the zoo as ``trades_reference``: the
external anchor that separates our evaluation from our training (evaluated exactly as our
models; it was trained for their script's 100 epochs, ours for 6).

The weights are not downloaded here (code never fetches weights at run time): take the file
from the authors' repository (MIT licence), where commit f94f414 added it and a later commit
deleted it, then point this script at it:

    git clone https://github.com/yaodongyu/TRADES
    git -C TRADES show f94f41489ffe9e4486558bf01ff34e1fb8d55490:checkpoints/model_mnist_smallcnn.pt \\
        > model_mnist_smallcnn.pt
    python scripts/add_trades_reference.py model_mnist_smallcnn.pt --eval-limit 1000

Its 14 tensors map by position onto ``models.SmallCNN`` (feature_extractor.conv1-4 ->
backbone, classifier.fc1-2 -> backbone, fc3 -> head), inputs in [0, 1] as here; the card
records the mapping, the original file's SHA-256 and the source.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import zoo  # noqa: E402

SOURCE = {
    "repository": "https://github.com/yaodongyu/TRADES",
    "commit": "f94f41489ffe9e4486558bf01ff34e1fb8d55490",
    "path": "checkpoints/model_mnist_smallcnn.pt",
    "licence": "MIT (Copyright (c) 2019 Hongyang Zhang, Yaodong Yu)",
    "recipe": ("the TRADES authors' MNIST SmallCNN; their train_trades_mnist.py defaults: 100 "
               "epochs, batch 128, SGD lr 0.01 momentum 0.9, eps 0.3, PGD-40 at step 0.01, "
               "beta 1.0 (the checkpoint itself records no recipe)"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path, help="model_mnist_smallcnn.pt from the TRADES repository")
    parser.add_argument("--name", default="trades_reference")
    parser.add_argument("--eval-limit", default="1000", help="official test digits, or 'all'")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        info = zoo.add_external(args.weights, args.name, method="trades",
                                label="TRADES (the authors' checkpoint)", source=SOURCE,
                                model_kwargs={"init": "trades"},
                                eval_limit=None if args.eval_limit == "all" else int(args.eval_limit),
                                overwrite=args.overwrite, progress=True)
    except zoo.ZooError as error:
        print(f"add_trades_reference: {error}", file=sys.stderr)
        return 1
    results = info["evaluation"]["results"]
    print(", ".join(f"{c['label']} {100 * c['accuracy']:.1f}% [{100 * c['lo']:.1f}, {100 * c['hi']:.1f}]"
                    for c in results.values()) + f" (n = {info['evaluation']['subset']['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
