"""Where a run's outputs go, and how they are written (atomically, as plain files).

Every notebook writes its figures and one ``metrics.json`` into its run folder; the
default folder is ``results/<name>/`` in the repository (ignored by git).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "run_dir", "write_json_atomic", "save_metrics", "save_figure", "to_jsonable"]


def run_dir(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """The folder for a run's outputs, created if needed: ``out_dir`` or ``results/<name>``."""
    path = Path(out_dir) if out_dir else REPO_ROOT / "results" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_jsonable(value):
    """Recursively turn tensors, numpy scalars/arrays, dataclasses and paths into JSON types.

    Non-finite floats become ``None`` so that the file stays valid JSON.
    """
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # torch tensors and numpy arrays/scalars
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(to_jsonable(data), stream, indent=2)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_metrics(out_dir: str | os.PathLike, metrics: dict, name: str = "metrics.json") -> Path:
    """Merge ``metrics`` into ``out_dir/metrics.json`` (created if absent) and return its path."""
    path = Path(out_dir) / name
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(to_jsonable(metrics))
    return write_json_atomic(path, current)


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> Path:
    """Save a matplotlib figure as ``out_dir/name.png`` (150 dpi) and return the path."""
    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path
