"""Training objectives, one function each, one signature:

    loss, terms = objective(model, images, labels, budget, **hyper)

``images`` float32 (B, C, H, W) in [0, 1], ``labels`` int64 (B,), ``budget`` an
``AttackBudget(eps, step_size, steps)`` for the inner maximisation (L-inf, input units).
``loss`` is a scalar tensor to call ``backward()`` on; ``terms`` maps each named term
(and ``"loss"``) to a detached float for logging. An objective never takes the optimizer;
it crafts adversarial examples in eval mode (the attack restores the mode), computes the
loss in train mode and leaves the model in the mode it found it in.

Hyperparameters are keyword-only. ``METHODS`` maps a name to its objective;
``get_method(name)`` looks one up and ``check_hyper(name, hyper)`` validates
hyperparameters before a run starts. How a method turns its losses into parameter
updates is its *update* (``drrdn_lib.objective_base``): :data:`UPDATES` names the
methods that need more than one backward and one step per batch (DRRDN's Algorithm 1);
``make_update(name, model, make_optimizer, hyper)`` builds the one a run uses.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import AttackBudget, frozen_parameters
from .drrdn_objective import ENTROPY_FORMS, REC_FORMS, Algorithm1Update, drrdn
from .objective_base import SingleLossUpdate, as_floats, keyword_defaults, pgd_examples
from .torch_utils import eval_mode, train_mode

__all__ = ["METHODS", "UPDATES", "get_method", "make_update", "check_hyper", "standard",
           "pgd_at", "trades", "mart", "drrdn", "trades_attack", "hyper_defaults",
           "hyper_names"]



# ----------------------------------------------------------------------------- baselines
def standard(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             budget: AttackBudget | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Natural training: mean cross-entropy CE(f(x), y) on clean images.

    ``budget`` is accepted for the common signature and ignored. Terms: ``ce_nat``, ``loss``.
    """
    with train_mode(model):
        loss = F.cross_entropy(model(images), labels)
    return loss, as_floats({"ce_nat": loss, "loss": loss})


def pgd_at(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
           budget: AttackBudget) -> tuple[torch.Tensor, dict[str, float]]:
    """PGD adversarial training (Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018):
    mean CE(f(x'), y) with x' = PGD-CE(x) from a uniform random start in the eps-ball.

    Terms: ``ce_adv``, ``loss``.
    """
    adv = pgd_examples(model, images, labels, budget)
    with train_mode(model):
        loss = F.cross_entropy(model(adv), labels)
    return loss, as_floats({"ce_adv": loss, "loss": loss})


def trades_attack(model: nn.Module, images: torch.Tensor, budget: AttackBudget,
                  start_std: float = 0.001) -> torch.Tensor:
    """TRADES inner maximisation (Zhang et al., ICML 2019, Algorithm 1): L-inf PGD on
    KL(f(x) || f(x')) with sign-gradient steps, started at x + N(0, start_std^2).

    Runs in eval mode (mode restored); returns x' (B, C, H, W) in the eps-ball and [0, 1].
    """
    eps, step = budget.eps, budget.step_size
    with eval_mode(model), frozen_parameters(model):
        with torch.no_grad():
            nat_prob = F.softmax(model(images), dim=1)
        adv = images + start_std * torch.randn_like(images)
        for step_index in range(budget.steps + 1):
            adv = torch.min(torch.max(adv, images - eps), images + eps).clamp(0.0, 1.0)
            if step_index == budget.steps:
                break
            adv = adv.detach().requires_grad_(True)
            with torch.enable_grad():
                kl = F.kl_div(F.log_softmax(model(adv), dim=1), nat_prob, reduction="sum")
                (grad,) = torch.autograd.grad(kl, adv)
            adv = adv.detach() + step * grad.sign()
    return adv.detach()


def trades(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
           budget: AttackBudget, *, beta: float = 6.0) -> tuple[torch.Tensor, dict[str, float]]:
    """TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, ICML 2019):
    CE(f(x), y) + beta * KL(f(x) || f(x')), KL summed over classes, averaged over the
    batch, x' from :func:`trades_attack`. Natural and adversarial batches go through
    the model in two passes (as in the paper's code: separate batch-norm statistics).

    Terms: ``ce_nat``, ``kl``, ``loss``.
    """
    adv = trades_attack(model, images, budget)
    with train_mode(model):
        logits_nat, logits_adv = model(images), model(adv)
        ce_nat = F.cross_entropy(logits_nat, labels)
        kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1),
                      reduction="batchmean")
        loss = ce_nat + beta * kl
    return loss, as_floats({"ce_nat": ce_nat, "kl": kl, "loss": loss})


def _log_one_minus_prob(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(logits)[index]) computed stably as
    logsumexp over the other classes minus logsumexp over all; (B, C), (B,) -> (B,)."""
    others = logits.scatter(1, index[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def mart(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
         budget: AttackBudget, *, beta: float = 6.0) -> tuple[torch.Tensor, dict[str, float]]:
    """MART (Wang, Zou, Yi, Bailey, Ma, Gu, ICLR 2020, Eq. 7):
    BCE(p(x'), y) + beta * mean[KL(p(x) || p(x')) * (1 - p_y(x))], where the boosted CE
    BCE(p, y) = -log p_y - log(1 - max_{k != y} p_k) and x' is PGD-CE (uniform random
    start; the MART code starts at x + 0.001 N(0, 1), a negligible difference).

    Terms: ``bce_adv``, ``kl_weighted``, ``loss``.
    """
    adv = pgd_examples(model, images, labels, budget)
    with train_mode(model):
        logits_nat, logits_adv = model(images), model(adv)
        wrong = logits_adv.scatter(1, labels[:, None], float("-inf")).argmax(dim=1)
        bce = (F.cross_entropy(logits_adv, labels)
               - _log_one_minus_prob(logits_adv, wrong).mean())
        log_p_nat = F.log_softmax(logits_nat, dim=1)
        kl = (log_p_nat.exp() * (log_p_nat - F.log_softmax(logits_adv, dim=1))).sum(dim=1)
        p_true = log_p_nat.gather(1, labels[:, None]).squeeze(1).exp()
        kl_weighted = (kl * (1.0 - p_true)).mean()
        loss = bce + beta * kl_weighted
    return loss, as_floats({"bce_adv": bce, "kl_weighted": kl_weighted, "loss": loss})


# ----------------------------------------------------------------------------- registry
METHODS = {"standard": standard, "pgd_at": pgd_at, "trades": trades, "mart": mart,
           "drrdn": drrdn}
#: methods whose update is not one backward and one step (the others: SingleLossUpdate)
UPDATES = {"drrdn": Algorithm1Update}
#: string-valued hyperparameters and their allowed values
CHOICES = {"entropy_form": ENTROPY_FORMS, "rec_form": REC_FORMS}


def get_method(name: str):
    """The objective registered as ``name`` in :data:`METHODS`."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {sorted(METHODS)}. "
                       "Pass one of these names (e.g. TrainConfig(method='pgd_at')).")
    return METHODS[name]


def make_update(name: str, model: nn.Module, make_optimizer, hyper: dict):
    """The per-batch update of method ``name`` (``drrdn_lib.objective_base``)."""
    update = UPDATES.get(name, SingleLossUpdate)
    return update(model, get_method(name), make_optimizer, hyper)


def hyper_defaults(name: str) -> dict:
    """The hyperparameters (keyword-only arguments) of the objective ``name``, with defaults."""
    return keyword_defaults(get_method(name))


def hyper_names(name: str) -> tuple[str, ...]:
    """Names of the hyperparameters the objective ``name`` accepts."""
    return tuple(hyper_defaults(name))


def check_hyper(name: str, hyper: dict) -> None:
    """Raise ValueError for unknown hyperparameter names or bad values of ``name``'s
    objective (negative or non-finite weights/beta, a string outside :data:`CHOICES`)."""
    allowed = hyper_names(name)
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} has no hyperparameter(s) {unknown}; "
                         f"allowed: {list(allowed) or 'none'}.")
    for key, value in hyper.items():
        if key in CHOICES:
            if value not in CHOICES[key]:
                raise ValueError(f"{key}={value!r}; use one of {CHOICES[key]}.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} hyperparameter {key}={value!r} must be a finite "
                             "number >= 0.")
