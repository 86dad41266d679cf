"""Black-box (transfer) attacks: the right half of Tables 1 and 2.

Each surrogate crafts L-inf PGD examples on its own gradients (cross-entropy, random
start, the given budget: ``protocol.PAPER[dataset].black_box``) once, for every test
image whatever the surrogate predicts on it; each target is then scored on every
surrogate's examples. A target's accuracy is the fraction of crafted examples it
classifies as the true label (all n examples count, as in the paper's black-box columns;
a target wrong on the clean image is usually wrong on its transfer example too).

The diagonal (a model attacked with its own examples) is white-box PGD, which the paper
leaves empty ("-"); it is ``None`` unless ``include_diagonal=True`` (matched by name).

Randomness: one ``PGD(..., seed=seed)`` per surrogate, called on each batch of
``batch_size`` images, so each batch's random start comes from a generator seeded with
``seed`` (as in ``drrdn_lib.evaluate``): the examples depend on ``batch_size``; a
white-box run with the same attack, seed and batches gives the diagonal exactly.

Memory: one surrogate's examples (n images, on the CPU) at a time; with
``keep_examples=True`` every surrogate's are kept in the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from .attacks import PGD, AttackBudget
from .stats import Accuracy
from .eval_cache import cached
from .torch_utils import (as_channels_last, channels_last_layout, channels_last_pays, eval_mode,
                          model_device, predict_labels)
from .validate import check_images, check_in_ball, check_int, check_labels

__all__ = ["TransferResult", "transfer_attack", "craft_transfer_examples",
           "transfer_matrix"]


@dataclass
class TransferResult:
    """``cells[target][surrogate]`` -> :class:`Accuracy` (None on the diagonal unless
    requested); ``budget`` and ``seed`` of the crafting PGD; ``examples[surrogate]`` the
    crafted images (n, C, H, W) on the CPU when kept."""

    cells: dict[str, dict[str, Accuracy | None]]
    budget: AttackBudget
    seed: int
    confidence: float
    examples: dict[str, torch.Tensor] = field(default_factory=dict)

    def accuracy(self, target: str, surrogate: str) -> float | None:
        """Accuracy in [0, 1] of ``target`` on ``surrogate``'s examples (None: empty cell)."""
        cell = self.cells[target][surrogate]
        return None if cell is None else cell.accuracy

    def to_frame(self) -> pd.DataFrame:
        """One row per (target, surrogate): ``accuracy``, ``lo``, ``hi`` (fractions),
        ``n_correct``, ``n``; empty cells have NaN/None."""
        rows = []
        for target, row in self.cells.items():
            for surrogate, cell in row.items():
                rows.append({"target": target, "surrogate": surrogate,
                             **({"n_correct": None, "n": None, "accuracy": float("nan"),
                                 "lo": float("nan"), "hi": float("nan")} if cell is None
                                else cell.__dict__)})
        return pd.DataFrame(rows, columns=["target", "surrogate", "accuracy", "lo", "hi",
                                           "n_correct", "n"])

    def table(self, percent: bool = True) -> pd.DataFrame:
        """Targets as rows, surrogates as columns (the paper's layout), in percent."""
        frame = self.to_frame().pivot(index="target", columns="surrogate", values="accuracy")
        frame = frame.loc[list(self.cells), list(next(iter(self.cells.values())))]
        return frame * 100 if percent else frame


def transfer_attack(budget: AttackBudget, seed: int = 0) -> PGD:
    """The surrogates' attack: L-inf PGD on cross-entropy with a uniform random start in
    the ball, ``budget``'s eps / step / steps, seeded."""
    if not isinstance(budget, AttackBudget):
        raise ValueError(f"budget must be an AttackBudget, got {type(budget).__name__}; use "
                         f"drrdn_lib.protocol.PAPER['mnist'].black_box (or AttackBudget(eps, "
                         f"step_size, steps)).")
    return PGD(budget.eps, budget.step_size, budget.steps, norm="Linf", random_start=True,
               loss="ce", seed=seed)


def craft_transfer_examples(surrogate: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            budget: AttackBudget, seed: int = 0, batch_size: int = 256,
                            channels_last: bool | None = None) -> torch.Tensor:
    """Adversarial images (n, C, H, W) on the CPU crafted by :func:`transfer_attack` on
    ``surrogate``'s gradients, ``batch_size`` images at a time on its device (its kernels
    in channels_last memory format where that pays, or as ``channels_last`` says, as
    :func:`~drrdn_lib.evaluate.evaluate`); checked to lie in the eps-ball and [0, 1]."""
    check_images(images)
    check_labels(labels, len(images))
    check_int("batch_size", batch_size)
    attack, device = transfer_attack(budget, seed), model_device(surrogate, images.device)
    if channels_last is None:
        channels_last = channels_last_pays(device)
    with eval_mode(surrogate), channels_last_layout(surrogate, channels_last):
        out = [attack(surrogate,
                      as_channels_last(images[s:s + batch_size].to(device), channels_last),
                      labels[s:s + batch_size].to(device)).cpu()
               for s in range(0, len(images), batch_size)]
    adv = torch.cat(out) if out else images.detach().cpu().clone()
    check_images(adv, name="the crafted examples")
    check_in_ball(adv, images.cpu(), budget.eps, name="the crafted examples")
    return adv


def _check_models(models, name: str) -> dict[str, nn.Module]:
    if not isinstance(models, dict) or not models:
        raise ValueError(f"{name} must be a non-empty dict name -> model, got "
                         f"{type(models).__name__}; e.g. {{'Standard': model, ...}}.")
    for key, model in models.items():
        if not isinstance(model, nn.Module):
            raise ValueError(f"{name}[{key!r}] is a {type(model).__name__}, not an nn.Module.")
    return models


def transfer_matrix(targets: dict[str, nn.Module], surrogates: dict[str, nn.Module],
                    images: torch.Tensor, labels: torch.Tensor, budget: AttackBudget,
                    seed: int = 0, *, include_diagonal: bool = False, batch_size: int = 256,
                    keep_examples: bool = False, confidence: float = 0.95,
                    cache_dir=None) -> TransferResult:
    """Every target's accuracy on every surrogate's transfer examples.

    Args:
        targets, surrogates: name -> model (logits out); a name in both is one model
            (the diagonal), skipped unless ``include_diagonal``.
        images: (n, C, H, W) float32 in [0, 1]; labels: int64 (n,).
        budget: the surrogates' PGD budget (``protocol.PAPER[d].black_box``).
        seed: seed of every surrogate's random start (module docstring).
        batch_size: images per crafting / prediction batch.
        keep_examples: keep each surrogate's examples (CPU) in the result.
        confidence: level of the Wilson intervals.
        cache_dir: keep each surrogate's examples there (``drrdn_lib.eval_cache``), so
            that a killed run resumes without crafting them again; None: no cache.
    Returns: :class:`TransferResult`; every model's train/eval mode is restored.
    """
    _check_models(targets, "targets")
    _check_models(surrogates, "surrogates")
    check_images(images)
    check_labels(labels, len(images))
    check_int("batch_size", batch_size)
    if len(images) == 0:
        raise ValueError("images is empty; pass at least one test example.")
    labels_cpu = labels.cpu()
    cells = {t: {s: None for s in surrogates} for t in targets}
    examples = {}
    for s_name, surrogate in surrogates.items():
        wanted = [t for t in targets if include_diagonal or t != s_name]
        if not wanted and not keep_examples:
            continue
        adv = cached(cache_dir, "transfer", (surrogate, images, labels, repr(budget), seed, batch_size),
                     lambda: craft_transfer_examples(surrogate, images, labels, budget, seed, batch_size))
        if keep_examples:
            examples[s_name] = adv
        for t_name in wanted:
            pred = predict_labels(targets[t_name], adv, batch_size)
            cells[t_name][s_name] = Accuracy.from_counts(
                int((pred == labels_cpu).sum()), len(adv), confidence)
    return TransferResult(cells, budget, int(seed), float(confidence), examples)
