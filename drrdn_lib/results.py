"""Where a run's outputs go, and how they are written (atomically, through :mod:`.files`).

Every notebook writes its figures and one ``metrics.json`` into its run folder; the
default folder is ``results/<name>/`` in the repository (ignored by git).
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

from .files import make_folder, to_jsonable, write_bytes_atomic, write_json_atomic
from .provenance import REPO_ROOT, provenance  # provenance reads the commit now, as the code is loaded

__all__ = ["REPO_ROOT", "repo_relative", "run_dir", "write_json_atomic", "save_metrics", "save_figure", "to_jsonable"]


def repo_relative(path: str | os.PathLike) -> Path:
    """``path`` resolved, relative to the repository when it lies inside it (so that a
    record names no machine path), else absolute."""
    where = Path(path).resolve()
    return where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where


def run_dir(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """The folder for a run's outputs, created if needed: ``out_dir`` or ``results/<name>``."""
    return make_folder(Path(out_dir) if out_dir else REPO_ROOT / "results" / name)


def save_metrics(out_dir: str | os.PathLike, metrics: dict, name: str = "metrics.json") -> Path:
    """Merge ``metrics`` into ``out_dir/metrics.json`` (created if absent) and return its path.
    A ``provenance`` entry (``drrdn_lib.provenance``: commit, torch, device, threads; the
    evaluation precision, float32) is added unless ``metrics`` has one; the device is
    ``metrics["parameters"]["device"]`` when given, else the CPU."""
    path = Path(out_dir) / name
    current = json.loads(path.read_text()) if path.exists() else {}
    device = str((metrics.get("parameters") or {}).get("device") or "cpu")
    current.update(to_jsonable({"provenance": provenance(device, "float32"), **metrics}))
    return write_json_atomic(path, current)


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> Path:
    """Save a matplotlib figure as ``out_dir/name.png`` (150 dpi, atomically); return the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return write_bytes_atomic(Path(out_dir) / f"{name}.png", buffer.getvalue())
