"""Registry models: build, shapes, backbone/head split, normalisation inside, no fixed device."""
import math

import pytest
import torch
from torch import nn

from drrdn_lib.models import (MODELS, NORMALIZATIONS, Normalize, SplitClassifier, WideResNet,
                              build_model)

# name -> (input shape of one image, feature_dim); built on the meta device (no compute).
SPECS = {
    "smallcnn": ((1, 28, 28), 200),
    "preact_resnet18": ((3, 32, 32), 512),
    "wrn28_10": ((3, 32, 32), 640),
    "wrn": ((3, 32, 32), 640),
}


def test_registry_is_covered():
    assert set(MODELS) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_forward_and_representation_shapes(name):
    shape, feature_dim = SPECS[name]
    with torch.device("meta"):
        model = build_model(name, num_classes=7)
        x = torch.empty(3, *shape)
    assert isinstance(model, SplitClassifier)
    assert (model.feature_dim, model.num_classes) == (feature_dim, 7)
    assert model(x).shape == (3, 7)
    assert model.representation(x).shape == (3, feature_dim)
    assert model.backbone(x).shape == (3, feature_dim)


@pytest.mark.parametrize("name, kw, shape", [
    ("smallcnn", {}, (1, 28, 28)),
    ("smallcnn", {"image_size": 16}, (1, 16, 16)),
    ("preact_resnet18", {}, (3, 32, 32)),
    ("wrn", {"depth": 10, "width": 1}, (3, 32, 32)),
])
def test_backbone_head_split_composes_on_cpu(name, kw, shape):
    torch.manual_seed(0)
    model = build_model(name, **kw).eval()
    x = torch.rand(2, *shape)
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(model.head(model.backbone(x)), logits)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert isinstance(model.head, nn.Linear) and model.head.in_features == model.feature_dim


def test_parameter_counts_match_the_literature():
    with torch.device("meta"):
        wrn = build_model("wrn28_10")
        wrn34 = build_model("wrn", depth=34, width=10)
        resnet = build_model("preact_resnet18")
        small = build_model("smallcnn")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wrn) == 36_479_194  # the 36.5M usually quoted for WRN-28-10
    assert count(wrn34) == 46_160_474  # and 46.16M for WRN-34-10
    assert 11.1e6 < count(resnet) < 11.2e6
    assert count(small) == 312_202
    assert isinstance(build_model("wrn", depth=28, width=4), WideResNet)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_hard_coded_device(name):
    """Built on the CPU by default; after .to('meta') the forward runs on meta tensors only,
    which fails if the forward creates a tensor on a fixed device."""
    shape, _ = SPECS[name]
    if name.startswith("wrn"):
        model = build_model("wrn", depth=10, width=1)
    else:
        model = build_model(name)
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"cpu"}
    model = model.to("meta")
    assert model(torch.empty(2, *shape, device="meta")).device.type == "meta"


def test_normalisation_lives_inside_the_backbone():
    model = build_model("preact_resnet18")
    first = model.backbone[0]
    assert isinstance(first, Normalize)
    mean, std = NORMALIZATIONS["cifar10"]
    assert torch.allclose(first.mean.flatten(), torch.tensor(mean))
    assert torch.allclose(first.std.flatten(), torch.tensor(std))
    assert "backbone.0.mean" in model.state_dict()  # saved with the checkpoint
    assert isinstance(build_model("smallcnn").backbone[0], nn.Identity)  # TRADES: none
    custom = build_model("smallcnn", normalization=((0.5,), (0.25,)))
    x = torch.full((1, 1, 28, 28), 0.75)
    assert torch.allclose(custom.backbone[0](x), torch.ones_like(x))


def test_dropout_only_in_train_mode():
    model = build_model("smallcnn", image_size=16)
    x = torch.rand(4, 1, 16, 16)
    model.eval()
    assert torch.equal(model.backbone(x), model.backbone(x))   # the features: TRADES's head starts at 0
    model.train()
    torch.manual_seed(0)
    a = model.backbone(x)
    assert not torch.equal(a, model.backbone(x))


def test_smallcnn_starts_as_trades_network():
    """TRADES's models/small_cnn.py: kaiming_normal_ with its defaults (fan_in, gain sqrt 2)
    on every convolution, zero conv biases, fc1/fc2 PyTorch's default, fc3 (our head) zero."""
    torch.manual_seed(0)
    model = build_model("smallcnn", init="trades")
    convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.15)
        assert not conv.bias.any()
    assert not model.head.weight.any() and not model.head.bias.any()
    assert not model(torch.rand(2, 1, 28, 28)).any()                          # logits start at 0
    fc1 = model.backbone[12]
    assert fc1.weight.abs().max().item() <= 1 / math.sqrt(fc1.in_features) + 1e-6   # default uniform
    legacy = build_model("smallcnn")                                          # today's default
    ratio = convs[0].weight.std() / next(m for m in legacy.backbone if isinstance(m, nn.Conv2d)).weight.std()
    assert ratio.item() == pytest.approx(math.sqrt(32 * 9 / 9), rel=0.2)     # conv1 5.7x larger
    assert legacy.head.weight.any()
    with pytest.raises(ValueError, match="init='xavier'.*trades"):
        build_model("smallcnn", init="xavier")


@pytest.mark.parametrize("call, match", [
    (lambda: build_model("resnet50"), r"'resnet50'.*preact_resnet18"),
    (lambda: build_model("wrn", depth=33), r"depth=33.*6n \+ 4"),
    (lambda: build_model("wrn28_10", depth=34), r"wrn28_10.*'wrn'"),
    (lambda: build_model("smallcnn", image_size=12), r"image_size=12.*at least 16"),
    (lambda: build_model("smallcnn", num_classes=1), r"num_classes=1.*>= 2"),
    (lambda: build_model("smallcnn", in_channels=0), r"in_channels=0"),
    (lambda: build_model("smallcnn", normalization="imagenet"), r"'imagenet'.*cifar10"),
    (lambda: build_model("preact_resnet18", in_channels=1, normalization="cifar10"), r"3 channel"),
])
def test_bad_arguments_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_encoder_and_classifier_split_for_drrdn():
    """SmallCNN: g ends at the convolutional features, the classifier is fc200-fc200-fc10;
    ResNets: g is the backbone, the classifier the last linear layer."""
    small = build_model("smallcnn", dropout=0.0).eval()
    encoder, width, classifier = small.encoder_and_classifier()
    x = torch.rand(3, 1, 28, 28)
    assert width == 1024 and encoder(x).shape == (3, 1024)
    assert torch.equal(classifier(encoder(x)), small(x))  # the same network, split
    assert [m.out_features for m in classifier.modules() if isinstance(m, torch.nn.Linear)] == [200, 200, 10]
    resnet = build_model("preact_resnet18")
    assert resnet.encoder_and_classifier() == (resnet.backbone, 512, resnet.head)
