"""Run a grid of notebooks x parameter settings x seeds with papermill, then tabulate the metrics.

Usage::

    python -m drrdn_lib.batch GRID.yaml [--workers N] [--executor local|slurm|submitit-local]
                                        [--force] [--dry-run] [--aggregate-only] [--metrics NAME ...]

The grid file (YAML)::

    out_root: results/grid_main      # optional: relative to the repository root, or absolute
                                     #   (default results/<grid file stem>)
    seeds: [0, 1, 2]                 # required: non-empty list of ints, passed as `seed`
    plot_metrics: [robust_acc]       # optional: metrics drawn in summary.png (default: every
                                     #   numeric metric, at most 8); --metrics overrides it
    slurm:                           # optional: submitit parameters for the submitit executors
      timeout_min: 600               #   shared ones: timeout_min (default 720), mem_gb,
      gpus_per_node: 1               #   cpus_per_task, gpus_per_node, nodes, tasks_per_node, name;
      slurm_partition: gpu           #   Slurm-only ones carry the slurm_ prefix
    runs:                            # required: non-empty list of entries
      - notebook: notebooks/02_main_results.ipynb                   # required, relative to the repo root
        name: mnist                                                 # optional folder prefix (default: notebook stem)
        parameters_file: notebooks/params/02_main_results/cpu.yaml  # optional
        parameters: {dataset: mnist}                                # optional, overrides the file
        grid: {method: [pgd_at, trades, drrdn]}                     # optional, cartesian product

An entry expands to (product of its ``grid`` lists) x ``seeds`` runs. A run's parameters are
the parameters file, then ``parameters``, then one grid combination, then ``seed``; ``out_dir``
is set by the runner. Every name must be in the notebook's ``parameters`` cell, which must
also declare ``seed`` and ``out_dir``, and every value must fit the type of its default
there (the rules of :mod:`drrdn_lib.notebook_params`, shared with ``run_notebook``).

Each run has a folder ``out_root/<name or notebook stem>__<axis>=<value>...__<hash>__seed=<seed>``:
the grid axes sorted by name, characters other than ``A-Z a-z 0-9 . _ = + -`` replaced by
``_`` (a part longer than 120 characters is cut and gets a hash of its own); ``<hash>`` is 8
hex digits of SHA-256 over the notebook path and all parameters but the seed. So a grid
whose fixed parameters (or parameters file) change writes new folders and never
overwrites finished runs of the old parameters. Two runs with one folder are an error:
give the entries distinct ``name`` values. A run folder holds

- ``.lock``: the folder lock (:func:`drrdn_lib.files.folder_lock`), held while the run
  executes; a second grid that reaches a locked folder leaves it alone (reported ``busy``);
- ``run.json``: run id, setting (the id without the seed), notebook, seed, all parameters;
- ``status.json``: ``state`` = ``running`` (with ``pid``, ``host``, ``started`` and, under
  Slurm, ``slurm_job``), ``complete`` or ``failed`` (then with ``error`` and
  ``traceback_tail``), with start and end times;
- the executed notebook and what it writes (``metrics.json``, figures).

The state of a run is ``status.json`` checked against the folder: ``complete`` needs a
``metrics.json`` that parses to a mapping (else the run is ``failed``: a truncated or
missing metrics file is never silently dropped from the means); ``running`` while a
process holds the folder lock, and ``interrupted`` when none does (the process was killed,
crashed or its job was cancelled); ``stale`` when ``run.json`` differs from the grid's
(only by hand: the hash names the parameters); ``not run``. A ``metrics.json`` whose
``status`` is ``diverged`` or ``failed`` (a training run's) makes the run ``failed``.
Complete runs, and runs running elsewhere, are skipped; failed and interrupted runs run
again; stale folders are refused unless ``--force``, which reruns everything.

A run never destroys a result before its replacement is complete: the notebook runs into
``<run folder>/.attempt/`` (so notebooks that merge into ``metrics.json`` start from an
empty one), and its files replace the folder's only when it completes
(:func:`drrdn_lib.files.commit_folder`; a swap cut short by a kill is finished the next
time the folder is read). A re-run of a complete (or stale) run that fails or is killed
keeps the old result: ``status.json`` stays ``complete`` and records the attempt as
``last_attempt``, with its files in ``.failed/``. A run with no complete result to keep
shows ``running`` at once, and its files (a failed notebook too) replace the folder's.

``out_root/summary.csv`` has one row per run: run_id, setting, notebook, seed, state (as
above), error (for failed and interrupted runs), ``param.<name>`` for each parameter (lists
JSON-encoded), then the metrics of complete runs with nested keys joined by dots (lists
left out; a metric named like a column above becomes ``metric.<name>``).
``out_root/summary.png`` shows, per metric, mean +- sd over seeds for each setting, and
each seed as a dot. Both are written atomically.

Executors: ``local`` runs ``--workers`` processes on this machine; ``slurm`` submits one
job array through submitit (``slurm_array_parallelism`` caps the jobs running at once; the
repository must be on a file system the nodes share, with working ``flock``); ``submitit-local``
runs the submitit path on this machine, ``--workers`` jobs at a time. The exit code is 1
when any run of the grid is failed or interrupted, 2 for a bad grid file or executor
set-up, else 0.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .files import (STAGE, SWAP, FolderLocked, WriteError, commit_folder, finish_swap, folder_lock,
                    fresh_stage, make_folder, write_json_atomic, write_text_atomic)
from .notebook_params import ParameterError, check_parameters, declared_parameters
from .results import REPO_ROOT, save_figure, to_jsonable

__all__ = ["GridError", "Run", "Grid", "load_grid", "run_one", "run_grid", "summary_table",
           "aggregate", "main"]

GRID_KEYS = ("out_root", "seeds", "runs", "plot_metrics", "slurm")
ENTRY_KEYS = ("notebook", "name", "parameters_file", "parameters", "grid")
RESERVED = ("seed", "out_dir")
EXECUTORS = ("local", "slurm", "submitit-local")
SUMMARY_COLUMNS = ("run_id", "setting", "notebook", "seed", "state", "error")
STATES = ("complete", "failed", "interrupted", "running", "stale", "not run")
FAILED_STATES = ("failed", "interrupted")  # reported with their error; exit code 1
FAILED_ATTEMPT = ".failed"  # the files of a failed re-run of a complete run (the result is kept)
LOCK_WAIT_S = 2.0  # how long a run waits for its folder's lock before reporting it busy
MAX_ID_PART = 120
HASH_DIGITS = 8
SLURM_POLL_S = 15.0  # seconds between checks of the Slurm jobs
LOST_AFTER_CHECKS = 2  # a job missing from squeue this many checks in a row is lost
MAX_ERROR = 500  # characters of an error message kept in status.json and summary.csv
MAX_PLOTTED = 8
DEFAULT_TIMEOUT_MIN = 720
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class GridError(ValueError):
    """A grid file (or executor set-up) that cannot run; the message names the bad value."""


@dataclass(frozen=True)
class Run:
    """One notebook execution: its id, its folder and every parameter papermill passes."""

    run_id: str
    setting: str  # the run id without the seed: the runs that a mean over seeds pools
    notebook: str  # as written in the grid file (relative to the repository root)
    seed: int
    parameters: dict  # all parameters except out_dir, seed included
    out_dir: Path

    def record(self) -> dict:
        """The contents of ``run.json``; a complete run is skipped only while this is unchanged."""
        record = {"run_id": self.run_id, "setting": self.setting, "notebook": self.notebook,
                  "seed": self.seed, "parameters": self.parameters}
        return json.loads(json.dumps(to_jsonable(record)))


@dataclass
class Grid:
    """A checked grid file, expanded into its runs."""

    path: Path
    out_root: Path
    seeds: list[int]
    runs: list[Run]
    plot_metrics: list[str]
    slurm: dict


# ----------------------------------------------------------------------------- grid file

def _repo_path(text: str) -> Path:
    """A path from the grid file: absolute, or relative to the repository root."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def _read_yaml(path: Path, what: str):
    """The YAML document at ``path``, or a GridError saying what is wrong with it."""
    if not path.is_file():
        raise GridError(f"no {what} at {path}; check the path (relative paths in a grid file "
                        f"are relative to the repository root {REPO_ROOT}).")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise GridError(f"{what} {path} is not valid YAML: {error}") from None


def _check_keys(mapping, allowed: tuple[str, ...], where: str) -> dict:
    """``mapping`` itself, if it is a dict whose keys are all in ``allowed``."""
    if not isinstance(mapping, dict):
        raise GridError(f"{where} must be a mapping with keys among {', '.join(allowed)}; "
                        f"got {type(mapping).__name__} {mapping!r}.")
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise GridError(f"unknown key(s) {', '.join(unknown)} in {where}; "
                        f"allowed keys: {', '.join(allowed)}.")
    return mapping


def _check_seeds(seeds) -> list[int]:
    """The grid's seeds: a non-empty list of distinct integers."""
    if seeds is None or seeds == []:
        raise GridError("`seeds` is missing or empty; give a non-empty list of integers, "
                        "e.g. seeds: [0, 1, 2].")
    if not isinstance(seeds, list) or not all(
            isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise GridError(f"`seeds` must be a list of integers, e.g. [0, 1, 2]; got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise GridError(f"`seeds` has duplicates: {seeds!r}; list each seed once.")
    return seeds


def _check_parameters(value, where: str, reserved_ok: bool = False) -> dict:
    """A mapping from parameter names (strings) to values; ``seed``/``out_dir`` refused unless ok."""
    value = {} if value is None else value
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise GridError(f"{where} must map parameter names to values; got {value!r}.")
    reserved = sorted(set(value) & set(RESERVED))
    if reserved and not reserved_ok:
        raise GridError(f"{where} sets {', '.join(reserved)}, which the batch runner sets "
                        "itself (seed from `seeds`, out_dir from `out_root`); remove it.")
    return {name: v for name, v in value.items() if name not in RESERVED}


def _check_axes(value, where: str) -> dict:
    """The entry's grid: each parameter name mapped to a non-empty list of values."""
    axes = _check_parameters(value, where)
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"grid axis {name!r} in {where} must be a non-empty list of values; "
                            f"got {values!r} (put a single value under `parameters`).")
    return axes


def _check_notebook(entry: dict, where: str) -> Path:
    """The entry's notebook file, which must exist and declare ``seed`` and ``out_dir``."""
    if not isinstance(entry.get("notebook"), str):
        raise GridError(f"{where} needs `notebook: PATH.ipynb` (relative to the repository "
                        f"root); got {entry.get('notebook')!r}.")
    path = _repo_path(entry["notebook"])
    if path.suffix != ".ipynb" or not path.is_file():
        raise GridError(f"{where}: no notebook at {path}; notebooks are in "
                        f"{REPO_ROOT / 'notebooks'}.")
    missing = [name for name in RESERVED if name not in declared_parameters(path)]
    if missing:
        raise GridError(f"{where}: {path.name} has no {' or '.join(missing)} in its "
                        "`parameters` cell; the batch runner passes both seed and out_dir.")
    return path


def _check_values(notebook: Path, parameters: dict, where: str) -> None:
    """Refuse names the notebook does not declare and values of the wrong type (papermill
    would only warn); the rules are :mod:`drrdn_lib.notebook_params`'s."""
    try:
        check_parameters(notebook, parameters, where)
    except ParameterError as error:
        raise GridError(str(error)) from None


def _entry_parameters(entry: dict, where: str) -> tuple[dict, dict]:
    """The entry's fixed parameters (file, then ``parameters``) and its grid axes."""
    fixed = {}
    if entry.get("parameters_file") is not None:
        path = _repo_path(str(entry["parameters_file"]))
        loaded = _read_yaml(path, f"parameters file of {where}")
        fixed.update(_check_parameters(loaded, f"parameters file {path}", reserved_ok=True))
    overrides = _check_parameters(entry.get("parameters"), f"`parameters` of {where}")
    axes = _check_axes(entry.get("grid"), f"`grid` of {where}")
    both = sorted(set(overrides) & set(axes))
    if both:
        raise GridError(f"{where} sets {', '.join(both)} under both `parameters` and `grid`; "
                        "keep each name in one of them.")
    return {**fixed, **overrides}, axes


def _id_part(prefix: str, point: dict) -> str:
    """``prefix__a=1__b=x`` with unsafe characters replaced; cut with a hash when too long."""
    def text(value):
        return value if isinstance(value, str) else json.dumps(to_jsonable(value),
                                                               separators=(",", ":"))
    parts = [prefix] + [f"{name}={text(value)}" for name, value in sorted(point.items())]
    part = _UNSAFE.sub("_", "__".join(parts))
    if len(part) > MAX_ID_PART:
        digest = hashlib.sha1(part.encode()).hexdigest()[:8]
        part = f"{part[:MAX_ID_PART - 9]}-{digest}"
    return part


def _parameters_hash(notebook: str, parameters: dict) -> str:
    """8 hex digits of SHA-256 over the notebook path and every parameter (seed excluded)."""
    text = json.dumps([notebook, to_jsonable(parameters)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def _expand_entry(entry: dict, where: str, seeds: list[int], out_root: Path) -> list[Run]:
    """The runs of one ``runs:`` entry: every grid combination times every seed."""
    notebook = _check_notebook(entry, where)
    fixed, axes = _entry_parameters(entry, where)
    prefix = str(entry.get("name") or notebook.stem)
    runs = []
    for combination in itertools.product(*axes.values()):
        point = dict(zip(axes, combination))
        _check_values(notebook, {**fixed, **point}, where)
        setting = f"{_id_part(prefix, point)}__{_parameters_hash(entry['notebook'], {**fixed, **point})}"
        for seed in seeds:
            run_id = f"{setting}__seed={seed}"
            runs.append(Run(run_id, setting, entry["notebook"], seed,
                            {**fixed, **point, "seed": seed}, out_root / run_id))
    return runs


def _check_string_list(value, where: str) -> list[str]:
    """An optional list of strings (``None`` -> empty)."""
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise GridError(f"{where} must be a list of metric names; got {value!r}.")
    return value


def load_grid(path: str | os.PathLike) -> Grid:
    """Read, check and expand a grid file (format in the module docstring)."""
    path = Path(path)
    data = _check_keys(_read_yaml(path, "grid file"), GRID_KEYS, f"grid file {path}")
    seeds = _check_seeds(data.get("seeds"))
    entries = data.get("runs")
    if not isinstance(entries, list) or not entries:
        raise GridError(f"grid file {path} needs `runs:`, a non-empty list of entries with keys "
                        f"among {', '.join(ENTRY_KEYS)}; got {entries!r}.")
    out_root = _repo_path(str(data.get("out_root") or f"results/{path.stem}"))
    runs, owner = [], {}
    for index, entry in enumerate(entries):
        where = f"runs[{index}] of {path.name}"
        for run in _expand_entry(_check_keys(entry, ENTRY_KEYS, where), where, seeds, out_root):
            if run.run_id in owner:
                raise GridError(f"{owner[run.run_id]} and {where} both make run {run.run_id}; "
                                "give the entries distinct `name:` values.")
            owner[run.run_id] = where
            runs.append(run)
    slurm = _check_parameters(data.get("slurm"), f"`slurm` of {path.name}", reserved_ok=True)
    plot_metrics = _check_string_list(data.get("plot_metrics"), f"`plot_metrics` of {path.name}")
    return Grid(path, out_root, seeds, runs, plot_metrics, slurm)


# ----------------------------------------------------------------------------- run states

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path):
    """The JSON at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _folder_busy(folder: Path) -> bool:
    """Whether a process holds ``folder``'s lock, i.e. a run is in progress there."""
    try:
        with folder_lock(folder, wait=0):
            return False
    except FolderLocked:
        return True


def _metrics_problem(out_dir: Path) -> str | None:
    """Why ``out_dir/metrics.json`` cannot be summarised (missing, unparseable, not a mapping)."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text())
    except FileNotFoundError:
        return "the notebook finished but wrote no metrics.json"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"metrics.json is unreadable or truncated ({type(error).__name__}: {error})"
    if not isinstance(metrics, dict):
        return f"metrics.json holds a {type(metrics).__name__}, not a mapping of metric names"
    if metrics.get("status") in ("diverged", "failed"):
        return (f"metrics.json says the run {metrics['status']}: "
                f"{metrics.get('error') or 'no reason recorded'}")
    return None


def _finish_interrupted_swap(folder: Path) -> None:
    """Complete the swap of a new result into ``folder`` that a killed run left half done
    (:func:`drrdn_lib.files.finish_swap`), unless a process holds the folder."""
    if not (folder / SWAP).is_dir():
        return
    try:
        with folder_lock(folder, wait=0):
            finish_swap(folder)
    except FolderLocked:
        pass


def _interrupted(status: dict) -> str:
    """The error of a run whose status says running but whose process is gone."""
    return (f"interrupted: pid {status.get('pid', '?')} on {status.get('host', '?')} (started "
            f"{status.get('started', '?')}) ended without recording an outcome (killed, crashed "
            "or cancelled); the next run of the grid runs it again")


def run_status(run: Run) -> dict:
    """``status.json`` checked against the run folder; ``state`` is one of :data:`STATES`.

    ``complete`` needs a readable ``metrics.json`` (else ``failed``, with the reason); a
    ``running`` status whose folder lock nobody holds is ``interrupted``; ``stale`` is a
    complete run whose ``run.json`` differs from the grid's (edited by hand).
    """
    _finish_interrupted_swap(run.out_dir)
    status = _read_json(run.out_dir / "status.json")
    status = status if isinstance(status, dict) else {}
    state = status.get("state", "not run")
    if state == "running" and not _folder_busy(run.out_dir):
        return {**status, "state": "interrupted", "error": _interrupted(status)}
    if state == "complete":
        if _read_json(run.out_dir / "run.json") != run.record():
            return {**status, "state": "stale"}
        problem = _metrics_problem(run.out_dir)
        if problem:
            return {**status, "state": "failed", "error": problem}
    return {**status, "state": state}


def run_state(run: Run) -> str:
    """The ``state`` of :func:`run_status`."""
    return run_status(run)["state"]


# ----------------------------------------------------------------------------- running

def _describe_failure(error: BaseException, lines: int = 30) -> dict:
    """A one-line ``error`` (the message's lines joined, at most :data:`MAX_ERROR` characters)
    and the last ``lines`` lines of its traceback, without colour codes."""
    if hasattr(error, "ename"):  # papermill's PapermillExecutionError: the notebook's own error
        message = f"{error.ename}: {error.evalue} (notebook cell In[{error.exec_count}])"
        text = "\n".join(error.traceback)
    else:
        message = f"{type(error).__name__}: {error}"
        text = "".join(traceback.format_exception(error))
    tail = _ANSI.sub("", text).strip().splitlines()[-lines:]
    one_line = " ".join(message.split())  # e.g. submitit's "... has not produced any output
    return {"state": "failed",  # (state: CANCELLED by 0)" is on the second line
            "error": one_line[:MAX_ERROR] + ("..." if len(one_line) > MAX_ERROR else ""),
            "traceback_tail": "\n".join(tail)}


def _process_record() -> dict:
    """Who runs this: pid, host and (under Slurm) the job id, for ``status.json``."""
    record = {"pid": os.getpid(), "host": socket.gethostname()}
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        record["slurm_job"] = f"{job}_{task}" if task else job
    return record


def _execute(run: Run) -> dict:
    """Run the notebook into a staging folder beside the run folder's result (which the
    caller holds locked) and record its status; the stage replaces the folder's contents
    when the run completes, or when the folder holds no complete result to keep."""
    from .run_notebook import execute

    kept = run_status(run)["state"] in ("complete", "stale")
    stage = fresh_stage(run.out_dir, STAGE)
    status = {"run_id": run.run_id, "state": "running", "started": _now(), **_process_record()}
    write_json_atomic(stage / "run.json", run.record())
    if not kept:  # nothing to keep: the folder says at once that a run is under way
        write_json_atomic(run.out_dir / "run.json", run.record())
        write_json_atomic(run.out_dir / "status.json", status)
    start = time.monotonic()
    try:
        output = execute(_repo_path(run.notebook), stage, run.parameters, progress=False)
        problem = _metrics_problem(stage)
        status.update(executed_notebook=output.name,
                      **({"state": "failed", "error": problem} if problem else {"state": "complete"}))
    except Exception as error:  # noqa: BLE001 - any failure is this run's, not the batch's
        status.update(_describe_failure(error))
    status.update(finished=_now(), duration_s=round(time.monotonic() - start, 2))
    if status["state"] == "complete" or not kept:
        write_json_atomic(stage / "status.json", status)
        commit_folder(run.out_dir, stage, last=("status.json",))
        shutil.rmtree(run.out_dir / FAILED_ATTEMPT, ignore_errors=True)  # an older attempt's
        return status
    return _keep_previous(run, stage, status)


def _keep_previous(run: Run, stage: Path, status: dict) -> dict:
    """After a failed re-run of a complete run: the complete result stays, the attempt's
    files go to ``.failed/`` and ``status.json`` records the attempt as ``last_attempt``."""
    failed = run.out_dir / FAILED_ATTEMPT
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(stage, failed)
    attempt = {k: v for k, v in status.items() if k != "run_id"}
    previous = _read_json(run.out_dir / "status.json") or {}
    write_json_atomic(run.out_dir / "status.json",
                      {**previous, "last_attempt": {**attempt, "outputs": FAILED_ATTEMPT}})
    return {**status, "error": f"{status.get('error', '')} (the previous complete result in "
                               f"{run.out_dir} is kept; this attempt's files are in {FAILED_ATTEMPT}/)"}


def run_one(run: Run, force: bool = False) -> dict:
    """Execute one run into its folder, holding the folder's lock; return its status.

    A folder locked by another process (another grid, or a run still going) is left
    untouched: the status returned says ``busy``. A run that another process finished
    while this one waited is not run again unless ``force``.
    """
    try:
        with folder_lock(run.out_dir, wait=LOCK_WAIT_S):
            finish_swap(run.out_dir)  # a killed run's committed result first
            current = run_status(run)
            if current["state"] == "complete" and not force:
                return current
            return _execute(run)
    except FolderLocked as error:
        return {"run_id": run.run_id, "state": "busy", "error": str(error)}


def _record_lost(run: Run, error: BaseException) -> dict:
    """A failed status for a run whose worker or job died; written unless the folder is busy."""
    status = {"run_id": run.run_id, **_describe_failure(error), "finished": _now()}
    try:
        with folder_lock(run.out_dir, wait=LOCK_WAIT_S):
            write_json_atomic(run.out_dir / "status.json", status)
    except FolderLocked:
        pass  # whoever holds the folder now records its own outcome
    return status


def _collect(run: Run, get_result, bar) -> dict:
    """The status ``get_result()`` returns, or a failed one written for ``run`` if it raises."""
    try:
        status = get_result()
    except Exception as error:  # noqa: BLE001 - a dead worker or job fails only its run
        status = _record_lost(run, error)
    bar.update(1)
    if status["state"] in ("failed", "busy"):
        bar.write(f"{status['state']}: {run.run_id}: {status['error']}")
    return status


def _run_local(runs: list[Run], workers: int, force: bool, bar) -> list[dict]:
    """Run here: in this process for one worker, else in a pool of ``workers`` processes."""
    if workers == 1:
        return [_collect(run, lambda run=run: run_one(run, force), bar) for run in runs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_one, run, force): run for run in runs}
        return [_collect(futures[future], future.result, bar) for future in as_completed(futures)]


def _job_name(grid: Grid) -> str:
    """The jobs' name: the ``slurm:`` section's ``name``, else ``batch-<grid file stem>``."""
    return str(grid.slurm.get("name") or f"batch-{grid.path.stem}")


def _make_executor(kind: str, grid: Grid):
    """A submitit executor for ``slurm`` or ``submitit-local``, with the grid's slurm section."""
    import submitit

    cluster = "slurm" if kind == "slurm" else "local"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise GridError("--executor slurm needs `sbatch` on PATH (run on a Slurm login node); "
                        "--executor submitit-local tries the same path on this machine.")
    executor = submitit.AutoExecutor(folder=grid.out_root / "submitit", cluster=cluster)
    parameters = {"timeout_min": DEFAULT_TIMEOUT_MIN, **grid.slurm, "name": _job_name(grid)}
    python_path = f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"
    parameters[f"{cluster}_setup"] = [python_path, *parameters.get(f"{cluster}_setup", [])]
    try:
        executor.update_parameters(**parameters)
    except (NameError, AssertionError, ValueError, TypeError) as error:
        raise GridError(f"bad `slurm:` section in {grid.path}: {error}") from None
    return executor


class LostJob(RuntimeError):
    """A Slurm job that left the queue with no result and no accounting record."""


def _slurm_listed(name: str) -> set[str] | None:
    """Ids (``123_4`` for array tasks) of the queued or running jobs called ``name``; None
    when ``squeue`` fails (then nothing is declared lost)."""
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(listed.stdout.split()) if listed.returncode == 0 else None


def _lost_jobs(active: list, name: str, absent: dict) -> list:
    """The (job, run) pairs whose Slurm job was missing from the queue at
    :data:`LOST_AFTER_CHECKS` checks in a row without finishing. Slurm keeps no accounting
    record of an array task cancelled while pending, so submitit (which asks ``sacct``)
    would wait for it for ever."""
    listed = _slurm_listed(name)
    if listed is None:
        return []
    for job, _ in active:
        absent[job.job_id] = 0 if job.job_id in listed else absent.get(job.job_id, 0) + 1
    return [(job, run) for job, run in active if absent[job.job_id] >= LOST_AFTER_CHECKS]


def _raise_lost(job) -> None:
    raise LostJob(f"Slurm job {job.job_id} left the queue without a result and sacct has no "
                  "record of it (e.g. cancelled with scancel while pending); the run did not run")


def _run_submitit(runs: list[Run], grid: Grid, kind: str, workers: int, force: bool,
                  bar) -> list[dict]:
    """Submit through submitit (all at once to Slurm, ``workers`` at a time locally); wait."""
    executor = _make_executor(kind, grid)
    task = functools.partial(run_one, force=force)
    limit = len(runs) if kind == "slurm" else workers
    pending, active, statuses, absent = list(runs), [], [], {}
    while pending or active:
        free = limit - len(active)
        if pending and free > 0:
            batch, pending = pending[:free], pending[free:]
            active += zip(executor.map_array(task, batch), batch)
        finished = [(job, run) for job, run in active if job.done()]
        active = [pair for pair in active if pair not in finished]
        statuses += [_collect(run, job.result, bar) for job, run in finished]
        if kind == "slurm" and active:
            lost = _lost_jobs(active, _job_name(grid), absent)
            active = [pair for pair in active if pair not in lost]
            statuses += [_collect(run, functools.partial(_raise_lost, job), bar)
                         for job, run in lost]
        if not finished:
            time.sleep(SLURM_POLL_S if kind == "slurm" else 0.5)
    return statuses


def run_grid(grid: Grid, executor: str = "local", workers: int = 1,
             force: bool = False) -> list[dict]:
    """Run the grid's runs that are neither complete nor running elsewhere (all with ``force``).

    Returns their statuses. Refuses (GridError) to overwrite ``stale`` folders without ``force``.
    """
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise GridError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}.")
    states = {run.run_id: run_state(run) for run in grid.runs}
    stale = [run_id for run_id, state in states.items() if state == "stale"]
    if stale and not force:
        raise GridError(f"{len(stale)} run folder(s) hold a run.json that differs from the grid's "
                        f"(e.g. {grid.out_root / stale[0]}); move them away, or pass --force "
                        "to overwrite them.")
    todo = [run for run in grid.runs
            if force or states[run.run_id] not in ("complete", "running")]
    running = sum(state == "running" for state in states.values())
    print(f"{len(grid.runs)} runs in {grid.path.name}: "
          f"{sum(state == 'complete' for state in states.values())} complete (skipped), "
          + (f"{running} running elsewhere (skipped), " if running and not force else "")
          + f"{len(todo)} to run ({executor}) -> {grid.out_root}", flush=True)
    make_folder(grid.out_root)
    with tqdm(total=len(todo), desc="runs", unit="run") as bar:
        if executor == "local":
            return _run_local(todo, workers, force, bar)
        return _run_submitit(todo, grid, executor, workers, force, bar)


# ----------------------------------------------------------------------------- summary

def flatten(mapping: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1}``: nested keys dotted, lists left out."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif not isinstance(value, list):
            flat[name] = value
    return flat


def _summary_row(run: Run) -> tuple[dict, dict]:
    """A run's identity columns and parameters, and its flattened metrics if complete."""
    status = run_status(run)
    state = status["state"]
    row = {"run_id": run.run_id, "setting": run.setting, "notebook": run.notebook,
           "seed": run.seed, "state": state,
           "error": status.get("error", "") if state in FAILED_STATES else ""}
    for name, value in sorted(run.parameters.items()):
        if name != "seed":
            row[f"param.{name}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    metrics = _read_json(run.out_dir / "metrics.json") if state == "complete" else None
    return row, flatten(metrics) if isinstance(metrics, dict) else {}


def summary_table(grid: Grid):
    """One row per run of the grid (see the module docstring) and the metric column names."""
    import pandas as pd

    rows, metric_columns = [], []
    for run in grid.runs:
        row, metrics = _summary_row(run)
        for name, value in metrics.items():
            column = f"metric.{name}" if name in row else name
            row[column] = value
            metric_columns += [] if column in metric_columns else [column]
        rows.append(row)
    params = sorted({name for row in rows for name in row if name.startswith("param.")})
    columns = [*SUMMARY_COLUMNS, *params, *metric_columns]
    return pd.DataFrame(rows, columns=columns), metric_columns


def numeric_metrics(table, metric_columns: list[str]) -> list[str]:
    """The metric columns whose values in complete runs are all numbers (at least one)."""
    import pandas as pd

    complete = table[table["state"] == "complete"]
    numeric = []
    for column in metric_columns:
        values = complete[column].dropna()
        if len(values) and pd.to_numeric(values, errors="coerce").notna().all():
            numeric.append(column)
    return numeric


def _choose_metrics(available: list[str], requested: list[str]) -> list[str]:
    """The requested metrics that can be plotted (warning about the others), or the defaults."""
    if not requested:
        return available[:MAX_PLOTTED]
    unknown = [name for name in requested if name not in available]
    if unknown:
        print(f"warning: not plotting {', '.join(unknown)}: not a numeric metric of any complete "
              f"run; numeric metrics: {', '.join(available) or 'none'}.", file=sys.stderr)
    return [name for name in requested if name in available]


def plot_summary(table, metrics: list[str], out_dir: Path) -> Path | None:
    """``out_dir/summary.png``: per metric, mean +- sd over seeds per setting; None if no data."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    complete = table[table["state"] == "complete"]
    if complete.empty or not metrics:
        return None
    settings = list(dict.fromkeys(complete["setting"]))
    fig = Figure(figsize=(3.5 * len(metrics) + 2, 1.2 + 0.35 * len(settings)), layout="constrained")
    for index, (ax, metric) in enumerate(zip(fig.subplots(1, len(metrics), squeeze=False)[0],
                                             metrics)):
        data = complete.assign(value=pd.to_numeric(complete[metric], errors="coerce"))
        data = data.dropna(subset=["value"])
        sns.barplot(data=data, x="value", y="setting", order=settings, errorbar="sd",
                    color="C0", alpha=0.5, ax=ax)
        sns.stripplot(data=data, x="value", y="setting", order=settings, color="black",
                      size=4, ax=ax)
        ax.set(title=metric, xlabel="mean ± sd over seeds", ylabel="")
        ax.tick_params(labelleft=index == 0)
    return save_figure(fig, out_dir, "summary")


def aggregate(grid: Grid, metrics: list[str] | None = None):
    """Write ``summary.csv`` and ``summary.png`` in ``out_root``; return (table, csv, png or None)."""
    table, metric_columns = summary_table(grid)
    make_folder(grid.out_root)
    csv_path = write_text_atomic(grid.out_root / "summary.csv", table.to_csv(index=False))
    chosen = _choose_metrics(numeric_metrics(table, metric_columns), metrics or grid.plot_metrics)
    return table, csv_path, plot_summary(table, chosen, grid.out_root)


# ----------------------------------------------------------------------------- command line

def _positive_int(text: str) -> int:
    """argparse type for --workers."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return value


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m drrdn_lib.batch",
                                     description=__doc__.splitlines()[0],
                                     epilog="The grid file format is in drrdn_lib/batch.py's docstring.")
    parser.add_argument("grid", type=Path, help="grid file (YAML)")
    parser.add_argument("--workers", type=_positive_int, default=1,
                        help="runs at a time (local and submitit-local; default 1)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--force", action="store_true", help="rerun complete runs too")
    parser.add_argument("--dry-run", action="store_true", help="list the runs; run nothing")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="only rewrite summary.csv and summary.png")
    parser.add_argument("--metrics", nargs="+", metavar="NAME",
                        help="metrics for summary.png (default: the grid's plot_metrics)")
    return parser.parse_args(argv)


def _print_plan(grid: Grid, force: bool) -> int:
    """The --dry-run listing: each run, and whether it would run or be skipped."""
    print(f"{len(grid.runs)} runs -> {grid.out_root}")
    for run in grid.runs:
        state = run_state(run)
        action = "run " if force or state != "complete" else "skip"
        print(f"  {action} {run.run_id}  ({state})")
    return 0


def _report(table, csv_path: Path, figure: Path | None) -> int:
    """Print the states of the grid's runs and the files written; 1 if any run failed or
    was interrupted."""
    counts = table["state"].value_counts()
    print("summary: " + ", ".join(f"{count} {state}" for state, count in counts.items()))
    for _, row in table[table["state"].isin(FAILED_STATES)].iterrows():
        print(f"  {row['state']} {row['run_id']}: {row['error']}")
    print(f"wrote {csv_path}" + (f" and {figure}" if figure else " (no complete run to plot)"))
    return 1 if any(counts.get(state, 0) for state in FAILED_STATES) else 0


def main(argv: list[str] | None = None) -> int:
    """The command line; see the module docstring."""
    args = _parse_args(argv)
    try:
        grid = load_grid(args.grid)
        if args.dry_run:
            return _print_plan(grid, args.force)
        if not args.aggregate_only:
            run_grid(grid, args.executor, args.workers, args.force)
        table, csv_path, figure = aggregate(grid, args.metrics)
    except (GridError, WriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _report(table, csv_path, figure)


if __name__ == "__main__":
    # Import the module by its name, so that workers and submitit jobs unpickle
    # drrdn_lib.batch.run_one rather than a function of __main__.
    from drrdn_lib.batch import main as _main

    sys.exit(_main())
