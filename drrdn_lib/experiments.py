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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .attacks import PGD, AttackBudget, CWInf
from .autoattack_adapter import AutoAttackAdapter
from .bounds import BoundReport, estimate_bound
from .data import load_dataset
from .eval_cache import cached
from .evaluate import EvaluationRecord, evaluate, protocol_attacks
from .methods import hyper_defaults
from .protocol import BUDGETS, PAPER
from .torch_utils import model_device, predict_labels
from .stats import Accuracy, accuracy_cell, binomial_ci
from .transfer import TransferResult, transfer_matrix
from .results import REPO_ROOT, repo_relative
from .train import TrainConfig, TrainResult, epoch_checkpoints, train
from .train_config import OUTSIDE_RUN_IDENTITY

__all__ = ["PROTOCOLS", "DEFAULT_HYPER", "METHOD_ORDER", "protocol", "training_kw", "make_config", "resized",
           "train_or_resume", "run_folder", "shared_run", "zoo_run", "run_origin", "eval_budget", "attack_scale", "evaluate_model", "bound_report",
           "train_grid", "evaluate_runs", "mean_sd_table", "FULL_DRRDN", "ABLATIONS",
           "MODEL_LABELS", "REDUCED_AUTOATTACK_LABEL", "train_grid_from_standard", "paper_attacks",
           "black_box_budget", "attack_label", "paper_column", "MainTable", "evaluate_main_table",
           "summarise_seeds", "summarise_accuracies", "summarise_estimates", "format_accuracy",
           "format_estimate", "format_cell", "compare_with_paper", "training_path", "pgd_accuracy_curve", "cell",
           "RunNotFinished", "evaluate_for_notebook", "learning_curves", "notebook_training_kw",
           "ablation_variants", "ablation_training_kw", "ablation_run", "evaluate_ablation_run"]

def _settings(family: str, model: str) -> dict:
    recipe = PAPER[family]
    return {"model": model, "lr": recipe.lr, "momentum": recipe.momentum,
            "weight_decay": recipe.weight_decay, "batch_size": recipe.batch_size,
            "train": BUDGETS[f"{family}_train"], "eval": BUDGETS[f"{family}_eval"]}


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
                keep_every: int | None = None, bf16: bool = False,
                channels_last: bool = False, eps_ramp_epochs: float = 0,
                model_kwargs: dict | None = None) -> dict:
    """The :func:`make_config` keyword arguments of a notebook's ``parameters`` cell, one rule
    for every notebook so that their equal settings give one shared run.

    A ``train_limit`` subset validates on 200 examples (else the whole val split) with the
    training PGD; ``lr``/``model`` None keep the protocol's; ``keep_every`` None keeps the
    weights of about 8 evenly spaced epochs (every epoch up to 8 epochs), for the
    bound-over-training plot of notebook 04. ``bf16``, ``channels_last`` and
    ``eps_ramp_epochs`` are the TrainConfig fields (part of the run's identity);
    ``model_kwargs`` go to the model's constructor (e.g. ``{"init": "trades"}`` for
    SmallCNN initialised as TRADES's network; None or {} keep its default).
    """
    kw = dict(epochs=epochs, train_limit=train_limit, val_limit=200 if train_limit else None,
              batch_size=batch_size, eps=eps, train_steps=train_steps, val_steps=train_steps,
              device=device, data_dir=data_dir, progress=False,
              keep_every=max(1, epochs // 8) if keep_every is None else keep_every,
              bf16=bool(bf16), channels_last=bool(channels_last),
              eps_ramp_epochs=eps_ramp_epochs)
    kw.update({k: v for k, v in (("lr", lr), ("model", model)) if v is not None})
    if model_kwargs:
        kw["model_kwargs"] = dict(model_kwargs)
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
    equal runs have equal configurations and one folder. A run that starts from another's
    weights (``init_from``) names that run by its path under ``root``, so the folder does
    not depend on where the repository is checked out."""
    fields = {k: v for k, v in config.to_dict().items() if k not in OUTSIDE_RUN_IDENTITY}
    if fields.get("init_from"):  # the source run by its place under root (itself a hash), not
        source = Path(fields["init_from"]).resolve()  # this checkout's absolute path
        base = (Path(root) if root is not None else REPO_ROOT / "results" / "runs").resolve()
        fields["init_from"] = (str(source.relative_to(base)) if source.is_relative_to(base)
                               else str(source))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    root = Path(root) if root is not None else REPO_ROOT / "results" / "runs"
    return root / config.dataset / f"{config.method}-{digest}"


class RunNotFinished(RuntimeError):
    """A run asked for with ``load_only`` has not finished training (or was never started)."""


def shared_run(method: str, dataset: str, *, root=None, load_only: bool = False, **kw) -> TrainResult:
    """:func:`make_config` + :func:`train_or_resume` in the :func:`run_folder` of that
    configuration: a configuration trained before (by any notebook) is loaded, not retrained.
    ``load_only``: raise :class:`RunNotFinished` instead of training an unfinished run (so
    that an evaluation never trains a run that a background job is training)."""
    config = make_config(method, dataset, **kw)
    config.out_dir = str(run_folder(config, root))
    if load_only:
        metrics = Path(config.out_dir) / "metrics.json"
        status = json.loads(metrics.read_text()).get("status") if metrics.is_file() else "not started"
        if status != "finished":
            raise RunNotFinished(f"{method} (seed {config.seed}) in {config.out_dir}: {status}, "
                                 "not finished; train it first (scripts/train_main_runs.py).")
    return train_or_resume(config)


def zoo_run(method: str, dataset: str, *, zoo_dir=None, **kw) -> TrainResult:
    """The zoo's model that :func:`shared_run` ``(method, dataset, **kw)`` would train, found
    by run identity (its card's configuration has the same :func:`run_folder` hash), as a
    finished :class:`TrainResult` (:func:`drrdn_lib.zoo.training_run`): an evaluation of the
    shipped checkpoints without their training folders. ``zoo.ZooError`` when no zoo model
    was trained with that configuration."""
    from . import zoo
    from .train_config import config_from_dict

    config = make_config(method, dataset, **kw)
    wanted = run_folder(config).name
    cards = {name: zoo.card(name, zoo_dir) for name in zoo.available(zoo_dir)}
    trained = {name: run_folder(config_from_dict(info["training"]["config"], recorded=True)).name
               for name, info in cards.items() if not zoo.is_external(info)}
    matches = [name for name, run in trained.items() if run == wanted]
    if len(matches) > 1:
        raise zoo.ZooError(f"the zoo cards {matches} all record the training configuration of "
                           f"{method} (seed {config.seed}) with these parameters (run {wanted}), "
                           "so which one is meant is ambiguous; remove the duplicates from the "
                           "zoo, or load one by name (zoo.training_run(NAME)).")
    if matches:
        return zoo.training_run(matches[0], config.device, zoo_dir)
    raise zoo.ZooError(f"no zoo model was trained as {method} (seed {config.seed}) with these "
                       f"parameters (run {wanted}); the zoo has {trained or 'no models'}. Train it "
                       "(scripts/train_main_runs.py) or choose the parameters a zoo card records.")


def run_origin(run: TrainResult) -> str:
    """Where a run's weights came from, for a metrics file: its folder relative to the
    repository, its zoo file (:func:`zoo_run`), or "not saved" (trained without out_dir)."""
    if run.source:
        return f"{run.source} (run {run_folder(run.config).name})"
    if run.out_dir is None:
        return "not saved"
    return str(repo_relative(run.out_dir))


def train_or_resume(config: TrainConfig) -> TrainResult:
    """Train ``config``; if its ``out_dir`` already holds a run, continue it (a finished
    run is loaded back without training)."""
    return train(config, resume=config.out_dir is not None)


def eval_budget(dataset: str, steps: int | None = None, eps: float | None = None) -> AttackBudget:
    """The protocol's evaluation PGD budget for ``dataset``, optionally :func:`resized`."""
    return resized(protocol(dataset)["eval"], steps, eps)


def attack_scale(dataset: str, *, eps, attack_steps, train_limit, init_from_standard: bool,
                 epochs: int, eval_limit) -> tuple[bool, AttackBudget, str]:
    """Notebooks 07 and 08's scale from their parameters: (protocol_scale: MNIST at the
    protocol's eps and PGD with every model trained from scratch on all the training data,
    the PGD budget of x' (:func:`eval_budget`), the words for titles and claims)."""
    budget = eval_budget(dataset, attack_steps, eps)
    protocol_scale = (dataset == "mnist" and eps is None and attack_steps is None
                      and train_limit is None and not init_from_standard)
    images = f"{eval_limit or 'all'} test images"
    if protocol_scale:
        return True, budget, (f"{dataset}, the protocol's eps {budget.eps:g} and PGD-{budget.steps}, "
                              f"{epochs} training epochs, {images}")
    return False, budget, (f"CI scale: {dataset}, {train_limit or 'all'} training images, "
                           f"eps {budget.eps:g}, PGD-{budget.steps}, {images}")


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


def training_path(run: TrainResult) -> list[dict]:
    """The weights a run kept along its training, in order, numbered by epochs trained in
    all: for a run started from another's best weights (``init_from``), that run's kept
    epochs up to its best (stage "pre-training"), then the run's own (stage "own"), numbered
    on from there. Rows: ``{"epoch", "stage", "run_dir", "run_epoch"}`` (load the weights
    with ``train.load_model(run_dir, run_epoch)``). A zoo model (:func:`zoo_run`, no run
    folder) kept only its best weights: no path."""
    if run.out_dir is None:
        return []
    path, offset = [], 0
    if run.config.init_from:
        source = Path(run.config.init_from)
        offset = json.loads((source / "metrics.json").read_text())["best"]["epoch"]
        path = [{"epoch": e, "stage": "pre-training", "run_dir": source, "run_epoch": e}
                for e in epoch_checkpoints(source) if e <= offset]
    return path + [{"epoch": offset + e, "stage": "own", "run_dir": Path(run.out_dir),
                    "run_epoch": e} for e in epoch_checkpoints(run.out_dir)]


def pgd_accuracy_curve(model: nn.Module, dataset: str, eps_grid, *, limit: int | None = None,
                       pgd_steps: int | None = None, seed: int = 0, data_dir=None,
                       return_right: bool = False):
    """PGD accuracy at each eps of ``eps_grid`` (eps 0: clean accuracy) on a stratified
    ``limit`` test subset, the evaluation PGD resized to that eps (step 2.5 eps / steps):
    ``{eps: cell}`` (:func:`drrdn_lib.stats.accuracy_cell`, Wilson 95%); with
    ``return_right``, also ``{eps: (n,) bool numpy}``, which digits stay correct (one set of
    digits for every eps, so two eps compare by a paired test)."""
    x, y = load_dataset(dataset, "test", data_dir=data_dir, limit=limit, seed=seed)
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    curve, right = {}, {}
    for e in eps_grid:
        if e == 0:
            right[e] = (predict_labels(model, x) == y).cpu().numpy()
        else:
            budget = eval_budget(dataset, pgd_steps, e)
            attack = PGD(budget.eps, budget.step_size, budget.steps, seed=seed)
            record = evaluate(model, x, y, {"pgd": attack}, checks="none", progress=False)
            right[e] = record.per_example["pgd"].cpu().numpy()
        curve[e] = accuracy_cell(int(right[e].sum()), len(y))
    return (curve, right) if return_right else curve


def train_grid(methods, dataset: str, seeds, *, hyper_by_method: dict | None = None,
               load_only: bool = False, from_zoo: bool = False,
               **train_kw) -> dict[tuple[str, int], TrainResult]:
    """:func:`shared_run` for every (method, seed) (``from_zoo``: :func:`zoo_run`, the
    shipped checkpoints); ``train_kw`` go to :func:`make_config`."""
    hyper_by_method = hyper_by_method or {}
    if from_zoo:
        return {(m, s): zoo_run(m, dataset, seed=s, hyper=hyper_by_method.get(m), **train_kw)
                for m in methods for s in seeds}
    return {(m, s): shared_run(m, dataset, seed=s, hyper=hyper_by_method.get(m),
                               load_only=load_only, **train_kw)
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


# --------------------------------------------------------------- Tables 1 and 2 (notebook 02)
#: display names of the methods, the paper's where it has one (Madry = PGD-AT)
MODEL_LABELS = {"standard": "Standard", "pgd_at": "Madry (PGD-AT)", "trades": "TRADES",
                "mart": "MART", "drrdn": "DRRDN"}
#: what a reader sees for the reduced AutoAttack of :data:`FAST_AUTOATTACK`
REDUCED_AUTOATTACK_LABEL = "reduced AutoAttack (APGD-CE + APGD-T, 10 iterations)"


def train_for_notebook(methods, dataset: str, seeds, *, epochs: int, train_limit=None,
                       batch_size: int = 128, eps=None, train_steps=None, lr=None, model=None,
                       device: str = "cpu", data_dir=None, init_from_standard: bool = False,
                       finetune_epochs: int = 1, finetune_lr=None, hyper_by_method=None,
                       bf16: bool = False, channels_last: bool = False,
                       eps_ramp_epochs: float = 0, model_kwargs: dict | None = None,
                       from_zoo: bool = False,
                       load_only: bool = False) -> dict[tuple[str, int], TrainResult]:
    """The training of the main-results notebook from its parameters, one home for the
    notebook and for ``scripts/train_main_runs.py`` (which trains the same runs in the
    background, so that the notebook then loads them): every method from scratch
    (:func:`train_grid`), or, with ``init_from_standard`` (CI), fine-tuned from one Standard
    run (:func:`train_grid_from_standard`). ``load_only`` (from-scratch runs only): load
    finished runs, raise :class:`RunNotFinished` for any other. ``from_zoo`` (from-scratch
    runs only): the zoo's models trained with exactly these parameters (:func:`zoo_run`),
    without their run folders. Returns ``{(method, seed): TrainResult}``."""
    speed = dict(bf16=bf16, channels_last=channels_last, eps_ramp_epochs=eps_ramp_epochs,
                 model_kwargs=model_kwargs)
    common = training_kw(epochs=epochs, train_limit=train_limit, batch_size=batch_size, eps=eps,
                         train_steps=train_steps, lr=lr, model=model, device=device,
                         data_dir=data_dir, **speed)
    if not init_from_standard:
        return train_grid(methods, dataset, seeds, hyper_by_method=hyper_by_method,
                          load_only=load_only, from_zoo=from_zoo, **common)
    if load_only or from_zoo:
        raise ValueError("load_only and from_zoo are for from-scratch runs (init_from_standard=False).")
    finetune = training_kw(epochs=finetune_epochs, train_limit=train_limit, batch_size=batch_size,
                           eps=eps, train_steps=train_steps, lr=finetune_lr, model=model,
                           device=device, data_dir=data_dir, **speed)
    return train_grid_from_standard(methods, dataset, seeds, pretrain_kw=common,
                                    finetune_kw=finetune, hyper_by_method=hyper_by_method)


def _keyword_params(function, params: dict, skip=()) -> dict:
    """The entries of ``params`` that name a keyword-only argument of ``function``."""
    import inspect
    names = [n for n, p in inspect.signature(function).parameters.items()
             if p.kind is p.KEYWORD_ONLY and n not in skip]
    return {n: params[n] for n in names if n in params}


def notebook_training_kw(params: dict) -> dict:
    """The keyword arguments of :func:`train_for_notebook` taken from a notebook's
    parameters (``params``: name -> value, e.g. a parameter file over the notebook's
    defaults), so that a script trains or loads exactly the notebook's runs."""
    return _keyword_params(train_for_notebook, params, skip=("load_only",))


def ablation_variants(names=None) -> dict[str, dict]:
    """The :data:`ABLATIONS` entries named in ``names`` (None: all), in that order, as
    ``{variant: hyper}``; a ``ValueError`` naming the known variants for any other name."""
    if names is None:
        return dict(ABLATIONS)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation variants {unknown}; choose from {list(ABLATIONS)}")
    return {n: ABLATIONS[n] for n in names}


def ablation_training_kw(params: dict) -> dict:
    """:func:`training_kw` of the ablation notebook's parameters (``params``: name -> value),
    one home for the notebook and ``scripts/train_ablation_runs.py``."""
    return training_kw(**_keyword_params(training_kw, params))


def ablation_run(variant: str, dataset: str, *, seed: int = 0, from_zoo: bool = False,
                 base_hyper: dict | None = None, **train_kw) -> TrainResult:
    """The DRRDN run of one :data:`ABLATIONS` variant: with ``from_zoo`` the full DRRDN is the
    zoo's model (:func:`zoo_run`); every other run is :func:`shared_run` (trained, or loaded
    when a background job or another notebook has trained it). ``base_hyper``: DRRDN's
    hyperparameters under every variant (e.g. ``{"lambda_rec": 0.001}``, so that the full
    DRRDN is notebook 02's run with that weight); a variant's own zeros win."""
    hyper = {**(base_hyper or {}), **ablation_variants([variant])[variant]}
    if from_zoo and variant == FULL_DRRDN:
        return zoo_run("drrdn", dataset, seed=seed, hyper=hyper, **train_kw)
    return shared_run("drrdn", dataset, seed=seed, hyper=hyper, **train_kw)


def evaluate_ablation_run(model: nn.Module, variant: str, seed: int, params: dict, cache_dir,
                          progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """Notebook 03's evaluation of one variant's model (``params``: the notebook's
    parameters), one home for the notebook and ``scripts/train_ablation_runs.py
    --evaluate-into``: :func:`evaluate_for_notebook` of that model alone, without a black
    box, cached in ``cache_dir``. Returns (frame, checks, records, flags): the
    :meth:`MainTable.to_frame` rows with a ``seed`` column (model = ``variant``); the
    gradient-masking checks run on the AutoAttack subset (:meth:`MainTable.checks_frame`
    with a ``seed`` column; no rows when ``checks`` is "none"); and the evaluation records
    as dicts (per-attack seconds and settings), ``{"all images": ...}`` plus
    ``"autoattack subset"`` when AutoAttack ran on a subset; and, with the same keys, the
    per-example "still correct" vectors (column -> bool (n,)) for paired tests."""
    tables, subset_tables, frame = evaluate_for_notebook(
        {seed: {variant: model}}, params["dataset"], data_dir=params.get("data_dir"),
        eval_limit=params["eval_limit"], autoattack=params["autoattack"],
        autoattack_limit=params["autoattack_limit"], cache_dir=cache_dir, eps=params["eps"],
        attack_steps=params["attack_steps"], checks=params["checks"],
        check_samples=params["check_samples"], square_queries=params["square_queries"],
        black_box=False, progress=progress)
    stages = {"all images": tables[seed]}
    if subset_tables[seed] is not tables[seed]:
        stages["autoattack subset"] = subset_tables[seed]
    records = {stage: t.records[variant].to_dict() for stage, t in stages.items()}
    flags = {stage: t.per_example[variant] for stage, t in stages.items()}
    return frame, subset_tables[seed].checks_frame().assign(seed=seed), records, flags


def train_grid_from_standard(methods, dataset: str, seeds, *, pretrain_kw: dict,
                             finetune_kw: dict, hyper_by_method: dict | None = None,
                             root=None) -> dict[tuple[str, int], TrainResult]:
    """One rule for every method when a short run must learn: per seed, a Standard run
    (``pretrain_kw``, e.g. :func:`training_kw` of 4 epochs) is trained first; then every
    method in ``methods``, Standard included, starts from its best weights
    (``TrainConfig.init_from``) and trains with its own objective under ``finetune_kw``
    (e.g. 1 epoch at lr 0.01). The recipe ``tests/test_methods.py`` documents: from a random
    start, adversarial training at CI scale stays near chance for a data-dependent time.

    Returns ``{(method, seed): TrainResult}`` of the fine-tuned runs (each cached by
    :func:`shared_run`; the pre-training run is ``run.config.init_from``)."""
    hyper_by_method = hyper_by_method or {}
    grid = {}
    for seed in seeds:
        pre = shared_run("standard", dataset, seed=seed, root=root, **pretrain_kw)
        for method in methods:
            grid[(method, seed)] = shared_run(method, dataset, seed=seed, root=root,
                                              init_from=str(pre.out_dir),
                                              hyper=hyper_by_method.get(method), **finetune_kw)
    return grid


def _scaled_step(dataset: str, eps: float | None, steps: int, paper_steps: int,
                 paper_step: float) -> tuple[float, float]:
    """(eps, step) of a paper attack run at ``eps`` with ``steps``: the paper's step scaled
    by eps / the protocol's eps (same number of steps to cross the ball) when the steps are
    the paper's; else 2.5 eps / steps (:func:`resized`'s rule)."""
    recipe = PAPER["mnist" if dataset.startswith("mnist") else dataset]
    eps = recipe.eps if eps is None else float(eps)
    if steps == paper_steps:
        return eps, paper_step * eps / recipe.eps
    return eps, 2.5 * eps / steps


def paper_attacks(dataset: str, eps: float | None = None, steps=None, seed: int = 0) -> dict:
    """Tables 1 and 2's white-box attacks (``protocol.white_box_attacks``) at ``eps``.

    eps None: the protocol's (0.3 MNIST, 0.031 CIFAR-10). At another eps every step size
    scales by eps / the protocol's eps: PGD and CW keep the paper's ratio of step to eps
    (40 x 0.01 = 1.33 x 0.3), FGSM's single step stays 10x the PGD step (eps / 3 on MNIST).
    ``steps`` None runs the paper's 40 and 100 steps; a pair ``(a, b)`` (CI scale) runs
    PGD-a, PGD-b, CW-a, CW-b instead, at step 2.5 eps / steps. The keys name the steps
    actually run: ``fgsm``, ``pgd40``, ``pgd100``, ``cw40``, ``cw100`` (or ``pgd<a>`` ...),
    so a reduced attack never carries the paper's name.
    """
    recipe = PAPER["mnist" if dataset.startswith("mnist") else dataset]
    a, b = (40, 100) if steps is None else (int(steps[0]), int(steps[1]))
    if not 1 <= a < b:
        raise ValueError(f"steps={steps!r}: give two increasing step counts, e.g. (10, 20), "
                         "or None for the paper's 40 and 100.")
    e, fgsm_base = _scaled_step(dataset, eps, 40, 40, recipe.eval_step)
    out = {"fgsm": PGD(e, 10 * fgsm_base, 1, random_start=False, seed=seed)}
    for loss in ("pgd", "cw"):
        for n, paper_n in ((a, 40), (b, 100)):
            e, step = _scaled_step(dataset, eps, n, paper_n, recipe.eval_step)
            out[f"{loss}{n}"] = (PGD(e, step, n, seed=seed) if loss == "pgd"
                                 else CWInf(e, step, n, seed=seed))
    return {k: out[k] for k in ("fgsm", f"pgd{a}", f"pgd{b}", f"cw{a}", f"cw{b}")}


def black_box_budget(dataset: str, eps: float | None = None, steps: int | None = None) -> AttackBudget:
    """The surrogates' PGD (``PAPER[d].black_box``: MNIST eps 0.3, step 0.01, 40 steps) at
    ``eps`` (step scaled by eps / the protocol's eps) or with fewer ``steps`` (step
    2.5 eps / steps), as :func:`paper_attacks`."""
    recipe = PAPER["mnist" if dataset.startswith("mnist") else dataset]
    bb = recipe.black_box
    n = bb.steps if steps is None else int(steps)
    e, step = _scaled_step(dataset, eps, n, bb.steps, bb.step_size)
    return AttackBudget(e, step, n)


def attack_label(key: str, autoattack: str | None = "standard") -> str:
    """What a reader sees for a column key of :class:`MainTable`."""
    if key == "clean":
        return "natural"
    if key == "fgsm":
        return "FGSM"
    if key == "autoattack":
        return REDUCED_AUTOATTACK_LABEL if autoattack == "fast" else "AutoAttack (standard)"
    if key == "black_box":
        return "black box, worst surrogate"
    if key == "worst_case":  # without AutoAttack it covers the paper's attacks and the black box
        return "worst case over every attack" if autoattack not in (None, "none") else attack_label("worst_case_paper")
    if key == "worst_case_paper":
        return "worst case, paper's attacks + black box"
    if key.startswith("bb_"):
        return f"black box from {MODEL_LABELS.get(key[3:], key[3:])}"
    for prefix, name in (("pgd", "PGD"), ("cw", "CW")):
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            return f"{name}-{key[len(prefix):]}"
    return key


def paper_column(key: str, steps=None) -> str | None:
    """The column of ``paper_numbers.TABLES`` that our column ``key`` stands for (None: no
    counterpart). With reduced ``steps`` (a, b), PGD-a stands for PGD-40 and PGD-b for
    PGD-100 (the table says so)."""
    a, b = (40, 100) if steps is None else (int(steps[0]), int(steps[1]))
    fixed = {"clean": "natural", "fgsm": "fgsm", f"pgd{a}": "pgd40", f"pgd{b}": "pgd100",
             f"cw{a}": "cw40", f"cw{b}": "cw100"}
    if key in fixed:
        return fixed[key]
    if key.startswith("bb_"):
        from .paper_numbers import METHOD_OF_MODEL
        paper_of = {m: p for p, m in METHOD_OF_MODEL.items()}
        return f"bb_{paper_of[key[3:]].lower()}" if key[3:] in paper_of else None
    return None


@dataclass
class MainTable:
    """One seed's Tables 1-2 (made by :func:`evaluate_main_table`).

    Attributes:
        models: method names, in order; columns: the accuracy columns, in order
            (``clean``, the paper's white-box attacks, ``autoattack``, ``bb_<surrogate>``,
            ``black_box``, ``worst_case``).
        per_example: model -> column -> bool (n,) "still correct", on the CPU (a model's
            own ``bb_`` column is absent: the paper's "-").
        records: model -> the white-box :class:`EvaluationRecord` (with its checks).
        transfer: the :class:`~drrdn_lib.transfer.TransferResult` (examples dropped).
    """
    models: list
    columns: list
    per_example: dict
    records: dict
    transfer: TransferResult

    @property
    def n(self) -> int:
        """The number of test images evaluated."""
        return len(self.per_example[self.models[0]]["clean"])

    def cell(self, model: str, column: str) -> Accuracy | None:
        """Accuracy with its Wilson interval, or None for a model's own black-box column."""
        flags = self.per_example[model].get(column)
        return None if flags is None else Accuracy.from_counts(int(flags.sum()), len(flags))

    def to_frame(self) -> pd.DataFrame:
        """One row per (model, column): n_correct, n, accuracy, lo, hi (fractions)."""
        rows = [{"model": m, "column": c, **cell.__dict__} for m in self.models
                for c in self.columns if (cell := self.cell(m, c)) is not None]
        return pd.DataFrame(rows, columns=["model", "column", "n_correct", "n", "accuracy", "lo", "hi"])

    def checks_frame(self) -> pd.DataFrame:
        """One row per (model, gradient-masking check): passed (True/False/None), message."""
        return pd.DataFrame([{"model": m, "check": c.name, "passed": c.passed, "message": c.message}
                             for m in self.models for c in self.records[m].checks],
                            columns=["model", "check", "passed", "message"])


def evaluate_main_table(models: dict[str, nn.Module], images, labels, dataset: str, *,
                        eps: float | None = None, attack_steps=None,
                        black_box_steps: int | None = None, autoattack: str | None = "standard",
                        checks="all", check_samples: int = 500, square_queries: int = 1000,
                        seed: int = 0, batch_size: int = 256, cache_dir=None,
                        black_box: bool = True, progress: bool = False) -> MainTable:
    """Tables 1 and 2 for one seed's ``models`` (name -> model) on (images, labels), plus
    what the paper lacks: AutoAttack and the per-example worst case over every attack run.

    White box: :func:`paper_attacks` (``eps``, ``attack_steps``) and AutoAttack
    (``"standard"``; ``"fast"`` is :data:`FAST_AUTOATTACK`, labelled
    :data:`REDUCED_AUTOATTACK_LABEL`) through :func:`drrdn_lib.evaluate.evaluate`, each
    attack on every clean-correct example, with the gradient-masking ``checks`` ("all" or a
    list: ``eps_monotone``, ``large_eps_chance``, ``stronger_pgd``, ``black_box`` can fail)
    on ``check_samples`` examples, ``square_queries`` Square queries, the reported PGD with
    fewer steps as their reference. Black box: :func:`drrdn_lib.transfer.transfer_matrix`
    with every model as target and surrogate, the diagonal empty, at
    :func:`black_box_budget` (``black_box`` False: none, for models that are not each
    other's adversaries, e.g. notebook 03's variants). ``worst_case``: correct on the clean image and under every
    white-box attack, AutoAttack and every other model's transfer example. ``cache_dir``
    (``drrdn_lib.eval_cache``): each model's evaluation and each surrogate's examples are
    kept there as they finish, and a model's attacks batch by batch while they run
    (``evaluate-*.partial.pt``), so that a killed evaluation resumes; None: no cache.
    ``progress``: a bar over each model's batches (on stderr).
    """
    attacks = paper_attacks(dataset, eps, attack_steps, seed)
    reference = next(a for k, a in attacks.items() if k.startswith("pgd"))
    if autoattack not in (None, "none"):
        if autoattack not in ("standard", "fast"):
            raise ValueError(f"autoattack={autoattack!r}; use 'standard' (to report), 'fast' "
                             "(reduced, CI scale) or None.")
        attacks["autoattack"] = (AutoAttackAdapter(reference.eps, version="standard", seed=seed)
                                 if autoattack == "standard" else
                                 AutoAttackAdapter(reference.eps, version="custom", seed=seed,
                                                   **FAST_AUTOATTACK))
    budget = black_box_budget(dataset, eps, black_box_steps)
    transfer = (transfer_matrix(models, models, images, labels, budget, seed, batch_size=batch_size,
                                keep_examples=True, cache_dir=cache_dir) if black_box
                else TransferResult({m: {} for m in models}, budget, int(seed), 0.95, {}))
    settings = {"attacks": {k: a.config() for k, a in attacks.items()}, "checks": checks,
                "check_samples": check_samples, "square_queries": square_queries,
                "reference": reference.config(), "batch_size": batch_size}
    labels_cpu = labels.cpu()
    per_example, records = {}, {}
    for name, model in models.items():
        device = model_device(model)
        record = cached(cache_dir, "evaluate", (model, images, labels, settings), lambda state: evaluate(
            model, images.to(device), labels.to(device), attacks, batch_size=batch_size,
            checks=checks, check_samples=check_samples, reference=reference,
            square_queries=square_queries, progress=progress, resume_file=state), partial=True)
        records[name] = record
        flags = {k: v for k, v in record.per_example.items() if k != "worst_case"}
        for surrogate, adv in transfer.examples.items():
            if surrogate != name:
                flags[f"bb_{surrogate}"] = predict_labels(model, adv, batch_size).cpu() == labels_cpu
        bb = [v for k, v in flags.items() if k.startswith("bb_")]
        if bb:
            flags["black_box"] = torch.stack(bb).all(0) & flags["clean"]
        flags["worst_case"] = record.per_example["worst_case"] & flags.get("black_box", flags["clean"])
        per_example[name] = flags
    transfer.examples = {}
    columns = (["clean", *attacks] + ([f"bb_{s}" for s in models] if black_box else [])
               + (["black_box"] if black_box and len(models) > 1 else []) + ["worst_case"])
    return MainTable(list(models), columns, per_example, records, transfer)


def with_autoattack_subset(full: MainTable, subset: MainTable) -> pd.DataFrame:
    """One seed's rows when AutoAttack runs on a subset of the test images: every column of
    ``full`` (the paper's attacks and the transfer matrix on every image, no AutoAttack)
    except its ``worst_case``, which becomes ``worst_case_paper``; then ``subset``'s
    ``autoattack`` and ``worst_case`` (every attack, AutoAttack included, on the subset).
    Each row keeps its own n. Columns as :meth:`MainTable.to_frame`."""
    if "autoattack" not in subset.columns:
        raise ValueError("the subset table has no AutoAttack column; evaluate it with autoattack set.")
    whole = full.to_frame()
    whole["column"] = whole["column"].replace({"worst_case": "worst_case_paper"})
    part = subset.to_frame()
    return pd.concat([whole, part[part.column.isin(["autoattack", "worst_case"])]], ignore_index=True)


def evaluate_for_notebook(models_by_seed: dict, dataset: str, *, data_dir=None,
                          eval_limit: int | None = None, autoattack: str | None = "standard",
                          autoattack_limit: int | None = None, cache_dir=None,
                          subset_stage: bool = True, **table_kw) -> tuple[dict, dict, pd.DataFrame]:
    """The evaluation of the main-results notebook, one home for the notebook and for
    ``scripts/evaluate_main_runs.py`` (which fills the same ``cache_dir`` in the background,
    one model at a time, so that the notebook then loads the results).

    Per seed, :func:`evaluate_main_table` of ``models_by_seed[seed]`` (name -> model) on the
    stratified ``eval_limit`` test images; when ``autoattack_limit`` is smaller, the paper's
    attacks and the transfer matrix run there without AutoAttack, and AutoAttack, the checks
    and the worst case on the ``autoattack_limit`` subset (:func:`with_autoattack_subset`).
    ``subset_stage`` False (a long evaluation in parts): only the stage on all images when
    there is a subset (its tables stand in for the subset's, its frame has no AutoAttack).
    ``table_kw``: eps, attack_steps, black_box_steps, black_box, checks, check_samples,
    square_queries, progress.
    Returns (tables, subset_tables, frame): ``{seed: MainTable}`` on all images and on the
    AutoAttack subset (the same table when there is no subset), and the rows of every seed
    (:meth:`MainTable.to_frame` with a ``seed`` column)."""
    x, y = load_dataset(dataset, "test", data_dir=data_dir, limit=eval_limit, seed=0)
    split = autoattack not in (None, "none") and autoattack_limit is not None and autoattack_limit < len(y)
    if split:
        x_aa, y_aa = load_dataset(dataset, "test", data_dir=data_dir, limit=autoattack_limit, seed=0)
    checks = table_kw.pop("checks", "all")
    tables, subset_tables, frames = {}, {}, []
    for seed, models in models_by_seed.items():
        def table(xs, ys, aa, chk):
            return evaluate_main_table(models, xs, ys, dataset, autoattack=aa, checks=chk, seed=seed,
                                       cache_dir=cache_dir, **table_kw)
        if split and not subset_stage:
            tables[seed] = subset_tables[seed] = table(x, y, None, "none")
            frame = tables[seed].to_frame()
        elif split:
            tables[seed] = table(x, y, None, "none")
            subset_tables[seed] = table(x_aa, y_aa, autoattack, checks)
            frame = with_autoattack_subset(tables[seed], subset_tables[seed])
        else:
            tables[seed] = subset_tables[seed] = table(x, y, autoattack, checks)
            frame = tables[seed].to_frame()
        frames.append(frame.assign(seed=seed))
    return tables, subset_tables, pd.concat(frames, ignore_index=True)


def learning_curves(runs: dict) -> pd.DataFrame:
    """Each run's validation accuracy after every epoch, with Wilson 95% intervals; a run
    started from another's best weights (``init_from``) is preceded by that run's epochs up
    to its best (stage "pre-training"; as :func:`training_path`), numbered on from there.

    Args: runs: ``{(method, seed): TrainResult}``.
    Returns: one row per (method, seed, epoch, split) with ``split`` "natural" or "PGD"
    (the run's validation attack), ``stage`` ("pre-training" or "own"), ``value``, ``lo``,
    ``hi`` (fractions), ``n`` (validation examples), ``lr``, ``train_loss`` and ``eps`` (the
    training eps at the epoch's end)."""
    from .data import VAL_SIZE
    rows = []
    for (method, seed), run in runs.items():
        config, path = run.config, [("own", 0, run.config.to_dict(), run.history)]
        if config.init_from:
            source = json.loads((Path(config.init_from) / "metrics.json").read_text())
            best = source["best"]["epoch"]
            source_config = json.loads((Path(config.init_from) / "config.json").read_text())
            path = [("pre-training", 0, source_config, [h for h in source["history"] if h["epoch"] <= best]),
                    ("own", best, config.to_dict(), run.history)]
        for stage, offset, settings, history in path:
            n = settings.get("val_limit") or VAL_SIZE[settings["dataset"]]
            ramp = settings.get("eps_ramp_epochs") or 0
            for entry in history:
                eps = settings["train_eps"] * (min(1.0, entry["epoch"] / ramp) if ramp else 1.0)
                for split, key in (("natural", "val_clean_acc"), ("PGD", "val_robust_acc")):
                    k = round(entry[key] * n)
                    rows.append({"method": method, "seed": seed, "epoch": offset + entry["epoch"],
                                 "split": split, "stage": stage,
                                 **{f: v for f, v in accuracy_cell(k, n).items() if f != "kind"},
                                 "lr": entry["lr"], "train_loss": entry["train_loss"], "eps": eps})
    return pd.DataFrame(rows)


def summarise_seeds(frame: pd.DataFrame, kind: str = "wilson") -> pd.DataFrame:
    """Per (model, column) of a :meth:`MainTable.to_frame` with a ``seed`` column: one seed
    gives the accuracy and its interval (``kind``, Wilson by default; ``n`` examples);
    several give the mean and mean -/+ sd over seeds (``kind`` "sd", ``n`` seeds, ``sd``)."""
    rows = []
    for (model, column), group in frame.groupby(["model", "column"], sort=False):
        if len(group) == 1:
            r = group.iloc[0]
            rows.append({"model": model, "column": column, "value": r.accuracy, "lo": r.lo,
                         "hi": r.hi, "kind": kind, "n": int(r.n), "sd": None})
        else:
            mean, sd = group.accuracy.mean(), group.accuracy.std(ddof=1)
            rows.append({"model": model, "column": column, "value": mean, "lo": mean - sd,
                         "hi": mean + sd, "kind": "sd", "n": len(group), "sd": sd})
    return pd.DataFrame(rows, columns=["model", "column", "value", "lo", "hi", "kind", "n", "sd"])


def summarise_accuracies(frame: pd.DataFrame, by: str, columns, n: int) -> pd.DataFrame:
    """:func:`summarise_seeds` for a wide frame of accuracies in [0, 1] (one row per
    (``by``, seed), one column per accuracy), each measured on ``n`` examples: one seed
    gives the Wilson interval, several the mean -/+ sd over seeds."""
    long = frame.melt(id_vars=[by, "seed"], value_vars=list(columns), var_name="column",
                      value_name="accuracy").rename(columns={by: "model"})
    intervals = [binomial_ci(round(a * n), n) for a in long["accuracy"]]
    long["lo"], long["hi"], long["n"] = [i[0] for i in intervals], [i[1] for i in intervals], n
    return summarise_seeds(long)


def summarise_estimates(rows, by: str, columns) -> pd.DataFrame:
    """:func:`summarise_seeds` for flat rows (one per (``by``, seed)) holding each of
    ``columns`` with its interval as ``column``, ``column_lo``, ``column_hi`` and the
    examples ``n`` (e.g. ``BoundReport.to_record()``): one seed keeps the estimate's own
    interval (``kind`` "interval"), several give mean -/+ sd over seeds."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    long = pd.concat([pd.DataFrame({"model": frame[by], "seed": frame["seed"], "column": c,
                                    "accuracy": frame[c], "lo": frame[f"{c}_lo"],
                                    "hi": frame[f"{c}_hi"], "n": frame["n"]}) for c in columns],
                     ignore_index=True)
    return summarise_seeds(long, kind="interval")


def format_accuracy(value: float, lo: float, hi: float, kind: str, n: int) -> str:
    """``"70.0 [63.3, 75.9]"`` (Wilson 95%) or ``"70.0 ± 2.1 (n=3)"`` (sd over n seeds), percent."""
    if kind == "sd":
        return f"{100 * value:.1f} ± {100 * (hi - value):.1f} (n={n})"
    return f"{100 * value:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_cell(cell: dict) -> str:
    """:func:`format_accuracy` of a :func:`cell` (``value``, ``lo``, ``hi``, ``kind``, ``n``)."""
    return format_accuracy(cell["value"], cell["lo"], cell["hi"], cell["kind"], cell["n"])


def format_estimate(value: float, lo: float, hi: float, kind: str, n: int) -> str:
    """:func:`format_accuracy` for fractions that may exceed 1 (bound terms), three decimals:
    ``"0.700 [0.633, 0.759]"`` or ``"0.700 ± 0.021 (n=3)"``."""
    if kind == "sd":
        return f"{value:.3f} ± {hi - value:.3f} (n={n})"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def compare_with_paper(summary: pd.DataFrame, dataset: str, steps=None) -> pd.DataFrame:
    """Our summarised accuracies beside the paper's (Table 1 for MNIST, Table 2 for
    CIFAR-10): one row per cell that has a counterpart, with ``paper``, ``ours``, ``lo``,
    ``hi`` (percent), ``difference`` (ours - paper, points) and ``paper_inside`` (the
    paper's number lies in our interval). Models the paper lacks (MART) are left out."""
    from .paper_numbers import METHOD_OF_MODEL, TABLES
    table = "table1" if dataset.startswith("mnist") else "table2"
    paper_of = {m: p for p, m in METHOD_OF_MODEL.items()}
    rows = []
    for r in summary.itertuples():
        column = paper_column(r.column, steps)
        if r.model not in paper_of or column is None or column not in TABLES[table][paper_of[r.model]]:
            continue
        paper = TABLES[table][paper_of[r.model]][column]
        rows.append({"model": r.model, "column": r.column, "paper_column": column, "paper": paper,
                     "ours": 100 * r.value, "lo": 100 * r.lo, "hi": 100 * r.hi, "kind": r.kind,
                     "n": r.n, "difference": 100 * r.value - paper,
                     "paper_inside": bool(100 * r.lo <= paper <= 100 * r.hi)})
    return pd.DataFrame(rows)
