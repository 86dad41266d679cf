"""Our TRADES training step and PGD-40 attack against the TRADES authors' reference code
(yaodongyu/TRADES) on the same SmallCNN, batch and budget, timed round-robin in one run.

The reference is read from a scratch copy outside this repository, in which the only
change is ``.cuda()`` -> ``.to(x_natural.device)`` in ``trades.py`` (so it runs on a CPU):

    git clone https://github.com/yaodongyu/TRADES /tmp/trades_ref   # or any copy of it
    sed -i 's/\\.cuda()/.to(x_natural.device)/g' /tmp/trades_ref/trades.py
    python benchmarks/bench_trades_reference.py --reference /tmp/trades_ref --threads 2

Cases (SmallCNN, MNIST shape, eps 0.3, 40 steps of 0.01, SGD lr 0.01 momentum 0.9):
- ``reference trades``: ``trades_loss`` + backward + SGD step on their ``SmallCNN`` (their
  attack recomputes the natural logits at every step: 2 forwards per attack step);
- ``ours trades``: ``drrdn_lib``'s TRADES update on our SmallCNN (same layers), float32
  NCHW, then with bfloat16 autocast and channels_last (``TrainConfig.bf16``/``channels_last``);
- ``reference pgd40`` / ``ours pgd40``: the PGD-40 white-box attack of their
  ``pgd_attack_mnist.py`` (``_pgd_whitebox``: an SGD optimiser per step, ``backward`` through
  the weights) against ``drrdn_lib.attacks.PGD`` (input gradient only), float32. Their
  function returns error counts, so it is timed as it is (its two extra forwards included).
The repository has no PGD-AT (Madry) training loop, so none is compared.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from _common import Step, batch, machine, print_machine, round_robin

from drrdn_lib.attacks import PGD, AttackBudget

EPS, STEP, STEPS = 0.3, 0.01, 40


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", required=True, help="folder of a TRADES checkout (patched)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def load_reference(folder: Path):
    """(trades_loss, SmallCNN, _pgd_whitebox) from a TRADES checkout: the first two
    imported, the last compiled alone from pgd_attack_mnist.py (whose module level parses
    argv and needs torchvision) with its defaults bound to the paper's MNIST budget."""
    sys.path.insert(0, str(folder))
    from models.small_cnn import SmallCNN
    from trades import trades_loss
    if ".cuda()" in (folder / "trades.py").read_text():
        sys.exit(f"{folder}/trades.py still calls .cuda(): apply the sed line of the docstring.")
    tree = ast.parse((folder / "pgd_attack_mnist.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_pgd_whitebox")
    scope = {"torch": torch, "nn": torch.nn, "optim": torch.optim,
             "Variable": torch.autograd.Variable, "device": torch.device("cpu"),
             "args": types.SimpleNamespace(epsilon=EPS, num_steps=STEPS, step_size=STEP, random=True)}
    exec(compile(ast.Module(body=[node], type_ignores=[]), "pgd_attack_mnist.py", "exec"), scope)
    return trades_loss, SmallCNN, scope["_pgd_whitebox"]


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    trades_loss, RefSmallCNN, ref_pgd = load_reference(Path(args.reference).resolve())
    images, labels = batch("mnist", args.batch_size)
    torch.manual_seed(0)
    ref_model = RefSmallCNN()
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.01, momentum=0.9)

    def reference_trades():
        ref_model.train()
        ref_opt.zero_grad()
        loss = trades_loss(ref_model, images, labels, ref_opt, step_size=STEP, epsilon=EPS,
                           perturb_steps=STEPS, beta=6.0)
        loss.backward()
        ref_opt.step()

    def reference_pgd():
        ref_model.eval()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its error count
            ref_pgd(ref_model, images, labels)

    budget = AttackBudget(EPS, STEP, STEPS)
    ours = Step("trades", "smallcnn", images, labels, budget)
    ours_fast = Step("trades", "smallcnn", images, labels, budget, channels_last=True, bf16=True)
    attack = PGD(EPS, STEP, STEPS, seed=0)
    ours.model.eval()

    def ours_pgd():
        attack(ours.model, images, labels)

    def ours_trades():
        ours.model.train()
        ours()

    cases = {"reference trades": reference_trades, "ours trades": ours_trades,
             "ours trades bf16+cl": ours_fast, "reference pgd40": reference_pgd,
             "ours pgd40": ours_pgd}
    median = round_robin(cases, args.repeats)
    info["loadavg_end"] = machine(args.threads)["loadavg"]
    print_machine(info)
    print(f"SmallCNN, batch {args.batch_size}, eps {EPS}, {STEPS} steps of {STEP}, median of {args.repeats}")
    for name, seconds in median.items():
        base = median["reference trades" if "trades" in name else "reference pgd40"]
        print(f"{name:<22}{seconds:8.3f} s   x reference {seconds / base:6.3f}")
    return median


if __name__ == "__main__":
    main()
