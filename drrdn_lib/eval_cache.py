"""A disk cache for long evaluations, so that a killed evaluation resumes where it stopped.

An entry is keyed by what determines its result: the model's weights, the images and
labels, and the attack's configuration (any JSON-able value), hashed together
(:func:`fingerprint`). Evaluating the official MNIST test set with the paper's attacks
takes hours on a CPU; with a ``cache_dir``, each finished model (and each surrogate's
transfer examples) is written at once and loaded back on the next run.

Entries are pickled Python objects written by this library (``torch.save``), loaded with
``weights_only=False``: point ``cache_dir`` only at folders this library wrote.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .files import save_torch_atomic

__all__ = ["fingerprint", "cached"]


def _update(digest, part: Any) -> None:
    if isinstance(part, nn.Module):
        for name, tensor in part.state_dict().items():
            digest.update(name.encode())
            _update(digest, tensor)
    elif isinstance(part, torch.Tensor):
        array = part.detach().cpu().contiguous()
        digest.update(f"{array.dtype}{tuple(array.shape)}".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    elif isinstance(part, np.ndarray):
        _update(digest, torch.from_numpy(np.ascontiguousarray(part)))
    else:
        digest.update(json.dumps(part, sort_keys=True, default=repr).encode())


def fingerprint(*parts: Any) -> str:
    """A SHA-256 (first 16 hex digits) of models (their state_dict), tensors, arrays and
    JSON-able values, in order: equal inputs give equal fingerprints."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(type(part).__name__.encode())
        _update(digest, part)
    return digest.hexdigest()[:16]


def cached(cache_dir: str | Path | None, kind: str, key: tuple, compute: Callable[..., Any],
           partial: bool = False) -> Any:
    """``compute()``, or the value stored under ``cache_dir/<kind>-<fingerprint(*key)>.pt``;
    a computed value is stored there atomically. ``cache_dir`` None: no cache.

    ``partial``: ``compute(state_path)`` is given ``<kind>-<fingerprint>.partial.pt`` (None
    without a cache) to keep its progress in while it runs and to resume from (an hours-long
    evaluation then loses at most one batch when killed); the file is removed once the
    value is stored."""
    if cache_dir is None:
        return compute(None) if partial else compute()
    path = Path(cache_dir) / f"{kind}-{fingerprint(*key)}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = path.with_name(f"{path.stem}.partial.pt")
    value = compute(state) if partial else compute()
    save_torch_atomic(value, path)
    state.unlink(missing_ok=True)
    return value
