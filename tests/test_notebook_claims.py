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


def test_bound_check_says_which_runs_are_missing_from_the_terms_over_training():
    committed = json.loads((NOTEBOOKS / "metrics" / "04_bound_check.json").read_text())
    without = {**committed, "over_epochs": [], "runs_without_kept_weights": ["drrdn/seed 0"],
               "gap_divergence_spearman": None}
    sentences = describe("04_bound_check", without)
    assert any(s.startswith("Left out of the terms over training: drrdn/seed 0 (") for s in sentences)
    assert sentences[-1].startswith("No run kept per-epoch weights")
    assert not any("rank correlation" in s for s in sentences)
