"""The batch runner on a real Slurm cluster: one job cancelled with scancel, the others complete.

Needs a running cluster (``make slurm-test`` installs Debian's Slurm, starts the one-node
cluster of ``scripts/slurm/start_local_cluster.sh``, runs this file and stops it); skipped
otherwise, so ``make test`` does not need Slurm. The configuration is ``$SLURM_CONF``, else
``$DRRDN_SLURM_DIR/etc/slurm.conf`` (default ``/var/tmp/drrdn-slurm``).
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "tests/fixtures/batch_nb.ipynb"
CONF = os.environ.get("SLURM_CONF") or str(
    Path(os.environ.get("DRRDN_SLURM_DIR", "/var/tmp/drrdn-slurm")) / "etc" / "slurm.conf")
START = "start it with `scripts/slurm/start_local_cluster.sh` (as root) or run `make slurm-test`"


def _cluster_problem() -> str | None:
    """Why the Slurm test cannot run here, or None when a cluster answers."""
    if shutil.which("sbatch") is None:
        return f"sbatch is not on PATH (no Slurm here); {START}"
    if not Path(CONF).is_file():
        return f"no Slurm configuration at {CONF}; {START}"
    try:
        ping = subprocess.run(["scontrol", "ping"], env={**os.environ, "SLURM_CONF": CONF},
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`scontrol ping` failed ({error}); {START}"
    if "is UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip() or "no answer").splitlines()[0]
        return f"the Slurm cluster of {CONF} is not up ({said}); {START}"
    return None


PROBLEM = _cluster_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


def _slurm(*args: str) -> str:
    """Run a Slurm command against the test cluster; its stdout."""
    return subprocess.run(args, env={**os.environ, "SLURM_CONF": CONF}, check=True,
                          capture_output=True, text=True, timeout=30).stdout


def _array_job(name: str, timeout_s: float = 60) -> str:
    """The id of the job array called ``name``, once squeue shows it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.match(r"(\d+)_", _slurm("squeue", "-h", "-n", name, "-o", "%i"))
        if match:
            return match.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no job array {name!r} in squeue after {timeout_s} s")


def test_a_grid_on_slurm_reports_the_cancelled_run_and_completes_the_others(tmp_path):
    stem = f"slurm_grid_{os.getpid()}"
    grid = tmp_path / f"{stem}.yaml"
    grid.write_text(yaml.safe_dump({
        "out_root": str(tmp_path / "out"), "seeds": [0, 1, 2],
        "runs": [{"notebook": NOTEBOOK, "parameters": {"x": 1.0}}],
        "slurm": {"timeout_min": 10, "cpus_per_task": 1, "mem_gb": 1}}))
    env = {**os.environ, "SLURM_CONF": CONF, "PYTHONPATH": str(REPO)}
    batch = subprocess.Popen([sys.executable, "-m", "drrdn_lib.batch", str(grid), "--executor",
                              "slurm"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        job = _array_job(f"batch-{stem}")
        _slurm("scancel", f"{job}_2")  # the third run (seed 2): 2 CPUs, so it waits in the queue
        output, _ = batch.communicate(timeout=300)
    finally:
        batch.kill()
    assert batch.returncode == 1, output  # one failed run
    table = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("seed")
    assert table["state"].to_dict() == {0: "complete", 1: "complete", 2: "failed"}, output
    # sacct says CANCELLED, or (cancelled while pending) has no record and squeue lost it
    lost = "CANCELLED|left the queue without a result"
    assert re.search(lost, table.loc[2, "error"]), table.loc[2, "error"]
    assert table.loc[0, "score"] == 10.0 and table.loc[1, "score"] == 11.0
    assert re.search(rf"failed batch_nb__[0-9a-f]{{8}}__seed=2: .*({lost})", output), output
