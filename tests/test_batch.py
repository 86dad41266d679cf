"""The batch runner on a tiny fixture notebook: failures kept apart, reruns skipped, summaries.

Each papermill run starts a kernel (seconds), so the runs here are few: one 2 x 2 grid
shared by the module, one submitit-local run; everything else only reads grid files.
"""
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from drrdn_lib import batch
from drrdn_lib.batch import GridError, load_grid

NOTEBOOK = "tests/fixtures/batch_nb.ipynb"
REPO = Path(__file__).resolve().parent.parent


def _write_grid(folder, runs, **top) -> str:
    """A grid file in ``folder`` with ``out_root`` in ``folder/out`` unless given."""
    data = {"out_root": str(folder / "out"), "seeds": [0, 1], "runs": runs, **top}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _main(*argv) -> tuple[int, str]:
    """``batch.main(argv)`` with its stdout captured."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = batch.main([str(arg) for arg in argv])
    return code, stdout.getvalue()


def _unhashed(run_id: str) -> str:
    """A run id without its parameters hash: ``a__x=1__0123abcd__seed=0`` -> ``a__x=1__seed=0``."""
    return re.sub(r"__[0-9a-f]{8}(?=__seed=)", "", run_id)


def _states(out_root) -> dict:
    """status.json of each run folder, keyed by the run id without its hash."""
    return {_unhashed(path.parent.name): json.loads(path.read_text())
            for path in sorted(out_root.glob("*/status.json"))}


@pytest.fixture(scope="module")
def ran_grid(tmp_path_factory):
    """A 2 (fail) x 2 (seed) grid run once with two workers: two runs fail, two complete."""
    folder = tmp_path_factory.mktemp("grid")
    runs = [{"notebook": NOTEBOOK, "parameters": {"x": 2.0}, "grid": {"fail": [False, True]}}]
    grid = _write_grid(folder, runs, plot_metrics=["score"])
    code, output = _main(grid, "--workers", 2)
    return {"grid": grid, "out_root": folder / "out", "code": code, "output": output}


def test_failed_runs_are_recorded_without_losing_the_others(ran_grid):
    assert ran_grid["code"] == 1
    states = _states(ran_grid["out_root"])
    assert {name: s["state"] for name, s in states.items()} == {
        "batch_nb__fail=false__seed=0": "complete", "batch_nb__fail=false__seed=1": "complete",
        "batch_nb__fail=true__seed=0": "failed", "batch_nb__fail=true__seed=1": "failed"}
    failed = states["batch_nb__fail=true__seed=1"]
    assert "RuntimeError: asked to fail (x=2.0, seed=1)" in failed["error"]
    assert "raise RuntimeError" in failed["traceback_tail"]
    assert re.search(r"failed batch_nb__fail=true__[0-9a-f]{8}__seed=0", ran_grid["output"])
    [folder] = ran_grid["out_root"].glob("batch_nb__fail=false__*__seed=1")
    run = json.loads((folder / "run.json").read_text())
    assert run["parameters"] == {"fail": False, "x": 2.0, "seed": 1}


def test_summary_has_one_row_per_run_and_flat_metrics(ran_grid):
    table = pd.read_csv(ran_grid["out_root"] / "summary.csv")
    assert list(table["state"]) == ["complete", "complete", "failed", "failed"]
    complete = table[table["state"] == "complete"]
    assert list(complete["score"]) == [20.0, 21.0]  # 10 * x + seed
    assert list(complete["detail.double_x"]) == [4.0, 4.0]
    assert "curve" not in table.columns  # lists are left out
    assert {"param.x", "param.fail", "setting", "error"} <= set(table.columns)
    assert table["score"].isna().sum() == 2
    assert (ran_grid["out_root"] / "summary.png").stat().st_size > 0


def test_aggregate_only_rewrites_the_summary(ran_grid):
    out_root = ran_grid["out_root"]
    (out_root / "summary.csv").unlink()
    (out_root / "summary.png").unlink()
    code, output = _main(ran_grid["grid"], "--aggregate-only", "--metrics", "score", "detail.double_x")
    assert code == 1 and "2 complete, 2 failed" in output
    assert len(pd.read_csv(out_root / "summary.csv")) == 4
    assert (out_root / "summary.png").exists()


def test_rerun_skips_complete_runs_and_retries_failed_ones(ran_grid):
    out_root = ran_grid["out_root"]
    before = {path: (path.read_text(), path.stat().st_mtime_ns)
              for path in out_root.glob("*/status.json")}
    code, output = _main(ran_grid["grid"])
    assert code == 1 and "2 complete (skipped), 2 to run" in output
    for path, (text, mtime) in before.items():
        unchanged = path.read_text() == text and path.stat().st_mtime_ns == mtime
        assert unchanged == ("fail=false" in path.parent.name), path.parent.name
    _, plan = _main(ran_grid["grid"], "--dry-run", "--force")
    assert plan.count("  run  ") == 4


def test_changed_parameters_get_new_folders_and_keep_finished_runs(ran_grid, tmp_path):
    grid = yaml.safe_load(open(ran_grid["grid"]))
    grid["runs"][0].update(parameters={"x": 3.0}, grid={"fail": [False]})
    grid["seeds"] = [0]
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(grid))
    old_dirs = {run.run_id: run.out_dir for run in load_grid(ran_grid["grid"]).runs}
    old_metrics = {run_id: (folder / "metrics.json").read_text() for run_id, folder in old_dirs.items()
                   if (folder / "metrics.json").exists()}
    [new_run] = load_grid(path).runs
    assert new_run.run_id not in old_dirs and new_run.out_dir.parent == ran_grid["out_root"]
    code, output = _main(path)
    assert code == 0, output
    assert json.loads((new_run.out_dir / "metrics.json").read_text())["score"] == 30.0
    for run_id, text in old_metrics.items():  # the x=2.0 runs are kept as they were
        assert (old_dirs[run_id] / "metrics.json").read_text() == text


def test_submitit_local_executor_runs_a_grid(tmp_path):
    runs = [{"notebook": NOTEBOOK, "grid": {"x": [0.5]}}]
    grid = _write_grid(tmp_path, runs, seeds=[3], slurm={"timeout_min": 5, "slurm_partition": "x"})
    code, output = _main(grid, "--executor", "submitit-local")
    assert code == 0, output
    states = _states(tmp_path / "out")
    assert [s["state"] for s in states.values()] == ["complete"]
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert _unhashed(table.loc[0, "run_id"]) == "batch_nb__x=0.5__seed=3"
    assert table.loc[0, "score"] == 8.0


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="Slurm is installed here")
def test_slurm_executor_without_slurm_is_a_clear_error(tmp_path, capsys):
    grid = _write_grid(tmp_path, [{"notebook": NOTEBOOK}])
    assert batch.main([grid, "--executor", "slurm"]) == 2
    assert "needs `sbatch`" in capsys.readouterr().err


def test_run_ids_are_deterministic_and_name_every_parameter(tmp_path):
    runs = [{"notebook": NOTEBOOK, "grid": {"x": [1.5, -2.0], "fail": [False]}},
            {"notebook": NOTEBOOK, "name": "long", "parameters": {"x": 3.0}}]
    grid = load_grid(_write_grid(tmp_path, runs, seeds=[7]))
    ids = [run.run_id for run in grid.runs]
    assert [_unhashed(i) for i in ids[:2]] == ["batch_nb__fail=false__x=1.5__seed=7",
                                               "batch_nb__fail=false__x=-2.0__seed=7"]
    assert re.fullmatch(r"long__[0-9a-f]{8}__seed=7", ids[2])  # fixed parameters: only hashed
    assert grid.runs[1].parameters == {"x": -2.0, "fail": False, "seed": 7}
    assert grid.runs[1].out_dir == tmp_path / "out" / ids[1]
    assert [run.run_id for run in load_grid(grid.path).runs] == ids
    assert grid.runs[0].setting == ids[0].removesuffix("__seed=7")


def test_id_parts_are_safe_and_long_ones_are_cut_with_a_hash():
    assert batch._id_part("nb", {"x": "a/b c", "y": [1, 2]}) == "nb__x=a_b_c__y=_1_2_"
    ids = {batch._id_part("nb", {"x": "y" * n}) for n in (300, 299)}
    assert len(ids) == 2 and all(len(part) <= batch.MAX_ID_PART for part in ids)


BAD_GRIDS = {
    "bad yaml": ("seeds: [0, 1\nruns: x", "not valid YAML"),
    "unknown top key": ("seed: [0]\nruns: []", r"unknown key\(s\) seed .*allowed keys: out_root, seeds"),
    "empty seeds": (f"seeds: []\nruns: [{{notebook: {NOTEBOOK}}}]", "`seeds` is missing or empty"),
    "seeds not ints": (f"seeds: [a]\nruns: [{{notebook: {NOTEBOOK}}}]", "list of integers.*'a'"),
    "no runs": ("seeds: [0]", "needs `runs:`"),
    "unknown entry key": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, params: {{}}}}]",
                          r"unknown key\(s\) params in runs\[0\].*allowed keys: notebook, name"),
    "missing notebook": ("seeds: [0]\nruns: [{notebook: notebooks/nope.ipynb}]",
                         "no notebook at .*notebooks/nope.ipynb"),
    "unknown parameter": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, parameters: {{y: 1}}}}]",
                          "'y' is not a parameter of batch_nb.ipynb; its parameters: fail, out_dir, seed, x"),
    "misspelt parameter": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, parameters: {{fial: true}}}}]",
                           "'fial' is not a parameter .*did you mean fail\\?"),
    "wrong type": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, grid: {{x: [1, two]}}}}]",
                   "parameter 'x' must be float like its default \\(1.0\\), got str 'two'"),
    "reserved parameter": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, grid: {{seed: [1]}}}}]",
                           "sets seed, which the batch runner sets"),
    "scalar axis": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, grid: {{x: 1}}}}]",
                    "grid axis 'x' .* non-empty list"),
    "same run twice": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}}}, {{notebook: {NOTEBOOK}}}]",
                       "both make run batch_nb__[0-9a-f]{8}__seed=0; give the entries distinct `name:`"),
    "missing parameters file": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, parameters_file: no.yaml}}]",
                                "no parameters file of runs.* at .*no.yaml"),
}


@pytest.mark.parametrize("text,message", BAD_GRIDS.values(), ids=BAD_GRIDS.keys())
def test_bad_grid_files_raise_clear_errors(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError, match=message):
        load_grid(path)


def test_bad_grid_exits_2_and_bad_workers_are_refused(tmp_path, capsys):
    assert batch.main([str(tmp_path / "missing.yaml")]) == 2
    assert "no grid file at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        batch.main([str(tmp_path / "missing.yaml"), "--workers", "0"])
    assert "must be an integer >= 1; got '0'" in capsys.readouterr().err


def test_flatten_dots_nested_keys_and_drops_lists():
    assert batch.flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1], "f": "x"}) == {
        "a.b": 1, "a.c.d": None, "f": "x"}


# ---- run states: failures never dropped, interrupted runs found, busy folders left alone ----

HOLDER = """
import json, os, sys, time
from drrdn_lib.files import folder_lock, write_json_atomic
with folder_lock(sys.argv[1]):
    write_json_atomic(os.path.join(sys.argv[1], "status.json"), {"state": "running",
                      "pid": os.getpid(), "host": "elsewhere", "started": "then"})
    print("locked", flush=True)
    time.sleep(60)
"""


def _fake_execute(metrics_text: str):
    """A stand-in for run_notebook.execute that writes ``metrics_text`` as metrics.json."""
    def execute(notebook, out_dir, parameters, progress=True):
        (out_dir / "metrics.json").write_text(metrics_text)
        (out_dir / "fake.ipynb").write_text("{}")
        return out_dir / "fake.ipynb"
    return execute


def _hold_run_folder(folder) -> subprocess.Popen:
    """Another process that locks ``folder`` and says (in status.json) it runs there."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _complete_by_hand(run, metrics_text: str) -> None:
    """Write a run folder as a finished run leaves it, with ``metrics_text`` as its metrics."""
    run.out_dir.mkdir(parents=True)
    (run.out_dir / "run.json").write_text(json.dumps(run.record()))
    (run.out_dir / "status.json").write_text(json.dumps({"state": "complete"}))
    (run.out_dir / "metrics.json").write_text(metrics_text)


def test_a_truncated_metrics_file_is_a_failure_not_a_dropped_seed(tmp_path):
    grid = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}]))
    _complete_by_hand(grid.runs[0], '{"score": 1.0}')
    _complete_by_hand(grid.runs[1], '{"score": 2')
    code, output = _main(grid.path, "--aggregate-only")
    assert code == 1
    assert re.search(r"failed batch_nb__\w+__seed=1: metrics.json is unreadable or truncated", output)
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(table["state"]) == ["complete", "failed"]
    assert "truncated" in table.loc[1, "error"]
    _, plan = _main(grid.path, "--dry-run")
    assert "skip" in plan.splitlines()[1] and "run  " in plan.splitlines()[2]  # rerun next time


def test_a_run_whose_notebook_writes_no_readable_metrics_fails(tmp_path, monkeypatch):
    from drrdn_lib import run_notebook

    [run] = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0])).runs
    monkeypatch.setattr(run_notebook, "execute", _fake_execute("[1, 2]"))
    status = batch.run_one(run)
    assert status["state"] == "failed" and "holds a list, not a mapping" in status["error"]
    assert json.loads((run.out_dir / "status.json").read_text())["state"] == "failed"


def test_a_killed_run_is_reported_interrupted_and_run_again(tmp_path, monkeypatch):
    from drrdn_lib import run_notebook

    grid = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0, 1]))
    holder = _hold_run_folder(grid.runs[0].out_dir)
    try:
        monkeypatch.setattr(run_notebook, "execute", _fake_execute('{"score": 5}'))
        assert batch.run_state(grid.runs[0]) == "running"
        code, output = _main(grid.path)  # runs seed 1 only: seed 0 is running elsewhere
        assert "1 running elsewhere (skipped), 1 to run" in output
        assert "1 running" in output and "1 complete" in output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    status = batch.run_status(grid.runs[0])
    assert status["state"] == "interrupted"
    assert f"interrupted: pid {holder.pid} on elsewhere (started then)" in status["error"]
    code, output = _main(grid.path, "--aggregate-only")
    assert code == 1 and "interrupted batch_nb__" in output
    code, output = _main(grid.path)
    assert code == 0 and "1 complete (skipped), 1 to run" in output
    assert [batch.run_state(run) for run in grid.runs] == ["complete", "complete"]


def test_a_folder_locked_by_another_grid_is_left_untouched(tmp_path, monkeypatch):
    from drrdn_lib import run_notebook

    monkeypatch.setattr(batch, "LOCK_WAIT_S", 0.2)
    monkeypatch.setattr(run_notebook, "execute", _fake_execute('{"score": 5}'))
    [run] = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0])).runs
    holder = _hold_run_folder(run.out_dir)
    try:
        before = (run.out_dir / "status.json").read_text()
        status = batch.run_one(run, force=True)
        assert status["state"] == "busy"
        assert f"{run.out_dir} is in use by pid {holder.pid}" in status["error"]
        assert (run.out_dir / "status.json").read_text() == before
        assert not (run.out_dir / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_folder_is_not_overwritten_without_force(tmp_path, monkeypatch):
    from drrdn_lib import run_notebook

    monkeypatch.setattr(run_notebook, "execute", _fake_execute('{"score": 5}'))
    grid = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0]))
    _complete_by_hand(grid.runs[0], '{"score": 1}')
    record = json.loads((grid.runs[0].out_dir / "run.json").read_text())
    (grid.runs[0].out_dir / "run.json").write_text(json.dumps({**record, "seed": 9}))
    with pytest.raises(GridError, match="differs from the grid's .*pass --force"):
        batch.run_grid(grid)
    batch.run_grid(grid, force=True)
    assert batch.run_state(grid.runs[0]) == "complete"


def test_a_slurm_job_missing_from_the_queue_twice_in_a_row_is_lost(monkeypatch):
    class Job:
        def __init__(self, job_id):
            self.job_id = job_id
    queue = iter([{"7_0", "7_1"}, {"7_0"}, None, {"7_0"}, {"7_0"}])
    monkeypatch.setattr(batch, "_slurm_listed", lambda name: next(queue))
    active, absent = [(Job("7_0"), "run0"), (Job("7_1"), "run1")], {}
    found = [[run for _, run in batch._lost_jobs(active, "n", absent)] for _ in range(5)]
    assert found == [[], [], [], ["run1"], ["run1"]]  # squeue failing (None) decides nothing
    with pytest.raises(batch.LostJob, match="7_1 left the queue without a result"):
        batch._raise_lost(active[1][0])


# ---- nothing lost: a re-run replaces a complete result only once it is complete itself ----

def _raising_execute(error: BaseException):
    """A stand-in for run_notebook.execute that writes part of its outputs, then raises."""
    def execute(notebook, out_dir, parameters, progress=True):
        (out_dir / "metrics.json").write_text('{"score": 99}')
        raise error
    return execute


def test_a_forced_rerun_keeps_the_old_result_until_the_new_one_is_complete(tmp_path, monkeypatch):
    from drrdn_lib import files, run_notebook

    [run] = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0])).runs
    _complete_by_hand(run, '{"score": 1}')
    (run.out_dir / "old_figure.png").write_bytes(b"png")
    old = {p.name: p.read_bytes() for p in run.out_dir.iterdir() if p.is_file()}

    # a re-run that fails, and one that is killed (an exception no except clause takes)
    for error in (RuntimeError("cell failed"), KeyboardInterrupt()):
        monkeypatch.setattr(run_notebook, "execute", _raising_execute(error))
        if isinstance(error, KeyboardInterrupt):
            with pytest.raises(KeyboardInterrupt):
                batch.run_one(run, force=True)
        else:
            status = batch.run_one(run, force=True)
            assert status["state"] == "failed" and "previous complete result" in status["error"]
        assert batch.run_state(run) == "complete"
        kept = json.loads((run.out_dir / "status.json").read_text())
        assert kept["state"] == "complete"
        for name, content in old.items():
            if name != "status.json":
                assert (run.out_dir / name).read_bytes() == content, name
    assert kept["last_attempt"]["state"] == "failed" and "cell failed" in kept["last_attempt"]["error"]
    assert json.loads((run.out_dir / ".failed" / "metrics.json").read_text()) == {"score": 99}
    table, _ = batch.summary_table(load_grid(tmp_path / "grid.yaml"))
    assert list(table["score"]) == [1]

    # a re-run that completes replaces everything, the old figure included
    monkeypatch.setattr(run_notebook, "execute", _fake_execute('{"score": 5}'))
    assert batch.run_one(run, force=True)["state"] == "complete"
    assert json.loads((run.out_dir / "metrics.json").read_text()) == {"score": 5}
    assert not (run.out_dir / "old_figure.png").exists() and not (run.out_dir / ".attempt").exists()
    assert not (run.out_dir / ".failed").exists()

    # a swap cut short by a kill after its commit point is finished when the folder is read
    stage = files.fresh_stage(run.out_dir)
    (stage / "metrics.json").write_text('{"score": 7}')
    (stage / "status.json").write_text(json.dumps({"state": "complete"}))
    (stage / "run.json").write_text(json.dumps(run.record()))
    moved = []
    real_replace = os.replace

    def die_after_the_commit(src, dst):
        if moved and Path(src).parent.name == ".swap":
            raise KeyboardInterrupt  # killed between two moves
        moved.append(dst)
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", die_after_the_commit)
    with pytest.raises(KeyboardInterrupt):
        files.commit_folder(run.out_dir, stage, last=("status.json",))
    monkeypatch.setattr(os, "replace", real_replace)
    assert batch.run_state(run) == "complete"
    assert json.loads((run.out_dir / "metrics.json").read_text()) == {"score": 7}
    assert not (run.out_dir / ".swap").exists()


def test_a_diverged_training_run_counts_as_failed(tmp_path, monkeypatch):
    from drrdn_lib import run_notebook

    [run] = load_grid(_write_grid(tmp_path, [{"notebook": NOTEBOOK}], seeds=[0])).runs
    monkeypatch.setattr(run_notebook, "execute", _fake_execute(json.dumps(
        {"status": "diverged", "error": "weights became nan at epoch 2, batch 3"})))
    status = batch.run_one(run)
    assert status["state"] == "failed" and "the run diverged: weights became nan" in status["error"]
    assert batch.run_state(run) == "failed"
