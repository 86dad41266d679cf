"""What the network notebooks run, in a few calls: protocol presets, training a method by
name (resuming a run folder that already exists), the protocol's evaluation, and the bound.

    config = experiments.make_config("drrdn", "mnist5k", epochs=2, seed=0, out_dir=folder)
    run = experiments.train_or_resume(config)
    record = experiments.evaluate_model(run.best_model, "mnist5k", limit=500)
    report = experiments.bound_report(run.best_model, "mnist5k", record, limit=500)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch import nn

from .attacks import PGD, AttackBudget
from .bounds import BoundReport, estimate_bound
from .data import load_dataset
from .evaluate import EvaluationRecord, evaluate, protocol_attacks
from .methods import hyper_defaults
from .protocol import PAPER
from .torch_utils import model_device
from .results import REPO_ROOT
from .train import TrainConfig, TrainResult, train
from .train_config import OUTSIDE_RUN_IDENTITY

__all__ = ["PROTOCOLS", "DEFAULT_HYPER", "METHOD_ORDER", "protocol", "training_kw", "make_config", "resized",
           "train_or_resume", "run_folder", "shared_run", "eval_budget", "evaluate_model", "bound_report",
           "train_grid", "evaluate_runs", "mean_sd_table", "FULL_DRRDN", "ABLATIONS"]

def _settings(family: str, model: str) -> dict:
    recipe = PAPER[family]
    return {"model": model, "lr": recipe.lr, "momentum": recipe.momentum,
            "weight_decay": recipe.weight_decay, "batch_size": recipe.batch_size,
            "train": recipe.train,
            "eval": AttackBudget(recipe.eps, recipe.eval_step, 40)}


#: The settings the notebooks train with, per dataset family (mnist5k follows mnist): the
#: paper's protocol (``drrdn_lib.protocol``), except CIFAR-10's network, PreAct ResNet-18
#: (affordable) instead of WRN-28-10 (pass model="wrn28_10"). "eval" is the PGD-40 of
#: Tables 1 and 2 (validation and the notebooks' PGD column).
PROTOCOLS = {"mnist": _settings("mnist", "smallcnn"),
             "cifar10": _settings("cifar10", "preact_resnet18")}
#: Hyperparameters of the comparison (TRADES and MART: beta 6, as their papers; DRRDN: the
#: paper's weights, lambda_mi and lambda_rec from our validation search).
DEFAULT_HYPER = {"standard": {}, "pgd_at": {}, "trades": {"beta": 6.0}, "mart": {"beta": 6.0}, "drrdn": {}}
METHOD_ORDER = ("standard", "pgd_at", "trades", "mart", "drrdn")
#: the display name of the complete DRRDN in ablation tables (claims compare against it)
FULL_DRRDN = "full DRRDN"
#: DRRDN ablations, display name -> hyperparameters: the paper's Table 4 (without MI, without
#: reconstruction), each of L_BC, L_ADV, L_ENT off, and the control with every
#: disentanglement loss off (L_CE on natural and adversarial z_s only: PGD-AT plus a
#: natural-example term through the same heads)
ABLATIONS = {FULL_DRRDN: {}, "without MI": {"lambda_mi": 0.0},
             "without reconstruction": {"lambda_rec": 0.0},
             "without L_BC": {"lambda_bc": 0.0}, "without L_ADV": {"lambda_adv": 0.0},
             "without L_ENT": {"lambda_ent": 0.0},
             "no disentanglement (L_CE only)": {"lambda_bc": 0.0, "lambda_adv": 0.0,
                                                "lambda_ent": 0.0, "lambda_mi": 0.0,
                                                "lambda_rec": 0.0}}
#: A reduced AutoAttack for CI-scale runs (reported as "autoattack" with "standard": false).
FAST_AUTOATTACK = {"attacks": ["apgd-ce", "apgd-t"], "n_iter": 10, "n_target_classes": 1}


def protocol(dataset: str) -> dict:
    """The protocol entry for ``dataset`` (``mnist5k`` and ``mnist`` share one)."""
    family = "mnist" if dataset.startswith("mnist") else dataset
    if family not in PROTOCOLS:
        raise ValueError(f"no protocol for dataset {dataset!r}; use one of mnist5k, mnist, cifar10.")
    return PROTOCOLS[family]


def training_kw(*, epochs: int, train_limit: int | None = None, batch_size: int = 128,
                eps: float | None = None, train_steps: int | None = None, lr: float | None = None,
                model: str | None = None, device: str = "cpu", data_dir=None,
                keep_every: int | None = None) -> dict:
    """The :func:`make_config` keyword arguments of a notebook's ``parameters`` cell, one rule
    for every notebook so that their equal settings give one shared run.

    A ``train_limit`` subset validates on 200 examples (else the whole val split) with the
    training PGD; ``lr``/``model`` None keep the protocol's; ``keep_every`` None keeps the
    weights of about 8 evenly spaced epochs (every epoch up to 8 epochs), for the
    bound-over-training plot of notebook 04.
    """
    kw = dict(epochs=epochs, train_limit=train_limit, val_limit=200 if train_limit else None,
              batch_size=batch_size, eps=eps, train_steps=train_steps, val_steps=train_steps,
              device=device, data_dir=data_dir, progress=False,
              keep_every=max(1, epochs // 8) if keep_every is None else keep_every)
    kw.update({k: v for k, v in (("lr", lr), ("model", model)) if v is not None})
    return kw


def make_config(method: str, dataset: str, *, epochs: int, seed: int = 0, out_dir=None,
                eps: float | None = None, train_steps: int | None = None,
                val_steps: int | None = None, hyper: dict | None = None,
                **overrides) -> TrainConfig:
    """A :class:`TrainConfig` on the protocol's model, lr and budgets for ``dataset``.

    ``eps``, ``train_steps`` and ``val_steps`` change the protocol's budgets (for CI scale);
    the PGD step is then ``2.5 * eps / steps`` (:func:`resized`). ``hyper`` updates
    :data:`DEFAULT_HYPER`; other keyword arguments are TrainConfig fields.
    """
    proto = protocol(dataset)
    fields = {k: proto[k] for k in ("model", "lr", "momentum", "weight_decay", "batch_size")}
    for prefix, budget in (("train", resized(proto["train"], train_steps, eps)),
                           ("val", resized(proto["eval"], val_steps, eps))):
        fields.update({f"{prefix}_eps": budget.eps, f"{prefix}_step_size": budget.step_size,
                       f"{prefix}_steps": budget.steps})
    fields.update(overrides)
    return TrainConfig(method=method, dataset=dataset, epochs=epochs, seed=seed,
                       out_dir=None if out_dir is None else str(out_dir),
                       hyper={**hyper_defaults(method), **DEFAULT_HYPER.get(method, {}), **(hyper or {})},
                       **fields)  # every hyperparameter spelled out: equal runs have equal configs


def resized(budget: AttackBudget, steps: int | None = None, eps: float | None = None) -> AttackBudget:
    """``budget`` itself, or with another ``steps``/``eps`` and step 2.5 eps / steps (the
    rule of Madry et al., so that PGD can still cross the ball)."""
    if (steps is None or steps == budget.steps) and (eps is None or eps == budget.eps):
        return budget
    eps = budget.eps if eps is None else eps
    steps = budget.steps if steps is None else steps
    return AttackBudget(eps, 2.5 * eps / steps, steps)


def run_folder(config: TrainConfig, root=None) -> Path:
    """``results/runs/<dataset>/<method>-<hash>``: one folder per distinct configuration, so
    notebooks that need the same run share it (the hash leaves out where files go, the
    device and the progress bar). :func:`make_config` spells every hyperparameter out, so
    equal runs have equal configurations and one folder."""
    fields = {k: v for k, v in config.to_dict().items() if k not in OUTSIDE_RUN_IDENTITY}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    root = Path(root) if root is not None else REPO_ROOT / "results" / "runs"
    return root / config.dataset / f"{config.method}-{digest}"


def shared_run(method: str, dataset: str, *, root=None, **kw) -> TrainResult:
    """:func:`make_config` + :func:`train_or_resume` in the :func:`run_folder` of that
    configuration: a configuration trained before (by any notebook) is loaded, not retrained."""
    config = make_config(method, dataset, **kw)
    config.out_dir = str(run_folder(config, root))
    return train_or_resume(config)


def train_or_resume(config: TrainConfig) -> TrainResult:
    """Train ``config``; if its ``out_dir`` already holds a run, continue it (a finished
    run is loaded back without training)."""
    return train(config, resume=config.out_dir is not None)


def eval_budget(dataset: str, steps: int | None = None, eps: float | None = None) -> AttackBudget:
    """The protocol's evaluation PGD budget for ``dataset``, optionally :func:`resized`."""
    return resized(protocol(dataset)["eval"], steps, eps)


def _attacks(budget: AttackBudget, autoattack: str | None, seed: int) -> dict:
    if autoattack not in ("standard", "fast", None, "none"):
        raise ValueError(f"autoattack={autoattack!r}; use 'standard' (to report), 'fast' "
                         "(reduced, CI scale) or None.")
    if autoattack == "fast":
        return protocol_attacks(budget, autoattack="custom", seed=seed, **FAST_AUTOATTACK)
    return protocol_attacks(budget, autoattack=None if autoattack == "none" else autoattack, seed=seed)


def evaluate_model(model: nn.Module, dataset: str, *, split: str = "test", limit: int | None = None,
                   data_dir=None, pgd_steps: int | None = None, eps: float | None = None,
                   autoattack: str | None = "standard",
                   checks="cheap", seed: int = 0, progress: bool = False) -> EvaluationRecord:
    """Clean, FGSM, PGD, CW-inf and AutoAttack accuracy and their per-example worst case on
    ``split`` (a class-stratified ``limit`` subset chosen by ``seed``), with the
    gradient-masking ``checks`` ("cheap", "all", "none")."""
    device = model_device(model)
    x, y = load_dataset(dataset, split, data_dir=data_dir, limit=limit, seed=seed)
    attacks = _attacks(eval_budget(dataset, pgd_steps, eps), autoattack, seed)
    return evaluate(model, x.to(device), y.to(device), attacks, checks=checks, progress=progress)


def bound_report(model: nn.Module, dataset: str, record: EvaluationRecord | None = None, *,
                 split: str = "test", limit: int | None = None, data_dir=None,
                 pgd_steps: int | None = None, eps: float | None = None, seed: int = 0,
                 **kw) -> BoundReport:
    """The bound's terms on ``model.representation`` (z_s for DRRDN, backbone features for
    the baselines), the adversarial domain A defined by the evaluation PGD. With the
    ``record`` of :func:`evaluate_model` on the same examples, the TRADES split uses its
    per-example worst case over all attacks."""
    device = model_device(model)
    x, y = load_dataset(dataset, split, data_dir=data_dir, limit=limit, seed=seed)
    budget = eval_budget(dataset, pgd_steps, eps)
    worst = None
    if record is not None and "worst_case" in record.per_example:
        worst = record.per_example["worst_case"]
        if len(worst) != len(y):
            raise ValueError(f"the record has {len(worst)} examples, this split {len(y)}: "
                             "evaluate and bound the same split, limit and seed.")
    attack = PGD(budget.eps, budget.step_size, budget.steps, seed=seed)
    return estimate_bound(model, x.to(device), y.to(device), attack=attack,
                          worst_case_correct=worst, seed=seed, **kw)


def train_grid(methods, dataset: str, seeds, *, hyper_by_method: dict | None = None,
               **train_kw) -> dict[tuple[str, int], TrainResult]:
    """:func:`shared_run` for every (method, seed); ``train_kw`` go to :func:`make_config`."""
    hyper_by_method = hyper_by_method or {}
    return {(m, s): shared_run(m, dataset, seed=s, hyper=hyper_by_method.get(m), **train_kw)
            for m in methods for s in seeds}


def evaluate_runs(runs: dict, dataset: str, checkpoints=("best", "last"), **eval_kw):
    """Evaluate each run's ``best`` and/or ``last`` weights with :func:`evaluate_model`.

    Returns (rows, records): one flat dict per (method, seed, checkpoint) with the
    accuracies in [0, 1], the run's best epoch and the number of warnings; and the
    :class:`EvaluationRecord` of each, keyed the same way.
    """
    rows, records = [], {}
    for (method, seed), run in runs.items():
        for which in checkpoints:
            model = {"best": run.best_model, "last": run.model}[which]
            record = evaluate_model(model, dataset, **eval_kw)
            records[(method, seed, which)] = record
            rows.append({"method": method, "seed": seed, "checkpoint": which,
                         "epoch": (run.best if which == "best" else run.last)["epoch"],
                         **record.summary(), "warnings": len(record.warnings)})
    return rows, records


def mean_sd_table(frame, columns, by=("method", "checkpoint")):
    """``mean ± sd`` over seeds (percent, one decimal) of ``columns``, one row per group."""
    grouped = frame.groupby(list(by), sort=False)[list(columns)]
    mean, sd = grouped.mean() * 100, grouped.std(ddof=1).fillna(0.0) * 100
    return mean.round(1).astype(str) + " ± " + sd.round(1).astype(str)
