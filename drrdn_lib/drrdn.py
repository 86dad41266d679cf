"""The DRRDN network (Yang, Guo, Wang, Xu, AAAI 2021, Figure 1): a backbone g split by
two disentanglers into a robust part z_s and a non-robust part z_i.

Modules (names as in the paper's figure):

============  =========================================  ==========================
name          role                                       shapes
============  =========================================  ==========================
``g``         feature extractor, any backbone            images -> z (B, D)
``d_s``       disentangler, robust (class-specific) part z -> z_s (B, D_s)
``d_i``       disentangler, non-robust part              z -> z_i (B, D_i)
``c_s``       classifier (the model's prediction)        z_s -> logits (B, C)
``c_i``       domain discriminators (natural=0 /         ``c_i["z_s"]``: z_s -> (B,)
              adversarial=1), one per representation     ``c_i["z_i"]``: z_i -> (B,)
``class_irr`` auxiliary class head on z_i (its label     z_i -> logits (B, C)
              information is removed)
``r``         reconstruction decoder                     [z_s, z_i] -> z (B, D)
``mine``      statistics network T of a MINE estimator   (z_s, z_i) -> (B,)
============  =========================================  ==========================

The prediction is ``c_s(d_s(g(x)))``; ``forward`` returns it, so attacks run against
the whole path. The loss that trains these modules is ``drrdn_lib.methods.drrdn``.
The class follows the ``SplitClassifier`` contract (docs/INTERFACES.md):
``backbone`` is g, ``feature_dim`` is D, ``head`` is ``c_s . d_s`` (features -> logits)
and ``representation(x)`` is z_s, the representation the bound is measured on
(its width is ``representation_dim``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["DRRDN", "GradReverse", "grad_reverse", "build_drrdn", "DRRDN_KWARGS"]

DRRDN_KWARGS = ("robust_dim", "nonrobust_dim", "hidden_dim")


class GradReverse(torch.autograd.Function):
    """Identity in the forward pass; multiplies the gradient by ``-coeff`` in the backward
    pass (Ganin & Lempitsky, ICML 2015). The modules after it minimise a loss that the
    modules before it maximise, in one backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient reversal layer: ``x`` forward, ``-coeff * grad`` backward."""
    return GradReverse.apply(x, coeff)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Two-layer perceptron (Linear, ReLU, Linear)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


class _Discriminator(nn.Module):
    """Domain discriminator: representation (B, dim) -> one logit per example (B,)
    (positive means adversarial)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.net = _mlp(dim, hidden_dim, 1)

    def forward(self, rep: torch.Tensor) -> torch.Tensor:
        return self.net(rep).squeeze(1)


class _MineStatistic(nn.Module):
    """Statistics network T(z_s, z_i) of MINE (Belghazi et al., ICML 2018):
    (B, D_s), (B, D_i) -> (B,)."""

    def __init__(self, robust_dim: int, nonrobust_dim: int, hidden_dim: int):
        super().__init__()
        self.net = _mlp(robust_dim + nonrobust_dim, hidden_dim, 1)

    def forward(self, robust: torch.Tensor, nonrobust: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([robust, nonrobust], dim=1)).squeeze(1)


def _disentangler(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear + ReLU, Kaiming-normal (fan-in, ReLU) weights and zero bias, so that the
    extra layer keeps the scale of the features (PyTorch's default initialisation
    shrinks it about threefold, which stalls early adversarial training)."""
    linear = nn.Linear(in_dim, out_dim)
    nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
    nn.init.zeros_(linear.bias)
    return nn.Sequential(linear, nn.ReLU(inplace=True))


def _check_dim(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"DRRDN {name} must be a positive integer, got {value!r}.")
    return value


class DRRDN(nn.Module):
    """Backbone g plus the DRRDN heads (see the module docstring for the table).

    Args:
        backbone: g, images (B, C, H, W) in [0, 1] -> features (B, feature_dim).
        feature_dim: D, width of g's output.
        num_classes: C.
        robust_dim: D_s, width of z_s (default D).
        nonrobust_dim: D_i, width of z_i (default D).
        hidden_dim: hidden width of the discriminators, decoder and MINE network (256).

    The disentanglers are ``Linear + ReLU`` with Kaiming initialisation (no batch norm,
    so the natural and adversarial halves of a joint batch do not share statistics in
    the heads).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 robust_dim: int | None = None, nonrobust_dim: int | None = None,
                 hidden_dim: int = 256):
        super().__init__()
        self.feature_dim = _check_dim("feature_dim", feature_dim)
        self.num_classes = _check_dim("num_classes", num_classes)
        self.representation_dim = _check_dim("robust_dim", robust_dim or feature_dim)
        self.nonrobust_dim = _check_dim("nonrobust_dim", nonrobust_dim or feature_dim)
        hidden_dim = _check_dim("hidden_dim", hidden_dim)
        d_s, d_i = self.representation_dim, self.nonrobust_dim
        self.backbone = backbone
        self.head = nn.Sequential(OrderedDict(
            d_s=_disentangler(feature_dim, d_s),
            c_s=nn.Linear(d_s, num_classes)))
        self.d_i = _disentangler(feature_dim, d_i)
        self.c_i = nn.ModuleDict({"z_s": _Discriminator(d_s, hidden_dim),
                                  "z_i": _Discriminator(d_i, hidden_dim)})
        self.class_irr = nn.Linear(d_i, num_classes)
        self.r = _mlp(d_s + d_i, hidden_dim, feature_dim)
        self.mine = _MineStatistic(d_s, d_i, hidden_dim)

    @property
    def g(self) -> nn.Module:
        """The feature extractor (same module as ``backbone``)."""
        return self.backbone

    @property
    def d_s(self) -> nn.Module:
        """The robust disentangler, z -> z_s (stored as ``head.d_s``)."""
        return self.head.d_s

    @property
    def c_s(self) -> nn.Module:
        """The classifier on z_s (stored as ``head.c_s``)."""
        return self.head.c_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``c_s(d_s(g(x)))``, (B, num_classes)."""
        return self.head(self.backbone(x))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The robust representation z_s = d_s(g(x)), (B, representation_dim)."""
        return self.d_s(self.backbone(x))

    def representations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All three representations from one backbone pass: ``z`` (B, D),
        ``z_s`` (B, D_s), ``z_i`` (B, D_i)."""
        z = self.backbone(x)
        return {"z": z, "z_s": self.d_s(z), "z_i": self.d_i(z)}


def build_drrdn(name: str, num_classes: int = 10, **kwargs) -> DRRDN:
    """A DRRDN around the backbone of ``drrdn_lib.models.build_model(name, ...)``.

    ``kwargs`` named in :data:`DRRDN_KWARGS` (``robust_dim``, ``nonrobust_dim``,
    ``hidden_dim``) size the DRRDN heads; the others go to ``build_model`` (for example
    ``in_channels``). The base model's own head is dropped.
    """
    from .models import build_model

    heads = {k: kwargs.pop(k) for k in DRRDN_KWARGS if k in kwargs}
    base = build_model(name, num_classes=num_classes, **kwargs)
    return DRRDN(base.backbone, base.feature_dim, num_classes, **heads)
