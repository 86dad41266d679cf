"""What the network notebooks run, in a few calls: protocol presets, training a method by
name (resuming a run folder that already exists), the protocol's evaluation, and the bound.

    config = experiments.make_config("drrdn", "mnist5k", epochs=2, seed=0, out_dir=folder)
    run = experiments.train_or_resume(config)
    record = experiments.evaluate_model(run.best_model, "mnist5k", limit=500)
    report = experiments.bound_report(run.best_model, "mnist5k", record, limit=500)
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .attacks import BUDGETS, PGD, AttackBudget
from .bounds import BoundReport, estimate_bound
from .data import load_dataset
from .evaluate import EvaluationRecord, evaluate, protocol_attacks
from .train import LAST, TrainConfig, TrainResult, train

__all__ = ["PROTOCOLS", "DEFAULT_HYPER", "METHOD_ORDER", "protocol", "make_config",
           "train_or_resume", "eval_budget", "evaluate_model", "bound_report"]

#: docs/DRRDN.md's protocol per dataset family (mnist5k follows mnist).
PROTOCOLS = {
    "mnist": {"model": "smallcnn", "lr": 0.01, "train": BUDGETS["mnist_train"], "eval": BUDGETS["mnist_eval"]},
    "cifar10": {"model": "preact_resnet18", "lr": 0.1, "train": BUDGETS["cifar10_train"], "eval": BUDGETS["cifar10_eval"]},
}
#: Hyperparameters of the comparison (TRADES and MART: beta 6, as their papers; DRRDN: all
#: reconstructed terms on with weight 1 except the optional MI penalty).
DEFAULT_HYPER = {"standard": {}, "pgd_at": {}, "trades": {"beta": 6.0}, "mart": {"beta": 6.0}, "drrdn": {}}
METHOD_ORDER = ("standard", "pgd_at", "trades", "mart", "drrdn")
#: A reduced AutoAttack for CI-scale runs (reported as "autoattack" with "standard": false).
FAST_AUTOATTACK = {"attacks": ["apgd-ce", "apgd-t"], "n_iter": 20, "n_target_classes": 3}


def protocol(dataset: str) -> dict:
    """The protocol entry for ``dataset`` (``mnist5k`` and ``mnist`` share one)."""
    family = "mnist" if dataset.startswith("mnist") else dataset
    if family not in PROTOCOLS:
        raise ValueError(f"no protocol for dataset {dataset!r}; use one of mnist5k, mnist, cifar10.")
    return PROTOCOLS[family]


def make_config(method: str, dataset: str, *, epochs: int, seed: int = 0, out_dir=None,
                train_steps: int | None = None, val_steps: int | None = None,
                hyper: dict | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` on the protocol's model, lr and budgets for ``dataset``.

    ``train_steps`` / ``val_steps`` shorten the PGD of training / validation for CI scale
    (the step size is then raised to ``2.5 * eps / steps`` so the attack still reaches the
    boundary of the ball, the rule of Madry et al.); ``hyper`` updates :data:`DEFAULT_HYPER`.
    """
    proto = protocol(dataset)
    train_budget, eval_budget_ = proto["train"], proto["eval"]
    fields = {"model": proto["model"], "lr": proto["lr"],
              **_budget_fields("train", train_budget, train_steps),
              **_budget_fields("val", eval_budget_, val_steps)}
    fields.update(overrides)
    return TrainConfig(method=method, dataset=dataset, epochs=epochs, seed=seed,
                       out_dir=None if out_dir is None else str(out_dir),
                       hyper={**DEFAULT_HYPER.get(method, {}), **(hyper or {})}, **fields)


def _budget_fields(prefix: str, budget: AttackBudget, steps: int | None) -> dict:
    if steps is None or steps == budget.steps:
        return {f"{prefix}_eps": budget.eps, f"{prefix}_step_size": budget.step_size,
                f"{prefix}_steps": budget.steps}
    return {f"{prefix}_eps": budget.eps, f"{prefix}_step_size": 2.5 * budget.eps / steps,
            f"{prefix}_steps": steps}


def train_or_resume(config: TrainConfig) -> TrainResult:
    """Train ``config``; if its ``out_dir`` already holds a run, continue it (a finished
    run is loaded back without training)."""
    resume = config.out_dir is not None and (Path(config.out_dir) / LAST).exists()
    return train(config, resume=resume)


def eval_budget(dataset: str, steps: int | None = None) -> AttackBudget:
    """The protocol's evaluation PGD budget, optionally with fewer steps (step 2.5 eps/steps)."""
    budget = protocol(dataset)["eval"]
    if steps is None or steps == budget.steps:
        return budget
    return AttackBudget(budget.eps, 2.5 * budget.eps / steps, steps)


def _attacks(budget: AttackBudget, autoattack: str | None, seed: int) -> dict:
    if autoattack not in ("standard", "fast", None, "none"):
        raise ValueError(f"autoattack={autoattack!r}; use 'standard' (to report), 'fast' "
                         "(reduced, CI scale) or None.")
    if autoattack == "fast":
        return protocol_attacks(budget, autoattack="custom", seed=seed, **FAST_AUTOATTACK)
    return protocol_attacks(budget, autoattack=None if autoattack == "none" else autoattack, seed=seed)


def evaluate_model(model: nn.Module, dataset: str, *, split: str = "test", limit: int | None = None,
                   data_dir=None, pgd_steps: int | None = None, autoattack: str | None = "standard",
                   checks="cheap", seed: int = 0, progress: bool = False) -> EvaluationRecord:
    """Clean, FGSM, PGD, CW-inf and AutoAttack accuracy and their per-example worst case on
    ``split`` (a class-stratified ``limit`` subset chosen by ``seed``), with the
    gradient-masking ``checks`` ("cheap", "all", "none")."""
    device = next(model.parameters()).device
    x, y = load_dataset(dataset, split, data_dir=data_dir, limit=limit, seed=seed)
    attacks = _attacks(eval_budget(dataset, pgd_steps), autoattack, seed)
    return evaluate(model, x.to(device), y.to(device), attacks, checks=checks, progress=progress)


def bound_report(model: nn.Module, dataset: str, record: EvaluationRecord | None = None, *,
                 split: str = "test", limit: int | None = None, data_dir=None,
                 pgd_steps: int | None = None, seed: int = 0, **kw) -> BoundReport:
    """The bound's terms on ``model.representation`` (z_s for DRRDN, backbone features for
    the baselines), the adversarial domain A defined by the evaluation PGD. With the
    ``record`` of :func:`evaluate_model` on the same examples, the TRADES split uses its
    per-example worst case over all attacks."""
    device = next(model.parameters()).device
    x, y = load_dataset(dataset, split, data_dir=data_dir, limit=limit, seed=seed)
    budget = eval_budget(dataset, pgd_steps)
    worst = None
    if record is not None and "worst_case" in record.per_example:
        worst = record.per_example["worst_case"]
        if len(worst) != len(y):
            raise ValueError(f"the record has {len(worst)} examples, this split {len(y)}: "
                             "evaluate and bound the same split, limit and seed.")
    attack = PGD(budget.eps, budget.step_size, budget.steps, seed=seed)
    return estimate_bound(model, x.to(device), y.to(device), attack=attack,
                          worst_case_correct=worst, seed=seed, **kw)
