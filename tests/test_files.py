"""drrdn_lib.files: atomic writes keep the old file on any failure; the folder lock holds
across processes and dies with its holder."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from drrdn_lib import files
from drrdn_lib.files import FolderLocked, folder_lock

REPO = Path(__file__).resolve().parent.parent
HOLDER = """
import sys, time
from drrdn_lib.files import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


class Unpicklable:
    """An object whose serialisation raises partway through a write."""

    def __reduce__(self):
        raise RuntimeError("cannot serialise this")


def _listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_every_writer_round_trips(tmp_path):
    files.write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    files.write_text_atomic(tmp_path / "t.txt", "héllo")
    files.write_json_atomic(tmp_path / "sub" / "j.json", {"a": np.float32(1.5), "b": float("nan"),
                                                          "p": tmp_path})
    files.save_npz_atomic(tmp_path / "a.npz", {"x": np.arange(5)})
    files.save_torch_atomic({"w": torch.ones(2)}, tmp_path / "c.pt")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "sub" / "j.json").read_text()) == {
        "a": 1.5, "b": None, "p": str(tmp_path)}
    with np.load(tmp_path / "a.npz") as archive:
        assert archive["x"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.ones(2))
    assert _listing(tmp_path) == ["a.npz", "b.bin", "c.pt", "sub", "t.txt"]  # no temp left


def _fail_in_serialisation(path, monkeypatch):
    files.save_torch_atomic({"ok": torch.zeros(3), "bad": Unpicklable()}, path)


def _fail_in_npz_serialisation(path, monkeypatch):
    files.save_npz_atomic(path, {"x": np.zeros(1000), "y": np.array([Unpicklable()], dtype=object)})


def _fail_on_full_disk(path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    files.save_torch_atomic({"w": torch.ones(3)}, path)


def _fail_on_replace(path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "replace refused")
    monkeypatch.setattr(os, "replace", refuse)
    files.write_json_atomic(path, {"new": True})


@pytest.mark.parametrize("fail", [_fail_in_serialisation, _fail_in_npz_serialisation,
                                  _fail_on_full_disk, _fail_on_replace])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, fail):
    path = tmp_path / "target"
    path.write_bytes(b"the good old content")
    with pytest.raises((RuntimeError, OSError, ValueError)):
        fail(path, monkeypatch)
    assert path.read_bytes() == b"the good old content"
    assert _listing(tmp_path) == ["target"]


def test_unencodable_json_raises_before_touching_anything(tmp_path):
    path = files.write_json_atomic(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        files.write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1} and _listing(tmp_path) == ["m.json"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        json_path = files.write_json_atomic(tmp_path / "m.json", {})
        torch_path = files.save_torch_atomic({}, tmp_path / "c.pt")
        with folder_lock(tmp_path / "run"):
            pass
    finally:
        os.umask(old)
    for path in (json_path, torch_path, tmp_path / "run" / files.LOCK_NAME):
        assert path.stat().st_mode & 0o777 == mode, path.name


# ---- folder lock --------------------------------------------------------------------------

def _start_holder(folder: Path, hold_s: float) -> subprocess.Popen:
    """A separate Python process that takes the folder's lock, says ``locked``, holds it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(hold_s)],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_fails_clearly_naming_folder_and_holder(tmp_path):
    holder = _start_holder(tmp_path / "run", 30)
    try:
        started = time.monotonic()
        with pytest.raises(FolderLocked, match=rf"{tmp_path / 'run'} is in use by pid {holder.pid} "):
            with folder_lock(tmp_path / "run", wait=0):
                pytest.fail("took a lock that another process holds")
        assert time.monotonic() - started < 1.0
        with pytest.raises(FolderLocked, match=f"pid {holder.pid}"):
            with folder_lock(tmp_path / "run", wait=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_waiting_process_proceeds_once_the_holder_lets_go(tmp_path):
    holder = _start_holder(tmp_path / "run", 0.5)
    try:
        with folder_lock(tmp_path / "run", wait=20):
            assert holder.poll() is not None or holder.stdout.readline().strip() == "released"
            info = json.loads((tmp_path / "run" / files.LOCK_NAME).read_text())
            assert info["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_does_not_leave_the_folder_locked(tmp_path):
    holder = _start_holder(tmp_path / "run", 60)
    with pytest.raises(FolderLocked):
        with folder_lock(tmp_path / "run", wait=0):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with folder_lock(tmp_path / "run", wait=0) as folder:
        assert folder == tmp_path / "run"


def test_the_lock_is_not_reentrant_within_one_process(tmp_path):
    with folder_lock(tmp_path, wait=0):
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
            with folder_lock(tmp_path, wait=0):
                pass
        with folder_lock(tmp_path, wait=0, name=".train.lock"):  # another name: independent
            assert (tmp_path / ".train.lock").exists()
    with folder_lock(tmp_path, wait=0):  # released on exit
        pass


def test_saved_metrics_carry_provenance(tmp_path):
    import torch
    from drrdn_lib.results import save_metrics
    path = save_metrics(tmp_path, {"parameters": {"device": "cpu"}, "accuracy": {"a": 0.5}})
    saved = json.loads(path.read_text())
    assert saved["accuracy"] == {"a": 0.5} and saved["provenance"]["torch"] == str(torch.__version__)
    assert saved["provenance"]["device"] == "cpu" and saved["provenance"]["precision"] == "float32"
    assert saved["provenance"]["commit"]


def test_the_commit_is_read_when_the_results_module_loads():
    # a long job's records name the code it loaded, not the tree at the time it saves
    import subprocess
    import sys
    code = ("from drrdn_lib import results, provenance; "
            "print(provenance.git_commit.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "1"


def test_a_reports_own_outputs_do_not_mark_the_code_dirty(tmp_path, monkeypatch):
    # re-running a report into its committed folder rewrites its notebook before the kernel
    # reads the commit; only code (anything outside reports/) makes a record "+dirty"
    import subprocess
    from drrdn_lib import provenance

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "out.ipynb").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    read = provenance.git_commit.__wrapped__
    assert not read().endswith("+dirty")
    (tmp_path / "reports" / "out.ipynb").write_text('{"cells": []}')
    assert not read().endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert read().endswith("+dirty")
