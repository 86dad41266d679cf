"""A tiny classification problem for the attack and evaluation tests: ten noisy class
prototypes on 8 x 8 images, and a small network trained on them in about a second."""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES, SIDE = 10, 8


def synthetic(n: int, generator: torch.Generator):
    """Ten noisy class prototypes, images (n, 1, 8, 8) in [0, 1], labels (n,) int64."""
    protos = torch.rand(N_CLASSES, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    images = protos[labels] + 0.15 * torch.randn(n, 1, SIDE, SIDE, generator=generator)
    return images.clamp(0, 1), labels


def train_tiny(build: Callable[[], nn.Module], held_out: int):
    """``build()`` trained by Adam for 100 steps of 128 on 1,024 examples (seeded), in eval
    mode with no gradients left; returns (model, images, labels) of ``held_out`` new examples."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    images, labels = synthetic(1024, g)
    model = build()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        idx = torch.randint(0, len(labels), (128,), generator=g)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().zero_grad(set_to_none=True)
    return model, *synthetic(held_out, g)
