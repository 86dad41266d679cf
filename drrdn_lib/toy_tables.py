"""The toy trade-off, closed form next to simulation: what notebook 01 computes.

Both functions return lists of flat dicts (one row each), ready for a DataFrame.
"""
from __future__ import annotations

import math

import torch

from .bounds import estimate_bound_from_representations
from .stats import proportion
from .toy import (linear_accuracy, sample_toy, toy_bound_terms, toy_representation,
                  worst_case_attack)
from .validate import check_int

__all__ = ["tradeoff_curve", "compare_bound_terms"]


def _predictions(z: torch.Tensor) -> torch.Tensor:
    """Label 1 iff the 1-D representation is > 0 (the heads of toy.py)."""
    return (z[:, 0] > 0).long()


def tradeoff_curve(n_points: int = 11, *, eps: float, dim: int, p: float, eta: float | None = None,
                   n_samples: int = 4000, seed: int = 0) -> list[dict]:
    """Natural and robust accuracy of ``f = cos(t) x_1 + sin(t) m`` for t in [0, pi/2].

    t = 0 uses the robust feature only, t = pi/2 the non-robust features only. Each row has
    the closed forms (``nat_exact``, ``rob_exact``) and a simulation on ``n_samples`` fresh
    samples under the exact worst-case attack (``nat_sim``, ``rob_sim`` with 95% Wilson
    ``_lo``/``_hi``). ``w_nonrobust_share`` = sin(t) / (cos(t) + sin(t)), in [0, 1].
    """
    check_int("n_points", n_points, 2)
    check_int("n_samples", n_samples)
    x, y = sample_toy(n_samples, dim=dim, p=p, eta=eta, seed=seed)
    rows = []
    for k in range(n_points):
        t = (math.pi / 2) * k / (n_points - 1)
        w = (round(math.cos(t), 12), round(math.sin(t), 12))
        nat = _predictions(toy_representation(x, w)) == y
        rob = _predictions(toy_representation(worst_case_attack(x, y, w, eps), w)) == y
        row = {"w_nonrobust_share": w[1] / (w[0] + w[1]), "w_robust": w[0], "w_nonrobust": w[1],
               "nat_exact": linear_accuracy(w, eps=0.0, dim=dim, p=p, eta=eta),
               "rob_exact": linear_accuracy(w, eps=eps, dim=dim, p=p, eta=eta)}
        for name, correct in (("nat_sim", nat), ("rob_sim", rob)):
            est = proportion(int(correct.sum()), n_samples)
            row.update({name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi})
        rows.append(row)
    return rows


def compare_bound_terms(representations: dict, *, eps: float, dim: int, p: float,
                        eta: float | None = None, n_samples: int = 4000, seed: int = 0,
                        steps: int = 600) -> list[dict]:
    """The bound's terms on each 1-D representation, exact and estimated.

    ``representations`` maps a label to rep weights (a, b) (or "robust"/"nonrobust"); the
    attack is the worst case against the classifier sign(z) itself. Rows hold, per term
    (err_nat, err_adv, divergence, lambda_star, bound), the exact value (``*_exact``: the
    divergence is 2 TV, the all-functions d_HdH; lambda* is the Bayes joint error) and the
    estimate with its interval (MLP heads, half the samples held out).
    """
    if not isinstance(representations, dict) or not representations:
        raise ValueError(f"representations must be a non-empty dict label -> weights (a, b) or "
                         f"'robust' / 'nonrobust', got {representations!r}.")
    check_int("n_samples", n_samples)
    check_int("steps", steps)
    x, y = sample_toy(n_samples, dim=dim, p=p, eta=eta, seed=seed)
    rows = []
    for label, rep in representations.items():
        exact = toy_bound_terms(rep, attack_weights=_weights(rep), eps=eps, dim=dim, p=p, eta=eta)
        x_adv = worst_case_attack(x, y, _weights(rep), eps)
        z_nat, z_adv = toy_representation(x, rep), toy_representation(x_adv, rep)
        report = estimate_bound_from_representations(
            z_nat, z_adv, y, _predictions(z_nat), _predictions(z_adv), heads=("mlp",),
            seed=seed, steps=steps)
        row = {"representation": label, **report.to_record("mlp"),
               "err_nat_exact": exact.err_nat, "err_adv_exact": exact.err_adv,
               "divergence_exact": 2 * exact.tv, "lambda_star_exact": exact.lambda_star_bayes,
               "bound_exact": exact.bound_bayes}
        rows.append(row)
    return rows


def _weights(rep) -> tuple[float, float]:
    named = {"robust": (1.0, 0.0), "nonrobust": (0.0, 1.0)}
    return named.get(rep, rep) if isinstance(rep, str) else tuple(rep)
