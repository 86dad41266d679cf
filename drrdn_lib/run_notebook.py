"""Execute one notebook with papermill into a run folder, then strip machine-specific metadata.

Usage::

    python -m drrdn_lib.run_notebook notebooks/00_quickstart.ipynb results/quickstart \
        [-f notebooks/params/00_quickstart/cpu.yaml] [-p epochs 5 -p dataset mnist]

The executed notebook, its figures and ``metrics.json`` land in the run folder
(``out_dir`` is passed to the notebook as a parameter). Values are read as YAML
(``5`` int, ``0.1`` float, ``true`` bool, ``null`` None, ``'[pgd_at, trades]'`` list).
Every name and value is checked against the notebook's ``parameters`` cell before
anything runs (rules in :mod:`drrdn_lib.notebook_params`: unknown names are refused with
the closest names suggested, types must match the defaults', and a list parameter needs
a list); a bad one exits with status 2 and one message listing every problem.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
import yaml

from .files import WriteError, make_folder, write_json_atomic, write_text_atomic
from .notebook_params import ParameterError, check_parameters
from .results import REPO_ROOT, repo_relative


def strip_machine_metadata(path: Path) -> None:
    """Remove papermill's per-cell timings, and the repository's absolute path from
    outputs (warnings name files), from an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    prefix = str(REPO_ROOT) + "/"
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = output["text"].replace(prefix, "")
            for key, value in output.get("data", {}).items():
                if isinstance(value, str):
                    output["data"][key] = value.replace(prefix, "")
    text = nbformat.writes(nb)
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")  # as nbformat.write


def execute(notebook: str | Path, out_dir: str | Path, parameters: dict | None = None,
            progress: bool = True) -> Path:
    """Run ``notebook`` with ``parameters`` (plus ``out_dir``); return the executed notebook's path.

    The kernel starts in the repository root, so relative paths mean the same from any
    working directory. A failing cell raises papermill's ``PapermillExecutionError``;
    the partly executed notebook is still written, for inspection. Parameters that the
    notebook does not declare, or of the wrong type, raise :class:`ParameterError` first.
    """
    import papermill

    notebook, out_dir = Path(notebook).resolve(), Path(out_dir).resolve()
    if not notebook.exists():
        raise FileNotFoundError(f"no notebook at {notebook}; the notebooks are in {REPO_ROOT / 'notebooks'}.")
    check_parameters(notebook, dict(parameters or {}))
    make_folder(out_dir)
    # the kernel starts in the repository root: a folder inside it is passed relative, so the
    # executed notebook's injected parameters name no machine path
    params = dict(parameters or {}, out_dir=str(repo_relative(out_dir)))
    output = out_dir / notebook.name
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=params,
                                   cwd=str(REPO_ROOT), kernel_name="python3",
                                   progress_bar=progress)
        record_wall_seconds(output, out_dir / "metrics.json")
    finally:
        if output.exists():
            strip_machine_metadata(output)
    return output


def cell_seconds(path: Path, at_least: float = 1.0) -> dict:
    """An executed notebook's wall time from papermill's timings: ``{"notebook": total s,
    "cells": {"<code cell number>: <its first line>": s}}`` for the cells that took at
    least ``at_least`` seconds (the stages of a run: training, attacks, estimators)."""
    nb = nbformat.read(path, as_version=4)
    cells, number = {}, 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        seconds = (cell.metadata.get("papermill") or {}).get("duration")
        if seconds is not None and seconds >= at_least:
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            cells[f"{number}: {first[:60]}"] = round(seconds, 1)
    total = (nb.metadata.get("papermill") or {}).get("duration")
    return {"notebook": None if total is None else round(total, 1), "cells": cells}


def record_wall_seconds(notebook: Path, metrics_path: Path) -> None:
    """Add :func:`cell_seconds` of ``notebook`` to the provenance in ``metrics_path``
    (papermill's timings are stripped from the committed notebook; the metrics keep them)."""
    if not (metrics_path.exists() and notebook.exists()):
        return
    metrics = json.loads(metrics_path.read_text())
    metrics.setdefault("provenance", {})["wall_seconds"] = cell_seconds(notebook)
    write_json_atomic(metrics_path, metrics)


def _parameters(args: argparse.Namespace) -> dict:
    """The parameters file (a YAML mapping), then each ``-p NAME VALUE`` (value read as YAML)."""
    params = {}
    if args.parameters_file:
        if not args.parameters_file.is_file():
            raise ParameterError(f"no parameters file at {args.parameters_file}.")
        loaded = yaml.safe_load(args.parameters_file.read_text())
        if not isinstance(loaded, (dict, type(None))):
            raise ParameterError(f"{args.parameters_file} must be a YAML mapping of parameter "
                                 f"names to values; got {type(loaded).__name__}.")
        params.update(loaded or {})
    for name, text in args.parameter:
        if name == "out_dir":
            raise ParameterError("out_dir is the second argument of the command, not a -p parameter.")
        try:
            params[name] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ParameterError(f"-p {name} {text!r} is not valid YAML: {error}") from None
    return params


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 2 for bad parameters or an output folder that cannot
    be written (nothing is run), 1 when a cell of the notebook fails (its error in one
    line), 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML file of parameters")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="one parameter (value parsed as YAML)")
    args = parser.parse_args(argv)
    try:
        params = _parameters(args)
        check_parameters(args.notebook, params)
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        output = execute(args.notebook, args.out_dir, params)
    except WriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the notebook's own error, said in one line
        if not hasattr(error, "ename"):
            raise
        print(f"error: the notebook failed in cell In[{error.exec_count}]: {error.ename}: "
              f"{error.evalue}\nthe partly executed notebook is {Path(args.out_dir) / args.notebook.name}",
              file=sys.stderr)
        return 1
    print(f"executed notebook: {output}")
    for path in sorted(output.parent.iterdir()):
        if path != output and not path.name.startswith("."):
            print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
