"""AutoAttack (Croce & Hein, ICML 2020) from ``pyautoattack`` behind the attacks' API.

``pyautoattack`` 0.2.0 repackages the original code (github.com/fra31/auto-attack) with
its own argument names: ``AutoAttack(model, *, attacks=None, device='cpu', eps=0.3,
norm='Linf', seed=None, version='standard')`` and
``run_standard_evaluation(x, y, *, batch_size=250, state_path=None) -> (x_adv, y_adv)``.
Its ``version='standard'`` sets, as the original does: attacks ``apgd-ce, apgd-t, fab-t,
square`` in that order, 100 iterations for APGD and FAB, 1 restart each, 9 target classes
for APGD-T and FAB-T, 5,000 Square queries (p_init 0.8), rho 0.75, no EOT.

What the adapter adds, and nothing more:

- the model runs in eval mode (restored after); the device is the model's;
- the inputs, the clean logits and one batch's input gradient are checked first (the
  package silently leaves every example unattacked when the gradient is NaN);
- ``seed`` defaults to 0 (the package's ``None`` means "time of day", not reproducible)
  and the global torch RNG is saved and restored (the package reseeds it);
- the package's ``'auto-attack'`` logger is captured instead of printed: per-attack
  counts and the package's own checks (randomised / dynamic defence, probabilities,
  zero gradients, Square beating the white-box attacks) land in :attr:`last_report`
  and each check's warning is re-emitted as an :class:`AutoAttackCheckWarning`;
- its dynamic-defence check counts calls in a module-global dict that is never reset
  (after one flagged model every later one is flagged) and calls ``sys.settrace(None)``
  (which would switch off a running coverage or debugger trace): both are reset/restored;
- ``version="custom"`` runs a reduced configuration for CI-scale notebooks; its
  :meth:`config` says ``"standard": False`` so no record can pass it off as AutoAttack.
"""
from __future__ import annotations

import logging
import re
import sys
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

import pyautoattack
from pyautoattack import checks as _aa_checks

from .attacks import Attack, check_input_gradient
from .torch_utils import model_device, predict_logits
from .validate import check_int, check_logits

__all__ = ["AutoAttackAdapter", "AutoAttackCheckWarning", "AutoAttackReport", "STANDARD_ATTACKS"]

#: The standard version's attacks, in the order the package runs them.
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
_KNOWN_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
_LOGGER_NAME = "auto-attack"
_PERTURBED = re.compile(r"^(\S+) - \d+/\d+ - (\d+) out of (\d+) successfully perturbed$")


class AutoAttackCheckWarning(UserWarning):
    """A warning from one of AutoAttack's own checks (signs of an unreliable evaluation)."""


@dataclass
class AutoAttackReport:
    """What one adapter call saw.

    Attributes:
        n: examples attacked; n_clean_correct: of those, classified correctly.
        fooled: attack name -> examples it newly misclassified (in the package's order;
            each attack only runs on the examples the previous ones left correct).
        warnings: messages of the package's checks (WARNING-level log records).
    """

    n: int = 0
    n_clean_correct: int = 0
    fooled: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"n": self.n, "n_clean_correct": self.n_clean_correct,
                "fooled": dict(self.fooled), "warnings": list(self.warnings)}


class _Capture(logging.Handler):
    """Keeps the per-batch success counts and the warnings of the package's logger."""

    def __init__(self, report: AutoAttackReport):
        super().__init__(level=logging.DEBUG)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.report.warnings.append(message)
            return
        match = _PERTURBED.match(message)
        if match:
            name, count = match.group(1), int(match.group(2))
            self.report.fooled[name] = self.report.fooled.get(name, 0) + count


class AutoAttackAdapter(Attack):
    """AutoAttack, standard version (Croce & Hein, "Reliable evaluation of adversarial
    robustness with an ensemble of diverse parameter-free attacks", ICML 2020), run by
    ``pyautoattack`` 0.2.0 with the package's own standard configuration.

    Args:
        eps: radius, [0, 1] pixel units (8/255 CIFAR-10, 0.3 MNIST).
        norm: ``"Linf"`` (default) or ``"L2"``.
        version: ``"standard"`` (default; the only one to report as AutoAttack) or
            ``"custom"`` (reduced, NOT standard: for CI-scale runs only).
        seed: int seed for the package's attacks (0).
        batch_size: examples per package batch (500).
        attacks, n_iter, n_queries, n_target_classes, n_restarts: only with
            ``version="custom"``; defaults are the standard values (the standard four
            attacks, 100 iterations, 5,000 queries, 9 target classes, 1 restart).
    ``attack(model, images (B, C, H, W) in [0, 1], labels (B,) int64) -> adv (B, C, H, W)``;
    the model must have >= 10 classes for the standard 9 target classes. After each call
    :attr:`last_report` holds an :class:`AutoAttackReport`.
    """

    name = "autoattack"

    def __init__(self, eps: float, norm: str = "Linf", version: str = "standard", seed: int = 0,
                 batch_size: int = 500, attacks: list[str] | None = None, n_iter: int | None = None,
                 n_queries: int | None = None, n_target_classes: int | None = None,
                 n_restarts: int | None = None):
        super().__init__(eps, norm, (0.0, 1.0))
        if version not in ("standard", "custom"):
            raise ValueError(f"version={version!r}: use 'standard' (the one to report) or "
                             f"'custom' (reduced, for CI-scale runs).")
        reduced = {"attacks": attacks, "n_iter": n_iter, "n_queries": n_queries,
                   "n_target_classes": n_target_classes, "n_restarts": n_restarts}
        given = sorted(k for k, v in reduced.items() if v is not None)
        if version == "standard" and given:
            raise ValueError(f"{given} change the standard AutoAttack; pass version='custom' to "
                             f"run a reduced (non-standard) configuration.")
        unknown = [a for a in (attacks or ()) if a not in _KNOWN_ATTACKS]
        if unknown:
            raise ValueError(f"attacks {unknown} are not AutoAttack attacks; choose from {_KNOWN_ATTACKS}.")
        for key in ("n_iter", "n_queries", "n_target_classes", "n_restarts"):
            if reduced[key] is not None:
                check_int(key, reduced[key])
        check_int("batch_size", batch_size)
        self.version, self.seed, self.batch_size = version, int(seed), batch_size
        self._reduced = reduced
        self.last_report: AutoAttackReport | None = None

    def build(self, model: nn.Module, device: torch.device | str = "cpu") -> pyautoattack.AutoAttack:
        """The configured ``pyautoattack.AutoAttack`` object for ``model`` on ``device``."""
        if self.version == "standard":
            return pyautoattack.AutoAttack(model, eps=self.eps, norm=self.norm, version="standard",
                                           seed=self.seed, device=device)
        attacks = list(self._reduced["attacks"] or STANDARD_ATTACKS)
        runner = pyautoattack.AutoAttack(model, attacks=attacks, eps=self.eps, norm=self.norm,
                                         version="custom", seed=self.seed, device=device)
        n_iter, n_queries = self._reduced["n_iter"] or 100, self._reduced["n_queries"] or 5000
        targets, restarts = self._reduced["n_target_classes"] or 9, self._reduced["n_restarts"] or 1
        runner.apgd.n_iter = runner.apgd_targeted.n_iter = runner.fab.n_iter = n_iter
        runner.apgd.n_restarts = runner.apgd_targeted.n_restarts = runner.fab.n_restarts = restarts
        runner.apgd_targeted.n_target_classes = runner.fab.n_target_classes = targets
        runner.square.n_queries = n_queries
        return runner

    def config(self) -> dict:
        """Name, budget and the settings read back from a constructed package object."""
        runner = self.build(nn.Identity())
        return {
            "name": self.name, "eps": self.eps, "norm": self.norm,
            "package": "pyautoattack", "package_version": pyautoattack.__version__,
            "version": runner.version, "standard": self.version == "standard",
            "seed": self.seed, "batch_size": self.batch_size,
            "attacks_to_run": list(runner.attacks_to_run),
            "apgd_n_iter": runner.apgd.n_iter, "apgd_n_restarts": runner.apgd.n_restarts,
            "apgd_t_n_iter": runner.apgd_targeted.n_iter,
            "apgd_t_n_restarts": runner.apgd_targeted.n_restarts,
            "apgd_t_n_target_classes": runner.apgd_targeted.n_target_classes,
            "fab_n_iter": runner.fab.n_iter, "fab_n_restarts": runner.fab.n_restarts,
            "fab_n_target_classes": runner.fab.n_target_classes,
            "square_n_queries": runner.square.n_queries, "square_p_init": runner.square.p_init,
            "apgd_rho": runner.apgd.thr_decr, "apgd_eot_iter": runner.apgd.eot_iter,
        }

    def _perturb(self, model, images, labels):
        device = model_device(model, images.device)
        images, labels = images.to(device), labels.to(device)
        runner = self.build(model, device)
        report = AutoAttackReport(n=images.shape[0])
        logits = predict_logits(model, images, self.batch_size)
        check_logits(logits, labels)
        check_input_gradient(model, images[:self.batch_size], labels[:self.batch_size])
        report.n_clean_correct = int((logits.argmax(1) == labels).sum())
        adv = _run_quietly(runner, images, labels, self.batch_size, report)
        self.last_report = report
        for message in report.warnings:
            warnings.warn(f"AutoAttack check: {message}", AutoAttackCheckWarning, stacklevel=3)
        return adv


def _run_quietly(runner: pyautoattack.AutoAttack, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int, report: AutoAttackReport) -> torch.Tensor:
    """``runner.run_standard_evaluation`` with the logger captured into ``report``, the
    global RNG, the trace function and the dynamic-check counters restored."""
    logger = logging.getLogger(_LOGGER_NAME)
    saved_level, saved_propagate = logger.level, logger.propagate
    handler = _Capture(report)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    saved_trace = sys.gettrace()
    for key in _aa_checks.funcs:
        _aa_checks.funcs[key] = 0
    devices = []
    if images.device.type == "cuda":
        devices = [images.device.index if images.device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=devices):
            adv, _ = runner.run_standard_evaluation(images, labels, batch_size=batch_size)
    finally:
        sys.settrace(saved_trace)
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate
    return adv
