"""t-SNE views of representations (the paper's Figure 2, MNIST): the Standard model's
representation, and DRRDN's z_s and z_i, for natural, natural plus adversarial, and
adversarial test examples, coloured by class.

    rows = representation_rows(model, images, labels, x_adv)    # {"z_s": ..., "z_i": ...}
    frame = figure2_embeddings(rows, seed=0)                    # representation, panel, x, y, ...

Which representation: a DRRDN (anything with ``representations(x)``) gives ``z_s`` and
``z_i``; any other model its ``representation(x)`` (``SplitClassifier``: the backbone's
output, SmallCNN's penultimate fc200 features), named ``features``.

Choices: scikit-learn's Barnes-Hut t-SNE, seeded (2-D, PCA initialisation,
learning rate "auto", perplexity 30, 1,000 iterations); features are used as they are
(no standardisation). By default one embedding per representation is fitted on the natural
and adversarial rows together and the three panels are its subsets (``joint=True``), so the
panels share coordinates and an adversarial shift is visible; ``joint=False`` embeds each
panel on its own, as separate t-SNE plots would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.manifold import TSNE
from torch import nn

from .torch_utils import eval_mode, model_device
from .validate import check_features, check_images, check_int, check_labels, check_number

__all__ = ["PANELS", "RepresentationRows", "embed_tsne", "representation_rows",
           "figure2_embeddings"]

#: Figure 2's panels: name -> which domains it shows (natural, adversarial)
PANELS = {"natural": (True, False), "natural+adversarial": (True, True),
          "adversarial": (False, True)}


def embed_tsne(features: torch.Tensor | np.ndarray, seed: int = 0, *, perplexity: float = 30.0,
               max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE coordinates, a float array (n, 2), of ``features`` (n, D), seeded (module
    docstring): the same seed and features give the same coordinates (with the PCA
    initialisation the seed only reaches scikit-learn's randomized SVD)."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features))
    z = check_features(features, "features").cpu().numpy()
    check_int("seed", seed, minimum=0)
    check_int("max_iter", max_iter, minimum=250)
    check_number("perplexity", perplexity, 0.0, low_open=True, hint="e.g. 30")
    if len(z) <= perplexity:
        raise ValueError(f"t-SNE's perplexity {perplexity:g} must be below the number of rows "
                         f"({len(z)}); pass more rows or a smaller perplexity (e.g. "
                         f"{max(1, (len(z) - 1) // 3)}).")
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                max_iter=max_iter, random_state=seed)
    return tsne.fit_transform(z)


@dataclass(frozen=True)
class RepresentationRows:
    """One representation of n natural and n adversarial images: ``features`` (2n, D)
    float32 on the CPU (natural rows first), ``classes`` int64 (2n,) (the true labels),
    ``adversarial`` bool (2n,) (the domain)."""

    features: torch.Tensor
    classes: torch.Tensor
    adversarial: torch.Tensor

    def panel(self, name: str) -> torch.Tensor:
        """Bool mask (2n,) of the rows in panel ``name`` (:data:`PANELS`)."""
        if name not in PANELS:
            raise ValueError(f"unknown panel {name!r}; use one of {list(PANELS)}.")
        natural, adversarial = PANELS[name]
        return (self.adversarial & adversarial) | (~self.adversarial & natural)


def _representations(model: nn.Module, images: torch.Tensor, batch_size: int) -> dict:
    """name -> (n, D) CPU features of ``images`` (caller holds eval mode)."""
    device, parts = model_device(model, images.device), []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = images[s:s + batch_size].to(device)
            if hasattr(model, "representations"):
                reps = model.representations(x)
                parts.append({"z_s": reps["z_s"].cpu(), "z_i": reps["z_i"].cpu()})
            elif hasattr(model, "representation"):
                parts.append({"features": model.representation(x).cpu()})
            else:
                raise ValueError(f"model is a {type(model).__name__} with neither "
                                 f"representations(x) (DRRDN) nor representation(x) "
                                 f"(drrdn_lib.models.SplitClassifier).")
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def representation_rows(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        x_adv: torch.Tensor, batch_size: int = 256
                        ) -> dict[str, RepresentationRows]:
    """Figure 2's rows for one model: name (``z_s``, ``z_i`` for a DRRDN, ``features``
    otherwise) -> :class:`RepresentationRows` of the natural ``images`` (n, C, H, W) and
    their adversarial versions ``x_adv`` (same shape; e.g. PGD-40 against the model),
    labels int64 (n,). The model runs in eval mode (restored)."""
    check_images(images)
    check_images(x_adv, name="x_adv")
    check_labels(labels, len(images))
    check_int("batch_size", batch_size)
    if x_adv.shape != images.shape or len(images) == 0:
        raise ValueError(f"x_adv has shape {tuple(x_adv.shape)} and images "
                         f"{tuple(images.shape)}; they must match (row i of x_adv attacks "
                         f"row i of images) and hold at least one example.")
    with eval_mode(model):
        nat = _representations(model, images, batch_size)
        adv = _representations(model, x_adv, batch_size)
    n = len(images)
    classes = torch.cat([labels.cpu(), labels.cpu()])
    domain = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
    return {k: RepresentationRows(check_features(torch.cat([nat[k], adv[k]]), k, 2 * n),
                                  classes, domain) for k in nat}


def figure2_embeddings(rows: dict[str, RepresentationRows], seed: int = 0, *,
                       joint: bool = True, **tsne_kw) -> pd.DataFrame:
    """t-SNE coordinates for every representation and panel: one row per shown point,
    columns ``representation``, ``panel``, ``x``, ``y``, ``class``, ``adversarial``
    (``joint``: one embedding per representation, panels as subsets; module docstring).
    ``tsne_kw`` go to :func:`embed_tsne`."""
    if not isinstance(rows, dict) or not rows:
        raise ValueError("rows must be a non-empty dict name -> RepresentationRows, the "
                         "output of representation_rows().")
    frames = []
    for name, rep in rows.items():
        whole = embed_tsne(rep.features, seed, **tsne_kw) if joint else None
        for panel in PANELS:
            mask = rep.panel(panel)
            xy = whole[mask.numpy()] if joint else embed_tsne(rep.features[mask], seed, **tsne_kw)
            frames.append(pd.DataFrame({
                "representation": name, "panel": panel, "x": xy[:, 0], "y": xy[:, 1],
                "class": rep.classes[mask].numpy(), "adversarial": rep.adversarial[mask].numpy()}))
    return pd.concat(frames, ignore_index=True)
