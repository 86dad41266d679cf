"""DRRDN's losses (the paper's Eqs. 4, 6-10), its objective (Eq. 11) and its update rule
(Algorithm 1). docs/method.md derives each one and lists every reading of ours.

Notation: a batch x (B images), its PGD examples x' (step 1 of Algorithm 1, on the
prediction path c_s(d_s(g(.)))), z = g(x), z_s = d_s(z), z_i = d_i(z), and primes for x'.
c_i outputs the logit of "natural". Each loss updates exactly the parameter groups of
:data:`LOSS_PARAMETERS` (the paper's superscripts); the gradient is routed there by
detaching inputs (``x.detach()``) or holding a module's weights fixed (:func:`frozen`):

=================  ===================================================  ==================
loss               value                                                updates
=================  ===================================================  ==================
``ce`` (Eq. 4)     CE(c_s(z_s), y) + CE(c_s(z'_s), y)                   g, d_s, c_s
``bc`` (Eq. 6)     sum over the parts z_s, z_i of                       g, d_i, c_i
                   BCE(c_i(z), natural) + BCE(c_i(z'), adversarial)
                   (z_s enters detached: d_s is not in Eq. 6)
``adv`` (Eq. 7)    E log c_i*(z_s) + E log(1 - c_i*(z'_s)), c_i fixed   g, d_s
``ent`` (Eq. 8)    sum over x, x' of E sum_k p_k log p_k,               g, d_i
                   p = softmax(c_s*(z_i)), c_s fixed
``mi`` (Eq. 9)     MINE's Donsker-Varadhan bound on I(z_s; z_i) over    d_s, d_i (minimise);
                   the 2B natural and adversarial pairs, on z detached   T (maximises)
``rec`` (Eq. 10)   E ||r(z_s, z_i) - z||^2 + the same for x', z fixed   d_s, d_i, r
=================  ===================================================  ==================

Eq. 11: L = ce + lambda_bc bc + lambda_adv adv + lambda_ent ent + lambda_mi mi +
lambda_rec rec (the paper: the first four weights 1; lambda_mi and lambda_rec chosen
on validation data, docs/method.md). A weight 0 switches its loss and its step off.

:class:`Algorithm1Update` trains by Algorithm 1's steps, each with its own optimiser and
fresh forward passes: (3) ``classify`` ce + bc; (4) ``disentangle`` adv + ent;
(5) ``estimate_mi`` (T ascends the bound), then ``minimise_mi``; (6) ``reconstruct``.
:func:`drrdn` is the one-signature objective: the same losses at one point, summed with
the same routing, so that one backward gives every group the gradient Algorithm 1's
steps would give it at that point (to first order in the step size the two updates agree).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import AttackBudget
from .drrdn import DRRDN
from .objective_base import (MakeOptimizer, as_floats, check_finite, keyword_defaults,
                             pgd_examples)
from .torch_utils import train_mode

__all__ = ["LOSS_PARAMETERS", "ALGORITHM_1", "ENTROPY_FORMS", "drrdn", "Algorithm1Update",
           "REC_FORMS", "classification_loss", "domain_loss", "alignment_loss", "entropy_loss",
           "mine_lower_bound", "reconstruction_loss", "frozen", "drrdn_losses"]

#: loss -> the parameter groups (``DRRDN.groups()``) it updates, the paper's superscripts
LOSS_PARAMETERS = {"ce": ("g", "d_s", "c_s"), "bc": ("g", "d_i", "c_i"),
                   "adv": ("g", "d_s"), "ent": ("g", "d_i"),
                   "mi_statistic": ("mine",), "mi": ("d_s", "d_i"),
                   "rec": ("d_s", "d_i", "r")}
#: Algorithm 1's steps in order: (step name, the losses it minimises)
ALGORITHM_1 = (("classify", ("ce", "bc")), ("disentangle", ("adv", "ent")),
               ("estimate_mi", ("mi_statistic",)), ("minimise_mi", ("mi",)),
               ("reconstruct", ("rec",)))
#: ``stated``: Eq. 8 as its sentence says (negative entropy on z_i and on z'_i);
#: ``printed``: as typeset (c_s*(z_i) paired with log c_s*(z'_i), a cross term)
ENTROPY_FORMS = ("stated", "printed")
#: ``relative`` (ours, the default): Eq. 10 divided by the batch's mean ||z||^2 (held
#: fixed), so its gradients do not grow with the scale of z; ``sum``: Eq. 10 as printed.
#: With ``sum`` at the protocol's scale (official MNIST, eps 0.3, lr 0.01) the
#: reconstruct step's SGD became unstable once ||z|| reached ~50 and the run diverged in
#: its first epoch (docs/method.md).
REC_FORMS = ("relative", "sum")
_WEIGHT = {"ce": None, "bc": "lambda_bc", "adv": "lambda_adv", "ent": "lambda_ent",
           "mi_statistic": "lambda_mi", "mi": "lambda_mi", "rec": "lambda_rec"}


# ----------------------------------------------------------------------------- tools
def frozen(module: nn.Module):
    """``module`` as a function of its input alone: its parameters are held fixed (no
    gradient reaches them), gradients still flow to the input. Train/eval behaviour
    (dropout) is the module's own."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return lambda *inputs: torch.func.functional_call(module, params, inputs)


def _halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = t.shape[0] // 2
    return t[:half], t[half:]


# ----------------------------------------------------------------------------- losses
def classification_loss(c_s, z_s: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 4: CE(c_s(z_s), y) + CE(c_s(z'_s), y); z_s (2B, P), natural rows first; y (B,)."""
    nat, adv = _halves(c_s(z_s))
    return F.cross_entropy(nat, labels) + F.cross_entropy(adv, labels)


def domain_loss(c_i, z_s: torch.Tensor, z_i: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Eq. 6: for each part z in (z_s, z_i), (2B, P) natural rows first,
    BCE(c_i(z), natural) + BCE(c_i(z'), adversarial) (each a mean over B), summed.
    Returns the loss and c_i's domain accuracy on each part (0.5 = chance)."""
    logits = c_i(torch.cat([z_s, z_i])).squeeze(1)
    batch = z_s.shape[0] // 2
    natural = torch.cat([logits.new_ones(batch), logits.new_zeros(batch)]).repeat(2)
    loss = 4.0 * F.binary_cross_entropy_with_logits(logits, natural)
    correct = ((logits > 0).float() == natural).float()
    return loss, {"domain_acc_s": correct[:2 * batch].mean(),
                  "domain_acc_i": correct[2 * batch:].mean()}


def alignment_loss(c_i, z_s: torch.Tensor) -> torch.Tensor:
    """Eq. 7: E log c_i(z_s) + E log(1 - c_i(z'_s)); z_s (2B, P) natural rows first. With
    the optimal c_i it equals 2 JS(p(z_s) || p(z'_s)) - log 4 (Proposition 1)."""
    nat, adv = _halves(c_i(z_s).squeeze(1))
    return F.logsigmoid(nat).mean() + F.logsigmoid(-adv).mean()


def entropy_loss(c_s, z_i: torch.Tensor, form: str = "stated") -> torch.Tensor:
    """Eq. 8 on z_i (2B, P), natural rows first; p = softmax(c_s(z_i)).
    ``stated``: E sum_k p_k log p_k on x plus the same on x' (negative entropy, minimal
    -2 log K at the uniform prediction); ``printed``: E sum_k p_k(z_i) log p_k(z'_i)."""
    log_p = F.log_softmax(c_s(z_i), dim=1)
    nat, adv = _halves(log_p)
    if form == "stated":
        return sum((h.exp() * h).sum(dim=1).mean() for h in (nat, adv))
    if form == "printed":
        return (nat.exp() * adv).sum(dim=1).mean()
    raise ValueError(f"entropy_form={form!r}; use one of {ENTROPY_FORMS}.")


def mine_lower_bound(statistic, z_s: torch.Tensor, z_i: torch.Tensor) -> torch.Tensor:
    """Eq. 9: the Donsker-Varadhan bound E_joint T - log E_marginal e^T on I(z_s; z_i), in
    nats (MINE, Belghazi et al., ICML 2018), over the N rows of z_s, z_i (N, P); the
    marginal pairs z_s with a random permutation of z_i's rows (torch's global RNG)."""
    joint = statistic(z_s, z_i)
    shuffled = z_i[torch.randperm(z_i.shape[0], device=z_i.device)]
    marginal = statistic(z_s, shuffled)
    return joint.mean() - (torch.logsumexp(marginal, dim=0) - math.log(marginal.shape[0]))


def reconstruction_loss(r, z_s: torch.Tensor, z_i: torch.Tensor, z: torch.Tensor,
                        form: str = "relative") -> torch.Tensor:
    """Eq. 10: E ||r([z_s, z_i]) - z||^2 on x plus the same on x' (squared L2 norm over
    the D features, mean over each half); rows natural first, z (2B, D) the target.
    ``form`` "relative" divides by the mean of ||z||^2 over the rows (no gradient through
    it): 2 when r outputs zeros, whatever the scale of z; "sum" is Eq. 10 as printed."""
    error = (r(torch.cat([z_s, z_i], dim=1)) - z).pow(2).sum(dim=1)
    nat, adv = _halves(error)
    loss = nat.mean() + adv.mean()
    if form == "sum":
        return loss
    if form == "relative":
        return loss / z.detach().pow(2).sum(dim=1).mean().clamp_min(1e-12)
    raise ValueError(f"rec_form={form!r}; use one of {REC_FORMS}.")


# ----------------------------------------------------------------------------- hyper
def _require_drrdn(model: nn.Module) -> DRRDN:
    if not isinstance(model, DRRDN):
        raise TypeError(f"the drrdn objective needs a drrdn_lib.drrdn.DRRDN model, got "
                        f"{type(model).__name__}; build one with build_drrdn(name) or "
                        "TrainConfig(method='drrdn').")
    return model


def _weights(hyper: dict) -> dict:
    for name, value in hyper.items():
        if name == "entropy_form":
            if value not in ENTROPY_FORMS:
                raise ValueError(f"entropy_form={value!r}; use one of {ENTROPY_FORMS}.")
        elif name == "rec_form":
            if value not in REC_FORMS:
                raise ValueError(f"rec_form={value!r}; use one of {REC_FORMS}.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"drrdn weight {name}={value!r} must be a finite number >= 0 "
                             "(0 switches the loss off).")
    return hyper


def _weight(hyper: dict, loss: str) -> float:
    name = _WEIGHT[loss]
    return 1.0 if name is None else float(hyper[name])


# ----------------------------------------------------------------------------- one point
def drrdn_losses(model: DRRDN, images: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor,
                 hyper: dict) -> dict[str, torch.Tensor]:
    """Every switched-on loss of Eq. 11 at the current parameters, each routed to its
    :data:`LOSS_PARAMETERS` (call in train mode). ``mi_statistic`` is -mi for T."""
    reps = model.representations(torch.cat([images, adv]))
    z, z_s, z_i = reps["z"], reps["z_s"], reps["z_i"]
    losses = {"ce": classification_loss(model.c_s, z_s, labels)}
    if hyper["lambda_bc"]:
        losses["bc"], _ = domain_loss(model.c_i, z_s.detach(), z_i)
    if hyper["lambda_adv"]:
        losses["adv"] = alignment_loss(frozen(model.c_i), z_s)
    if hyper["lambda_ent"]:
        losses["ent"] = entropy_loss(frozen(model.c_s), z_i, hyper["entropy_form"])
    if hyper["lambda_mi"] or hyper["lambda_rec"]:
        fixed = z.detach()
        parts = model.d_s(fixed), model.d_i(fixed)
        if hyper["lambda_mi"]:
            losses["mi_statistic"] = -mine_lower_bound(
                model.mine, *(p.detach() for p in parts))
            losses["mi"] = mine_lower_bound(frozen(model.mine), *parts)
        if hyper["lambda_rec"]:
            losses["rec"] = reconstruction_loss(model.r, *parts, fixed, hyper["rec_form"])
    return losses


def drrdn(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: AttackBudget,
          *, lambda_bc: float = 1.0, lambda_adv: float = 1.0, lambda_ent: float = 1.0,
          lambda_mi: float = 0.1, lambda_rec: float = 0.01, entropy_form: str = "stated",
          rec_form: str = "relative") -> tuple[torch.Tensor, dict[str, float]]:
    """DRRDN (Yang, Guo, Wang, Xu, AAAI 2021) in the one signature: x' by PGD-CE on
    c_s(d_s(g(.))), then Eq. 11's losses at the current parameters, each weighted and
    routed to the parameters it updates (module docstring). ``loss.backward()`` gives
    each group the sum of its losses' gradients at one point; training uses
    :class:`Algorithm1Update`, which takes Algorithm 1's steps one after the other.

    Defaults of ``lambda_mi`` and ``lambda_rec``: the validation search of docs/method.md.
    Terms: ``ce``, ``bc``, ``adv``, ``ent``, ``mi`` (nats), ``rec``, ``loss`` (Eq. 11).
    """
    model = _require_drrdn(model)
    hyper = _weights(dict(lambda_bc=lambda_bc, lambda_adv=lambda_adv, lambda_ent=lambda_ent,
                          lambda_mi=lambda_mi, lambda_rec=lambda_rec, entropy_form=entropy_form,
                          rec_form=rec_form))
    adv = pgd_examples(model, images, labels, budget)
    with train_mode(model):
        losses = drrdn_losses(model, images, adv, labels, hyper)
        statistic = losses.pop("mi_statistic", None)
        loss = sum(_weight(hyper, k) * v for k, v in losses.items())
        terms = as_floats({**losses, "loss": loss})
        if statistic is not None:  # T's ascent: its gradient, and no change to the value
            loss = loss + (statistic - statistic.detach())
    return loss, terms


# ----------------------------------------------------------------------------- Algorithm 1
class Algorithm1Update:
    """Algorithm 1 of the paper, one batch per call (see the module docstring).

    One SGD optimiser per step of :data:`ALGORITHM_1` that has a loss switched on, over
    the union of its losses' :data:`LOSS_PARAMETERS`; weight decay applies to each parameter group in the first
    step that names it only (so every parameter decays once per batch). Each step
    recomputes what it needs from the current parameters: the encoder runs forward and
    backward in ``classify`` and ``disentangle`` and once more forward (no gradient:
    no later step updates g) for the MI and reconstruction steps.
    """

    def __init__(self, model: nn.Module, objective, make_optimizer: MakeOptimizer,
                 hyper: dict):
        self.model = _require_drrdn(model)
        self.hyper = _weights({**keyword_defaults(objective), **hyper})
        groups, seen = self.model.groups(), set()
        self.optimizers, self.params = {}, {}
        for step, losses in ALGORITHM_1:
            if not any(_weight(self.hyper, loss) for loss in losses):
                continue  # a step whose losses are all switched off takes no step
            names = list(dict.fromkeys(g for loss in losses for g in LOSS_PARAMETERS[loss]))
            param_groups = [{"params": groups[n], **({"weight_decay": 0.0} if n in seen else {})}
                            for n in names]
            seen.update(names)
            self.optimizers[step] = make_optimizer(param_groups)
            self.params[step] = [p for n in names for p in groups[n]]

    def _step(self, step: str, losses: dict[str, torch.Tensor], terms: dict) -> None:
        """Minimise the weighted sum of ``losses`` over the step's parameters only."""
        total = sum((1.0 if k == "mi_statistic" else _weight(self.hyper, k)) * v
                    for k, v in losses.items())
        check_finite(f"drrdn's {step} step", float(total.detach()), terms)
        params = self.params[step]
        grads = torch.autograd.grad(total, params, allow_unused=True)
        for param, grad in zip(params, grads):
            param.grad = grad
        self.optimizers[step].step()
        for param in params:
            param.grad = None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 budget: AttackBudget) -> dict[str, float]:
        model, hyper, terms = self.model, self.hyper, {}
        adv = pgd_examples(model, images, labels, budget)
        both = torch.cat([images, adv])
        with train_mode(model):
            reps = model.representations(both)
            losses = {"ce": classification_loss(model.c_s, reps["z_s"], labels)}
            if hyper["lambda_bc"]:
                losses["bc"], accuracy = domain_loss(model.c_i, reps["z_s"].detach(), reps["z_i"])
                terms.update(accuracy)
            terms.update({k: v.detach() for k, v in losses.items()})
            self._step("classify", losses, terms)
            if hyper["lambda_adv"] or hyper["lambda_ent"]:
                self._disentangle(both, terms)
            if hyper["lambda_mi"] or hyper["lambda_rec"]:
                self._mi_and_reconstruction(both, terms)
        terms["loss"] = sum(_weight(hyper, k) * terms[k] for k in _WEIGHT
                            if k in terms and k != "mi_statistic")
        return as_floats(terms)

    def _disentangle(self, both: torch.Tensor, terms: dict) -> None:
        """Step 4: d_s (and g) fool the fixed c_i; d_i (and g) empty the fixed c_s."""
        reps, losses = self.model.representations(both), {}
        if self.hyper["lambda_adv"]:
            losses["adv"] = alignment_loss(frozen(self.model.c_i), reps["z_s"])
        if self.hyper["lambda_ent"]:
            losses["ent"] = entropy_loss(frozen(self.model.c_s), reps["z_i"],
                                         self.hyper["entropy_form"])
        terms.update({k: v.detach() for k, v in losses.items()})
        self._step("disentangle", losses, terms)

    def _mi_and_reconstruction(self, both: torch.Tensor, terms: dict) -> None:
        """Steps 5 and 6 on z = g(x) held fixed (neither names g)."""
        model = self.model
        with torch.no_grad():
            z = model.g(both)
        if self.hyper["lambda_mi"]:
            z_s, z_i = model.d_s(z), model.d_i(z)
            self._step("estimate_mi", {"mi_statistic": -mine_lower_bound(
                model.mine, z_s.detach(), z_i.detach())}, terms)
            mi = mine_lower_bound(frozen(model.mine), z_s, z_i)
            terms["mi"] = mi.detach()
            self._step("minimise_mi", {"mi": mi}, terms)
        if self.hyper["lambda_rec"]:
            rec = reconstruction_loss(model.r, model.d_s(z), model.d_i(z), z, self.hyper["rec_form"])
            terms["rec"] = rec.detach()
            self._step("reconstruct", {"rec": rec}, terms)
