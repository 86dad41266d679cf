"""Empirical terms of the domain-adaptation bound on a representation, and the TRADES split.

Ben-David et al. (2010), Thm 2, for a head h on the representation z, natural domain N and
adversarial domain A (the attack that defines A is the caller's)::

    err_A(h) <= err_N(h) + 1/2 * d_HdH(P_N(z), P_A(z)) + lambda*,
    lambda*  = min_{h' in H} err_N(h') + err_A(h')

Estimates (all errors are fractions in [0, 1]; divergence in [0, 2]; lambda* in [0, 2]):

- ``err_nat``, ``err_adv``: the model's errors on all n natural / adversarial inputs (the
  model never saw them, so all n are held out for it), binomial confidence intervals.
- divergence: proxy A-distance ``2 * (1 - 2 * e_dom)`` clipped to [0, 2]; ``e_dom`` is the
  held-out error of a domain classifier (natural = 0, adversarial = 1) trained on the
  train side of a seeded split *by example* (an example's natural and adversarial
  representations always fall on the same side: no leakage), balanced by construction.
  It estimates ``d_H`` of the domain classifier's class from below (a trained classifier is
  no better than the best one); ``d_HdH >= d_H``, so the bound built from it is an estimate,
  not a certificate.
- ``lambda_star``: a fresh head trained on the union of the train side's natural and
  adversarial representations (labels y), then ``err_N(h') + err_A(h')`` on the held-out side
  (a sum of two errors, twice the error on the balanced union).
- ``bound = err_nat + divergence / 2 + lambda_star``; ``holds = err_adv <= bound`` (point
  estimates); ``slack = bound - err_adv``.
- ``gap = err_adv - err_nat`` and what bounds it, ``gap_bound = divergence / 2 + lambda_star``.
  ``verdict`` (:func:`bound_verdict`, the rule the notebooks report): ``"vacuous"`` when the
  bound is above 1 (it says nothing about an error); else ``"holds"`` when the gap's upper
  end is at most gap_bound's lower end, ``"fails"`` when the gap's lower end is above
  gap_bound's upper end, ``"undecided"`` otherwise (conservative: "holds" needs the whole
  gap interval under the whole bound's interval). ``lambda_alone`` (:func:`lambda_verdict`)
  asks the same of lambda* alone: ``"covers"`` (the gap's upper end is at most lambda*'s
  lower end: the divergence term plays no part), ``"short"`` (lambda*'s upper end is below
  the gap's lower end), ``"undecided"``.
- ``lambda_by_n`` (with ``lambda_sizes``): lambda* of heads fitted on the first k train-side
  pairs, scored on the same held-out side, for each k, to show whether the estimate has
  settled at the n used (a fitted head is no better than the best one, so lambda* is
  estimated from above, the divergence from below).

Heads: the probes of :mod:`drrdn_lib.probes` (``"linear"``: logistic regression, ``"mlp"``:
one hidden layer), on features standardised with the train side's mean / sd, seeded.

Inputs are validated first (:mod:`drrdn_lib.validate`): :func:`estimate_bound` takes finite
float32 images in ``bounds`` ([0, 1]; None for features), int64 labels in the model's
classes, and adversarial inputs inside the ``eps``-ball (``norm``) around the natural ones
(given, or read from the ``attack``); no bound is reported from inputs that break them.

Confidence intervals: binomial (Wilson or Clopper-Pearson) for single proportions. A sum of
two proportions measured on the same examples (e_dom, lambda*) gets the sum of the two
intervals, each at level ``1 - alpha/2`` (Bonferroni: valid whatever their dependence); the
gap, a difference, gets the difference of the opposite ends in the same way. Sums of
intervals (gap_bound, the bound) add their ends.

TRADES (Zhang et al. 2019): ``R_rob = R_nat + R_bdy`` with ``R_nat = P(wrong on x)``,
``R_bdy = P(right on x, wrong at the attack's point)``, ``R_rob = P(wrong on x or there)``;
the identity holds exactly on counts (checked). ``err_adv`` can be below ``R_rob`` when an
attack point of a misclassified x happens to be right (counted as ``n_adv_fixed``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .stats import (CI_METHODS, Estimate, check_ci, compare_paired, holm_rows, paired_mean_difference,
                    proportion)
from .probes import (DEFAULT_STEPS, HEADS, check_head, count_wrong, domain_rows_right, fit_head, split_indices,
                     standardise)
from .torch_utils import eval_mode, model_device
from .validate import (check_bool_vector, check_features, check_images, check_in_ball,
                       check_labels, check_logits, check_number)

__all__ = ["VERDICTS", "TradesDecomposition", "BoundCheck", "BoundReport", "trades_decomposition",
           "domain_divergence", "joint_error", "bound_verdict", "lambda_verdict",
           "estimate_bound_from_representations", "estimate_bound", "smallest_versus_others"]
#: the words :func:`bound_verdict` answers with
VERDICTS = ("holds", "undecided", "fails", "vacuous")


def _sum_of_proportions(k_first: int, k_second: int, n: int, *, scale: float,
                        confidence: float, method: str) -> Estimate:
    """``scale * (k_first / n + k_second / n)``, Bonferroni interval (module docstring)."""
    level = 1.0 - (1.0 - confidence) / 2
    first = proportion(k_first, n, confidence=level, method=method)
    second = proportion(k_second, n, confidence=level, method=method)
    return Estimate(scale * (first.value + second.value), scale * (first.lo + second.lo),
                    scale * (first.hi + second.hi), n)


def _difference_of_proportions(k_first: int, k_second: int, n: int, *, confidence: float,
                               method: str) -> Estimate:
    """``k_first / n - k_second / n``, Bonferroni interval (module docstring)."""
    level = 1.0 - (1.0 - confidence) / 2
    first = proportion(k_first, n, confidence=level, method=method)
    second = proportion(k_second, n, confidence=level, method=method)
    return Estimate(first.value - second.value, first.lo - second.hi, first.hi - second.lo, n)


# ----------------------------------------------------------------------------- TRADES
@dataclass(frozen=True)
class TradesDecomposition:
    """``R_rob = R_nat + R_bdy`` (fractions of n examples) with the counts behind them."""

    r_nat: Estimate
    r_bdy: Estimate
    r_rob: Estimate
    n_nat_wrong: int
    n_bdy: int
    n_rob_wrong: int
    n_adv_fixed: int
    identity_holds: bool

    def to_dict(self) -> dict:
        return asdict(self)


def trades_decomposition(correct_nat, correct_adv, *, confidence: float = 0.95,
                         ci_method: str = "wilson") -> TradesDecomposition:
    """TRADES split of the robust error from per-example correctness.

    Args:
        correct_nat: bool ``(n,)``, prediction on the natural x is right.
        correct_adv: bool ``(n,)``, prediction is right at the attack's point(s) (for several
            attacks: right at all of them, the per-example worst case).

    ``R_nat = #wrong on x / n``, ``R_bdy = #(right on x, wrong at attack) / n``,
    ``R_rob = #(wrong on x or at attack) / n``; ``identity_holds`` checks
    ``n_rob_wrong == n_nat_wrong + n_bdy`` on the integer counts.
    """
    correct_nat = check_bool_vector(correct_nat, "correct_nat")
    correct_adv = check_bool_vector(correct_adv, "correct_adv", len(correct_nat))
    if len(correct_nat) == 0:
        raise ValueError("correct_nat is empty; pass at least one example.")
    n = len(correct_nat)
    counts = {"nat": int((~correct_nat).sum()), "bdy": int((correct_nat & ~correct_adv).sum()),
              "rob": int((~correct_nat | ~correct_adv).sum())}
    est = {k: proportion(v, n, confidence=confidence, method=ci_method) for k, v in counts.items()}
    return TradesDecomposition(
        r_nat=est["nat"], r_bdy=est["bdy"], r_rob=est["rob"], n_nat_wrong=counts["nat"],
        n_bdy=counts["bdy"], n_rob_wrong=counts["rob"],
        n_adv_fixed=int((~correct_nat & correct_adv).sum()),
        identity_holds=counts["rob"] == counts["nat"] + counts["bdy"])


# ----------------------------------------------------------------------------- validation
def _check_pair(z_nat, z_adv, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    z_nat = check_features(z_nat, "z_nat", n)
    z_adv = check_features(z_adv, "z_adv", len(z_nat))
    if z_adv.shape != z_nat.shape:
        raise ValueError(f"z_nat {tuple(z_nat.shape)} and z_adv {tuple(z_adv.shape)} must have the "
                         f"same shape: row i of each is example i, natural and adversarial.")
    return z_nat, z_adv.to(z_nat.device)


# ----------------------------------------------------------------------------- the terms
def _domain_divergence(z_nat, z_adv, train, held, *, head, seed, steps, hidden, confidence,
                       ci_method) -> tuple[Estimate, Estimate, torch.Tensor]:
    """(proxy A-distance, e_dom, the domain classifier right on each held-out row: natural
    rows then adversarial) on an existing split; inputs already validated."""
    nat_right, adv_right = domain_rows_right(z_nat, z_adv, train, held, head=head, seed=seed,
                                             steps=steps, hidden=hidden)
    e_dom = _sum_of_proportions(int((~nat_right).sum()), int((~adv_right).sum()), len(held),
                                scale=0.5, confidence=confidence, method=ci_method)

    def proxy(e):
        return min(2.0, max(0.0, 2.0 * (1.0 - 2.0 * e)))
    return (Estimate(proxy(e_dom.value), proxy(e_dom.hi), proxy(e_dom.lo), e_dom.n), e_dom,
            torch.cat([nat_right, adv_right]).cpu())


def _joint_error(z_nat, z_adv, y, train, held, *, head, seed, steps, hidden, confidence,
                 ci_method) -> Estimate:
    """lambda* = err_N(h') + err_A(h') of a head fitted on the union; inputs validated."""
    y = y.to(z_nat.device)
    fit, nat_held, adv_held = standardise(torch.cat([z_nat[train], z_adv[train]]),
                                           z_nat[held], z_adv[held])
    num_classes = max(2, int(y.max()) + 1)
    clf = fit_head(head, fit, torch.cat([y[train], y[train]]), num_classes, seed=seed,
                    steps=steps, hidden=hidden)
    return _sum_of_proportions(count_wrong(clf, nat_held, y[held]),
                               count_wrong(clf, adv_held, y[held]), len(held), scale=1.0, confidence=confidence, method=ci_method)


def _joint_error_by_size(z_nat, z_adv, y, train, held, sizes, **kw) -> dict[int, Estimate]:
    """{k: lambda* of a head fitted on the first k train-side pairs} on one held-out side."""
    bad = [k for k in sizes if not (isinstance(k, int) and 1 <= k <= len(train))]
    if bad:
        raise ValueError(f"lambda_sizes {bad} are not pair counts in [1, {len(train)}] (the "
                         f"train side of this split); use more examples or smaller sizes.")
    return {k: _joint_error(z_nat, z_adv, y, train[:k], held, **kw) for k in sorted(set(sizes))}


def domain_divergence(z_nat, z_adv, *, head: str = "linear", heldout_fraction: float = 0.5,
                      seed: int = 0, steps: int | None = None, hidden: int = 64,
                      confidence: float = 0.95, ci_method: str = "wilson"
                      ) -> tuple[Estimate, Estimate]:
    """Proxy A-distance ``2 (1 - 2 e_dom)`` in [0, 2] between two representation sets.

    Args:
        z_nat, z_adv: float ``(n, D)``; row i of each is example i (natural, adversarial).
        head: ``"linear"`` or ``"mlp"`` domain classifier.
        heldout_fraction: share of examples (pairs) held out to measure e_dom.

    Returns:
        (divergence, e_dom), each with its interval (module docstring).
    """
    check_head(head)
    check_ci(confidence, ci_method)
    z_nat, z_adv = _check_pair(z_nat, z_adv)
    train, held = split_indices(len(z_nat), heldout_fraction, seed)
    return _domain_divergence(z_nat, z_adv, train, held, head=head, seed=seed, hidden=hidden,
                              steps=steps or DEFAULT_STEPS[head], confidence=confidence,
                              ci_method=ci_method)[:2]


def joint_error(z_nat, z_adv, labels, *, head: str = "linear", heldout_fraction: float = 0.5,
                seed: int = 0, steps: int | None = None, hidden: int = 64,
                confidence: float = 0.95, ci_method: str = "wilson") -> Estimate:
    """lambda*: ``err_N(h') + err_A(h')`` in [0, 2] of a fresh head h' trained on the union.

    Args:
        z_nat, z_adv: float ``(n, D)``; labels: int ``(n,)`` class indices (same for both).
    """
    check_head(head)
    check_ci(confidence, ci_method)
    z_nat, z_adv = _check_pair(z_nat, z_adv)
    check_labels(labels, len(z_nat))
    train, held = split_indices(len(z_nat), heldout_fraction, seed)
    return _joint_error(z_nat, z_adv, labels, train, held, head=head, seed=seed, hidden=hidden,
                        steps=steps or DEFAULT_STEPS[head], confidence=confidence,
                        ci_method=ci_method)


# ----------------------------------------------------------------------------- the report
def bound_verdict(bound: float, gap: Estimate, gap_bound: Estimate) -> str:
    """"vacuous" (bound > 1), "holds", "fails" or "undecided" by interval ends (module docstring)."""
    if bound > 1.0:
        return "vacuous"
    if gap.hi <= gap_bound.lo:
        return "holds"
    return "fails" if gap.lo > gap_bound.hi else "undecided"


def lambda_verdict(gap: Estimate, lambda_star: Estimate) -> str:
    """Does lambda* alone cover the gap: "covers", "short" or "undecided" (module docstring)."""
    if gap.hi <= lambda_star.lo:
        return "covers"
    return "short" if lambda_star.hi < gap.lo else "undecided"


@dataclass(frozen=True)
class BoundCheck:
    """The bound for one head class H (``"linear"`` or ``"mlp"``).

    ``bound = err_nat + divergence / 2 + lambda_star``; ``bound_lo`` / ``bound_hi`` sum the
    terms' interval ends (joint coverage >= 1 - 3 * alpha by Bonferroni). ``gap_bound`` is
    ``divergence / 2 + lambda_star``; ``verdict`` and ``lambda_alone`` as the module says.
    """

    head: str
    divergence: Estimate
    domain_error: Estimate
    lambda_star: Estimate
    bound: float
    bound_lo: float
    bound_hi: float
    err_adv: float
    holds: bool
    slack: float
    gap_bound: Estimate
    verdict: str
    lambda_alone: str
    lambda_by_n: dict[int, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BoundReport:
    """Everything :func:`estimate_bound` measured; ``to_dict()`` is JSON-serialisable."""

    n: int
    n_train: int
    n_heldout: int
    heldout_fraction: float
    seed: int
    confidence: float
    ci_method: str
    representation_dim: int
    err_nat: Estimate
    err_adv: Estimate
    gap: Estimate
    checks: dict[str, BoundCheck]
    trades: TradesDecomposition
    per_example: dict | None = field(default=None, compare=False, repr=False)

    @property
    def holds(self) -> bool:
        """err_adv <= bound for every head class measured."""
        return all(check.holds for check in self.checks.values())

    def to_dict(self) -> dict:
        """Every field but ``per_example`` (tensors: ``gap_term`` (n,) int, right on x minus
        right at the attack point, whose mean is the gap; ``held`` the held-out indices;
        ``domain_right`` head -> bool (2 n_heldout,), the domain classifier on each held-out
        row, natural then adversarial)."""
        return {k: v for k, v in asdict(replace(self, per_example=None)).items() if k != "per_example"}

    def to_record(self, head: str = "mlp") -> dict:
        """One flat row for tables and :func:`drrdn_lib.plots.plot_bound_terms`.

        Keys: err_nat, err_adv, gap, divergence, lambda_star, gap_bound, bound (each with
        _lo / _hi where it has an interval), holds, verdict, lambda_alone, slack, r_nat,
        r_bdy, r_rob, n, n_train, head.
        """
        if head not in self.checks:
            raise ValueError(f"head {head!r} was not measured; use one of {sorted(self.checks)}.")
        check = self.checks[head]
        row = {"head": head, "n": self.n, "n_train": self.n_train, "bound": check.bound,
               "bound_lo": check.bound_lo, "bound_hi": check.bound_hi, "holds": check.holds,
               "verdict": check.verdict, "lambda_alone": check.lambda_alone, "slack": check.slack}
        for name, est in (("err_nat", self.err_nat), ("err_adv", self.err_adv), ("gap", self.gap),
                          ("divergence", check.divergence), ("lambda_star", check.lambda_star),
                          ("gap_bound", check.gap_bound),
                          ("r_nat", self.trades.r_nat), ("r_bdy", self.trades.r_bdy),
                          ("r_rob", self.trades.r_rob)):
            row.update({name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi})
        return row


def _bound_check(head, err_nat: Estimate, err_adv: Estimate, gap: Estimate,
                 divergence: Estimate, e_dom: Estimate, lam: Estimate,
                 lambda_by_n: dict[int, Estimate]) -> BoundCheck:
    bound = err_nat.value + divergence.value / 2 + lam.value
    gap_bound = Estimate(divergence.value / 2 + lam.value, divergence.lo / 2 + lam.lo,
                         divergence.hi / 2 + lam.hi, lam.n)
    return BoundCheck(head=head, divergence=divergence, domain_error=e_dom, lambda_star=lam,
                      bound=bound, bound_lo=err_nat.lo + gap_bound.lo,
                      bound_hi=err_nat.hi + gap_bound.hi, err_adv=err_adv.value,
                      holds=err_adv.value <= bound, slack=bound - err_adv.value,
                      gap_bound=gap_bound, verdict=bound_verdict(bound, gap, gap_bound),
                      lambda_alone=lambda_verdict(gap, lam), lambda_by_n=lambda_by_n)


def estimate_bound_from_representations(
        z_nat, z_adv, labels, pred_nat, pred_adv, *, worst_case_correct=None,
        heads: tuple[str, ...] = HEADS, heldout_fraction: float = 0.5, seed: int = 0,
        steps: int | None = None, hidden: int = 64, confidence: float = 0.95,
        ci_method: str = "wilson", lambda_sizes: tuple[int, ...] = ()) -> BoundReport:
    """All terms of the bound from representations and the model's predictions.

    Args:
        z_nat, z_adv: float ``(n, D)`` representations of the natural / adversarial inputs.
        labels: int ``(n,)`` true classes; pred_nat, pred_adv: int ``(n,)`` model predictions.
        worst_case_correct: optional bool ``(n,)``, right at every attack point tried (the
            per-example worst case over several attacks) for the TRADES split; default
            ``pred_adv == labels``.
        heads: head classes H to measure, a subset of :data:`HEADS`.
        heldout_fraction: share of examples held out (needs >= MIN_SIDE per side).
        seed: seeds the split and the heads' initialisation.
        steps, hidden: optimiser steps (None: linear 100 L-BFGS, mlp 300 Adam) and MLP width.
        confidence, ci_method: interval level and ``"wilson"`` / ``"clopper-pearson"``.
        lambda_sizes: train-side pair counts k for ``BoundCheck.lambda_by_n`` (each at most
            the train side); empty: none.
    """
    check_ci(confidence, ci_method)
    if isinstance(heads, str) or not heads:
        raise ValueError(f"heads must be a non-empty tuple from {HEADS}, got {heads!r}.")
    for head in heads:
        check_head(head)
    check_labels(labels)
    labels = labels.detach()
    n = len(labels)
    z_nat, z_adv = _check_pair(z_nat, z_adv, n)
    check_labels(pred_nat, n, name="pred_nat")
    check_labels(pred_adv, n, name="pred_adv")
    pred_nat, pred_adv = pred_nat.detach().to(labels.device), pred_adv.detach().to(labels.device)
    correct_nat, correct_adv = pred_nat == labels, pred_adv == labels
    if worst_case_correct is not None:
        correct_adv = check_bool_vector(worst_case_correct, "worst_case_correct", n)
    train, held = split_indices(n, heldout_fraction, seed)
    ci = {"confidence": confidence, "method": ci_method}
    n_nat_wrong, n_adv_wrong = int((~correct_nat).sum()), int((pred_adv != labels).sum())
    err_nat, err_adv = proportion(n_nat_wrong, n, **ci), proportion(n_adv_wrong, n, **ci)
    gap = _difference_of_proportions(n_adv_wrong, n_nat_wrong, n, **ci)
    checks, domain_right = {}, {}
    for head in heads:
        kw = {"head": head, "seed": seed, "steps": steps or DEFAULT_STEPS[head],
              "hidden": hidden, "confidence": confidence, "ci_method": ci_method}
        divergence, e_dom, domain_right[head] = _domain_divergence(z_nat, z_adv, train, held, **kw)
        lam = _joint_error(z_nat, z_adv, labels, train, held, **kw)
        by_n = _joint_error_by_size(z_nat, z_adv, labels, train, held, lambda_sizes, **kw)
        checks[head] = _bound_check(head, err_nat, err_adv, gap, divergence, e_dom, lam, by_n)
    trades = trades_decomposition(correct_nat.cpu(), correct_adv.cpu(), confidence=confidence,
                                  ci_method=ci_method)
    return BoundReport(n=n, n_train=len(train), n_heldout=len(held),
                       heldout_fraction=float(heldout_fraction), seed=int(seed),
                       confidence=float(confidence), ci_method=ci_method,
                       representation_dim=int(z_nat.shape[1]), err_nat=err_nat,
                       err_adv=err_adv, gap=gap, checks=checks, trades=trades,
                       per_example={"gap_term": (correct_nat.int() - (pred_adv == labels).int()).cpu(),
                                    "held": held.cpu(), "domain_right": domain_right})


# ----------------------------------------------------------------------------- from a model
def _predict_and_represent(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                           representation, batch_size: int, name: str
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions int64 (n,), representations float (n, D)) on the CPU, batched, without
    gradients (the caller holds the model in eval mode); raises on NaN/inf logits or
    representations and on labels outside the model's classes."""
    device, preds, reps = model_device(model, images.device), [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            logits = model(batch)
            check_logits(logits, labels[start:start + batch_size].to(logits.device),
                         probabilities_ok=True)
            preds.append(logits.argmax(1).cpu())
            rep = representation(batch)
            if not isinstance(rep, torch.Tensor) or rep.ndim != 2 or len(rep) != len(batch):
                shape = getattr(rep, "shape", type(rep).__name__)
                shape = tuple(shape) if isinstance(shape, torch.Size) else shape
                raise ValueError(f"the representation function returned {shape} for a batch "
                                 f"of {len(batch)} {name} inputs; it must return "
                                 f"(batch, D), e.g. backbone features or z_s.")
            reps.append(check_features(rep, f"the {name} representation").cpu())
    return torch.cat(preds), torch.cat(reps)


def _threat_model(attack, eps, norm, bounds) -> tuple[float | None, str, tuple | None]:
    """(eps, norm, bounds): the explicit arguments, else the attack's attributes, else
    (None, "Linf", (0, 1)); "auto" marks an argument that was not given."""
    eps = getattr(attack, "eps", None) if eps is None else eps
    norm = getattr(attack, "norm", "Linf") if norm is None else norm
    bounds = getattr(attack, "bounds", (0.0, 1.0)) if bounds == "auto" else bounds
    if eps is not None:
        eps = check_number("eps", eps, 0.0, hint="the radius of the adversarial inputs")
    return eps, norm, bounds


def _adversarial_images(model, images, labels, x_adv, attack, batch_size) -> torch.Tensor:
    if x_adv is None:
        x_adv = torch.cat([attack(model, images[s:s + batch_size], labels[s:s + batch_size])
                           for s in range(0, len(images), batch_size)])
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != images.shape:
        raise ValueError(f"x_adv has shape {tuple(getattr(x_adv, 'shape', ()))} but x_nat has "
                         f"{tuple(images.shape)}; row i of x_adv must attack row i of x_nat.")
    return x_adv


def estimate_bound(model: nn.Module, x_nat: torch.Tensor, labels: torch.Tensor,
                   x_adv: torch.Tensor | None = None, *, attack=None, eps: float | None = None,
                   norm: str | None = None, bounds: tuple[float, float] | None | str = "auto",
                   representation=None, worst_case_correct=None, batch_size: int = 512,
                   **kwargs) -> BoundReport:
    """Measure the bound's terms for a trained model on held-out data.

    Args:
        model: a classifier returning logits (e.g. a ``SplitClassifier``); run in eval mode,
            its train/eval mode restored.
        x_nat: natural inputs ``(n, ...)``: float32 images (NCHW) in ``bounds``, or features.
        labels: int64 ``(n,)`` in ``[0, num_classes)``.
        x_adv: adversarial inputs, same shape (row i attacks row i), from the attack that
            defines domain A; or pass ``attack`` (called ``attack(model, x, y)`` in batches).
        eps, norm: the threat model x_adv must respect (``|x_adv - x_nat| <= eps`` per row in
            ``norm``, "Linf" or "L2"); default: the attack's ``eps`` / ``norm`` attributes (a
            :class:`~drrdn_lib.attacks.Attack` has them). ``eps`` is required otherwise.
        bounds: the inputs' valid range: default the attack's ``bounds``, else (0, 1); None
            for unbounded features (the toy).
        representation: function inputs -> ``(batch, D)``; default ``model.representation``
            (z_s for DRRDN, backbone features for plain classifiers).
        worst_case_correct: optional bool ``(n,)`` per-example worst case over several
            attacks, for the TRADES split (default: correctness on x_adv).
        batch_size: examples per forward pass.
        **kwargs: passed to :func:`estimate_bound_from_representations` (heads,
            heldout_fraction, seed, steps, hidden, confidence, ci_method, lambda_sizes).
    Raises: ``ValueError`` for bad inputs (module docstring), before anything is measured.
    """
    if (x_adv is None) == (attack is None):
        raise ValueError("pass exactly one of x_adv (adversarial images, same shape as x_nat) "
                         "or attack (called attack(model, x, y) to make them).")
    eps, norm, bounds = _threat_model(attack, eps, norm, bounds)
    if not isinstance(x_nat, torch.Tensor) or x_nat.ndim < 2:
        raise ValueError(f"x_nat must be a tensor (n, ...), got "
                         f"{getattr(x_nat, 'shape', type(x_nat).__name__)}.")
    check_images(x_nat, bounds, name="x_nat")
    check_labels(labels, len(x_nat))
    if eps is None:
        raise ValueError("pass eps= (the radius x_adv was made with, and norm= if not 'Linf'), "
                         "so that the adversarial inputs can be checked to lie in the eps-ball "
                         "around x_nat; an Attack object carries it.")
    if representation is None:
        representation = getattr(model, "representation", None)
        if representation is None:
            raise ValueError(f"{type(model).__name__} has no .representation(x); pass "
                             f"representation=<function inputs -> (batch, D)>.")
    with eval_mode(model):
        x_adv = _adversarial_images(model, x_nat, labels.to(x_nat.device), x_adv, attack,
                                    batch_size)
        check_images(x_adv, bounds, name="x_adv")
        check_in_ball(x_adv, x_nat, eps, norm, name="x_adv")
        pred_nat, z_nat = _predict_and_represent(model, x_nat, labels, representation,
                                                 batch_size, "natural")
        pred_adv, z_adv = _predict_and_represent(model, x_adv, labels, representation,
                                                 batch_size, "adversarial")
    return estimate_bound_from_representations(
        z_nat, z_adv, labels.cpu(), pred_nat, pred_adv, worst_case_correct=worst_case_correct,
        **kwargs)


# ----------------------------------------------------------------------------- between models
def _paired_term(a: BoundReport, b: BoundReport, term: str, head: str) -> dict:
    """``term`` of a against b on the same examples: "gap" by the paired mean difference of
    the per-example gap terms (a minus b, with its interval and p), "divergence" by exact
    McNemar on the two domain classifiers' held-out rows."""
    pa, pb = a.per_example, b.per_example
    if not pa or not pb or len(pa["gap_term"]) != len(pb["gap_term"]) or not torch.equal(pa["held"], pb["held"]):
        raise ValueError("the two reports were not measured on the same examples and split "
                         "(estimate_bound with one limit and seed): no paired comparison.")
    if term == "gap":
        d, p = paired_mean_difference(pa["gap_term"].double().numpy(), pb["gap_term"].double().numpy())
        return {"difference": d.value, "lo": d.lo, "hi": d.hi, "n": d.n, "p_value": p}
    row = compare_paired(pa["domain_right"][head], pb["domain_right"][head]).to_dict()
    return {"difference": a.checks[head].divergence.value - b.checks[head].divergence.value,
            "n": row["n"], "a_only": row["a_only"], "b_only": row["b_only"], "p_value": row["p_value"]}


def smallest_versus_others(reports: dict, term: str, head: str = "mlp") -> list[dict]:
    """The report (key -> :class:`BoundReport` on the same examples) with the smallest
    ``term`` ("gap" or "divergence") against every other, paired (:func:`_paired_term`:
    a = the smallest, b = the other), with Holm's p over these ``len(reports) - 1`` rows.
    Rows: ``term``, ``a``, ``b`` (the keys), ``difference``, ``n``, ``p_value``, ``p_holm``,
    ``family_size`` (and ``lo``/``hi`` for the gap, ``a_only``/``b_only`` for the divergence)."""
    if term not in ("gap", "divergence"):
        raise ValueError(f"term must be 'gap' or 'divergence', got {term!r}.")
    value = {k: (r.gap.value if term == "gap" else r.checks[head].divergence.value)
             for k, r in reports.items()}
    if len(value) < 2:
        return []
    top = min(value, key=value.get)
    return holm_rows([{"term": term, "a": top, "b": k,
                       **_paired_term(reports[top], reports[k], term, head)}
                      for k in reports if k != top])
