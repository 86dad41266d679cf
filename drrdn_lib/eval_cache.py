"""A disk cache for long evaluations, so that a killed evaluation resumes where it stopped.

An entry is keyed by what determines its result: the model's weights, the images and
labels, and the attack's configuration (any JSON-able value), hashed together
(:func:`fingerprint`). Evaluating the official MNIST test set with the paper's attacks
takes hours on a CPU; with a ``cache_dir``, each finished model (and each surrogate's
transfer examples) is written at once and loaded back on the next run.

Entries are written with ``torch.save`` and read back by :func:`safe_load`:
``torch.load(weights_only=True)``, which rebuilds only tensors, plain Python types and
the library's own record classes (:data:`ALLOWED`: ``EvaluationRecord``, ``AttackResult``,
``CheckResult``, whose state is set field by field, never by running their code). A file
that asks for anything else (e.g. a pickle whose ``__reduce__`` would call a function)
is refused with :class:`UnsafeRecordError`; nothing in a committed cache runs code.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .files import make_folder, save_torch_atomic

__all__ = ["fingerprint", "cached", "safe_load", "UnsafeRecordError", "allowed_classes"]


class UnsafeRecordError(ValueError):
    """A stored record that is not tensors, plain types and the library's record classes."""


def allowed_classes() -> list[type]:
    """The library's own classes a stored record may hold (plain dataclasses)."""
    from .evaluate import AttackResult, EvaluationRecord
    from .masking_checks import CheckResult

    return [EvaluationRecord, AttackResult, CheckResult]


def safe_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` with :func:`allowed_classes` allowed; a file
    that holds anything else raises :class:`UnsafeRecordError` naming it."""
    try:
        with torch.serialization.safe_globals(allowed_classes()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        why = next((line.strip() for line in str(error).splitlines()
                    if "nsupported" in line), "not a weights-only file")
        raise UnsafeRecordError(
            f"{path} is not a record this library wrote: it asks for objects outside the "
            f"allow-list (tensors, plain types, {', '.join(c.__name__ for c in allowed_classes())}) "
            f"and was not loaded ({why}); restore it (git checkout -- {Path(path).name}) or "
            "delete it to compute it again.") from None


def _update(digest, part: Any) -> None:
    if isinstance(part, nn.Module):
        for name, tensor in part.state_dict().items():
            digest.update(name.encode())
            _update(digest, tensor)
    elif isinstance(part, torch.Tensor):
        array = part.detach().cpu().contiguous()
        digest.update(f"{array.dtype}{tuple(array.shape)}".encode())
        flat = array.reshape(-1)  # a 0-d tensor (batch norm's step count) cannot be viewed as bytes
        digest.update(flat.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
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
        return safe_load(path)
    make_folder(path.parent)
    state = path.with_name(f"{path.stem}.partial.pt")
    value = compute(state) if partial else compute()
    save_torch_atomic(value, path)
    state.unlink(missing_ok=True)
    return value
