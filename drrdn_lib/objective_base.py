"""What every training objective shares: helpers of the one signature, and the update
protocol that turns an objective into parameter updates.

An objective is ``loss, terms = objective(model, images, labels, budget, **hyper)``
(``drrdn_lib.methods``). An *update* is what the training loop calls once per batch:

    update = UpdateClass(model, objective, make_optimizer, hyper)
    terms = update(images, labels, budget)        # one batch: attack, losses, steps
    update.optimizers                             # {name: torch.optim.Optimizer}

``make_optimizer(param_groups)`` is the loop's factory (SGD with the run's lr, momentum and
weight decay; a group may set ``"weight_decay": 0.0``). Every method but DRRDN uses
:class:`SingleLossUpdate`: one optimiser over all parameters, one backward of the
objective's loss, one step. DRRDN's Algorithm 1 takes several steps per batch, each with
its own optimiser (``drrdn_lib.drrdn_objective.Algorithm1Update``). The loop saves and
restores every optimiser of ``update.optimizers`` by name, so a resumed run continues
bit for bit whatever the number of optimisers.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import nn

from .attacks import PGD, AttackBudget

__all__ = ["NonFiniteLoss", "SingleLossUpdate", "as_floats", "pgd_examples", "check_finite",
           "keyword_defaults"]

MakeOptimizer = Callable[[list[dict]], torch.optim.Optimizer]


class NonFiniteLoss(FloatingPointError):
    """A loss became NaN or infinite; raised before the step that would use it.

    Attributes: ``terms``, the batch's terms so far (floats)."""

    def __init__(self, message: str, terms: dict[str, float]):
        super().__init__(message)
        self.terms = terms


def as_floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detach scalar tensors into floats with a single device synchronisation."""
    names = list(terms)
    if not names:
        return {}
    values = torch.stack([terms[n].detach().float().reshape(()) for n in names]).tolist()
    return dict(zip(names, values))


def pgd_examples(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 budget: AttackBudget) -> torch.Tensor:
    """x' = L-inf PGD on CE from a uniform random start, on the model's prediction path
    (eval mode, restored); (B, C, H, W) in the eps-ball and [0, 1], detached."""
    attack = PGD(budget.eps, budget.step_size, budget.steps, random_start=True)
    return attack(model, images, labels).detach()


def keyword_defaults(objective) -> dict:
    """An objective's hyperparameters: its keyword-only arguments with their defaults."""
    params = inspect.signature(objective).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_finite(name: str, value: float, terms: dict) -> None:
    """Raise :class:`NonFiniteLoss` if ``value`` (the loss ``name``) is NaN or infinite;
    ``terms`` (floats or scalar tensors) are converted to floats only then."""
    if not math.isfinite(value):
        raise NonFiniteLoss(f"{name} became {value}", {k: float(v) for k, v in terms.items()})


class SingleLossUpdate:
    """One optimiser over all parameters; per batch one backward of the objective's loss
    and one step (standard training, PGD-AT, TRADES, MART)."""

    def __init__(self, model: nn.Module, objective, make_optimizer: MakeOptimizer,
                 hyper: dict):
        self.model, self.objective, self.hyper = model, objective, dict(hyper)
        self.optimizers = {"all": make_optimizer([{"params": list(model.parameters())}])}

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 budget: AttackBudget) -> dict[str, float]:
        loss, terms = self.objective(self.model, images, labels, budget, **self.hyper)
        check_finite("the loss", terms["loss"], terms)
        optimizer = self.optimizers["all"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return terms
