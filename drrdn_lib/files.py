"""The one home for writing files: atomic writes and a run-folder lock.

Every writer here goes through :func:`atomic_write`: the content is written to a
temporary file in the target's folder, flushed and ``fsync``-ed, given the mode a plain
``open()`` would give it (``0o666`` minus the umask, so collaborators sharing a umask
can read results and checkpoints), then moved over the target with ``os.replace``. A
crash, a kill or a full disk at any point leaves either the old file or the new one,
never a mix, and the temporary file is removed when the write fails in this process.

:func:`folder_lock` keeps two processes from writing one run folder at once. It holds
an ``fcntl.flock`` on ``<folder>/.lock``; the kernel drops the lock when its holder
exits, however it exits (even SIGKILL), so a crash never leaves a folder locked.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["FolderLocked", "atomic_write", "write_bytes_atomic", "write_text_atomic",
           "write_json_atomic", "save_npz_atomic", "save_torch_atomic", "to_jsonable",
           "file_mode", "folder_lock", "LOCK_NAME"]

LOCK_NAME = ".lock"
_POLL_S = 0.05  # how often a waiting folder_lock retries


class FolderLocked(RuntimeError):
    """Another process holds a folder's lock; the message names the folder and the holder."""


# ----------------------------------------------------------------------------- atomic writes

def _current_umask() -> int:
    """The process's umask, read from /proc (Linux) or, failing that, by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence only the fallback
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits a new file gets from ``open()``: ``0o666 & ~umask``."""
    return 0o666 & ~_current_umask()


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(stream)`` on a temporary file next to ``path``, then move it onto ``path``.

    The folder is created if needed. On any failure (``write`` raising, a full disk, an
    interrupt) the temporary file is removed, the old ``path`` is untouched and the error
    propagates. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fchmod(stream.fileno(), file_mode())  # mkstemp makes 0600 files
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda stream: stream.write(data))


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding``."""
    return write_bytes_atomic(path, text.encode(encoding))


def to_jsonable(value):
    """Recursively turn tensors, numpy scalars/arrays, dataclasses and paths into JSON types.

    Objects with ``to_dict()`` are converted through it; non-finite floats become
    ``None`` so that the file stays valid JSON.
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
    """Write ``data`` (through :func:`to_jsonable`) as indented JSON to ``path``, atomically.

    The text is built before the temporary file is opened: data that cannot be encoded
    raises ``TypeError`` and leaves nothing behind.
    """
    text = json.dumps(to_jsonable(data), indent=2) + "\n"
    return write_text_atomic(path, text)


def save_npz_atomic(path: str | os.PathLike, arrays: dict, compressed: bool = True) -> Path:
    """Write ``arrays`` (name -> numpy array) as an ``.npz`` file, atomically.

    ``compressed`` uses ``np.savez_compressed`` (deflate), else ``np.savez``. The path is
    used as given (numpy's habit of appending ``.npz`` does not apply to streams).
    """
    import numpy as np

    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda stream: save(stream, **arrays))


def save_torch_atomic(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints: a crash keeps the old one)."""
    import torch

    return atomic_write(path, lambda stream: torch.save(obj, stream))


# ----------------------------------------------------------------------------- folder lock

def _holder(lock_path: Path) -> str:
    """Who holds the lock, as its holder wrote it (``pid 123 on host since TIME``)."""
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    if not info.get("pid"):
        return "a process that has not written its pid yet"
    return f"pid {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')}"


def _try_lock(handle: int) -> bool:
    """Take an exclusive flock on ``handle`` without blocking; False if another holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, wait: float | None = 0.0,
                name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the ``with`` block.

    Args:
        folder: the run folder; the lock is ``folder/<name>`` (left in place afterwards:
            deleting a lock file races with processes that opened it).
        wait: seconds to wait for another holder to let go; ``0`` fails at once, ``None``
            waits for ever.
        name: the lock file's name: two layers that may lock one folder (the batch runner
            around a notebook, training inside it) use different names, so that neither
            waits for the other.
    Raises:
        FolderLocked: still held by another process after ``wait`` seconds; the message
            names the folder and the holder's pid and host.
    Yields the folder's path. A lock is per open file: a second ``folder_lock`` on the
    same folder in the same process also waits or fails (it is not re-entrant).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / name
    handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
    locked = False
    try:
        deadline = None if wait is None else time.monotonic() + max(wait, 0.0)
        while not _try_lock(handle):
            if deadline is not None and time.monotonic() >= deadline:
                raise FolderLocked(
                    f"{folder} is in use by {_holder(lock_path)} (lock file {lock_path}); "
                    f"wait for that process to finish (or stop it), or use another folder.")
            time.sleep(_POLL_S)
        locked = True
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(record).encode(), 0)
        yield folder
    finally:
        if locked:
            os.ftruncate(handle, 0)  # no stale pid for the next reader
        os.close(handle)  # closing the last descriptor releases the flock
