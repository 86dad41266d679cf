"""Small PyTorch helpers every stage uses: train/eval mode restored on exit, the model's
device, the channels_last layout of an evaluation, and batched prediction."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .validate import check_int, check_logits

__all__ = ["eval_mode", "train_mode", "channels_last_layout", "channels_last_pays",
           "as_channels_last", "model_device", "no_tf32", "predict_logits", "predict_labels"]


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


@contextlib.contextmanager
def channels_last_layout(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Context manager: the model's 4-D parameters and buffers (convolution kernels) in
    channels_last (NHWC) memory format (faster on AVX-512 CPUs, :func:`channels_last_pays`);
    on exit each gets back its own tensor, layout included. Values
    are unchanged: only the order of the floats in memory, hence the rounding of a sum,
    differs. Models without 4-D weights (MLPs) are untouched; ``enabled=False`` is a no-op."""
    saved = ([(t, t.data) for t in (*model.parameters(), *model.buffers()) if t.dim() == 4]
             if enabled else [])
    for tensor, data in saved:
        tensor.data = data.contiguous(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for tensor, data in saved:
            tensor.data = data


def channels_last_pays(device: torch.device | str = "cpu") -> bool:
    """Whether evaluating in channels_last is measured faster on this machine: on a CPU
    whose PyTorch kernels use AVX-512 (NCHW max-pooling is the slow operator there;
    benchmarks/RESULTS.md sections 1 and 7), not on an AVX2-only CPU (PGD and CW 1.02-1.16x
    slower, Square 1.27x faster: about even) nor on a GPU (never measured)."""
    if torch.device(device).type != "cpu":
        return False
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def as_channels_last(images: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``images`` (N, C, H, W) in channels_last memory format (a copy unless already so);
    a tensor of any other rank, or ``enabled=False``, returns ``images`` as they are."""
    if not enabled or images.dim() != 4:
        return images
    return images.contiguous(memory_format=torch.channels_last)


def no_tf32(device: torch.device | str) -> None:
    """On a CUDA ``device``, turn off TensorFloat-32 for matmuls and cuDNN convolutions
    (process-wide: ``torch.backends``), which PyTorch allows for convolutions by default:
    a run or evaluation this project calls float32 is then float32 on a GPU too (TF32
    keeps 10 mantissa bits). bfloat16 autocast is unaffected. A no-op on the CPU."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


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
