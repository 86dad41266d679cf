"""Robustness evaluation: clean accuracy, accuracy under each attack, the per-example worst
case over attacks, and gradient-masking checks, in one JSON-ready record.

Typical use::

    attacks = protocol_attacks(protocol.budget("cifar10", "eval"))
    record = evaluate(model, images, labels, attacks)
    record.to_json("runs/x/robustness.json")

Two modes for the per-attack numbers (the worst case is the same idea in both):

- ``"individual"`` (default): every attack runs on all clean-correct examples, so each
  attack's accuracy is its own (the tables of TRADES / MART); the worst case is the
  per-example AND over attacks.
- ``"cascade"``: as AutoAttack, the next attack runs only on the examples still correct,
  so each entry is the accuracy *after* that attack and the previous ones (cheaper).

The gradient-masking checks (:mod:`drrdn_lib.masking_checks`) run on ``check_samples``
examples drawn with a fixed seed; a failed one is appended to ``record.warnings`` and
raised as a :class:`~drrdn_lib.masking_checks.GradientMaskingWarning`. ``checks="cheap"``
keeps only the two that cost one forward/backward pass (for CI).

Nothing is scored from bad input: images (finite float32 NCHW in the attacks' bounds),
labels (int64, one per image, in ``[0, num_classes)``) and the model's clean logits
(finite) are all checked before the first attack runs; the logits on every adversarial
batch are checked too.
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
from torch import nn
from tqdm.auto import tqdm

from .attack_registry import make_attack
from .attacks import CWInf, FGSM, PGD, Attack, AttackBudget
from .autoattack_adapter import AutoAttackAdapter
from .files import save_torch_atomic
from .masking_checks import (CheckResult, GradientMaskingWarning, gradient_masking_checks,
                             resolve_checks)
from .torch_utils import (as_channels_last, channels_last_layout, channels_last_pays, eval_mode,
                          model_device, no_tf32, predict_logits)
from .validate import check_images, check_int, check_labels, check_logits

__all__ = ["AttackResult", "EvaluationRecord", "evaluate", "protocol_attacks", "MODES",
           "ResumeMismatch", "resume_binding"]

MODES = ("individual", "cascade")
RESUME_FORMAT = 2  # 2: bound to resume_binding(); 1 (n, batch size, attack names) is refused
# the modules whose code decides an example's flags: an edit to one of them invalidates a resume
FLAG_CODE = ("attacks", "autoattack_adapter", "evaluate", "torch_utils")


class ResumeMismatch(ValueError):
    """A resume file written for another evaluation (other weights, examples, attacks,
    settings or code); the message names what differs."""


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
            from .files import write_text_atomic
            write_text_atomic(path, text + "\n")
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
             square_queries: int = 1000, progress: bool = True,
             resume_file: str | Path | None = None, channels_last: bool | None = None
             ) -> EvaluationRecord:
    """Evaluate ``model`` on (images (N, ...) in [0, 1], labels (N,) int64).

    Args:
        attacks: name -> attack, a list of attacks, or of registry names (then ``budget``).
        mode: ``"individual"`` or ``"cascade"`` (module docstring).
        batch_size: examples per batch; each batch is moved to the model's device.
        checks: ``"all"``, ``"cheap"``, ``"none"`` or a list from
            :data:`drrdn_lib.masking_checks.ALL_CHECKS`.
        check_samples: examples the checks run on (500, drawn with a fixed seed).
        reference: the white-box PGD the checks vary (default: the first PGD among
            ``attacks``, else PGD(eps, eps / 4, 20)).
        square_queries: Square queries for the black-box check (1000).
        progress: show a tqdm bar over batches.
        resume_file: where the attacks' per-example flags are saved after every batch; a
            call that finds the file skips the batches it records. The file is bound to
            everything that determines the flags (:func:`resume_binding`: the model's
            weights, the images and labels, each attack's class and full configuration,
            the mode, the batch size and the evaluation code's version); a file written
            for anything else is refused (:class:`ResumeMismatch`, naming what differs),
            and the file is read with ``weights_only=True`` (``eval_cache.safe_load``:
            no code runs). It is removed when the evaluation returns. The attacks seed
            every call, so a resumed run gives the same flags as an uninterrupted one.
            Every attack must have a ``config()`` (a plain callable cannot be bound).
            The checks are not resumed.
        channels_last: run every attack, AutoAttack and the checks included, with the
            model's convolution kernels and the batches in channels_last memory format
            (:func:`~drrdn_lib.torch_utils.channels_last_layout`; restored on return):
            the same values up to float rounding. None (default): where it is measured
            faster (:func:`~drrdn_lib.torch_utils.channels_last_pays`: AVX-512 CPUs).
            Not part of a cache key or resume binding: docs/protocol.md counts the
            digits whose outcome the layout moves.
    Returns: an :class:`EvaluationRecord`; the model's train/eval mode is restored.
    Raises: ``ValueError`` for bad images, labels or logits (module docstring).
    """
    attack_dict = _as_attack_dict(attacks, budget)
    if resume_file is not None:
        _check_bindable(attack_dict)
    which = resolve_checks(checks)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {MODES}.")
    check_int("batch_size", batch_size)
    check_int("check_samples", check_samples)
    bounds = next((a.bounds for a in attack_dict.values() if isinstance(a, Attack)), (0.0, 1.0))
    check_images(images, bounds)
    check_labels(labels, images.shape[0])
    start = time.time()
    device = model_device(model, images.device)
    no_tf32(device)  # an evaluation is float32 on a GPU too
    if channels_last is None:
        channels_last = channels_last_pays(device)
    with eval_mode(model), channels_last_layout(model, channels_last):
        clean = _clean_correct(model, images, labels, batch_size)
        flags, results = _run_attacks(model, images, labels, clean, attack_dict, mode, batch_size,
                                      progress, resume_file, channels_last)
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
    if resume_file is not None:  # done: the progress file has served its evaluation
        Path(resume_file).unlink(missing_ok=True)
    for check in record.checks:
        if check.passed is False:
            message = f"gradient-masking check '{check.name}' failed: {check.message}"
            record.warnings.append(message)
            warnings.warn(message, GradientMaskingWarning, stacklevel=2)
    return record


def _clean_correct(model, images, labels, batch_size) -> torch.Tensor:
    """CPU bool (N,): correct on the clean images; raises if the logits are NaN/inf or a
    label is outside the model's classes (before any attack runs)."""
    if images.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    logits = predict_logits(model, images, batch_size)
    check_logits(logits, labels.to(logits.device), probabilities_ok=True)
    return (logits.argmax(1) == labels.to(logits.device)).cpu()


def _run_attacks(model, images, labels, clean, attack_dict, mode, batch_size, progress,
                 resume_file=None, channels_last=False):
    """Per-example "still correct" flags (CPU bool (N,)) for clean and each attack, and
    the per-attack timing/report bookkeeping; with ``resume_file``, saved after every batch
    and resumed from (:func:`evaluate`)."""
    n = images.shape[0]
    device = model_device(model, images.device)
    flags = {"clean": clean}
    flags.update({name: torch.zeros(n, dtype=torch.bool) for name in attack_dict})
    results = {name: AttackResult(name, _config(a), 0, n) for name, a in attack_dict.items()}
    start = 0
    binding = (None if resume_file is None else
               resume_binding(model, images, labels, attack_dict, mode, batch_size))
    state = _load_state(resume_file, binding)
    if state is not None:
        start, flags, results = state["next"], state["flags"], state["results"]
    n_batches = math.ceil(n / batch_size)
    with tqdm(total=n_batches, initial=start // batch_size, desc="evaluate", disable=not progress,
              leave=False, mininterval=30) as bar:
        for lo in range(start, n, batch_size):
            x = as_channels_last(images[lo:lo + batch_size].to(device), channels_last)
            y = labels[lo:lo + batch_size].to(device)
            correct = clean[lo:lo + batch_size].to(device)
            alive = correct.clone()
            for name, attack in attack_dict.items():
                bar.set_postfix_str(name)
                active = correct if mode == "individual" else alive
                still = _attack_batch(model, attack, x, y, active, results[name], name)
                flags[name][lo:lo + len(y)] = still.cpu()
                alive &= still
            if resume_file is not None:
                save_torch_atomic({"format": RESUME_FORMAT, "binding": binding,
                                   "next": lo + batch_size, "flags": flags, "results": results},
                                  resume_file)
            bar.update(1)
    return flags, results


def _check_bindable(attack_dict) -> None:
    """A resume file is bound to each attack's configuration: refuse attacks without one."""
    plain = [name for name, attack in attack_dict.items() if not hasattr(attack, "config")]
    if plain:
        raise ValueError(f"resume_file needs attacks with a config() (drrdn_lib.attacks.Attack); "
                         f"{plain} are plain callables, whose settings a resume file cannot be "
                         "bound to. Wrap them in an Attack, or pass resume_file=None.")


def _code_version() -> str:
    """SHA-256 (16 hex digits) of the source of :data:`FLAG_CODE` and torch's version."""
    import hashlib
    import importlib

    digest = hashlib.sha256(str(torch.__version__).encode())
    for module in FLAG_CODE:
        digest.update(Path(importlib.import_module(f"drrdn_lib.{module}").__file__).read_bytes())
    return digest.hexdigest()[:16]


def resume_binding(model, images, labels, attack_dict, mode: str, batch_size: int) -> dict:
    """What a resume file of :func:`evaluate` is bound to: fingerprints of the model's
    weights and of the examples, each attack's class and configuration, the mode, the
    batch size and the evaluation code's version (JSON types only)."""
    from .eval_cache import fingerprint

    return {"model": fingerprint(model), "examples": fingerprint(images, labels),
            "n": int(images.shape[0]),
            "attacks": [[name, type(a).__name__, _config(a)] for name, a in attack_dict.items()],
            "mode": mode, "batch_size": int(batch_size), "code": _code_version()}


BINDING_WORDS = {"model": "the model's weights", "examples": "the images or labels",
                 "n": "the number of examples", "attacks": "the attacks or their configurations",
                 "mode": "the mode", "batch_size": "the batch size",
                 "code": "the evaluation code (drrdn_lib.attacks/evaluate/... or torch)"}


def _load_state(resume_file, binding: dict | None) -> dict | None:
    """The saved progress of :func:`_run_attacks`, or None (no file). The file is read
    without running code (``eval_cache.safe_load``); one bound to another evaluation raises
    :class:`ResumeMismatch` naming what differs."""
    from .eval_cache import safe_load

    if resume_file is None or not Path(resume_file).is_file():
        return None
    state = safe_load(resume_file)
    what = f"{resume_file} holds the progress of another evaluation"
    fix = "; delete it to start this evaluation afresh, or pass another resume_file."
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise ResumeMismatch(f"{what} (written by an older version that did not record what it "
                             f"belongs to){fix}")
    saved = state.get("binding") or {}
    differing = [BINDING_WORDS.get(key, key) for key in BINDING_WORDS
                 if saved.get(key) != binding.get(key)]
    if differing:
        raise ResumeMismatch(f"{what}: {', '.join(differing)} differ{fix}")
    return state


def _attack_batch(model, attack, x, y, active, result: AttackResult, name: str) -> torch.Tensor:
    """Run ``attack`` on the ``active`` examples of a batch; bool (B,) still correct. The
    output of a plain callable (not an :class:`Attack`, which projects its own) is checked:
    same shape, finite, in [0, 1]."""
    still = torch.zeros_like(active)
    if not active.any():
        return still
    t0 = time.time()
    adv = attack(model, x[active], y[active])
    if not isinstance(attack, Attack):
        if not isinstance(adv, torch.Tensor) or adv.shape != x[active].shape:
            raise ValueError(f"attack {name!r} returned shape {tuple(getattr(adv, 'shape', ()))} "
                             f"for a batch of shape {tuple(x[active].shape)}; an attack returns "
                             f"adversarial images of its input's shape.")
        check_images(adv, (0.0, 1.0), name=f"attack {name!r}: adversarial images")
    logits = predict_logits(model, adv, len(adv))  # raises on NaN/inf logits
    still[active] = logits.argmax(1).to(still.device) == y[active]
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
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values


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
