"""Probes: fresh heads trained on a fixed representation to measure what it holds.

A probe is a head (``"linear"``: multinomial logistic regression, full-batch L-BFGS;
``"mlp"``: one hidden ReLU layer, full-batch Adam) trained on features standardised with
the train side's mean / sd, on the train side of a seeded split of the examples, and
scored on the held-out side. Heads are seeded through a private RNG (the global RNG is
untouched) and deterministic on CPU. Used by :mod:`drrdn_lib.bounds` (domain classifier,
lambda*) and :mod:`drrdn_lib.representation_probes` (label and domain information).
"""
from __future__ import annotations

import torch
from torch import nn

from .validate import check_features, check_int, check_labels, check_number

__all__ = ["HEADS", "MIN_SIDE", "DEFAULT_STEPS", "check_head", "split_indices", "standardise",
           "fit_head", "count_wrong", "probe_right", "probe_accuracy", "domain_rows_right", "domain_probe_right"]

HEADS = ("linear", "mlp")
MIN_SIDE = 10  # examples needed on each side of the train / held-out split
#: optimiser steps per head when none are given: L-BFGS iterations / Adam steps.
DEFAULT_STEPS = {"linear": 100, "mlp": 300}


def check_head(kind) -> str:
    """``kind`` if it is one of :data:`HEADS`, else ``ValueError``."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; use one of {HEADS}.")
    return kind


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of example indices ``0..n-1`` into (train, held-out), both >= MIN_SIDE."""
    check_number("heldout_fraction", heldout_fraction, 0.0, 1.0, low_open=True, high_open=True,
                 hint="e.g. 0.5")

    def sides(m: int) -> tuple[int, int]:
        return m - round(m * heldout_fraction), round(m * heldout_fraction)
    n_train, n_held = sides(n)
    if min(n_train, n_held) < MIN_SIDE:
        smaller = min(heldout_fraction, 1.0 - heldout_fraction)
        need = max(2 * MIN_SIDE, int((MIN_SIDE - 0.5) / smaller) - 2)
        while min(sides(need)) < MIN_SIDE:   # both sides grow with n: a few steps at most
            need += 1
        raise ValueError(f"{n} examples are too few for heldout_fraction={heldout_fraction}: the "
                         f"split gives {n_train} train / {n_held} held-out, each side needs >= "
                         f"{MIN_SIDE}; pass at least {need} examples (or a fraction nearer 0.5).")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return order[n_held:], order[:n_held]


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every tensor by the train tensor's per-column mean and sd."""
    mean, sd = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-8)
    return [(t - mean) / sd for t in (train, *others)]


def _build_head(kind: str, dim: int, num_classes: int, hidden: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "linear":
            return nn.Linear(dim, num_classes)
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def fit_head(kind: str, features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
             seed: int, steps: int, hidden: int) -> nn.Module:
    """Train a head full-batch on standardised features ``(N, D)`` with int64 labels ``(N,)``
    in ``[0, num_classes)``; returned in eval mode.

    linear: L-BFGS (strong Wolfe), ``steps`` iterations, L2 1e-4 on the weights.
    mlp: Adam lr 1e-2, ``steps`` steps, weight decay 1e-4.
    """
    check_head(kind)
    check_int("steps", steps)
    check_int("hidden", hidden)
    head = _build_head(kind, features.shape[1], num_classes, hidden, seed).to(features.device)
    loss_fn = nn.CrossEntropyLoss()
    with torch.enable_grad():
        if kind == "linear":
            opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps,
                                    line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = loss_fn(head(features), labels) + 1e-4 * head.weight.pow(2).sum()
                loss.backward()
                return loss
            opt.step(closure)
        else:
            opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
            for _ in range(steps):
                opt.zero_grad()
                loss_fn(head(features), labels).backward()
                opt.step()
    return head.eval()


def count_wrong(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> int:
    """How many rows of ``features`` the head misclassifies."""
    with torch.no_grad():
        return int((head(features).argmax(1) != labels).sum())


def probe_right(z: torch.Tensor, labels: torch.Tensor, *, head: str = "linear",
                heldout_fraction: float = 0.5, seed: int = 0, steps: int | None = None,
                hidden: int = 64) -> torch.Tensor:
    """(m,) bool on the CPU, per held-out example of the seeded split: whether a fresh
    ``head`` fitted to predict ``labels`` (int64 (n,)) from ``z`` (n, D) gets it right.
    Two representations of the same examples, probed with one seed, share their held-out
    examples, so they compare by a paired test."""
    check_head(head)
    check_labels(labels, n=None)
    z = check_features(z, "z", len(labels))
    labels = labels.to(z.device)
    train, held = split_indices(len(labels), heldout_fraction, seed)
    fit, test = standardise(z[train], z[held])
    num_classes = max(2, int(labels.max()) + 1)
    clf = fit_head(head, fit, labels[train], num_classes, seed=seed,
                   steps=steps or DEFAULT_STEPS[head], hidden=hidden)
    with torch.no_grad():
        return (clf(test).argmax(1) == labels[held]).cpu()


def probe_accuracy(z: torch.Tensor, labels: torch.Tensor, **kw) -> float:
    """Held-out accuracy in [0, 1] of :func:`probe_right` (same arguments)."""
    return float(probe_right(z, labels, **kw).float().mean())


def domain_rows_right(z_nat: torch.Tensor, z_adv: torch.Tensor, train: torch.Tensor,
                      held: torch.Tensor, *, head: str, seed: int, steps: int, hidden: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh natural-vs-adversarial head fitted on the ``train`` pairs of ``z_nat`` / ``z_adv``
    ((n, D) each, row i of both is example i; inputs validated): (natural, adversarial) (m,)
    bool, which of the m ``held`` rows of each it labels correctly."""
    domain = torch.cat([torch.zeros(len(train)), torch.ones(len(train))]).long().to(z_nat.device)
    fit, nat_held, adv_held = standardise(torch.cat([z_nat[train], z_adv[train]]),
                                          z_nat[held], z_adv[held])
    clf = fit_head(head, fit, domain, 2, seed=seed, steps=steps, hidden=hidden)
    with torch.no_grad():
        return clf(nat_held).argmax(1) == 0, clf(adv_held).argmax(1) == 1


def domain_probe_right(z_nat: torch.Tensor, z_adv: torch.Tensor, *, head: str = "linear",
                       heldout_fraction: float = 0.5, seed: int = 0, steps: int | None = None,
                       hidden: int = 64) -> torch.Tensor:
    """(2 m,) bool, per held-out row (the m natural rows, then their m adversarial pairs):
    whether the probe of :func:`drrdn_lib.bounds.domain_divergence` (same split, seed and
    head) labels it correctly; its mean is that function's ``1 - e_dom``. Two
    representations of the same examples, probed with one seed, are scored on the same
    rows, so they compare by a paired test."""
    check_head(head)
    z_nat = check_features(z_nat, "z_nat")
    z_adv = check_features(z_adv, "z_adv", len(z_nat))
    train, held = split_indices(len(z_nat), heldout_fraction, seed)
    nat, adv = domain_rows_right(z_nat, z_adv, train, held, head=head, seed=seed,
                                 steps=steps or DEFAULT_STEPS[head], hidden=hidden)
    return torch.cat([nat, adv]).cpu()
