"""Hybrid representations (the paper's Table 3): where does a DRRDN keep the information
that an input is adversarial?

For natural images x and adversarial images x' (e.g. PGD against the DRRDN), the
reconstructor r of a trained DRRDN is fed the four combinations of natural and
adversarial parts, each an estimate of the encoder's output z (width D):

    r(z_s, z_i), r(z'_s, z_i), r(z_s, z'_i), r(z'_s, z'_i)      (n, D) each

and a copy of the Standard model's classifier, fine-tuned on hybrid representations,
classifies them. The paper's reading: if accuracy drops when z_i (not z_s) is
adversarial, the domain information sits in z_i.

The paper does not say how the classifier is fine-tuned. Our choices, each a parameter
of :func:`finetune_on_hybrids`:
- the classifier is the Standard model's own (``encoder_and_classifier()[2]``: SmallCNN's
  fc200-fc200-fc10, whose input width is D, the width r maps to), deep-copied; the
  Standard model is untouched;
- it is fine-tuned on the union of the chosen hybrid types (default all four) of a
  training split, every hybrid carrying its image's true label: ``epochs`` (5) passes of
  Adam (lr 1e-3, no weight decay) over shuffled mini-batches of 128, in train mode
  (SmallCNN's dropout active), seeded;
- it is evaluated in eval mode on each hybrid type of a held-out split (different
  images), with Wilson intervals; the accuracy before fine-tuning is reported too.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .paper_numbers import HYBRID_COLUMNS
from .torch_utils import eval_mode, model_device, predict_labels, train_mode
from .stats import Accuracy
from .validate import check_features, check_images, check_int, check_labels, check_number

__all__ = ["HYBRIDS", "HybridResult", "hybrid_representations", "finetune_on_hybrids",
           "hybrid_table"]

#: the four hybrids, in Table 3's order: name -> (z_s from the adversarial image?,
#: z_i from the adversarial image?)
HYBRIDS: dict[str, tuple[bool, bool]] = dict(zip(
    HYBRID_COLUMNS, ((False, False), (True, False), (False, True), (True, True))))


def _check_drrdn(model) -> None:
    if not (hasattr(model, "representations") and isinstance(getattr(model, "r", None), nn.Module)):
        raise ValueError(f"model is a {type(model).__name__}; hybrids need a DRRDN "
                         f"(drrdn_lib.drrdn.DRRDN: representations(x) and the reconstructor r).")


def hybrid_representations(model: nn.Module, x_nat: torch.Tensor, x_adv: torch.Tensor,
                           batch_size: int = 256) -> dict[str, torch.Tensor]:
    """The four hybrids of a DRRDN, name (:data:`HYBRIDS`) -> (n, D) float32 on the CPU.

    Args:
        model: a DRRDN (``representations`` and ``r``), run in eval mode (restored).
        x_nat, x_adv: (n, C, H, W) in [0, 1]; row i of x_adv is an adversarial version of
            row i of x_nat.
        batch_size: images per pass, on the model's device.
    """
    _check_drrdn(model)
    check_images(x_nat, name="x_nat")
    check_images(x_adv, name="x_adv")
    check_int("batch_size", batch_size)
    if x_adv.shape != x_nat.shape:
        raise ValueError(f"x_adv has shape {tuple(x_adv.shape)} but x_nat {tuple(x_nat.shape)}; "
                         f"row i of x_adv must be the adversarial version of row i of x_nat.")
    device, out = model_device(model, x_nat.device), {name: [] for name in HYBRIDS}
    with eval_mode(model), torch.no_grad():
        for s in range(0, len(x_nat), batch_size):
            nat = model.representations(x_nat[s:s + batch_size].to(device))
            adv = model.representations(x_adv[s:s + batch_size].to(device))
            for name, (s_adv, i_adv) in HYBRIDS.items():
                parts = [(adv if s_adv else nat)["z_s"], (adv if i_adv else nat)["z_i"]]
                out[name].append(model.r(torch.cat(parts, 1)).float().cpu())
    return {name: check_features(torch.cat(rows) if rows else torch.zeros(0, 0), name,
                                 len(x_nat)) for name, rows in out.items()}


@dataclass
class HybridResult:
    """Accuracy of the fine-tuned classifier on each held-out hybrid type (``after``)
    and of the classifier as given (``before``): name -> :class:`Accuracy`;
    ``classifier`` the fine-tuned copy (eval mode), ``settings`` the fine-tuning choices;
    ``right``: name -> (n_test,) bool, which held-out images the fine-tuned classifier gets
    right (the hybrids share their images, so two types compare by a paired test)."""

    after: dict[str, Accuracy]
    before: dict[str, Accuracy]
    classifier: nn.Module
    settings: dict = field(default_factory=dict)
    right: dict[str, np.ndarray] = field(default_factory=dict)

    def to_frame(self, percent: bool = True) -> pd.DataFrame:
        """Rows per hybrid type: accuracy, lo, hi after fine-tuning, and before."""
        scale = 100.0 if percent else 1.0
        rows = [{"hybrid": name, "accuracy": scale * cell.accuracy, "lo": scale * cell.lo,
                 "hi": scale * cell.hi, "n": cell.n,
                 "before": scale * self.before[name].accuracy}
                for name, cell in self.after.items()]
        return pd.DataFrame(rows).set_index("hybrid")


def _check_hybrid_set(sets, labels, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(sets, dict) or not sets:
        raise ValueError(f"{name} must be a non-empty dict hybrid name -> (n, D) tensor, e.g. "
                         f"the output of hybrid_representations().")
    check_labels(labels, name=f"{name} labels")
    return {k: check_features(v, f"{name}[{k!r}]", len(labels)) for k, v in sets.items()}


def _right(classifier, features, labels, batch_size) -> np.ndarray:
    """(n,) bool: which rows ``classifier`` labels correctly."""
    pred = predict_labels(classifier, features, batch_size)
    return (pred == labels.to(pred.device)).cpu().numpy()


def _accuracy(classifier, features, labels, batch_size, confidence) -> Accuracy:
    right = _right(classifier, features, labels, batch_size)
    return Accuracy.from_counts(int(right.sum()), len(right), confidence)


def finetune_on_hybrids(classifier: nn.Module, train: dict[str, torch.Tensor],
                        train_labels: torch.Tensor, test: dict[str, torch.Tensor],
                        test_labels: torch.Tensor, *, types: tuple[str, ...] | None = None,
                        epochs: int = 5, lr: float = 1e-3, batch_size: int = 128,
                        weight_decay: float = 0.0, seed: int = 0, confidence: float = 0.95
                        ) -> HybridResult:
    """Fine-tune a copy of ``classifier`` ((m, D) -> logits) on hybrids, score it per type.

    Args:
        classifier: e.g. the Standard model's ``encoder_and_classifier()[2]``; not modified.
        train, test: hybrid name -> (n_train, D) / (n_test, D) features of the training /
            held-out images (:func:`hybrid_representations`); their labels int64.
        types: hybrid names trained on (default: every key of ``train``).
        epochs: passes over the union (0: no fine-tuning, ``after`` equals ``before``).
        lr, weight_decay: Adam's; batch_size: rows per step; seed: shuffling and dropout.
    Returns: :class:`HybridResult`, one cell per key of ``test``.
    """
    train = _check_hybrid_set(train, train_labels, "train")
    test = _check_hybrid_set(test, test_labels, "test")
    types = tuple(train) if types is None else tuple(types)
    missing = [t for t in types if t not in train]
    if missing:
        raise ValueError(f"types {missing} are not in train (which has {list(train)}).")
    check_int("epochs", epochs, minimum=0)
    check_int("batch_size", batch_size)
    check_number("lr", lr, 0.0, low_open=True, hint="e.g. 1e-3")
    check_number("weight_decay", weight_decay, 0.0)
    device = model_device(classifier)
    before = {k: _accuracy(classifier, v, test_labels, 1024, confidence) for k, v in test.items()}
    tuned = copy.deepcopy(classifier)
    features = torch.cat([train[t] for t in types]).to(device)
    labels = torch.cat([train_labels] * len(types)).to(device)
    optimiser = torch.optim.Adam(tuned.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]), train_mode(tuned), torch.enable_grad():
        torch.manual_seed(int(seed))                     # dropout masks
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=generator).to(device)
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                loss = F.cross_entropy(tuned(features[idx]), labels[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    tuned.eval()
    right = {k: _right(tuned, v, test_labels, 1024) for k, v in test.items()}
    after = {k: Accuracy.from_counts(int(r.sum()), len(r), confidence) for k, r in right.items()}
    settings = {"types": list(types), "epochs": epochs, "lr": lr, "batch_size": batch_size,
                "weight_decay": weight_decay, "seed": seed, "optimiser": "adam"}
    return HybridResult(after, before, tuned, settings, right)


def hybrid_table(drrdn: nn.Module, standard: nn.Module, train_images: tuple, test_images: tuple,
                 **finetune_kw) -> HybridResult:
    """Table 3 end to end: hybrids of ``drrdn`` on a training and a held-out split, and the
    ``standard`` model's classifier (``encoder_and_classifier()[2]``) fine-tuned on them.

    Args:
        train_images, test_images: each ``(x_nat, x_adv, labels)`` (images (n, C, H, W) in
            [0, 1], x_adv e.g. PGD-40 against ``drrdn``; labels int64 (n,)).
        finetune_kw: :func:`finetune_on_hybrids`'s options.
    """
    _check_drrdn(drrdn)
    if not hasattr(standard, "encoder_and_classifier"):
        raise ValueError(f"standard is a {type(standard).__name__}; pass a drrdn_lib.models "
                         f"SplitClassifier (build_model('smallcnn')) trained by 'standard'.")
    _, width, classifier = standard.encoder_and_classifier()
    if width != drrdn.feature_dim:
        raise ValueError(f"the Standard classifier takes {width} inputs but the DRRDN's "
                         f"reconstructor outputs z of width {drrdn.feature_dim}; use the same "
                         f"network for both (e.g. smallcnn).")
    sets = []
    for name, triple in (("train_images", train_images), ("test_images", test_images)):
        if not (isinstance(triple, tuple) and len(triple) == 3):
            raise ValueError(f"{name} must be a tuple (x_nat, x_adv, labels).")
        x_nat, x_adv, labels = triple
        check_labels(labels, len(x_nat), drrdn.num_classes)
        sets.append((hybrid_representations(drrdn, x_nat, x_adv), labels))
    (train, y_train), (test, y_test) = sets
    return finetune_on_hybrids(classifier, train, y_train, test, y_test, **finetune_kw)
