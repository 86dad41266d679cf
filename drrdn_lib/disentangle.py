"""How well a trained DRRDN separates its representation: what notebook 05 measures.

For natural images and their PGD adversarial versions, with z = g(x), z_s = d_s(z),
z_i = d_i(z): how well a fresh head tells natural from adversarial on each part (the
domain information should sit in z_i, not in z_s), how much label information each part
carries (it should sit in z_s), and how well r([z_s, z_i]) reconstructs z.
"""
from __future__ import annotations

import torch

from .bounds import _fit_head, _split, _standardise, _wrong, domain_divergence

__all__ = ["representation_sets", "disentanglement_summary", "pca_2d"]


@torch.no_grad()
def _reps(model, images: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
    parts = [model.representations(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    reps = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    reps["rec"] = torch.cat([model.r(torch.cat([p["z_s"], p["z_i"]], 1)) for p in parts])
    return reps


def representation_sets(model, images: torch.Tensor, labels: torch.Tensor, attack) -> dict:
    """``{"nat": reps, "adv": reps}`` with reps z, z_s, z_i, rec (each (n, D)), model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        adv = attack(model, images, labels)
        return {"nat": _reps(model, images), "adv": _reps(model, adv)}
    finally:
        model.train(was_training)


def _label_accuracy(z: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """Held-out accuracy of a fresh linear head predicting the label from ``z``."""
    train, held = _split(len(labels), 0.5, seed)
    fit, test = _standardise(z[train], z[held])
    head = _fit_head("linear", fit, labels[train], int(labels.max()) + 1, seed=seed, steps=100, hidden=64)
    return 1.0 - _wrong(head, test, labels[held]) / len(held)


def disentanglement_summary(sets: dict, labels: torch.Tensor, seed: int = 0) -> list[dict]:
    """One row per part (z, z_s, z_i): domain-classifier accuracy (linear and MLP; 0.5 means
    natural and adversarial are indistinguishable), label accuracy of a linear probe on the
    natural and on the adversarial part, and (for z) the relative reconstruction error
    ||r([z_s, z_i]) - z||^2 / ||z||^2 on natural and adversarial inputs."""
    rows = []
    for part in ("z", "z_s", "z_i"):
        nat, adv = sets["nat"][part], sets["adv"][part]
        row = {"part": part}
        for head in ("linear", "mlp"):
            _, e_dom = domain_divergence(nat, adv, head=head, seed=seed)
            row[f"domain_acc_{head}"] = 1.0 - e_dom.value
        row["label_acc_nat"] = _label_accuracy(nat, labels, seed)
        row["label_acc_adv"] = _label_accuracy(adv, labels, seed)
        rows.append(row)
    for domain in ("nat", "adv"):
        z, rec = sets[domain]["z"], sets[domain]["rec"]
        rows[0][f"rec_error_{domain}"] = float(((rec - z) ** 2).sum() / (z ** 2).sum())
    return rows


def pca_2d(*blocks: torch.Tensor) -> list[torch.Tensor]:
    """Project the blocks (each (n_k, D)) onto the first two principal axes of their union."""
    joint = torch.cat(blocks)
    mean = joint.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(joint - mean, q=2, center=False)
    projected = (joint - mean) @ v[:, :2]
    return list(projected.split([len(b) for b in blocks]))
