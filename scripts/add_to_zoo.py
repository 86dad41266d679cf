"""Add a finished training run to the model zoo: its best weights (zoo/NAME.pt) and a card
(zoo/NAME.json) with how it was trained and what it scored on the official MNIST test set
under the paper's white-box attacks (FGSM, PGD-40/100, CW-40/100 at eps 0.3, float32).

    python scripts/add_to_zoo.py results/runs/mnist/drrdn-0123456789 drrdn \\
        --command "python scripts/train_main_runs.py notebooks/params/02_main_results/cpu.yaml" \\
        --eval-limit 1000

Evaluation time grows with --eval-limit: the five attacks cost 281 forward-backward
passes per clean-correct digit, about 4 minutes of one CPU core per 1,000 digits for a
SmallCNN (DRRDN included); --device cuda is much faster. The digits are the official test set (the
repository's data/mnist_test.npz, or a full MNIST: set DRRDN_DATA to the folder holding
mnist.npz). Then run `pytest tests/test_zoo.py`, which re-checks every card.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import zoo  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a training run folder (results/runs/...)")
    parser.add_argument("name", help="the model's name in the zoo, e.g. drrdn")
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--eval-limit", default="1000",
                        help="official test digits to evaluate on (stratified), or 'all' (1000)")
    parser.add_argument("--seed", type=int, default=0, help="draws the subset and the attacks' starts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--zoo-dir", default=None, help="the zoo folder (default: zoo/ or $DRRDN_ZOO)")
    parser.add_argument("--allow-unfinished", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    limit = None if args.eval_limit == "all" else int(args.eval_limit)
    try:
        card = zoo.add_to_zoo(args.run_dir, args.name, command=args.command, eval_limit=limit,
                              seed=args.seed, zoo_dir=args.zoo_dir, device=args.device,
                              allow_unfinished=args.allow_unfinished, overwrite=args.overwrite,
                              progress=True)
    except (zoo.ZooError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    folder = zoo.zoo_folder(args.zoo_dir)
    print(f"wrote {folder / card['weights']['file']} ({card['weights']['bytes'] / 2 ** 20:.1f} MiB) "
          f"and {folder / (args.name + '.json')}")
    for key, cell in card["evaluation"]["results"].items():
        print(f"  {cell['label']:<36} {100 * cell['accuracy']:5.1f}% [{100 * cell['lo']:.1f}, "
              f"{100 * cell['hi']:.1f}] (n={cell['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
