"""Execute one notebook with papermill into a run folder, then strip machine-specific metadata.

Usage::

    python -m drrdn_lib.run_notebook notebooks/00_quickstart.ipynb results/quickstart \
        [-f notebooks/params/00_quickstart/cpu.yaml] [-p epochs 5 -p dataset mnist]

The executed notebook, its figures and ``metrics.json`` land in the run folder
(``out_dir`` is passed to the notebook as a parameter).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

from .results import REPO_ROOT


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
    nbformat.write(nb, path)


def execute(notebook: str | Path, out_dir: str | Path, parameters: dict | None = None,
            progress: bool = True) -> Path:
    """Run ``notebook`` with ``parameters`` (plus ``out_dir``); return the executed notebook's path.

    The kernel starts in the repository root, so relative paths mean the same from any
    working directory. A failing cell raises papermill's ``PapermillExecutionError``;
    the partly executed notebook is still written, for inspection.
    """
    import papermill

    notebook, out_dir = Path(notebook).resolve(), Path(out_dir).resolve()
    if not notebook.exists():
        raise FileNotFoundError(f"no notebook at {notebook}; the notebooks are in {REPO_ROOT / 'notebooks'}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {}, out_dir=str(out_dir))
    output = out_dir / notebook.name
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=params,
                                   cwd=str(REPO_ROOT), kernel_name="python3",
                                   progress_bar=progress)
    finally:
        if output.exists():
            strip_machine_metadata(output)
    return output


def _parse_value(text: str):
    """A command-line value as YAML would read it: ``5`` -> int, ``0.1`` -> float, ``[1, 2]`` -> list."""
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML file of parameters")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="one parameter (value parsed as YAML)")
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.parameters_file.read_text()) if args.parameters_file else {}
    params.update({name: _parse_value(value) for name, value in args.parameter})
    output = execute(args.notebook, args.out_dir, params)
    print(f"executed notebook: {output}")
    for path in sorted(output.parent.iterdir()):
        if path != output and not path.name.startswith("."):
            print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
