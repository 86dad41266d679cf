"""Robustness evaluation: clean accuracy, accuracy under each attack, the per-example worst
case over attacks, and gradient-masking checks, in one JSON-ready record.

Typical use::

    attacks = protocol_attacks(AttackBudget.preset("cifar10", "eval"))
    record = evaluate(model, images, labels, attacks)
    record.to_json("runs/x/robustness.json")

Two modes for the per-attack numbers (the worst case is the same idea in both):

- ``"individual"`` (default): every attack runs on all clean-correct examples, so each
  attack's accuracy is its own (the tables of TRADES / MART); the worst case is the
  per-example AND over attacks.
- ``"cascade"``: as AutoAttack, the next attack runs only on the examples still correct,
  so each entry is the accuracy *after* that attack and the previous ones (cheaper).

Gradient-masking checks (Athalye et al., ICML 2018; Carlini et al., "On evaluating
adversarial robustness", 2019; AutoAttack's flags) run on ``check_samples`` examples
drawn with a fixed seed; a failed one is appended to ``record.warnings`` and raised as a
:class:`GradientMaskingWarning`. ``checks="cheap"`` keeps only the two that cost one
forward/backward pass (for CI).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .attacks import (CWInf, FGSM, PGD, Attack, AttackBudget, check_images, eval_mode,
                      make_attack, _model_device)
from .autoattack_adapter import AutoAttackAdapter

__all__ = ["AttackResult", "CheckResult", "EvaluationRecord", "GradientMaskingWarning",
           "evaluate", "protocol_attacks", "gradient_masking_checks", "CHEAP_CHECKS", "ALL_CHECKS"]

CHEAP_CHECKS = ("deterministic", "nonzero_gradients")
ALL_CHECKS = CHEAP_CHECKS + ("eps_monotone", "large_eps_chance", "stronger_pgd", "black_box")
MODES = ("individual", "cascade")


class GradientMaskingWarning(UserWarning):
    """A gradient-masking check failed: the robust accuracy may be overestimated."""


# --------------------------------------------------------------------------- records
@dataclass
class AttackResult:
    """One attack's outcome: ``n_correct`` of ``n`` examples still correctly classified.

    ``report`` holds attack-specific extras (AutoAttack: per-sub-attack counts, warnings).
    """

    name: str
    config: dict
    n_correct: int
    n: int
    seconds: float = 0.0
    report: dict | None = None

    @property
    def accuracy(self) -> float:
        """Fraction in [0, 1] (nan for n == 0)."""
        return self.n_correct / self.n if self.n else math.nan

    def to_dict(self) -> dict:
        """JSON-ready dict with ``accuracy``."""
        return {"name": self.name, "accuracy": self.accuracy, "n_correct": self.n_correct,
                "n": self.n, "seconds": round(self.seconds, 3), "config": self.config,
                "report": self.report}


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


@dataclass
class EvaluationRecord:
    """Result of :func:`evaluate`; ``to_dict()`` / ``to_json()`` serialise it.

    Attributes:
        n: examples evaluated; n_clean_correct: correctly classified clean.
        attacks: name -> :class:`AttackResult`, in the order run.
        n_worst_case_correct: examples correct under every attack (and clean).
        mode: ``"individual"`` or ``"cascade"`` (see the module docstring).
        checks: gradient-masking :class:`CheckResult` s; check_settings: the reference
            PGD's config, the number of examples and of Square queries they used.
        warnings: failed checks and the attacks' own warnings (AutoAttack's checks).
        per_example: name -> bool tensor (n,) of "still correct" ("clean", each attack,
            "worst_case"), on the CPU; not serialised.
    """

    n: int
    n_clean_correct: int
    attacks: dict[str, AttackResult]
    n_worst_case_correct: int
    mode: str
    checks: list[CheckResult] = field(default_factory=list)
    check_settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    per_example: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def clean_accuracy(self) -> float:
        return self.n_clean_correct / self.n if self.n else math.nan

    @property
    def worst_case_accuracy(self) -> float:
        """The robust accuracy: fraction correct under every attack."""
        return self.n_worst_case_correct / self.n if self.n else math.nan

    def accuracy(self, name: str) -> float:
        """``"clean"``, ``"worst_case"`` or an attack name -> accuracy in [0, 1]."""
        if name == "clean":
            return self.clean_accuracy
        if name == "worst_case":
            return self.worst_case_accuracy
        if name not in self.attacks:
            raise KeyError(f"No attack {name!r} in this record; it has {list(self.attacks)}.")
        return self.attacks[name].accuracy

    @property
    def checks_passed(self) -> bool:
        """True unless some check failed (skipped checks do not count)."""
        return all(c.passed is not False for c in self.checks)

    def to_dict(self) -> dict:
        """JSON-ready dict (per-example flags left out)."""
        return {
            "n": self.n, "mode": self.mode, "seconds": round(self.seconds, 3),
            "clean_accuracy": self.clean_accuracy, "n_clean_correct": self.n_clean_correct,
            "worst_case_accuracy": self.worst_case_accuracy,
            "n_worst_case_correct": self.n_worst_case_correct,
            "attack_order": list(self.attacks),
            "attacks": {k: v.to_dict() for k, v in self.attacks.items()},
            "checks_passed": self.checks_passed,
            "checks": [c.to_dict() for c in self.checks],
            "check_settings": self.check_settings,
            "warnings": list(self.warnings),
        }

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The record as JSON text (NaN written as null); also written to ``path`` if given."""
        text = json.dumps(_finite(self.to_dict()), indent=indent, sort_keys=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n")
        return text

    def summary(self) -> dict[str, float]:
        """``{"clean": acc, <attack>: acc, ..., "worst_case": acc}`` for a table row."""
        row = {"clean": self.clean_accuracy}
        row.update({k: v.accuracy for k, v in self.attacks.items()})
        row["worst_case"] = self.worst_case_accuracy
        return row


def _finite(value):
    """Replace non-finite floats by None, recursively (valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------- attacks
def protocol_attacks(budget: AttackBudget, autoattack: str | None = "standard",
                     seed: int = 0, **autoattack_kw) -> dict[str, Attack]:
    """The protocol's evaluation attacks (docs/protocol.md) for an L-inf ``budget``:
    ``fgsm`` (eps), ``pgd`` (the budget's PGD, CE loss), ``cw`` (the budget's PGD on the
    margin loss, kappa 50) and ``autoattack`` (``"standard"``; ``"custom"`` with
    ``autoattack_kw`` for CI-scale runs; ``None`` to leave it out)."""
    attacks: dict[str, Attack] = {
        "fgsm": FGSM(budget.eps),
        "pgd": PGD(budget.eps, budget.step_size, budget.steps, seed=seed),
        "cw": CWInf(budget.eps, budget.step_size, budget.steps, seed=seed),
    }
    if autoattack is not None:
        attacks["autoattack"] = AutoAttackAdapter(budget.eps, version=autoattack, seed=seed,
                                                  **autoattack_kw)
    return attacks


def _as_attack_dict(attacks, budget: AttackBudget | None) -> dict[str, Attack]:
    """Accept a mapping name -> Attack, a sequence of Attacks, or of names (with budget)."""
    if isinstance(attacks, Mapping):
        result = dict(attacks)
    else:
        result = {}
        for item in attacks:
            if isinstance(item, str):
                if budget is None:
                    raise ValueError(f"attack {item!r} given by name: pass budget=AttackBudget(...) too.")
                item = make_attack(item, budget)
            key, i = item.name, 2
            while key in result:
                key, i = f"{item.name}_{i}", i + 1
            result[key] = item
    for name, attack in result.items():
        if not callable(attack):
            raise ValueError(f"attack {name!r} is {attack!r}, not an attack (call it as "
                             f"attack(model, images, labels)).")
    return result


# ------------------------------------------------------------------------ evaluate
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             attacks: Mapping[str, Attack] | Sequence[Attack | str],
             budget: AttackBudget | None = None, mode: str = "individual",
             batch_size: int = 256, checks: str | Sequence[str] = "all",
             check_samples: int = 500, reference: PGD | None = None,
             square_queries: int = 1000, progress: bool = True) -> EvaluationRecord:
    """Evaluate ``model`` on (images (N, ...) in [0, 1], labels (N,) int64).

    Args:
        attacks: name -> attack, a list of attacks, or of registry names (then ``budget``).
        mode: ``"individual"`` or ``"cascade"`` (module docstring).
        batch_size: examples per batch; each batch is moved to the model's device.
        checks: ``"all"``, ``"cheap"``, ``"none"`` or a list from :data:`ALL_CHECKS`.
        check_samples: examples the checks run on (500, drawn with a fixed seed).
        reference: the white-box PGD the checks vary (default: the first PGD among
            ``attacks``, else PGD(eps, eps / 4, 20)).
        square_queries: Square queries for the black-box check (1000).
        progress: show a tqdm bar over batches.
    Returns: an :class:`EvaluationRecord`; the model's train/eval mode is restored.
    """
    attack_dict = _as_attack_dict(attacks, budget)
    which = _resolve_checks(checks)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {MODES}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1.")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match {images.shape[0]} images.")
    bounds = next((a.bounds for a in attack_dict.values() if isinstance(a, Attack)), (0.0, 1.0))
    check_images(images, bounds)
    start = time.time()
    with eval_mode(model):
        flags, results = _run_attacks(model, images, labels, attack_dict, mode, batch_size, progress)
        record = _make_record(images.shape[0], flags, results, mode)
        for result in results.values():
            record.warnings += [f"{result.name}: {w}" for w in (result.report or {}).get("warnings", [])]
        if which and images.shape[0]:
            ref = reference or _reference_attack(attack_dict)
            whitebox = _whitebox_flags(flags, attack_dict)
            pick = _check_subset(images.shape[0], check_samples)
            record.check_settings = {"reference": ref.config(), "n": len(pick),
                                     "square_queries": square_queries}
            record.checks = gradient_masking_checks(model, images[pick], labels[pick], ref, which,
                                                    whitebox[pick], square_queries, batch_size)
    record.seconds = time.time() - start
    for check in record.checks:
        if check.passed is False:
            message = f"gradient-masking check '{check.name}' failed: {check.message}"
            record.warnings.append(message)
            warnings.warn(message, GradientMaskingWarning, stacklevel=2)
    return record


def _run_attacks(model, images, labels, attack_dict, mode, batch_size, progress):
    """Per-example "still correct" flags (CPU bool (N,)) for clean and each attack, and
    the per-attack timing/report bookkeeping."""
    n = images.shape[0]
    device = _model_device(model, images.device)
    flags = {"clean": torch.zeros(n, dtype=torch.bool)}
    flags.update({name: torch.zeros(n, dtype=torch.bool) for name in attack_dict})
    results = {name: AttackResult(name, _config(a), 0, n) for name, a in attack_dict.items()}
    n_batches = math.ceil(n / batch_size)
    with tqdm(total=n_batches, desc="evaluate", disable=not progress, leave=False) as bar:
        for lo in range(0, n, batch_size):
            x = images[lo:lo + batch_size].to(device)
            y = labels[lo:lo + batch_size].to(device)
            with torch.inference_mode():
                correct = model(x).argmax(1) == y
            flags["clean"][lo:lo + len(y)] = correct.cpu()
            alive = correct.clone()
            for name, attack in attack_dict.items():
                bar.set_postfix_str(name)
                active = correct if mode == "individual" else alive
                still = _attack_batch(model, attack, x, y, active, results[name])
                flags[name][lo:lo + len(y)] = still.cpu()
                alive &= still
            bar.update(1)
    return flags, results


def _attack_batch(model, attack, x, y, active, result: AttackResult) -> torch.Tensor:
    """Run ``attack`` on the ``active`` examples of a batch; bool (B,) still correct."""
    still = torch.zeros_like(active)
    if not active.any():
        return still
    t0 = time.time()
    adv = attack(model, x[active], y[active])
    with torch.inference_mode():
        still[active] = model(adv).argmax(1) == y[active]
    result.seconds += time.time() - t0
    report = getattr(attack, "last_report", None)
    if report is not None:
        result.report = _merge_report(result.report, report.to_dict())
    return still


def _merge_report(total: dict | None, part: dict) -> dict:
    """Add the counts of one batch's report to the running one; keep unique warnings."""
    if total is None:
        return {**part, "fooled": dict(part.get("fooled", {})), "warnings": list(part.get("warnings", []))}
    for key in ("n", "n_clean_correct"):
        total[key] = total.get(key, 0) + part.get(key, 0)
    for name, count in part.get("fooled", {}).items():
        total["fooled"][name] = total["fooled"].get(name, 0) + count
    total["warnings"] += [w for w in part.get("warnings", []) if w not in total["warnings"]]
    return total


def _config(attack) -> dict:
    """The attack's ``config()``, or its repr for a plain callable."""
    return attack.config() if hasattr(attack, "config") else {"name": repr(attack)}


def _make_record(n, flags, results, mode) -> EvaluationRecord:
    """Counts and the worst case (AND over clean and every attack) from the flags."""
    worst = flags["clean"].clone()
    for name, result in results.items():
        result.n_correct = int(flags[name].sum())
        worst &= flags[name]
    flags["worst_case"] = worst
    return EvaluationRecord(n=n, n_clean_correct=int(flags["clean"].sum()), attacks=results,
                            n_worst_case_correct=int(worst.sum()), mode=mode, per_example=flags)


def _check_subset(n: int, k: int) -> torch.Tensor:
    """``min(k, n)`` indices drawn without replacement with a fixed seed (datasets may be
    sorted by class, so the first k would not do)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"check_samples={k!r} must be an integer >= 1.")
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values


def _resolve_checks(checks) -> tuple[str, ...]:
    """``"all"``/``"cheap"``/``"none"``/list -> validated tuple of check names."""
    presets = {"all": ALL_CHECKS, "cheap": CHEAP_CHECKS, "none": ()}
    if isinstance(checks, str):
        if checks not in presets:
            raise ValueError(f"checks={checks!r}: use 'all', 'cheap', 'none' or a list from {ALL_CHECKS}.")
        return presets[checks]
    unknown = [c for c in checks if c not in ALL_CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {ALL_CHECKS}.")
    return tuple(checks)


def _reference_attack(attack_dict) -> PGD:
    """The white-box PGD the checks vary: the first CE-loss PGD, else the first PGD,
    else PGD(eps, eps / 4, 20) at the largest eps among the attacks."""
    pgds = [a for a in attack_dict.values() if isinstance(a, PGD)]
    for attack in sorted(pgds, key=lambda a: a.loss != "ce"):
        return attack
    eps = max((a.eps for a in attack_dict.values() if isinstance(a, Attack)), default=None)
    if not eps:
        raise ValueError("the gradient-masking checks need a PGD attack or an eps > 0; pass "
                         "reference=PGD(...) or checks='none'.")
    norms = [a.norm for a in attack_dict.values() if isinstance(a, Attack)]
    return PGD(eps, eps / 4, 20, norm=norms[0], seed=0)


def _whitebox_flags(flags, attack_dict) -> torch.Tensor:
    """Per-example correct under every white-box attack (AutoAttack, with its own Square,
    is left out), (N,) bool."""
    result = flags["clean"].clone()
    for name, attack in attack_dict.items():
        if not isinstance(attack, AutoAttackAdapter):
            result &= flags[name]
    return result


# --------------------------------------------------------------------------- checks
def gradient_masking_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            reference: PGD, which: Sequence[str] = ALL_CHECKS,
                            whitebox_correct: torch.Tensor | None = None,
                            square_queries: int = 1000, batch_size: int = 256,
                            tolerance: float = 0.02, chance_tolerance: float = 0.1) -> list[CheckResult]:
    """Signs that the gradients mislead the attacks (the model is put in eval mode).

    Checks (names as in :data:`ALL_CHECKS`):
        deterministic: two forward passes give the same logits (no randomised defence).
        nonzero_gradients: no example has a zero or non-finite CE input gradient.
        eps_monotone: PGD accuracy does not rise with eps (0, eps/2, eps, 2 eps).
        large_eps_chance: at the radius that reaches the all-0.5 image (L-inf 0.5,
            L2 0.5 sqrt(d)) PGD gets the accuracy down to the majority-class rate.
        stronger_pgd: 5x the steps and 3 restarts lower the accuracy by <= tolerance.
        black_box: Square (query-based, no gradients) fools no example that the white-box
            attacks left correct (AutoAttack's threshold, 0.2% of the examples).
    Args:
        images (N, ...) in [0, 1], labels (N,): the examples (a few hundred suffice).
        reference: the white-box PGD to vary.
        whitebox_correct: (N,) bool, correct under the white-box attacks (for black_box;
            default: under ``reference``).
        tolerance: accuracy slack, at least one example (0.02).
        chance_tolerance: slack above the majority-class rate (0.1).
    """
    device = _model_device(model, images.device)
    images, labels = images.to(device), labels.to(device)
    slack = max(tolerance, 1.0 / max(images.shape[0], 1))
    with eval_mode(model):
        ctx = _CheckContext(model, images, labels, reference, batch_size, slack)
        runners = {
            "deterministic": lambda: _check_deterministic(ctx),
            "nonzero_gradients": lambda: _check_gradients(ctx),
            "eps_monotone": lambda: _check_monotone(ctx),
            "large_eps_chance": lambda: _check_large_eps(ctx, chance_tolerance),
            "stronger_pgd": lambda: _check_stronger(ctx),
            "black_box": lambda: _check_black_box(ctx, whitebox_correct, square_queries),
        }
        return [runners[name]() for name in which]


@dataclass
class _CheckContext:
    """What every check needs; ``accuracy(attack)`` is batched and on the model's device."""

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    reference: PGD
    batch_size: int
    slack: float

    def correct(self, attack=None) -> torch.Tensor:
        """(N,) bool: correct on the clean inputs (attack None) or under ``attack``."""
        out = []
        for lo in range(0, self.images.shape[0], self.batch_size):
            x, y = self.images[lo:lo + self.batch_size], self.labels[lo:lo + self.batch_size]
            if attack is not None:
                x = attack(self.model, x, y)
            with torch.inference_mode():
                out.append(self.model(x).argmax(1) == y)
        return torch.cat(out)

    def accuracy(self, attack=None) -> float:
        return self.correct(attack).float().mean().item()

    def pgd(self, eps: float, step_size: float | None = None, steps: int | None = None,
            restarts: int = 1) -> PGD:
        """A PGD like the reference at radius ``eps`` (step scaled with eps by default)."""
        ref = self.reference
        step = step_size or ref.step_size * (eps / ref.eps if ref.eps > 0 else 1.0)
        return PGD(eps, step, steps or ref.steps, norm=ref.norm, random_start=ref.random_start,
                   restarts=restarts, loss=ref.loss, kappa=ref.kappa, seed=0, bounds=ref.bounds)


def _check_deterministic(ctx: _CheckContext) -> CheckResult:
    x = ctx.images[:ctx.batch_size]
    with torch.inference_mode():
        a, b = ctx.model(x), ctx.model(x)
    diff = (a - b).abs().max().item()
    scale = max(a.abs().max().item(), 1e-12)
    passed = diff <= 1e-5 * scale
    return CheckResult("deterministic", passed,
                       "logits repeat exactly" if passed else
                       f"two forward passes differ by {diff:.3g}: a randomised model needs EOT "
                       f"attacks (AutoAttack version='rand')", {"max_abs_diff": diff})


def _check_gradients(ctx: _CheckContext) -> CheckResult:
    x = ctx.images[:ctx.batch_size].clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(ctx.model(x), ctx.labels[:ctx.batch_size], reduction="sum")
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


def _check_monotone(ctx: _CheckContext) -> CheckResult:
    eps = ctx.reference.eps
    grid = [0.0, eps / 2, eps, 2 * eps]
    if ctx.reference.norm == "Linf":
        grid = [e for e in grid if e <= 1.0]
    accs = [ctx.accuracy()] + [ctx.accuracy(ctx.pgd(e)) for e in grid[1:]]
    rises = [(grid[i], grid[i + 1]) for i in range(len(accs) - 1) if accs[i + 1] > accs[i] + ctx.slack]
    passed = not rises
    return CheckResult("eps_monotone", passed,
                       "PGD accuracy does not rise with eps" if passed else
                       f"PGD accuracy rises from eps {rises[0][0]:.4g} to {rises[0][1]:.4g} "
                       f"({accs}): the attack is not finding the worst case",
                       {"eps": grid, "accuracy": accs, "slack": ctx.slack})


def _check_large_eps(ctx: _CheckContext, chance_tolerance: float) -> CheckResult:
    dim = ctx.images[0].numel()
    eps = 0.5 if ctx.reference.norm == "Linf" else 0.5 * math.sqrt(dim)
    steps = max(ctx.reference.steps, 20)
    acc = ctx.accuracy(ctx.pgd(eps, step_size=2.5 * eps / steps, steps=steps))
    majority = torch.bincount(ctx.labels).max().item() / ctx.labels.numel()
    passed = acc <= majority + chance_tolerance
    return CheckResult("large_eps_chance", passed,
                       f"PGD at eps {eps:.4g} reaches {acc:.3f} <= chance {majority:.3f} + "
                       f"{chance_tolerance}" if passed else
                       f"PGD at eps {eps:.4g} (every image can be made uniform grey) still leaves "
                       f"accuracy {acc:.3f} > chance {majority:.3f} + {chance_tolerance}",
                       {"eps": eps, "steps": steps, "accuracy": acc, "majority_rate": majority})


def _check_stronger(ctx: _CheckContext, factor: int = 5, restarts: int = 3) -> CheckResult:
    ref = ctx.reference
    base = ctx.accuracy(ctx.pgd(ref.eps, ref.step_size, ref.steps))
    strong = ctx.accuracy(ctx.pgd(ref.eps, ref.step_size, ref.steps * factor, restarts))
    passed = strong >= base - ctx.slack
    return CheckResult("stronger_pgd", passed,
                       f"{factor}x steps and {restarts} restarts change accuracy by {strong - base:+.3f}"
                       if passed else
                       f"{factor}x steps and {restarts} restarts lower PGD accuracy from {base:.3f} "
                       f"to {strong:.3f}: the reported attack has not converged",
                       {"steps": [ref.steps, ref.steps * factor], "restarts": [1, restarts],
                        "accuracy": [base, strong], "slack": ctx.slack})


def _check_black_box(ctx: _CheckContext, whitebox_correct, n_queries: int) -> CheckResult:
    if ctx.images.ndim != 4 or ctx.reference.norm not in ("Linf", "L2") or ctx.reference.eps == 0:
        return CheckResult("black_box", None, "skipped: Square needs (N, C, H, W) images and eps > 0")
    from pyautoattack.square import SquareAttack

    if whitebox_correct is None:
        whitebox_correct = ctx.correct(ctx.reference)
    idx = whitebox_correct.to(ctx.images.device).nonzero().squeeze(1)
    n = ctx.images.shape[0]
    fooled = 0
    if len(idx):
        square = SquareAttack(ctx.model, norm=ctx.reference.norm, n_queries=n_queries,
                              eps=ctx.reference.eps, p_init=0.8, seed=0, resc_schedule=True,
                              device=ctx.images.device)
        devices = [ctx.images.device.index or 0] if ctx.images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            adv = square.perturb(ctx.images[idx], ctx.labels[idx])
            fooled = int((ctx.model(adv).argmax(1) != ctx.labels[idx]).sum())
    passed = fooled / n <= 0.002
    return CheckResult("black_box", passed,
                       f"Square ({n_queries} queries) fooled {fooled} of {len(idx)} white-box-robust examples"
                       if passed else
                       f"Square ({n_queries} queries, no gradients) fooled {fooled} of the {len(idx)} "
                       f"examples the white-box attacks could not: their gradients mislead",
                       {"n_queries": n_queries, "n_whitebox_robust": len(idx), "n_fooled": fooled, "n": n})
