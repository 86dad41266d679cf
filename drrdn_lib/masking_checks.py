"""Gradient-masking checks: signs that the gradients mislead the attacks, so that a robust
accuracy from gradient-based attacks would be an overestimate.

One function per check, as AutoAttack's ``checks.py`` (Athalye et al., ICML 2018; Carlini
et al., "On evaluating adversarial robustness", 2019; Croce & Hein, ICML 2020). Each takes
``(model, images (N, ...) in [0, 1], labels (N,) int64, ...)``, validates them, runs the
model in eval mode (restored) on its device and returns a :class:`CheckResult`:

=====================  ====================================================================
``deterministic``      two forward passes give the same logits (no randomised defence)
``nonzero_gradients``  no example has a zero or non-finite CE input gradient
``eps_monotone``       PGD accuracy does not rise with eps (0, eps/2, eps, 2 eps)
``large_eps_chance``   at the radius that reaches the all-0.5 image (L-inf 0.5, L2
                       0.5 sqrt(d)) PGD brings the accuracy down to the majority-class rate
``stronger_pgd``       5x the steps and 3 restarts lower the accuracy by <= the slack
``black_box``          Square (query-based, no gradients) fools no example that the
                       white-box attacks left correct (AutoAttack's threshold, 0.2%)
=====================  ====================================================================

:func:`gradient_masking_checks` runs a selection of them; :func:`drrdn_lib.evaluate.evaluate`
calls it and turns failures into :class:`GradientMaskingWarning` s.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import PGD
from .torch_utils import eval_mode, model_device, predict_labels
from .validate import check_images, check_int, check_labels, check_logits, check_number

__all__ = ["CHEAP_CHECKS", "ALL_CHECKS", "CheckResult", "GradientMaskingWarning",
           "gradient_masking_checks", "resolve_checks", "check_deterministic",
           "check_nonzero_gradients", "check_eps_monotone", "check_large_eps_chance",
           "check_stronger_pgd", "check_black_box"]

CHEAP_CHECKS = ("deterministic", "nonzero_gradients")
ALL_CHECKS = CHEAP_CHECKS + ("eps_monotone", "large_eps_chance", "stronger_pgd", "black_box")


class GradientMaskingWarning(UserWarning):
    """A gradient-masking check failed: the robust accuracy may be overestimated."""


@dataclass
class CheckResult:
    """A gradient-masking check: ``passed`` is True, False, or None when it was skipped."""

    name: str
    passed: bool | None
    message: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "message": self.message,
                "details": self.details}


def resolve_checks(checks: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` / ``"cheap"`` / ``"none"`` / a list from :data:`ALL_CHECKS` -> tuple of names."""
    presets = {"all": ALL_CHECKS, "cheap": CHEAP_CHECKS, "none": ()}
    if isinstance(checks, str):
        if checks not in presets:
            raise ValueError(f"checks={checks!r}: use 'all', 'cheap', 'none' or a list from {ALL_CHECKS}.")
        return presets[checks]
    unknown = [c for c in checks if c not in ALL_CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {ALL_CHECKS}.")
    return tuple(checks)


# ----------------------------------------------------------------------------- helpers
def _prepare(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the images and the labels (in the range of the model's classes, read from
    one forward pass) and move both to the model's device."""
    check_images(images, bounds)
    check_labels(labels, images.shape[0])
    device = model_device(model, images.device)
    images, labels = images.to(device), labels.to(device)
    if images.shape[0]:
        with eval_mode(model), torch.no_grad():
            logits = model(images[:1])
        check_logits(logits, probabilities_ok=True)
        check_labels(labels, images.shape[0], logits.shape[1])
    return images, labels


def _correct(model, images, labels, batch_size: int, attack=None) -> torch.Tensor:
    """(N,) bool: correct on the clean inputs (attack None) or under ``attack``."""
    out = []
    for lo in range(0, images.shape[0], batch_size):
        x, y = images[lo:lo + batch_size], labels[lo:lo + batch_size]
        if attack is not None:
            x = attack(model, x, y)
        out.append(predict_labels(model, x, batch_size) == y)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=images.device)


def _accuracy(model, images, labels, batch_size: int, attack=None) -> float:
    return _correct(model, images, labels, batch_size, attack).float().mean().item()


def _pgd_like(reference: PGD, eps: float, step_size: float | None = None,
              steps: int | None = None, restarts: int = 1) -> PGD:
    """A PGD like ``reference`` at radius ``eps`` (step scaled with eps by default)."""
    step = step_size or reference.step_size * (eps / reference.eps if reference.eps > 0 else 1.0)
    return PGD(eps, step, steps or reference.steps, norm=reference.norm,
               random_start=reference.random_start, restarts=restarts, loss=reference.loss,
               kappa=reference.kappa, seed=0, bounds=reference.bounds)


def _slack(tolerance: float, n: int) -> float:
    """Accuracy slack: ``tolerance``, at least one example of n."""
    return max(check_number("tolerance", tolerance, 0.0, 1.0), 1.0 / max(n, 1))


# ----------------------------------------------------------------------------- checks
def check_deterministic(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        batch_size: int = 256,
                        bounds: tuple[float, float] | None = (0.0, 1.0)) -> CheckResult:
    """Two forward passes on the first ``batch_size`` examples give the same logits (up to
    1e-5 of their scale); a randomised model needs EOT attacks. ``bounds``: the inputs'
    valid range (None for features)."""
    images, labels = _prepare(model, images, labels, bounds)
    x = images[:check_int("batch_size", batch_size)]
    with eval_mode(model), torch.no_grad():
        a, b = model(x), model(x)
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(a.abs().max().item() if a.numel() else 0.0, 1e-12)
    passed = diff <= 1e-5 * scale
    return CheckResult("deterministic", passed,
                       "logits repeat exactly" if passed else
                       f"two forward passes differ by {diff:.3g}: a randomised model needs EOT "
                       f"attacks (AutoAttack version='rand')", {"max_abs_diff": diff})


def check_nonzero_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            batch_size: int = 256,
                            bounds: tuple[float, float] | None = (0.0, 1.0)) -> CheckResult:
    """Every one of the first ``batch_size`` examples has a finite, non-zero CE input
    gradient. ``bounds``: the inputs' valid range (None for features)."""
    images, labels = _prepare(model, images, labels, bounds)
    n = check_int("batch_size", batch_size)
    x = images[:n].clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        loss = F.cross_entropy(model(x), labels[:n], reduction="sum")
        grad, = torch.autograd.grad(loss, x)
    norms = grad.flatten(1).abs().sum(1)
    n_zero = int((norms == 0).sum())
    n_bad = int((~torch.isfinite(norms)).sum())
    passed = n_zero == 0 and n_bad == 0
    return CheckResult("nonzero_gradients", passed,
                       "every example has a finite, non-zero input gradient" if passed else
                       f"{n_zero} example(s) with zero and {n_bad} with non-finite input "
                       f"gradients out of {len(norms)}: gradient-based attacks cannot move them",
                       {"n": len(norms), "n_zero": n_zero, "n_nonfinite": n_bad})


def check_eps_monotone(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       reference: PGD, batch_size: int = 256, tolerance: float = 0.02) -> CheckResult:
    """PGD accuracy (``reference`` scaled to each radius) does not rise along eps in
    (0, eps/2, eps, 2 eps) by more than the slack (``tolerance``, at least one example)."""
    images, labels = _prepare(model, images, labels, reference.bounds)
    slack = _slack(tolerance, images.shape[0])
    eps = reference.eps
    grid = [0.0, eps / 2, eps, 2 * eps]
    if reference.norm == "Linf":
        grid = [e for e in grid if e <= 1.0]
    with eval_mode(model):
        accs = [_accuracy(model, images, labels, batch_size)] + [
            _accuracy(model, images, labels, batch_size, _pgd_like(reference, e)) for e in grid[1:]]
    rises = [(grid[i], grid[i + 1]) for i in range(len(accs) - 1) if accs[i + 1] > accs[i] + slack]
    passed = not rises
    return CheckResult("eps_monotone", passed,
                       "PGD accuracy does not rise with eps" if passed else
                       f"PGD accuracy rises from eps {rises[0][0]:.4g} to {rises[0][1]:.4g} "
                       f"({accs}): the attack is not finding the worst case",
                       {"eps": grid, "accuracy": accs, "slack": slack})


def check_large_eps_chance(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                           reference: PGD, batch_size: int = 256,
                           chance_tolerance: float = 0.1) -> CheckResult:
    """At the radius that reaches the all-0.5 image, PGD leaves at most the majority-class
    rate + ``chance_tolerance`` correct."""
    images, labels = _prepare(model, images, labels, reference.bounds)
    check_number("chance_tolerance", chance_tolerance, 0.0, 1.0)
    dim = images[0].numel() if images.shape[0] else 1
    eps = 0.5 if reference.norm == "Linf" else 0.5 * math.sqrt(dim)
    steps = max(reference.steps, 20)
    with eval_mode(model):
        acc = _accuracy(model, images, labels, batch_size,
                        _pgd_like(reference, eps, step_size=2.5 * eps / steps, steps=steps))
    majority = torch.bincount(labels).max().item() / labels.numel()
    passed = acc <= majority + chance_tolerance
    return CheckResult("large_eps_chance", passed,
                       f"PGD at eps {eps:.4g} reaches {acc:.3f} <= chance {majority:.3f} + "
                       f"{chance_tolerance}" if passed else
                       f"PGD at eps {eps:.4g} (every image can be made uniform grey) still leaves "
                       f"accuracy {acc:.3f} > chance {majority:.3f} + {chance_tolerance}",
                       {"eps": eps, "steps": steps, "accuracy": acc, "majority_rate": majority})


def check_stronger_pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       reference: PGD, batch_size: int = 256, tolerance: float = 0.02,
                       factor: int = 5, restarts: int = 3) -> CheckResult:
    """``factor`` x the steps and ``restarts`` restarts lower the reference PGD's accuracy
    by at most the slack (else the reported attack has not converged)."""
    images, labels = _prepare(model, images, labels, reference.bounds)
    slack = _slack(tolerance, images.shape[0])
    ref = reference
    with eval_mode(model):
        base = _accuracy(model, images, labels, batch_size,
                         _pgd_like(ref, ref.eps, ref.step_size, ref.steps))
        strong = _accuracy(model, images, labels, batch_size,
                           _pgd_like(ref, ref.eps, ref.step_size, ref.steps * factor, restarts))
    passed = strong >= base - slack
    return CheckResult("stronger_pgd", passed,
                       f"{factor}x steps and {restarts} restarts change accuracy by {strong - base:+.3f}"
                       if passed else
                       f"{factor}x steps and {restarts} restarts lower PGD accuracy from {base:.3f} "
                       f"to {strong:.3f}: the reported attack has not converged",
                       {"steps": [ref.steps, ref.steps * factor], "restarts": [1, restarts],
                        "accuracy": [base, strong], "slack": slack})


def check_black_box(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    reference: PGD, whitebox_correct: torch.Tensor | None = None,
                    n_queries: int = 1000, batch_size: int = 256) -> CheckResult:
    """Square (``n_queries`` queries, no gradients) fools at most 0.2% of the examples that
    the white-box attacks left correct (``whitebox_correct`` (N,) bool; default: correct
    under ``reference``). Skipped (passed None) unless images are (N, C, H, W) and eps > 0."""
    images, labels = _prepare(model, images, labels, reference.bounds)
    check_int("n_queries", n_queries)
    if images.ndim != 4 or reference.eps == 0:
        return CheckResult("black_box", None, "skipped: Square needs (N, C, H, W) images and eps > 0")
    from pyautoattack.square import SquareAttack

    n = images.shape[0]
    with eval_mode(model):
        if whitebox_correct is None:
            whitebox_correct = _correct(model, images, labels, batch_size, reference)
        idx = whitebox_correct.to(images.device).nonzero().squeeze(1)
        fooled = 0
        if len(idx):
            square = SquareAttack(model, norm=reference.norm, n_queries=n_queries, eps=reference.eps,
                                  p_init=0.8, seed=0, resc_schedule=True, device=images.device)
            devices = [images.device.index or 0] if images.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                adv = square.perturb(images[idx], labels[idx])
            fooled = int((predict_labels(model, adv, batch_size) != labels[idx]).sum())
    passed = fooled / n <= 0.002
    return CheckResult("black_box", passed,
                       f"Square ({n_queries} queries) fooled {fooled} of {len(idx)} white-box-robust examples"
                       if passed else
                       f"Square ({n_queries} queries, no gradients) fooled {fooled} of the {len(idx)} "
                       f"examples the white-box attacks could not: their gradients mislead",
                       {"n_queries": n_queries, "n_whitebox_robust": len(idx), "n_fooled": fooled, "n": n})


# ----------------------------------------------------------------------------- all of them
def gradient_masking_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            reference: PGD, which: Sequence[str] = ALL_CHECKS,
                            whitebox_correct: torch.Tensor | None = None,
                            square_queries: int = 1000, batch_size: int = 256,
                            tolerance: float = 0.02, chance_tolerance: float = 0.1) -> list[CheckResult]:
    """The checks named in ``which`` (a subset of :data:`ALL_CHECKS`, in that order), each a
    :class:`CheckResult` (the module docstring lists them).

    Args:
        images (N, ...) in [0, 1], labels (N,) int64: the examples (a few hundred suffice).
        reference: the white-box PGD to vary.
        whitebox_correct: (N,) bool, correct under the white-box attacks (for black_box;
            default: under ``reference``).
        square_queries: Square queries for black_box (1000).
        tolerance: accuracy slack, at least one example (0.02).
        chance_tolerance: slack above the majority-class rate (0.1).
    """
    which = resolve_checks(which)
    check_int("batch_size", batch_size)
    images, labels = _prepare(model, images, labels, reference.bounds)
    runners = {
        "deterministic": lambda: check_deterministic(model, images, labels, batch_size,
                                                     reference.bounds),
        "nonzero_gradients": lambda: check_nonzero_gradients(model, images, labels, batch_size,
                                                             reference.bounds),
        "eps_monotone": lambda: check_eps_monotone(model, images, labels, reference, batch_size,
                                                   tolerance),
        "large_eps_chance": lambda: check_large_eps_chance(model, images, labels, reference,
                                                           batch_size, chance_tolerance),
        "stronger_pgd": lambda: check_stronger_pgd(model, images, labels, reference, batch_size,
                                                   tolerance),
        "black_box": lambda: check_black_box(model, images, labels, reference, whitebox_correct,
                                             square_queries, batch_size),
    }
    return [runners[name]() for name in which]
