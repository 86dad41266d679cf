"""The batch runner on a tiny fixture notebook: failures kept apart, reruns skipped, summaries.

Each papermill run starts a kernel (seconds), so the runs here are few: one 2 x 2 grid
shared by the module, one submitit-local run; everything else only reads grid files.
"""
import contextlib
import io
import json
import shutil

import pandas as pd
import pytest
import yaml

from drrdn_lib import batch
from drrdn_lib.batch import GridError, load_grid

NOTEBOOK = "tests/fixtures/batch_nb.ipynb"


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


def _states(out_root) -> dict:
    return {path.parent.name: json.loads(path.read_text())
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
    assert "failed batch_nb__fail=true__seed=0" in ran_grid["output"]
    run = json.loads((ran_grid["out_root"] / "batch_nb__fail=false__seed=1" / "run.json").read_text())
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


def test_changed_parameters_make_a_complete_run_stale(ran_grid, tmp_path):
    grid = yaml.safe_load(open(ran_grid["grid"]))
    grid["runs"][0]["parameters"]["x"] = 3.0
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(grid))
    code, plan = _main(path, "--dry-run")
    assert code == 0
    assert "run  batch_nb__fail=false__seed=0  (stale)" in plan


def test_submitit_local_executor_runs_a_grid(tmp_path):
    runs = [{"notebook": NOTEBOOK, "grid": {"x": [0.5]}}]
    grid = _write_grid(tmp_path, runs, seeds=[3], slurm={"timeout_min": 5, "slurm_partition": "x"})
    code, output = _main(grid, "--executor", "submitit-local")
    assert code == 0, output
    states = _states(tmp_path / "out")
    assert [s["state"] for s in states.values()] == ["complete"]
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert table.loc[0, "run_id"] == "batch_nb__x=0.5__seed=3" and table.loc[0, "score"] == 8.0


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="Slurm is installed here")
def test_slurm_executor_without_slurm_is_a_clear_error(tmp_path, capsys):
    grid = _write_grid(tmp_path, [{"notebook": NOTEBOOK}])
    assert batch.main([grid, "--executor", "slurm"]) == 2
    assert "needs `sbatch`" in capsys.readouterr().err


def test_run_ids_are_deterministic_and_safe(tmp_path):
    runs = [{"notebook": NOTEBOOK, "grid": {"x": [1.5, "a/b c"], "fail": [False]}},
            {"notebook": NOTEBOOK, "name": "long", "parameters": {"x": "y" * 300}}]
    grid = load_grid(_write_grid(tmp_path, runs, seeds=[7]))
    ids = [run.run_id for run in grid.runs]
    assert ids[:2] == ["batch_nb__fail=false__x=1.5__seed=7", "batch_nb__fail=false__x=a_b_c__seed=7"]
    assert ids[2].startswith("long__seed=7")  # fixed parameters do not name the folder
    assert grid.runs[1].parameters == {"x": "a/b c", "fail": False, "seed": 7}
    assert grid.runs[1].out_dir == tmp_path / "out" / ids[1]
    assert [run.run_id for run in load_grid(grid.path).runs] == ids


def test_long_ids_are_cut_with_a_hash(tmp_path):
    runs = [{"notebook": NOTEBOOK, "grid": {"x": ["y" * 300, "y" * 299]}}]
    ids = [run.run_id for run in load_grid(_write_grid(tmp_path, runs, seeds=[0])).runs]
    assert len(set(ids)) == 2 and all(len(run_id) <= batch.MAX_ID_PART + 8 for run_id in ids)


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
                          "sets y, not in the `parameters` cell .*fail, out_dir, seed, x"),
    "reserved parameter": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, grid: {{seed: [1]}}}}]",
                           "sets seed, which the batch runner sets"),
    "scalar axis": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}, grid: {{x: 1}}}}]",
                    "grid axis 'x' .* non-empty list"),
    "same run twice": (f"seeds: [0]\nruns: [{{notebook: {NOTEBOOK}}}, {{notebook: {NOTEBOOK}}}]",
                       "both make run batch_nb__seed=0; give the entries distinct `name:`"),
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
