"""Training objectives, one function each, one signature:

    loss, terms = objective(model, images, labels, budget, **hyper)

``images`` float32 (B, C, H, W) in [0, 1], ``labels`` int64 (B,), ``budget`` an
``AttackBudget(eps, step_size, steps)`` for the inner maximisation (L-inf, input units).
``loss`` is a scalar tensor to call ``backward()`` on; ``terms`` maps each named term
(and ``"loss"``) to a detached float for logging. An objective never takes the optimizer;
it crafts adversarial examples in eval mode (the attack restores the mode), computes the
loss in train mode and leaves the model in the mode it found it in.

``METHODS`` maps a name to its objective; ``get_method(name)`` looks one up and
``check_hyper(name, hyper)`` validates hyperparameters before a run starts.
"""
from __future__ import annotations

import contextlib
import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import PGD, AttackBudget, frozen_parameters
from .drrdn import DRRDN, grad_reverse

__all__ = ["METHODS", "get_method", "check_hyper", "standard", "pgd_at", "trades", "mart",
           "drrdn", "trades_attack", "RECONSTRUCTION_NOTE", "hyper_defaults", "hyper_names"]


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _mode(model: nn.Module, training: bool):
    """Put ``model`` in train (True) or eval (False) mode, restore its mode on exit."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def _as_floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detach scalar tensors into floats with a single device synchronisation."""
    names = list(terms)
    values = torch.stack([terms[n].detach().float().reshape(()) for n in names]).tolist()
    return dict(zip(names, values))


def _pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
         budget: AttackBudget) -> torch.Tensor:
    """PGD-CE with a uniform random start on the model's prediction path."""
    attack = PGD(budget.eps, budget.step_size, budget.steps, random_start=True)
    return attack(model, images, labels).detach()


# ----------------------------------------------------------------------------- baselines
def standard(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             budget: AttackBudget | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Natural training: mean cross-entropy CE(f(x), y) on clean images.

    ``budget`` is accepted for the common signature and ignored. Terms: ``ce_nat``, ``loss``.
    """
    with _mode(model, True):
        loss = F.cross_entropy(model(images), labels)
    return loss, _as_floats({"ce_nat": loss, "loss": loss})


def pgd_at(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
           budget: AttackBudget) -> tuple[torch.Tensor, dict[str, float]]:
    """PGD adversarial training (Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018):
    mean CE(f(x'), y) with x' = PGD-CE(x) from a uniform random start in the eps-ball.

    Terms: ``ce_adv``, ``loss``.
    """
    adv = _pgd(model, images, labels, budget)
    with _mode(model, True):
        loss = F.cross_entropy(model(adv), labels)
    return loss, _as_floats({"ce_adv": loss, "loss": loss})


def trades_attack(model: nn.Module, images: torch.Tensor, budget: AttackBudget,
                  start_std: float = 0.001) -> torch.Tensor:
    """TRADES inner maximisation (Zhang et al., ICML 2019, Algorithm 1): L-inf PGD on
    KL(f(x) || f(x')) with sign-gradient steps, started at x + N(0, start_std^2).

    Runs in eval mode (mode restored); returns x' (B, C, H, W) in the eps-ball and [0, 1].
    """
    eps, step = budget.eps, budget.step_size
    with _mode(model, False), frozen_parameters(model):
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
           budget: AttackBudget, beta: float = 6.0) -> tuple[torch.Tensor, dict[str, float]]:
    """TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, ICML 2019):
    CE(f(x), y) + beta * KL(f(x) || f(x')), KL summed over classes, averaged over the
    batch, x' from :func:`trades_attack`. Natural and adversarial batches go through
    the model in two passes (as in the paper's code: separate batch-norm statistics).

    Terms: ``ce_nat``, ``kl``, ``loss``.
    """
    adv = trades_attack(model, images, budget)
    with _mode(model, True):
        logits_nat, logits_adv = model(images), model(adv)
        ce_nat = F.cross_entropy(logits_nat, labels)
        kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1),
                      reduction="batchmean")
        loss = ce_nat + beta * kl
    return loss, _as_floats({"ce_nat": ce_nat, "kl": kl, "loss": loss})


def _log_one_minus_prob(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(logits)[index]) computed stably as
    logsumexp over the other classes minus logsumexp over all; (B, C), (B,) -> (B,)."""
    others = logits.scatter(1, index[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def mart(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
         budget: AttackBudget, beta: float = 6.0) -> tuple[torch.Tensor, dict[str, float]]:
    """MART (Wang, Zou, Yi, Bailey, Ma, Gu, ICLR 2020, Eq. 7):
    BCE(p(x'), y) + beta * mean[KL(p(x) || p(x')) * (1 - p_y(x))], where the boosted CE
    BCE(p, y) = -log p_y - log(1 - max_{k != y} p_k) and x' is PGD-CE (uniform random
    start; the MART code starts at x + 0.001 N(0, 1), a negligible difference).

    Terms: ``bce_adv``, ``kl_weighted``, ``loss``.
    """
    adv = _pgd(model, images, labels, budget)
    with _mode(model, True):
        logits_nat, logits_adv = model(images), model(adv)
        wrong = logits_adv.scatter(1, labels[:, None], float("-inf")).argmax(dim=1)
        bce = (F.cross_entropy(logits_adv, labels)
               - _log_one_minus_prob(logits_adv, wrong).mean())
        log_p_nat = F.log_softmax(logits_nat, dim=1)
        kl = (log_p_nat.exp() * (log_p_nat - F.log_softmax(logits_adv, dim=1))).sum(dim=1)
        p_true = log_p_nat.gather(1, labels[:, None]).squeeze(1).exp()
        kl_weighted = (kl * (1.0 - p_true)).mean()
        loss = bce + beta * kl_weighted
    return loss, _as_floats({"bce_adv": bce, "kl_weighted": kl_weighted, "loss": loss})


# ----------------------------------------------------------------------------- DRRDN
RECONSTRUCTION_NOTE = """\
DRRDN objective: what follows the paper and what is reconstructed.
From the paper (abstract and Figure 1): the modules g, d_s, d_i, c_s, c_i, r; the
prediction c_s(d_s(g(x))); a robust representation z_s and a non-robust one z_i per
natural and adversarial example; z_s of the two aligned; z_i carrying the rest.
Reconstructed (the full text's loss and weights were not available; design taken from
DADA, Peng et al., ICML 2019, natural = source domain, adversarial = target domain):
(1) CE on natural and adversarial z_s; (2) alignment by a domain discriminator on z_s
behind a gradient-reversal layer (g, d_s fool it), weight w_align; (3) a domain
discriminator on z_i trained with g and d_i (domain information goes to z_i),
weight w_domain; (4) an auxiliary class head on z_i trained on detached z_i while d_i
maximises its prediction entropy (or, class_irr_mode="reverse", a reversed CE), weight
w_class_irr; (5) MSE reconstruction of z (detached target) from [z_s, z_i], weight w_rec;
(6) a MINE (Donsker-Varadhan) estimate of I(z_s; z_i) that the statistics network
maximises and g, d_s, d_i minimise through gradient reversal, weight w_mi, off by default.
All weights default to 1 (w_mi 0); the gradient-reversal coefficient is constant (no
DANN ramp). The natural and adversarial batches share one backbone pass (joint_pass),
so batch-norm layers in g normalise them with joint statistics.
"""

DRRDN_WEIGHTS = ("w_nat", "w_align", "w_domain", "w_class_irr", "w_rec", "w_mi")
CLASS_IRR_MODES = ("entropy", "reverse")


def _require_drrdn(model: nn.Module) -> DRRDN:
    if not isinstance(model, DRRDN):
        raise TypeError(f"the drrdn objective needs a drrdn_lib.drrdn.DRRDN model, got "
                        f"{type(model).__name__}; build one with build_drrdn(name) or "
                        "TrainConfig(method='drrdn').")
    return model


def _joint_representations(model: DRRDN, images: torch.Tensor, adv: torch.Tensor,
                           joint_pass: bool) -> dict[str, torch.Tensor]:
    """z, z_s, z_i of [natural; adversarial] (2B rows), one or two backbone passes."""
    if joint_pass:
        return model.representations(torch.cat([images, adv]))
    nat, adv_reps = model.representations(images), model.representations(adv)
    return {k: torch.cat([nat[k], adv_reps[k]]) for k in nat}


def _domain_term(logits: torch.Tensor, domain: torch.Tensor):
    """BCE of domain logits (2B,) against 0 natural / 1 adversarial, and accuracy."""
    bce = F.binary_cross_entropy_with_logits(logits, domain)
    return bce, ((logits > 0).float() == domain).float().mean()


def _class_irr_terms(model: DRRDN, nonrobust: torch.Tensor, labels: torch.Tensor,
                     mode: str) -> dict[str, torch.Tensor]:
    """Term 4: remove label information from z_i (2B, D_i); labels (2B,)."""
    head = model.class_irr
    if mode == "reverse":
        logits = head(grad_reverse(nonrobust))
        ce = F.cross_entropy(logits, labels)
        return {"class_irr": ce, "class_irr_acc": (logits.argmax(1) == labels).float().mean()}
    logits = head(nonrobust.detach())
    ce = F.cross_entropy(logits, labels)
    frozen = F.linear(nonrobust, head.weight.detach(), head.bias.detach())
    log_p = F.log_softmax(frozen, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
    return {"class_irr": ce - entropy, "class_irr_ce": ce, "class_irr_entropy": entropy,
            "class_irr_acc": (logits.argmax(1) == labels).float().mean()}


def _mine_estimate(model: DRRDN, robust: torch.Tensor, nonrobust: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan lower bound on I(z_s; z_i) in nats (MINE, Belghazi et al. 2018);
    inputs behind gradient reversal, so T maximises it while the encoders minimise it."""
    robust, nonrobust = grad_reverse(robust), grad_reverse(nonrobust)
    joint = model.mine(robust, nonrobust)
    shuffled = nonrobust[torch.randperm(nonrobust.shape[0], device=nonrobust.device)]
    marginal = model.mine(robust, shuffled)
    return joint.mean() - (torch.logsumexp(marginal, dim=0) - math.log(marginal.shape[0]))


def _check_drrdn_hyper(weights: dict[str, float], class_irr_mode: str) -> None:
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"drrdn weight {name}={value!r} must be a finite number >= 0 "
                             "(0 switches the term off).")
    if class_irr_mode not in CLASS_IRR_MODES:
        raise ValueError(f"class_irr_mode={class_irr_mode!r}; use one of {CLASS_IRR_MODES}.")


def _drrdn_terms(model: DRRDN, reps: dict[str, torch.Tensor], labels: torch.Tensor,
                 w: dict[str, float], class_irr_mode: str) -> dict[str, torch.Tensor]:
    """Every switched-on term of the DRRDN objective on the joint batch (natural first)."""
    batch = labels.shape[0]
    z, z_s, z_i = reps["z"], reps["z_s"], reps["z_i"]
    labels2 = torch.cat([labels, labels])
    domain = torch.cat([z_s.new_zeros(batch), z_s.new_ones(batch)])
    logits = model.c_s(z_s)
    terms = {"ce_adv": F.cross_entropy(logits[batch:], labels)}
    if w["w_nat"]:
        terms["ce_nat"] = F.cross_entropy(logits[:batch], labels)
    if w["w_align"]:
        terms["align"], terms["align_disc_acc"] = _domain_term(
            model.c_i["z_s"](grad_reverse(z_s)), domain)
    if w["w_domain"]:
        terms["domain"], terms["domain_disc_acc"] = _domain_term(model.c_i["z_i"](z_i), domain)
    if w["w_class_irr"]:
        terms.update(_class_irr_terms(model, z_i, labels2, class_irr_mode))
    if w["w_rec"]:
        terms["rec"] = F.mse_loss(model.r(torch.cat([z_s, z_i], dim=1)), z.detach())
    if w["w_mi"]:
        terms["mi"] = _mine_estimate(model, z_s, z_i)
    return terms


_TERM_WEIGHT = {"ce_adv": None, "ce_nat": "w_nat", "align": "w_align", "domain": "w_domain",
                "class_irr": "w_class_irr", "rec": "w_rec", "mi": "w_mi"}


def drrdn(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: AttackBudget,
          w_nat: float = 1.0, w_align: float = 1.0, w_domain: float = 1.0,
          w_class_irr: float = 1.0, w_rec: float = 1.0, w_mi: float = 0.0,
          class_irr_mode: str = "entropy", joint_pass: bool = True,
          ) -> tuple[torch.Tensor, dict[str, float]]:
    """DRRDN (Yang, Guo, Wang, Xu, AAAI 2021), objective reconstructed as in
    :data:`RECONSTRUCTION_NOTE` and docs/drrdn_reconstruction.md.

    loss = CE(c_s(z_s'), y) + w_nat CE(c_s(z_s), y) + w_align L_align + w_domain L_domain
           + w_class_irr L_class_irr + w_rec L_rec - w_mi I_MINE(z_s; z_i)
    with x' = PGD-CE on the prediction path c_s(d_s(g(x))). A weight of 0 removes its term
    (not computed, absent from ``terms``). ``joint_pass`` runs g once on the concatenated
    [x; x'] batch (faster; batch norm in g then sees joint statistics); False uses two.

    Terms: ``ce_adv``, ``ce_nat``, ``align`` (+ ``align_disc_acc``, ~0.5 when aligned),
    ``domain`` (+ ``domain_disc_acc``), ``class_irr`` (+ ``class_irr_acc`` of the auxiliary
    head on z_i, and in entropy mode ``class_irr_ce``, ``class_irr_entropy``), ``rec``,
    ``mi`` (nats; enters the loss with a minus sign for the statistics network), ``loss``.
    """
    model = _require_drrdn(model)
    weights = {"w_nat": w_nat, "w_align": w_align, "w_domain": w_domain,
               "w_class_irr": w_class_irr, "w_rec": w_rec, "w_mi": w_mi}
    _check_drrdn_hyper(weights, class_irr_mode)
    adv = _pgd(model, images, labels, budget)
    with _mode(model, True):
        reps = _joint_representations(model, images, adv, joint_pass)
        terms = _drrdn_terms(model, reps, labels, weights, class_irr_mode)
        loss = terms["ce_adv"]
        for name, weight_name in _TERM_WEIGHT.items():
            if weight_name is not None and name in terms:
                sign = -1.0 if name == "mi" else 1.0
                loss = loss + sign * weights[weight_name] * terms[name]
    terms["loss"] = loss
    return loss, _as_floats(terms)


# ----------------------------------------------------------------------------- registry
METHODS = {"standard": standard, "pgd_at": pgd_at, "trades": trades, "mart": mart,
           "drrdn": drrdn}


def get_method(name: str):
    """The objective registered as ``name`` in :data:`METHODS`."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {sorted(METHODS)}. "
                       "Pass one of these names (e.g. TrainConfig(method='pgd_at')).")
    return METHODS[name]


def hyper_defaults(name: str) -> dict:
    """The hyperparameters the objective ``name`` accepts (after the budget), with defaults."""
    params = list(inspect.signature(get_method(name)).parameters.values())[4:]
    return {p.name: p.default for p in params}


def hyper_names(name: str) -> tuple[str, ...]:
    """Names of the hyperparameters the objective ``name`` accepts (after the budget)."""
    return tuple(hyper_defaults(name))


def check_hyper(name: str, hyper: dict) -> None:
    """Raise ValueError for unknown hyperparameter names or bad values of ``name``'s
    objective (negative or non-finite weights/beta, unknown class_irr_mode)."""
    allowed = hyper_names(name)
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} has no hyperparameter(s) {unknown}; "
                         f"allowed: {list(allowed) or 'none'}.")
    for key, value in hyper.items():
        if key in ("class_irr_mode", "joint_pass"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} hyperparameter {key}={value!r} must be a finite "
                             "number >= 0.")
    if "class_irr_mode" in hyper and hyper["class_irr_mode"] not in CLASS_IRR_MODES:
        raise ValueError(f"class_irr_mode={hyper['class_irr_mode']!r}; use one of "
                         f"{CLASS_IRR_MODES}.")
    if "joint_pass" in hyper and not isinstance(hyper["joint_pass"], bool):
        raise ValueError(f"joint_pass={hyper['joint_pass']!r} must be True or False.")
