"""The paper's experimental protocol (docs/protocol.md), as presets: the training recipe
per dataset, the white-box evaluation attacks of Tables 1 and 2, and the black-box
(transfer) budget. Values the paper leaves out are our choices, marked (ours) here and
explained in docs/protocol.md.

    recipe = PAPER["mnist"]                      # model, budgets, optimiser, schedule
    attacks = white_box_attacks("mnist")         # {"fgsm": ..., "pgd40": ..., ...}
"""
from __future__ import annotations

from dataclasses import dataclass

from .attacks import PGD, AttackBudget, CWInf

__all__ = ["Recipe", "PAPER", "BUDGETS", "MILESTONE_FRACTIONS", "paper_recipe", "budget",
           "milestones", "white_box_attacks", "WHITE_BOX_NAMES"]

#: the paper's lr decay (x0.1) after epochs 55, 75 and 90 of 100, as fractions
MILESTONE_FRACTIONS = (0.55, 0.75, 0.90)
#: Tables 1 and 2's white-box columns, in order
WHITE_BOX_NAMES = ("fgsm", "pgd40", "pgd100", "cw40", "cw100")


@dataclass(frozen=True)
class Recipe:
    """One dataset's protocol.

    Attributes (eps and steps in [0, 1] pixel units, L-inf):
        model: the paper's network (a ``drrdn_lib.models`` name).
        train: the PGD budget of training (random start: ours).
        eval_step: PGD/CW step size of the white-box evaluation (FGSM's step is 10x).
        black_box: the PGD budget surrogates craft transfer examples with.
        lr, epochs: SGD learning rate and number of epochs (lr x0.1 at 55/75/90%).
        momentum, weight_decay, batch_size: not in the paper (ours, docs/protocol.md).
    """
    model: str
    train: AttackBudget
    eval_step: float
    black_box: AttackBudget
    lr: float
    epochs: int = 100
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128

    @property
    def eps(self) -> float:
        return self.train.eps


PAPER = {
    "mnist": Recipe(model="smallcnn", train=AttackBudget(0.3, 0.01, 40), eval_step=0.01,
                    black_box=AttackBudget(0.3, 0.01, 40), lr=0.01, weight_decay=0.0),
    "cifar10": Recipe(model="wrn28_10", train=AttackBudget(0.031, 0.007, 10), eval_step=0.003,
                      black_box=AttackBudget(0.031, 0.003, 20), lr=0.1, weight_decay=2e-4),
}


#: The paper's PGD budgets keyed ``"<dataset>_<stage>"``: ``train`` (the training attack) and
#: ``eval`` (PGD-40 at the evaluation step: validation and the notebooks' PGD column)
BUDGETS: dict[str, AttackBudget] = {
    f"{name}_{stage}": (recipe.train if stage == "train"
                        else AttackBudget(recipe.eps, recipe.eval_step, 40))
    for name, recipe in PAPER.items() for stage in ("train", "eval")}


def budget(dataset: str, stage: str) -> AttackBudget:
    """The paper's PGD budget for ``dataset`` in {"mnist", "cifar10"} and ``stage`` in
    {"train", "eval"} (MNIST: eps 0.3, PGD-40 step 0.01; CIFAR-10: eps 0.031, PGD-10 step
    0.007 to train, PGD-40 step 0.003 to evaluate)."""
    key = f"{dataset}_{stage}"
    if key not in BUDGETS:
        raise ValueError(f"No budget preset {key!r}; choose one of {sorted(BUDGETS)}.")
    return BUDGETS[key]


def paper_recipe(dataset: str) -> Recipe:
    """The recipe of ``dataset``'s family (``mnist5k`` and ``mnist`` share MNIST's)."""
    family = "mnist" if dataset.startswith("mnist") else dataset
    if family not in PAPER:
        raise ValueError(f"no protocol for dataset {dataset!r}; use one of mnist5k, mnist, "
                         "cifar10.")
    return PAPER[family]


def milestones(epochs: int) -> tuple[int, ...]:
    """The paper's lr milestones scaled to ``epochs`` (55/75/90% of them, rounded down,
    those in [1, epochs) kept): (55, 75, 90) for 100 epochs, (5, 7, 9) for 10."""
    return tuple(sorted({m for m in (int(epochs * f + 1e-9) for f in MILESTONE_FRACTIONS)
                         if 0 < m < epochs}))


def white_box_attacks(dataset: str, seed: int = 0) -> dict:
    """Tables 1 and 2's white-box attacks at the training eps: ``fgsm`` (one signed step of
    10x the PGD step from the clean image, no random start: 0.1 on MNIST, below eps 0.3;
    0.03 on CIFAR-10), ``pgd40``/``pgd100`` (CE, random start) and ``cw40``/``cw100``
    (PGD on the Carlini-Wagner margin loss, random start), at the paper's step."""
    recipe = paper_recipe(dataset)
    eps, step = recipe.eps, recipe.eval_step
    return {"fgsm": PGD(eps, 10 * step, 1, random_start=False, seed=seed),
            "pgd40": PGD(eps, step, 40, seed=seed), "pgd100": PGD(eps, step, 100, seed=seed),
            "cw40": CWInf(eps, step, 40, seed=seed), "cw100": CWInf(eps, step, 100, seed=seed)}
