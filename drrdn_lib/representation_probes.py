"""How well a trained DRRDN separates its representation: what notebook 05 measures.

For natural images and their PGD adversarial versions, with z = g(x), z_s = d_s(z),
z_i = d_i(z): how well a fresh probe (:mod:`drrdn_lib.probes`) tells natural from
adversarial on each part (the domain information should sit in z_i, not in z_s), how much
label information each part carries (it should sit in z_s), and how well r([z_s, z_i])
reconstructs z.
"""
from __future__ import annotations

import torch

from .bounds import domain_divergence
from .probes import domain_probe_right, probe_accuracy, probe_right, split_indices
from .stats import paired_rows
from .torch_utils import eval_mode, model_device
from .validate import check_features, check_images, check_int, check_labels

__all__ = ["representation_sets", "disentanglement_summary", "disentanglement_paired", "pca_2d",
           "classifier_penultimate"]

PARTS = ("z", "z_s", "z_i")


def _reps(model, images: torch.Tensor, batch_size: int, name: str) -> dict[str, torch.Tensor]:
    """z, z_s, z_i and rec = r([z_s, z_i]) of ``images``, batched on the model's device,
    without gradients (the caller holds the model in eval mode)."""
    device, parts = model_device(model, images.device), []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            part = model.representations(images[i:i + batch_size].to(device))
            part["rec"] = model.r(torch.cat([part["z_s"], part["z_i"]], 1))
            parts.append(part)
    return {k: check_features(torch.cat([p[k] for p in parts]), f"{k} of the {name} images",
                              len(images)) for k in (*PARTS, "rec")}


def representation_sets(model, images: torch.Tensor, labels: torch.Tensor, attack,
                        batch_size: int = 500, adversarial: torch.Tensor | None = None) -> dict:
    """``{"nat": reps, "adv": reps}`` with reps z, z_s, z_i, rec (each (n, D)), for images
    (n, C, H, W) in [0, 1] and labels int64 (n,); the model in eval mode (restored).
    ``adversarial``: the attack's images of ``images`` if already made (then not re-run)."""
    check_images(images, getattr(attack, "bounds", (0.0, 1.0)))
    check_labels(labels, len(images))
    check_int("batch_size", batch_size)
    if len(images) == 0:
        raise ValueError("images is empty; pass at least one example.")
    with eval_mode(model):
        adv = attack(model, images, labels) if adversarial is None else adversarial
        check_images(adv, getattr(attack, "bounds", (0.0, 1.0)), name="the attack's images")
        if adv.shape != images.shape:
            raise ValueError(f"the adversarial images have shape {tuple(adv.shape)}, the natural "
                             f"ones {tuple(images.shape)}; pass one adversarial image per image.")
        return {"nat": _reps(model, images, batch_size, "natural"),
                "adv": _reps(model, adv, batch_size, "adversarial")}


def disentanglement_summary(sets: dict, labels: torch.Tensor, seed: int = 0) -> list[dict]:
    """One row per part (z, z_s, z_i): domain-classifier accuracy (linear and MLP; 0.5 means
    natural and adversarial are indistinguishable) with its interval (``_lo``, ``_hi``), label
    accuracy of a linear probe on the natural and on the adversarial part on ``n_label``
    held-out examples, and (for z) the relative reconstruction error
    ||r([z_s, z_i]) - z||^2 / ||z||^2 on natural and adversarial inputs."""
    missing = [(d, k) for d in ("nat", "adv") for k in (*PARTS, "rec") if k not in sets.get(d, {})]
    if missing:
        raise ValueError(f"sets lack {missing}; pass the output of representation_sets().")
    n = len(sets["nat"]["z"])
    check_labels(labels, n)
    rows = []
    for part in PARTS:
        nat, adv = sets["nat"][part], sets["adv"][part]
        row = {"part": part}
        for head in ("linear", "mlp"):
            _, e_dom = domain_divergence(nat, adv, head=head, seed=seed)
            row[f"domain_acc_{head}"] = 1.0 - e_dom.value
            row[f"domain_acc_{head}_lo"], row[f"domain_acc_{head}_hi"] = 1.0 - e_dom.hi, 1.0 - e_dom.lo
        row["label_acc_nat"] = probe_accuracy(nat, labels, seed=seed)
        row["label_acc_adv"] = probe_accuracy(adv, labels, seed=seed)
        row["n_label"] = len(split_indices(n, 0.5, seed)[1])
        rows.append(row)
    for domain in ("nat", "adv"):
        z = check_features(sets[domain]["z"], f"{domain} z", n)
        rec = check_features(sets[domain]["rec"], f"{domain} rec", n)
        rows[0][f"rec_error_{domain}"] = float(((rec - z) ** 2).sum() / (z ** 2).sum())
    return rows


def disentanglement_paired(sets: dict, labels: torch.Tensor, seed: int = 0) -> list[dict]:
    """The two comparisons of z_s and z_i that notebook 05 reads, on the same held-out
    examples (:func:`drrdn_lib.stats.paired_rows`, Holm over both): the MLP domain probe on
    z_i against z_s (the natural and adversarial held-out rows), and the linear label probe
    on adversarial z_s against adversarial z_i."""
    domain = {part: domain_probe_right(sets["nat"][part], sets["adv"][part], head="mlp", seed=seed).numpy()
              for part in ("z_s", "z_i")}
    label = {part: probe_right(sets["adv"][part], labels, seed=seed).numpy() for part in ("z_s", "z_i")}
    flags = {f"{part} | {what}": v for what, group in (("domain", domain), ("label", label))
             for part, v in group.items()}
    return paired_rows(flags, [("z_i | domain", "z_s | domain"), ("z_s | label", "z_i | label")],
                       what="z_s and z_i")


def pca_2d(*blocks: torch.Tensor) -> list[torch.Tensor]:
    """Project the blocks (each (n_k, D)) onto the first two principal axes of their union."""
    if not blocks:
        raise ValueError("pass at least one block of representations (n, D).")
    blocks = tuple(check_features(b, f"block {i}") for i, b in enumerate(blocks))
    joint = torch.cat(blocks)
    mean = joint.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(joint - mean, q=2, center=False)
    projected = (joint - mean) @ v[:, :2]
    return list(projected.split([len(b) for b in blocks]))


def classifier_penultimate(model, z_s: torch.Tensor) -> torch.Tensor:
    """DRRDN's c_s up to its last layer applied to z_s (n, P): the counterpart of a
    baseline's penultimate features (SmallCNN: the 200-wide fc layer; a c_s that is one
    linear layer leaves z_s itself). Without gradients; the model in eval mode (restored)."""
    c_s = model.c_s
    body = c_s[:-1] if isinstance(c_s, torch.nn.Sequential) and len(c_s) > 1 else torch.nn.Identity()
    with eval_mode(model), torch.no_grad():
        return body(z_s)
