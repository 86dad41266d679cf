"""Where a number came from: the code's commit, the software, the machine and the precision.

Every metrics file the project writes carries :func:`provenance` (training: one entry per
process that trained part of the run, since a resumed run may span machines and commits).
"""
from __future__ import annotations

import datetime
import functools
import platform
import subprocess
import sys
from pathlib import Path

import torch

__all__ = ["provenance", "git_commit", "device_name"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD's hash, with ``+dirty`` when tracked files differ from it; ``unknown`` outside
    a git checkout. Read once per process, when this module is imported (Python reads the
    code once too): edits made to the working tree while a long job runs do not mark that
    job's records ``+dirty``, and edits made before it started do. Files under
    ``reports/`` do not count: they are executed outputs, not code, and a report re-run
    into its own folder rewrites its notebook (papermill) before the kernel imports this."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


git_commit()


@functools.lru_cache(maxsize=8)
def device_name(device: str = "cpu") -> str:
    """The GPU's name for a CUDA device; the CPU's model name (from /proc/cpuinfo) otherwise."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def provenance(device: str = "cpu", precision: str = "float32") -> dict:
    """{commit, torch, python, device, device_name, threads, precision, started (UTC ISO)}."""
    return {"commit": git_commit(), "torch": str(torch.__version__),
            "python": sys.version.split()[0], "device": str(device),
            "device_name": device_name(str(device)), "threads": torch.get_num_threads(),
            "precision": precision,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
