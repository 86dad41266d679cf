"""The DRRDN network (Yang, Guo, Wang, Xu, AAAI 2021, Figure 1): an encoder g whose
representation z two disentanglers split into a class-specific part z_s and a
class-irrelevant part z_i of one width P.

=========  ====================================================  ============================
name       role (paper's symbol)                                 shapes
=========  ====================================================  ============================
``g``      encoder g(.; theta), the baseline network up to its   images -> z (B, D)
           classifier (:meth:`SplitClassifier.encoder_and_classifier`)
``d_s``    class-specific disentangler d_s(.; phi_s)             z -> z_s (B, P)
``d_i``    class-irrelevant disentangler d_i(.; phi_i)           z -> z_i (B, P)
``c_s``    classifier c_s(.; w_s): the baseline's classifier     z_s or z_i -> logits (B, K)
``c_i``    domain classifier c_i(.; w_i): the baseline's         z_s or z_i -> logit (B,) of
           classifier with one output                            "natural"
``mine``   MINE statistics network T(.; psi)                     (z_s, z_i) -> (B,)
``r``      reconstructor r(.; theta_rec)                         [z_s, z_i] -> z (B, D)
=========  ====================================================  ============================

P = D, so c_s takes inputs of the width the baseline's classifier takes and has exactly
its capacity ("the classifiers of DRRDN share the same capacity as in the baseline
models"); c_i is applied to both parts, so they must have one width. The prediction is
``c_s(d_s(g(x)))``; ``forward`` returns it, so attacks run against that path. The losses
and the update rule that train these modules are in ``drrdn_lib.drrdn_objective``;
every width and why is in docs/method.md.

The class follows the ``SplitClassifier`` contract: ``backbone`` is g, ``feature_dim`` is
D, ``head`` is ``c_s . d_s`` (features -> logits) and ``representation(x)`` is z_s.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from .validate import check_int

__all__ = ["DRRDN", "build_drrdn", "DRRDN_KWARGS", "PARAMETER_GROUPS"]

#: keyword arguments of :func:`build_drrdn` that size DRRDN's own modules
DRRDN_KWARGS = ("mine_hidden", "rec_hidden")

#: the paper's parameter symbols -> the module that holds them
PARAMETER_GROUPS = {"g": "theta", "d_s": "phi_s", "d_i": "phi_i", "c_s": "w_s",
                    "c_i": "w_i", "mine": "psi", "r": "theta_rec"}


def _disentangler(width: int) -> nn.Sequential:
    """Linear(width, width) + ReLU with Kaiming-normal (fan-in, ReLU) weights and zero
    bias, so the extra layer keeps the scale of z (PyTorch's default initialisation
    shrinks it about threefold, which stalls early adversarial training)."""
    linear = nn.Linear(width, width)
    nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
    nn.init.zeros_(linear.bias)
    return nn.Sequential(linear, nn.ReLU(inplace=True))


def _dense(sizes: list[int]) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU between them."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _with_one_output(classifier: nn.Module) -> nn.Module:
    """A freshly initialised copy of ``classifier`` whose last linear layer has 1 output."""
    if isinstance(classifier, nn.Linear):
        return nn.Linear(classifier.in_features, 1)
    twin = copy.deepcopy(classifier)
    for module in twin.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    last = [name for name, m in twin.named_modules() if isinstance(m, nn.Linear)][-1]
    twin.set_submodule(last, nn.Linear(twin.get_submodule(last).in_features, 1))
    return twin


def _linear_in_features(classifier: nn.Module) -> int:
    first = next((m for m in classifier.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("the classifier c_s must start with a linear layer.")
    return first.in_features


class _Statistic(nn.Module):
    """MINE's T(z_s, z_i): dense [z_s, z_i] (2P) -> hidden -> hidden -> 1; (B,) out."""

    def __init__(self, part_width: int, hidden: int):
        super().__init__()
        self.net = _dense([2 * part_width, hidden, hidden, 1])

    def forward(self, z_s: torch.Tensor, z_i: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z_s, z_i], dim=1)).squeeze(1)


class DRRDN(nn.Module):
    """Encoder g plus the DRRDN modules (see the module docstring's table).

    Args:
        encoder: g, images (B, C, H, W) in [0, 1] -> z (B, feature_dim).
        feature_dim: D, the width of z.
        classifier: c_s, (B, P) -> logits (B, num_classes), the baseline's classifier;
            c_i is a freshly initialised copy of it with one output.
        num_classes: K.
        mine_hidden: width of MINE's two hidden layers (256).
        rec_hidden: width of the reconstructor's hidden layer (256).
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, classifier: nn.Module,
                 num_classes: int, mine_hidden: int = 256, rec_hidden: int = 256):
        super().__init__()
        self.feature_dim = check_int("DRRDN feature_dim", feature_dim)
        self.num_classes = check_int("DRRDN num_classes", num_classes)
        part = _linear_in_features(classifier)
        if part != feature_dim:
            raise ValueError(
                f"DRRDN's parts z_s and z_i have the width of z (D={feature_dim}) so that c_s "
                f"is the baseline's classifier, but the classifier takes {part} inputs; pass "
                "the classifier that belongs to this encoder (encoder_and_classifier()).")
        self.representation_dim = part
        self.backbone = encoder
        self.head = nn.Sequential(OrderedDict(d_s=_disentangler(part), c_s=classifier))
        self.d_i = _disentangler(part)
        self.c_i = _with_one_output(classifier)
        self.mine = _Statistic(part, check_int("DRRDN mine_hidden", mine_hidden))
        self.r = _dense([2 * part, check_int("DRRDN rec_hidden", rec_hidden), feature_dim])

    @property
    def g(self) -> nn.Module:
        """The encoder (same module as ``backbone``)."""
        return self.backbone

    @property
    def d_s(self) -> nn.Module:
        """The class-specific disentangler, z -> z_s (stored as ``head.d_s``)."""
        return self.head.d_s

    @property
    def c_s(self) -> nn.Module:
        """The classifier (stored as ``head.c_s``)."""
        return self.head.c_s

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each module, keyed as :data:`PARAMETER_GROUPS`."""
        return {name: list(getattr(self, name).parameters()) for name in PARAMETER_GROUPS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``c_s(d_s(g(x)))``, (B, num_classes)."""
        return self.head(self.backbone(x))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The class-specific representation z_s = d_s(g(x)), (B, P)."""
        return self.d_s(self.backbone(x))

    def representations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``z`` (B, D), ``z_s`` (B, P) and ``z_i`` (B, P) from one encoder pass."""
        z = self.backbone(x)
        return {"z": z, "z_s": self.d_s(z), "z_i": self.d_i(z)}


def build_drrdn(name: str, num_classes: int = 10, **kwargs) -> DRRDN:
    """A DRRDN on the network ``drrdn_lib.models.build_model(name, ...)``, split by its
    ``encoder_and_classifier()``: g is the encoder, c_s the classifier.

    ``kwargs`` named in :data:`DRRDN_KWARGS` size MINE and the reconstructor; the others
    go to ``build_model`` (e.g. ``in_channels``, ``dropout``).
    """
    from .models import build_model

    for old in ("robust_dim", "nonrobust_dim", "hidden_dim"):
        if old in kwargs:
            raise ValueError(
                f"DRRDN has no {old!r}: z_s and z_i both have the width of the encoder's "
                "output (c_i sees both parts, and c_s is the baseline's classifier); size "
                f"MINE and the reconstructor with {DRRDN_KWARGS}.")
    heads = {k: kwargs.pop(k) for k in DRRDN_KWARGS if k in kwargs}
    base = build_model(name, num_classes=num_classes, **kwargs)
    encoder, width, classifier = base.encoder_and_classifier()
    return DRRDN(encoder, width, classifier, num_classes, **heads)
