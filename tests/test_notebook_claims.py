"""Prose and numbers cannot drift apart: each committed notebook's conclusion is exactly
what :func:`drrdn_lib.claims.describe` says about the metrics of the same run."""
import json
from pathlib import Path

import nbformat
import pytest

from drrdn_lib.claims import DESCRIBERS, describe

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _shown_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") + data.get("text/plain", "") + output.get("text", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(DESCRIBERS))
def test_committed_notebook_states_what_its_metrics_say(name):
    metrics_file = NOTEBOOKS / "metrics" / f"{name}.json"
    assert metrics_file.exists(), f"run `python notebooks/build.py {name}` to produce {metrics_file}"
    metrics = json.loads(metrics_file.read_text())
    sentences = describe(name, metrics)
    assert sentences and sorted(sentences) == sorted(metrics["claims"])  # JSON may reorder keys
    shown = _shown_text(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
    for sentence in sentences:
        assert sentence in shown, f"{name}.ipynb does not show: {sentence}"


def test_every_notebook_has_a_describer():
    stems = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert stems <= set(DESCRIBERS), f"notebooks without claims: {sorted(stems - set(DESCRIBERS))}"
