"""Argument checks shared by every entry point: numbers, images, labels, logits, features.

Each ``check_*`` raises ``ValueError`` with a message that names the bad value and says
what to do, and returns nothing (or the value in canonical form). The contract they
enforce (docs/INTERFACES.md): images are float32 NCHW in ``bounds`` ([0, 1]), finite;
labels are int64 ``(N,)`` in ``[0, num_classes)``; logits are finite ``(N, C)``.

Every check on a tensor costs one pass over it and one device synchronisation.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["is_int", "is_number", "check_int", "check_seed", "MAX_SEED", "check_number", "check_finite", "check_images",
           "check_labels", "check_logits", "check_features", "check_bool_vector", "check_in_ball"]


# ----------------------------------------------------------------------------- numbers
def is_int(value) -> bool:
    """A Python or NumPy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A finite Python or NumPy real number that is not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def check_int(name: str, value, minimum: int = 1, *, hint: str = "") -> int:
    """``int(value)`` if it is an integer >= ``minimum``, else ``ValueError`` naming it
    (``hint`` ends the message)."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}"
                         f"{' (' + hint + ')' if hint else ''}.")
    return int(value)


MAX_SEED = 2 ** 32 - 1  # numpy's legacy global seed (np.random.seed) takes no more


def check_seed(name: str, value, maximum: int | None = None) -> int:
    """``int(value)`` for a seed: an integer >= 0 (and <= ``maximum``), else ``ValueError``
    saying so (instead of numpy's or torch's message from deep inside)."""
    if not is_int(value) or value < 0 or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}={value!r} must be an integer >= 0{upper} (e.g. 0, 1, 2): it "
                         "seeds the random number generators.")
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``float(value)`` if it is a finite number in the interval, else ``ValueError``.

    The interval is ``[low, high]``, each end open with ``low_open`` / ``high_open``, either
    end omitted with None; ``hint`` (e.g. "e.g. 0.95") ends the message.
    """
    inside = is_number(value) and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))
    if not inside:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        raise ValueError(f"{name}={value!r} must be a finite number{where}"
                         f"{' (' + hint + ')' if hint else ''}.")
    return float(value)


# ----------------------------------------------------------------------------- tensors
def _is_tensor(value, name: str, what: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor {what}, got {type(value).__name__}; "
                         f"convert with torch.as_tensor(...).")


def _verb(name: str, singular: str, plural: str) -> str:
    """The verb form agreeing with ``name`` ("images have", "x_adv has")."""
    return plural if name.endswith("s") else singular


def check_finite(tensor: torch.Tensor, name: str, hint: str = "") -> None:
    """Raise unless every value of ``tensor`` (N, ...) is finite; names the count and the
    first example (row) holding a NaN/inf."""
    bad = ~torch.isfinite(tensor.detach())
    if tensor.numel() and bool(bad.any()):
        first = int(bad.reshape(len(bad), -1).any(1).nonzero()[0]) if bad.ndim else 0
        raise ValueError(f"{name} {_verb(name, 'holds', 'hold')} {int(bad.sum())} "
                         f"NaN/inf value(s) (first in example {first}); "
                         f"{hint or 'remove or repair those examples before measuring anything.'}")


def _looks_nhwc(shape: torch.Size) -> bool:
    return len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)


def check_images(images: torch.Tensor, bounds: tuple[float, float] | None = (0.0, 1.0),
                 name: str = "images") -> None:
    """Raise unless ``images`` is a finite float32 tensor (N, ...), NCHW when 4-D, with
    values in ``bounds`` (None: features with no range, e.g. the toy's)."""
    _is_tensor(images, name, "(N, C, H, W)")
    if images.dtype != torch.float32:
        fix = ".float() / 255" if not images.is_floating_point() else ".float()"
        raise ValueError(f"{name} must be float32 (the models' dtype, values in [0, 1]), got "
                         f"{images.dtype}; convert with {fix}.")
    if images.ndim < 1:
        raise ValueError(f"{name} must have a batch axis (N, ...), got a scalar.")
    if images.ndim == 3 and bounds is not None:
        raise ValueError(f"{name} of shape {tuple(images.shape)} {_verb(name, 'has', 'have')} no "
                         "channel axis; the models take (N, C, H, W): add it with "
                         "x.unsqueeze(1) (grayscale, e.g. MNIST (N, 28, 28) -> (N, 1, 28, 28)).")
    if _looks_nhwc(images.shape):
        raise ValueError(f"{name} of shape {tuple(images.shape)} {_verb(name, 'looks', 'look')} "
                         f"NHWC (channels last); "
                         f"the models take (N, C, H, W): permute to NCHW: x.permute(0, 3, 1, 2).")
    if images.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(images.detach().reshape(-1))).tolist()  # one pass, one sync
    if not (math.isfinite(low) and math.isfinite(high)):
        check_finite(images, name, "NaN or inf inputs would be scored as if they were images; "
                                   "repair or drop those examples.")
    if bounds is not None and (low < bounds[0] or high > bounds[1]):
        raise ValueError(f"{name} {_verb(name, 'has', 'have')} values in [{low:.4g}, {high:.4g}], "
                         f"outside the allowed "
                         f"range [{bounds[0]}, {bounds[1]}]; pass raw [0, 1] images and put any "
                         f"normalisation inside the model (drrdn_lib.models.Normalize).")


def check_labels(labels: torch.Tensor, n: int | None = None, num_classes: int | None = None,
                 name: str = "labels") -> None:
    """Raise unless ``labels`` is an int64 tensor (n,) of class indices in
    ``[0, num_classes)`` (``[0, inf)`` when num_classes is None)."""
    _is_tensor(labels, name, "(N,) int64")
    want = "(N,)" if n is None else f"({n},)"
    if labels.dtype != torch.int64:
        raise ValueError(f"{name} must be an int64 tensor of shape {want} holding class indices, "
                         f"got {labels.dtype}; convert with .long() (predictions: "
                         f"logits.argmax(1)).")
    if labels.ndim != 1 or (n is not None and labels.shape[0] != n):
        raise ValueError(f"{name} must be an int64 tensor of shape {want}, one class index per "
                         f"example, got shape {tuple(labels.shape)}.")
    if labels.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(labels.detach())).tolist()
    if num_classes is None and low < 0:
        raise ValueError(f"{name} in [{low}, {high}] include negative values; labels are class "
                         f"indices 0 .. num_classes - 1.")
    if num_classes is not None and (low < 0 or high >= num_classes):
        raise ValueError(f"{name} in [{low}, {high}] are outside the allowed range "
                         f"[0, {num_classes - 1}] of the model's classes; labels are class "
                         f"indices 0 .. num_classes - 1.")


def check_logits(logits: torch.Tensor, labels: torch.Tensor | None = None, *,
                 probabilities_ok: bool = False, atol: float = 1e-4) -> None:
    """Raise unless ``logits`` is a finite (B, C) tensor; unless ``probabilities_ok``, also
    if every row lies in [0, 1] and sums to 1 (a final softmax, which attacks cannot use).
    With ``labels`` (B,), also unless each label is in ``[0, C)``."""
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits of shape (B, num_classes), got "
                         f"{tuple(logits.shape)}.")
    with torch.no_grad():
        rows = logits.detach().float()
        finite = torch.isfinite(rows).all(1)
        if not bool(finite.all()):
            raise ValueError(f"the model returned NaN/inf logits for {int((~finite).sum())} of "
                             f"{len(rows)} examples (first: {int((~finite).nonzero()[0])}); no "
                             f"accuracy or attack can be computed from them: check the weights "
                             f"(a diverged training run) and the inputs.")
        if not probabilities_ok and rows.shape[1] > 1 and rows.min() >= 0 and rows.max() <= 1 \
                and torch.allclose(rows.sum(1), torch.ones_like(rows[:, 0]), atol=atol):
            raise ValueError("the model's outputs are probabilities (each row in [0, 1], summing "
                             "to 1); attacks need logits: remove the final softmax.")
    if labels is not None:
        check_labels(labels, len(rows), rows.shape[1])


def check_features(z, name: str, n: int | None = None) -> torch.Tensor:
    """A finite float ``(n, D)`` tensor as float32 (detached), else ``ValueError``."""
    _is_tensor(z, name, "(n, D)")
    if z.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, D), got shape {tuple(z.shape)}; flatten it "
                         f"with z.reshape(len(z), -1) (or z[:, None] for one feature).")
    if n is not None and z.shape[0] != n:
        raise ValueError(f"{name} has {z.shape[0]} rows but there are {n} examples; the "
                         f"representation must keep the batch size.")
    z = z.detach().float()
    check_finite(z, name, "check the model and the attack for overflow, or drop those rows.")
    return z


def check_bool_vector(values, name: str, n: int | None = None) -> torch.Tensor:
    """A CPU bool ``(n,)`` tensor from booleans or 0/1 values, else ``ValueError``."""
    values = torch.as_tensor(values).detach().cpu()
    if values.ndim != 1 or (n is not None and len(values) != n):
        want = "(n,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must be a 1-D vector of shape {want}, got "
                         f"{tuple(values.shape)}; pass one entry per example.")
    if values.dtype != torch.bool:
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"{name} must hold booleans (or 0/1), got values outside {{0, 1}}.")
        values = values.bool()
    return values


def check_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str = "Linf",
                  name: str = "x_adv", atol: float = 1e-6) -> None:
    """Raise unless every row of ``x_adv`` is within ``eps`` of the same row of ``x`` in the
    ``norm`` ("Linf" or "L2") distance (up to float32 rounding ``atol``)."""
    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm={norm!r} is not supported; use 'Linf' or 'L2'.")
    delta = (x_adv.detach() - x.detach().to(x_adv.device)).reshape(len(x), -1)
    if delta.numel() == 0:
        return
    dist = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    worst = float(dist.max())
    if worst > eps * (1 + 1e-5) + atol:
        n_out = int((dist > eps * (1 + 1e-5) + atol).sum())
        raise ValueError(f"{name} is outside the {norm} eps-ball: distance up to {worst:.4g} > "
                         f"eps {eps:g} for {n_out} of {len(dist)} examples; pass the eps (and "
                         f"norm) the adversarial inputs were made with, or project them.")
