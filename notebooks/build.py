"""Build the notebooks from their reviewable sources, and execute them for real.

Each ``notebooks/src/NAME.py`` is a notebook in the "percent" format: cells start with
``# %%`` (code; ``# %% tags=["parameters"]`` for the papermill parameters cell) or
``# %% [markdown]`` (prose, each line prefixed ``# ``). This script writes
``notebooks/NAME.ipynb`` and, unless ``--no-execute``, executes it with papermill at its
CI-scale defaults so that the committed notebook shows the outputs of a real run (its
figures and ``metrics.json`` land in ``results/NAME/``; a copy of the metrics goes to
``notebooks/metrics/NAME.json`` for the prose-claims test).

    .venv/bin/python notebooks/build.py [NAME ...] [--no-execute]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse_source(text: str) -> nbformat.NotebookNode:
    """Percent-format text -> a notebook (kernel python3)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.language_info = {"name": "python"}
    cells, current = [], None
    for line in text.splitlines():
        match = CELL.match(line)
        if match:
            current = {"markdown": bool(match["md"]), "tags": json.loads(match["tags"] or "[]"), "lines": []}
            cells.append(current)
        elif current is not None:
            current["lines"].append(line)
    for cell in cells:
        body = "\n".join(cell["lines"]).strip("\n")
        if cell["markdown"]:
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            new = nbformat.v4.new_code_cell(body)
            if cell["tags"]:
                new.metadata.tags = cell["tags"]
            nb.cells.append(new)
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:02d}"
    return nb


def execute(path: Path) -> None:
    """Run ``path`` in place with papermill (kernel cwd = repo root), strip machine metadata,
    and copy its metrics.json to notebooks/metrics/."""
    import papermill
    sys.path.insert(0, str(ROOT))
    from drrdn_lib.run_notebook import strip_machine_metadata

    # one torch thread, as `make test` runs nbval: summation order depends on the thread
    # count, and a short from-scratch run (notebook 03's DRRDN variants) can end far apart
    os.environ["OMP_NUM_THREADS"] = "1"
    metrics = ROOT / "results" / path.stem / "metrics.json"
    metrics.unlink(missing_ok=True)  # save_metrics merges: no key of an older layout may survive
    papermill.execute_notebook(str(path), str(path), cwd=str(ROOT), kernel_name="python3")
    strip_machine_metadata(path)
    if metrics.exists():
        (HERE / "metrics").mkdir(exist_ok=True)
        shutil.copy(metrics, HERE / "metrics" / f"{path.stem}.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all sources)")
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    sources = sorted((HERE / "src").glob("*.py"))
    if args.names:
        sources = [s for s in sources if s.stem in args.names]
    for source in sources:
        target = HERE / f"{source.stem}.ipynb"
        nbformat.write(parse_source(source.read_text()), target)
        if not args.no_execute:
            execute(target)
        print(f"built {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
