"""Small PyTorch helpers every stage uses: train/eval mode restored on exit, the model's
device, and batched prediction."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .validate import check_int, check_logits

__all__ = ["eval_mode", "train_mode", "model_device", "predict_logits", "predict_labels"]


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    modes = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, was_training in modes:
            module.training = was_training


def eval_mode(model: nn.Module):
    """Context manager: ``model`` in eval mode; on exit every submodule gets back its own
    train/eval flag (a model with mixed modes comes back exactly as it was)."""
    return _mode(model, False)


def train_mode(model: nn.Module):
    """Context manager: ``model`` in train mode; on exit every submodule gets back its own
    train/eval flag."""
    return _mode(model, True)


def model_device(model: nn.Module, fallback: torch.device | str | None = None) -> torch.device:
    """The device of the model's first parameter or buffer; ``fallback`` (default CPU) for a
    model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device(fallback if fallback is not None else "cpu")


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, C) of ``model`` on ``images`` (N, ...), in eval mode (restored) under
    ``torch.inference_mode`` (the result cannot enter autograd), ``batch_size`` examples at
    a time on the model's device; returned on the images' device. Raises ``ValueError`` if the model returns NaN/inf logits (their argmax
    would read as class 0). The caller validates the images (:func:`validate.check_images`)."""
    check_int("batch_size", batch_size)
    device = model_device(model, images.device)
    out = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(model(images[start:start + batch_size].to(device)).to(images.device))
    if not out:
        return images.new_zeros(0, 0)
    logits = torch.cat(out)
    check_logits(logits, probabilities_ok=True)
    return logits


def predict_labels(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes, int64 (N,), on the images' device (see :func:`predict_logits`)."""
    logits = predict_logits(model, images, batch_size)
    return logits.argmax(1) if logits.numel() else torch.zeros(0, dtype=torch.int64, device=images.device)
