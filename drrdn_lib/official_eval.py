"""A model's accuracy on the official MNIST test set under the paper's white-box attacks,
as a JSON-ready record (what a zoo card stores), and the re-check of such a record.

    record = official_eval.evaluate_official(model, limit=1000, seed=0)
    rows = official_eval.recheck(model, record, limit=200, columns=("clean", "pgd40"))

The digits are the official test set (``load_dataset("mnist", "test")``: the repository's
``data/mnist_test.npz`` or a full MNIST, both checked against the official content
SHA-256), never ``mnist5k`` (official *training* digits). ``limit`` digits are drawn
class-stratified without replacement by ``data.stratified_split(labels, limit, seed)``,
the draw ``load_dataset(..., limit=limit, seed=seed)`` makes; the record keeps the size,
seed, per-class counts and the SHA-256 of the chosen indices, so the subset can be redrawn
and checked. Evaluation is in float32 (the model is cast; no autocast), every attack runs
on every clean-correct digit (``evaluate``'s "individual" mode), and each accuracy comes
with its 95% Wilson interval and n.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from .attack_registry import attack_from_config
from .stats import Accuracy
from .data import load_dataset, stratified_split
from .data_files import CONTENT_SHA256
from .evaluate import evaluate
from .provenance import provenance
from .torch_utils import model_device

__all__ = ["TEST_SIZE", "official_test_subset", "evaluate_official", "recheck", "accuracy_cell"]

TEST_SIZE = 10000  # digits in the official MNIST test set
SUBSET_RULE = ("class-stratified, without replacement: drrdn_lib.data.stratified_split(y_test, "
               "n, seed), the subset load_dataset('mnist', 'test', limit=n, seed=seed) returns")


def official_test_subset(limit: int | None, seed: int = 0
                         ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``limit`` official MNIST test digits (None: all 10,000), stratified by class.

    Returns images float32 (n, 1, 28, 28) in [0, 1], labels int64 (n,), and their indices
    into the official test set (sorted, (n,))."""
    images, labels = load_dataset("mnist", "test")
    if limit is None or limit == TEST_SIZE:
        index = np.arange(TEST_SIZE)
    else:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= TEST_SIZE:
            raise ValueError(f"limit={limit!r}: use a whole number of test digits from 1 to "
                             f"{TEST_SIZE}, or None for all of them.")
        _, index = stratified_split(labels.numpy(), limit, seed)
    return images[index], labels[index], index


def indices_sha256(index: np.ndarray) -> str:
    """SHA-256 of the indices as int64 C-order bytes (identifies a subset)."""
    return hashlib.sha256(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()


def accuracy_cell(n_correct: int, n: int) -> dict:
    """``{n_correct, n, accuracy, lo, hi}`` (a zoo card's layout): :class:`drrdn_lib.stats.Accuracy`."""
    return Accuracy.from_counts(n_correct, n).to_dict()


def evaluate_official(model: nn.Module, *, limit: int | None, seed: int = 0, attack_steps=None,
                      batch_size: int = 256, progress: bool = False,
                      per_example: bool = False) -> dict:
    """Clean, FGSM, PGD-40, PGD-100, CW-40, CW-100 (``experiments.paper_attacks("mnist")``,
    eps 0.3) and the per-example worst case on ``limit`` stratified official test digits.

    ``attack_steps`` (a, b) runs PGD/CW-a and -b instead of 40 and 100 (named ``pgd<a>``
    ...: a reduced attack never carries the paper's name; ``paper_attacks`` is True only
    for the paper's). Returns the record a zoo card stores under ``evaluation``."""
    from .experiments import attack_label, paper_attacks

    model = model.float().eval()
    device = model_device(model)
    images, labels, index = official_test_subset(limit, seed)
    attacks = paper_attacks("mnist", steps=attack_steps, seed=seed)
    record = evaluate(model, images.to(device), labels.to(device), attacks,
                      batch_size=batch_size, checks="cheap", progress=progress)
    n = record.n
    results = {"clean": {"label": attack_label("clean"), **accuracy_cell(record.n_clean_correct, n)}}
    for key, result in record.attacks.items():
        results[key] = {"label": attack_label(key), **accuracy_cell(result.n_correct, n),
                        "config": result.config, "seconds": round(result.seconds, 2)}
    results["worst_case"] = {"label": "worst case over the attacks above",
                             **accuracy_cell(record.n_worst_case_correct, n)}
    return {
        "test_set": {"dataset": "mnist", "split": "test", "what": "official MNIST test set",
                     "size": TEST_SIZE,
                     "content_sha256": {k: CONTENT_SHA256["mnist"][k] for k in ("x_test", "y_test")}},
        "subset": {"n": n, "seed": seed, "rule": SUBSET_RULE, "indices_sha256": indices_sha256(index),
                   "class_counts": np.bincount(labels.numpy(), minlength=10).tolist()},
        "precision": "float32", "batch_size": batch_size, "mode": record.mode,
        "interval": "95% Wilson score interval",
        "paper_attacks": attack_steps is None,
        "results": results,
        "checks": [c.to_dict() for c in record.checks], "warnings": list(record.warnings),
        "seconds": round(record.seconds, 1),
        "provenance": provenance(str(device), "float32"),
        **({"per_example": {k: v.tolist() for k, v in record.per_example.items()}}
           if per_example else {}),
    }


def recheck(model: nn.Module, evaluation: dict, *, limit: int = 200,
            columns=("clean", "pgd40"), batch_size: int = 256) -> list[dict]:
    """Re-evaluate ``model`` on ``limit`` of the digits an ``evaluation`` record (from
    :func:`evaluate_official`) covers, with that record's own attack configurations, and
    say for each of ``columns`` whether the record's accuracy is consistent.

    The digits: the record's subset is redrawn (its index hash must match), then ``limit``
    of them are drawn from it, class-stratified, with the record's seed.

    The statistics: the record's accuracy p is measured on its n digits; the re-check counts
    k correct of m <= n of those digits. If weights, data, attacks and code are what the
    record describes, k/m differs from p only through which m digits were drawn (and the
    random start of PGD/CW, drawn per batch), so the score test of "accuracy = p" at the 5%
    level accepts, which is exactly "p lies inside the 95% Wilson interval of k of m"
    (``agrees``). Drawing the m digits without replacement from the n makes k/m vary less than
    a binomial (by (n - m) / (n - 1)), so the check is conservative; with m = n (and the
    same batches) it is an exact re-run. A False ``agrees`` means something drifted.

    Returns one dict per column: ``column``, ``label``, ``record_accuracy``, ``record_n``,
    ``accuracy``, ``lo``, ``hi``, ``n_correct``, ``n``, ``agrees``.
    """
    results, subset = evaluation["results"], evaluation["subset"]
    bad = [c for c in columns if c not in results or c == "worst_case"]
    if bad:
        raise ValueError(f"cannot re-check {bad}: choose among {[c for c in results if c != 'worst_case']} "
                         "(the worst case needs every attack: re-run evaluate_official).")
    images, labels, index = official_test_subset(subset["n"], subset["seed"])
    if indices_sha256(index) != subset["indices_sha256"]:
        raise ValueError("the record's test subset cannot be redrawn (its index hash differs): "
                         "the subset rule or the test data changed since it was written.")
    if limit < len(labels):
        _, pick = stratified_split(labels.numpy(), limit, subset["seed"])
        images, labels = images[pick], labels[pick]
    attacks = {c: attack_from_config(results[c]["config"]) for c in columns if c != "clean"}
    model = model.float().eval()
    device = model_device(model)
    record = evaluate(model, images.to(device), labels.to(device), attacks,
                      batch_size=batch_size, checks="none", progress=False)
    rows = []
    for column in columns:
        correct = record.n_clean_correct if column == "clean" else record.attacks[column].n_correct
        cell = accuracy_cell(correct, record.n)
        stored = results[column]["accuracy"]
        rows.append({"column": column, "label": results[column]["label"], "record_accuracy": stored,
                     "record_n": results[column]["n"], **cell,
                     "agrees": cell["lo"] <= stored <= cell["hi"]})
    return rows
