"""Classifiers split into a backbone g (images -> features) and a head (features -> logits).

Every network here is a :class:`SplitClassifier` (docs/INTERFACES.md): DRRDN
(``drrdn_lib.drrdn``) keeps ``.backbone`` and ``.feature_dim`` and replaces the head with
its disentanglers and classifier, so any backbone below works with it.

=====================  ==========================================  ============  =============
name                   network                                     feature_dim   default input
=====================  ==========================================  ============  =============
``smallcnn``           4 conv + 3 FC (TRADES' MNIST network)       200           1 x 28 x 28
``preact_resnet18``    PreAct ResNet-18 (He et al., ECCV 2016)     512           3 x 32 x 32
``wrn28_10``           WideResNet-28-10 (Zagoruyko & Komodakis)    640           3 x 32 x 32
``wrn``                WideResNet-depth-width (parameters)         64 * width    3 x 32 x 32
=====================  ==========================================  ============  =============

Inputs are float images in [0, 1], NCHW; any normalisation (per-channel mean/std) is the
first layer of the backbone. The backbone ends at the penultimate layer (the input of
the last linear layer), so the head is one ``nn.Linear``. Nothing here names a device:
build on the CPU and move with ``.to(device)``.

DRRDN needs another split: the paper's encoder g and "the classifier" whose capacity its
classifiers c_s and c_i share. :meth:`SplitClassifier.encoder_and_classifier` returns it:
for SmallCNN g ends at the convolutional features (1024 = 64 x 4 x 4 for 28 x 28 inputs)
and the classifier is the fully connected fc200-fc200-fc10; for the ResNets g ends at the
pooled features and the classifier is the last linear layer (docs/method.md).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["SplitClassifier", "Normalize", "SmallCNN", "SMALLCNN_INITS", "PreActResNet18", "WideResNet",
           "MODELS", "NORMALIZATIONS", "build_model"]

#: Per-channel (mean, std) presets for :class:`Normalize`, on [0, 1] pixel values.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None,
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
}


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers, so they follow ``.to()``.

    Args:
        mean, std: one float per channel (std > 0), in [0, 1] pixel units.
    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs one mean and one positive std per channel, "
                             f"got mean={tuple(mean)}, std={tuple(std)}.")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _normalization_layer(normalization, in_channels: int) -> nn.Module:
    """The first backbone layer: ``Normalize`` for a preset name or a (mean, std) pair,
    ``nn.Identity`` for ``"none"``/``None``."""
    if normalization is None or isinstance(normalization, str):
        key = "none" if normalization is None else normalization
        if key not in NORMALIZATIONS:
            raise ValueError(f"normalization={normalization!r} is not a preset; use one of "
                             f"{sorted(NORMALIZATIONS)} or a (mean, std) pair of sequences.")
        normalization = NORMALIZATIONS[key]
    if normalization is None:
        return nn.Identity()
    mean, std = normalization
    if len(mean) not in (1, in_channels):
        raise ValueError(f"normalization has {len(mean)} channel(s) but the model has "
                         f"in_channels={in_channels}; give 1 or {in_channels} values.")
    return Normalize(mean, std)


def _check_batch_of_images(x: torch.Tensor) -> None:
    """A batch of images (B, C, H, W): say what is missing otherwise (no sync, no pass)."""
    if isinstance(x, torch.Tensor) and x.ndim != 4:
        fix = (" A batch without its channel axis? Add it with x.unsqueeze(1) (grayscale: "
               "(B, 28, 28) -> (B, 1, 28, 28)). One image without its batch axis? Use "
               "x.unsqueeze(0)." if x.ndim == 3 else "")
        raise ValueError(f"the model takes a batch of images (B, C, H, W); got shape "
                         f"{tuple(x.shape)}.{fix}")


class SplitClassifier(nn.Module):
    """A classifier ``head(backbone(x))`` with its feature extractor exposed.

    Attributes:
        backbone: g, images (B, C, H, W) in [0, 1] -> features (B, feature_dim).
        head: features (B, feature_dim) -> logits (B, num_classes).
        feature_dim, num_classes: ints.
    ``forward`` returns logits (never probabilities); ``representation(x)`` returns the
    backbone features (B, feature_dim), the representation the bound is measured on.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for images (B, C, H, W) in [0, 1]."""
        _check_batch_of_images(x)
        return self.head(self.backbone(x))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, feature_dim)."""
        _check_batch_of_images(x)
        return self.backbone(x)

    #: index in ``backbone`` where the paper's classifier starts (None: only ``head``)
    classifier_start: int | None = None

    def encoder_and_classifier(self) -> tuple[nn.Module, int, nn.Module]:
        """(encoder g, its output width, classifier) as DRRDN splits this network: the
        classifier is ``backbone[classifier_start:]`` followed by ``head`` (the modules
        are shared with this model, not copied)."""
        if self.classifier_start is None:
            return self.backbone, self.feature_dim, self.head
        encoder = self.backbone[:self.classifier_start]
        classifier = nn.Sequential(*self.backbone[self.classifier_start:], self.head)
        first = next(m for m in classifier.modules() if isinstance(m, nn.Linear))
        return encoder, first.in_features, classifier


def _init_weights(module: nn.Module, conv_mode: str = "fan_out") -> None:
    """Kaiming-normal convolutions (gain sqrt 2, ``conv_mode`` "fan_out" or "fan_in") with
    zero bias; batch norm 1/0; linear layers keep PyTorch's default initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- SmallCNN
#: SmallCNN's initialisations: TRADES's and the one every model here was trained with so far
SMALLCNN_INITS = ("trades", "kaiming_fan_out")


class SmallCNN(SplitClassifier):
    """The MNIST network of TRADES (Zhang et al., ICML 2019) and its predecessors.

    Backbone: conv32-conv32-maxpool-conv64-conv64-maxpool (3x3 kernels, no padding, ReLU),
    then fc200-ReLU-dropout-fc200-ReLU; head: fc ``num_classes``. ReLUs are in place
    (bitwise the same values and gradients, less memory; 0-7% less time measured).

    Args:
        num_classes: C (10).
        in_channels: 1 for MNIST.
        image_size: H = W of the input (28); must be at least 16.
        dropout: dropout probability after the first fully connected layer (0.5, as TRADES).
        normalization: ``"none"`` (default, as TRADES), a preset name or (mean, std).
        init: ``"trades"``: as TRADES's ``models/small_cnn.py`` (the paper's MNIST network),
            convolutions Kaiming-normal with fan_in (gain sqrt 2) and zero bias, the two
            hidden linear layers PyTorch's default, the last layer (the head, TRADES's
            ``fc3``) all zero. ``"kaiming_fan_out"`` (default for now): convolutions
            Kaiming-normal with fan_out and a default head, what every model of this
            repository so far was trained with (conv1 starts about 5.8x smaller than
            TRADES's). A configuration asks for TRADES's with ``model_kwargs={"init":
            "trades"}``, which also gives it its own run folder (docs/method.md).
    Shapes: (B, in_channels, image_size, image_size) -> logits (B, C); features (B, 200).
    For DRRDN the encoder ends at the flattened convolutional features (64 * side^2) and
    the classifier is fc200-fc200-fc ``num_classes`` (:meth:`encoder_and_classifier`).
    """

    classifier_start = 12  # backbone[12] is the first fully connected layer

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 dropout: float = 0.5, normalization="none", init: str = "kaiming_fan_out"):
        if init not in SMALLCNN_INITS:
            raise ValueError(f"SmallCNN init={init!r}; use one of {SMALLCNN_INITS}.")
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"SmallCNN image_size={image_size} is too small; it needs at "
                             f"least 16 pixels per side (28 for MNIST).")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SmallCNN dropout={dropout} must be in [0, 1).")
        backbone = nn.Sequential(
            _normalization_layer(normalization, in_channels),
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * side * side, 200), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(200, 200), nn.ReLU(inplace=True),
        )
        super().__init__(backbone, nn.Linear(200, num_classes), 200, num_classes)
        if init == "trades":
            _init_weights(self, conv_mode="fan_in")
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        else:
            _init_weights(self, conv_mode="fan_out")


# ----------------------------------------------------------------------- PreAct ResNet
class _PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut (a 1x1
    convolution of the pre-activated input when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + skip


def _stage(in_planes: int, planes: int, blocks: int, stride: int, dropout: float = 0.0) -> nn.Sequential:
    """``blocks`` pre-activation blocks; the first one has ``stride``."""
    layers = [_PreActBlock(in_planes, planes, stride, dropout)]
    layers += [_PreActBlock(planes, planes, 1, dropout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class _PooledFeatures(nn.Sequential):
    """Final BN-ReLU, global average pooling and flattening: (B, C, H, W) -> (B, C)."""

    def __init__(self, channels: int):
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class PreActResNet18(SplitClassifier):
    """PreAct ResNet-18 (He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual
    Networks", ECCV 2016), the CIFAR-10 version used by Rice, Wong and Kolter (ICML 2020).

    Backbone: normalisation, conv3x3(64), four stages of two pre-activation blocks
    (64, 128, 256, 512 channels; strides 1, 2, 2, 2), BN-ReLU, global average pool;
    head: linear 512 -> C.

    Args:
        num_classes: C (10). in_channels: 3.
        normalization: ``"cifar10"`` (default), ``"none"``, a preset or (mean, std).
    Shapes: (B, 3, H, W) -> logits (B, C); features (B, 512). 32 x 32 inputs in the paper.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, normalization="cifar10"):
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        layers = [_normalization_layer(normalization, in_channels),
                  nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)]
        in_planes = widths[0]
        for planes, stride in zip(widths, strides):
            layers.append(_stage(in_planes, planes, 2, stride))
            in_planes = planes
        layers.append(_PooledFeatures(in_planes))
        super().__init__(nn.Sequential(*layers), nn.Linear(in_planes, num_classes),
                         in_planes, num_classes)
        _init_weights(self)


# ------------------------------------------------------------------------ WideResNet
class WideResNet(SplitClassifier):
    """WideResNet-depth-width (Zagoruyko & Komodakis, BMVC 2016), pre-activation blocks,
    as used on CIFAR-10 by DRRDN (depth 28, width 10) and by Madry et al. (2018), TRADES
    and MART (depth 34, width 10).

    Backbone: normalisation, conv3x3(16), three stages of (depth - 4) / 6 blocks with
    16 * width, 32 * width, 64 * width channels (strides 1, 2, 2), BN-ReLU, global
    average pool; head: linear 64 * width -> C.

    Args:
        depth: 6n + 4 (28). width: widening factor k (10).
        num_classes: C (10). in_channels: 3. dropout: inside each block (0.0).
        normalization: ``"cifar10"`` (default), ``"none"``, a preset or (mean, std).
    Shapes: (B, 3, H, W) -> logits (B, C); features (B, 64 * width).
    """

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 10,
                 in_channels: int = 3, dropout: float = 0.0, normalization="cifar10"):
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth={depth} must be 6n + 4 with n >= 1 "
                             f"(10, 16, 22, 28, 34, 40, ...).")
        if width < 1:
            raise ValueError(f"WideResNet width={width} must be a positive integer (10 for WRN-28-10).")
        blocks = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)
        layers = [_normalization_layer(normalization, in_channels),
                  nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        in_planes = 16
        for planes, stride in zip(widths, (1, 2, 2)):
            layers.append(_stage(in_planes, planes, blocks, stride, dropout))
            in_planes = planes
        layers.append(_PooledFeatures(in_planes))
        super().__init__(nn.Sequential(*layers), nn.Linear(in_planes, num_classes),
                         in_planes, num_classes)
        self.depth, self.width = depth, width
        _init_weights(self)


# -------------------------------------------------------------------------- registry
def _wrn28_10(num_classes: int = 10, in_channels: int = 3, **kw) -> WideResNet:
    """WideResNet-28-10, the paper's CIFAR-10 encoder; ``depth``/``width`` are fixed by the
    name (use ``"wrn"`` to change them)."""
    if "depth" in kw or "width" in kw:
        raise ValueError("'wrn28_10' fixes depth=28 and width=10; build 'wrn' with "
                         "depth=... and width=... to change them.")
    return WideResNet(28, 10, num_classes=num_classes, in_channels=in_channels, **kw)


#: name -> constructor(num_classes=..., in_channels=..., **kw) -> SplitClassifier
MODELS: dict[str, Callable[..., SplitClassifier]] = {
    "smallcnn": SmallCNN,
    "preact_resnet18": PreActResNet18,
    "wrn28_10": _wrn28_10,
    "wrn": WideResNet,
}

_DEFAULT_IN_CHANNELS = {"smallcnn": 1, "preact_resnet18": 3, "wrn28_10": 3, "wrn": 3}


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None, **kw) -> SplitClassifier:
    """Build a registered classifier on the CPU.

    Args:
        name: one of :data:`MODELS` (``"smallcnn"``, ``"preact_resnet18"``, ``"wrn28_10"``,
            ``"wrn"``).
        num_classes: C (10).
        in_channels: image channels; default 1 for ``smallcnn``, 3 for the others.
        **kw: passed to the constructor (e.g. ``depth``/``width`` for ``"wrn"``,
            ``image_size``/``dropout`` for ``"smallcnn"``, ``normalization`` for all).
    Returns: a :class:`SplitClassifier` in train mode.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model name {name!r}; choose one of {sorted(MODELS)}.")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2.")
    channels = _DEFAULT_IN_CHANNELS[name] if in_channels is None else in_channels
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"in_channels={in_channels!r} must be a positive integer (1 for "
                         f"MNIST, 3 for CIFAR-10).")
    return MODELS[name](num_classes=num_classes, in_channels=channels, **kw)
