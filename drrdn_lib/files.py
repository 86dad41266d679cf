"""The one home for writing files: atomic writes and a run-folder lock.

Every writer here goes through :func:`atomic_write`: the content is written to a
temporary file in the target's folder, flushed and ``fsync``-ed, given the mode a plain
``open()`` would give it (``0o666`` minus the umask, so collaborators sharing a umask
can read results and checkpoints), then moved over the target with ``os.replace``. A
crash, a kill or a full disk at any point leaves either the old file or the new one,
never a mix, and the temporary file is removed when the write fails in this process. A
write that fails for want of space or because the target's folder is a file says so and
what to do (:class:`WriteError`, an ``OSError``).

:func:`commit_folder` does the same for a folder's contents: a result built in a staging
folder beside the old one (``<folder>/.attempt``, :func:`fresh_stage`) replaces it only once
it is complete. Renaming the stage to ``<folder>/.swap`` is the commit point; if the
process dies while the entries are moved, :func:`finish_swap` completes the move the next
time the folder is read, so the folder holds either the old result or the new one.

:func:`folder_lock` keeps two processes from writing one run folder at once. It holds
an ``fcntl.flock`` on ``<folder>/.lock``; the kernel drops the lock when its holder
exits, however it exits (even SIGKILL), so a crash never leaves a folder locked.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["FolderLocked", "WriteError", "make_folder", "atomic_write", "fresh_stage", "commit_folder",
           "finish_swap", "STAGE", "SWAP", "write_bytes_atomic", "write_text_atomic",
           "write_json_atomic", "save_npz_atomic", "save_torch_atomic", "to_jsonable",
           "file_mode", "folder_lock", "LOCK_NAME"]

LOCK_NAME = ".lock"
STAGE, SWAP, MANIFEST = ".attempt", ".swap", ".manifest.json"
_POLL_S = 0.05  # how often a waiting folder_lock retries


class FolderLocked(RuntimeError):
    """Another process holds a folder's lock; the message names the folder and the holder."""


class WriteError(OSError):
    """A file that could not be written (a full disk, a folder that is a file, no
    permission); the message names the file and what to do. The old file is kept."""


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
    make_folder(path.parent, path)
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fchmod(stream.fileno(), file_mode())  # mkstemp makes 0600 files
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, error) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def make_folder(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """Create ``folder`` (and its parents) for ``target`` (default: the folder itself) and
    return it; :class:`WriteError` naming the part of the path that is a file, if one is."""
    folder = Path(folder)
    target = folder if target is None else target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise WriteError(error.errno, f"cannot write {target}: {blocker} is a file, not a folder; "
                         "move that file away or choose another output folder") from error
    except OSError as error:
        raise _write_error(Path(target), error) from error
    return folder


def _write_error(path: Path, error: OSError) -> OSError:
    """``error`` as a :class:`WriteError` whose message says what to do (if it is one of
    the failures a user can fix); other OS errors are returned unchanged."""
    if isinstance(error, WriteError):
        return error
    hints = {errno.ENOSPC: "the disk is full: free space (or choose another folder) and run again",
             errno.EDQUOT: "the disk quota is exceeded: free space and run again",
             errno.EACCES: "no permission to write there: choose another folder",
             errno.EROFS: "the file system is read-only: choose another folder"}
    if error.errno not in hints:
        return error
    return WriteError(error.errno, f"cannot write {path}: {hints[error.errno]} (the old "
                      f"{path.name}, if any, is unchanged)")


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


# ----------------------------------------------------------------------------- folder swap

def _remove(path: Path) -> None:
    """Delete a file, link or folder tree (nothing if absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fresh_stage(folder: str | os.PathLike, name: str = STAGE) -> Path:
    """An empty staging folder ``folder/name`` (the leftovers of a killed attempt removed)."""
    stage = Path(folder) / name
    make_folder(folder, stage)
    _remove(stage)
    stage.mkdir()
    return stage


def commit_folder(folder: str | os.PathLike, stage: str | os.PathLike,
                  last: tuple[str, ...] = ()) -> Path:
    """Make ``stage``'s entries the contents of ``folder``: every visible entry of ``folder``
    (a name not starting with ``.``) that ``stage`` lacks is removed, every entry of
    ``stage`` replaces its namesake, those named in ``last`` after the others (e.g. a
    status file that says the result is complete). The caller holds the folder's lock.
    Returns ``folder``."""
    folder, stage = Path(folder), Path(stage)
    names = sorted((p.name for p in stage.iterdir() if p.name != MANIFEST),
                   key=lambda name: (name in last, last.index(name) if name in last else 0, name))
    write_json_atomic(stage / MANIFEST, names)
    _remove(folder / SWAP)
    os.replace(stage, folder / SWAP)  # the commit point: from here on the new result wins
    _fsync_folder(folder)
    finish_swap(folder)
    return folder


def finish_swap(folder: str | os.PathLike) -> bool:
    """Complete a :func:`commit_folder` that a dead process left half done (idempotent);
    False when there is none. The caller holds the folder's lock."""
    folder = Path(folder)
    swap = folder / SWAP
    try:
        names = json.loads((swap / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    for entry in folder.iterdir():
        if not entry.name.startswith(".") and entry.name not in names:
            _remove(entry)
    for name in names:
        if (swap / name).exists() or (swap / name).is_symlink():
            target = folder / name
            if (target.is_dir() and not target.is_symlink()) or (swap / name).is_dir():
                _remove(target)  # rename cannot put a folder over a file, or over a full folder
            os.replace(swap / name, target)
    _fsync_folder(folder)
    _remove(swap)
    return True


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
    folder = make_folder(folder)
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
