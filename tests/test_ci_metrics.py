"""The CI run of a notebook reproduces the metrics committed with it, within stated
tolerances, so that a change to the library that moves the numbers cannot go unnoticed
while the committed notebook still shows the old ones.

How it runs. ``make test`` runs the unit tests, then nbval executes every notebook at its
CI defaults; each writes ``results/<name>/metrics.json``. A second step then runs this
file with ``DRRDN_CI_METRICS=1``, which compares that fresh file with
``notebooks/metrics/<name>.json`` for every notebook in :data:`CHECKED` (the Makefile's
``CI_CHECKED`` lists the same names and removes their old files before nbval, so a stale
one cannot pass). ``DRRDN_CI_METRICS=execute`` instead executes the notebook itself with
papermill into a temporary folder (minutes; training runs are cached in ``results/runs``).
Without the variable only the comparison's own tests run.

Tolerances (:func:`compare_metrics`, the sections and claims of :data:`SPECS`):
- the same parameters and labels (same keys and values);
- the same rows and columns in every section of interval cells (``{row: {column: cell}}``,
  a cell ``{"value", "lo", "hi", ...}``), and every value within max(0.05, 2 x the committed
  cell's interval half-width): with 100 test images a Wilson half-width is about 0.1, so 0.2;
- the same claims with every number masked, except the sentences whose prefix the
  notebook's spec lists as may-flip, whose verdicts (within noise or not, a check passed or
  failed, a bound holding or undecided) rest on intervals that a change within the tolerance
  can move: for those the sentence must still be there.
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: notebooks whose CI run is checked against their committed metrics
CHECKED = ("02_main_results", "03_ablation", "04_bound_check", "05_representations",
           "06_sensitivity", "07_table3_hybrids", "08_figure2_tsne")
ABS_TOL = 0.05
HALF_WIDTHS = 2.0
#: claim prefixes of notebook 02 whose verdict may flip within the tolerance (only their
#: presence is checked)
MAY_FLIP = ("Most robust of the trained models", "The paper's claim", "Black box (worst surrogate)",
            "Gradient-masking checks", "reduced AutoAttack", "AutoAttack (standard)")
#: 05's claim prefixes whose verdicts rest on intervals (only their presence is checked by
#: compare_metrics; the numbers behind them by compare_representations)
MAY_FLIP_REPRESENTATIONS = ("A fresh domain classifier", "A linear probe", "Estimator controls",
                            "JS of ", "Proposition 1's reading",
                            "DRRDN's domain classifier c_i", "JS over training")
#: per checked notebook: the metrics sections of interval cells, and the may-flip prefixes
SPECS = {
    "02_main_results": {"cells": ("accuracy",), "may_flip": MAY_FLIP},
    "04_bound_check": {"cells": ("accuracy", "bound_terms"),
                       "may_flip": ("Bound on ", "The estimated bound over", "lambda* alone covers",
                                    "lambda* against the pairs", "Smallest robustness gap",
                                    "Smallest divergence", "Over training (MLP heads",
                                    "Across the learned checkpoints")},
    "06_sensitivity": {"cells": ("accuracy", "frontier"),
                       "may_flip": ("PGD accuracy against eps", "At eps ", "Most robust trained point",
                                    "Pairs of trained points")},
    # 05: the numbers behind its may-flip verdicts are compared by compare_representations
    "05_representations": {"cells": ("accuracy",), "may_flip": MAY_FLIP_REPRESENTATIONS,
                           # said only when a noise control goes undetected (5 of 6 vs 6 of 6)
                           "may_appear": ("Where the known shift",)},
    # 03, 07, 08: their interval cells (non-cell entries such as the paper's numbers are skipped)
    "03_ablation": {"cells": ("cells",), "may_flip": ("without ", "no disentanglement",
                                                      "The paper's Table 4")},
    "07_table3_hybrids": {"cells": ("models", "hybrids"),
                          "may_flip": ("r(z", "The adversarial z_s alone", "In this run",
                                       "A model has not learned", "DRRDN: natural", "Standard: natural")},
    "08_figure2_tsne": {"cells": ("models", "representations"),
                        "may_flip": ("Standard: features", "DRRDN: z_s", "DRRDN: z_i",
                                     "Figure 2's reading", "DRRDN has not learned",
                                     "DRRDN: natural", "Standard: natural")},
}
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?")


def mask_numbers(sentence: str) -> str:
    """``sentence`` with every number replaced by ``#``."""
    return NUMBER.sub("#", sentence)


def _tolerance(cell: dict) -> float:
    return max(ABS_TOL, HALF_WIDTHS * (cell["hi"] - cell["lo"]) / 2)


def _compare_cells(section: str, committed: dict, fresh: dict) -> list[str]:
    """Rows, columns and values of one section ``{row: {column: cell}}``; problems are
    named ``row/column`` (``section: row/column`` outside ``accuracy``)."""
    where = "" if section == "accuracy" else f"{section}: "
    problems = []
    if set(committed) != set(fresh):
        problems.append(f"{where}models differ: {sorted(committed)} vs {sorted(fresh)}")
    for row in sorted(set(committed) & set(fresh)):
        if set(committed[row]) != set(fresh[row]):
            problems.append(f"{where}{row}: columns differ: {sorted(committed[row])} vs {sorted(fresh[row])}")
        for column in sorted(set(committed[row]) & set(fresh[row])):
            c, f = committed[row][column], fresh[row][column]
            if not (isinstance(c, dict) and "value" in c):  # a label, a width, the paper's number
                if c != f and not isinstance(c, (int, float)):
                    problems.append(f"{where}{row}/{column}: {f!r} vs committed {c!r}")
                continue
            tol = _tolerance(c)
            if abs(f["value"] - c["value"]) > tol:
                problems.append(f"{where}{row}/{column}: {f['value']:.3f} vs committed {c['value']:.3f} "
                                f"(tolerance {tol:.3f})")
    return problems


def _compare_claims(committed: list[str], fresh: list[str], may_flip: tuple,
                    may_appear: tuple = ()) -> list[str]:
    """Firm claims equal with numbers masked; each ``may_flip`` prefix present in both or
    neither; a ``may_appear`` sentence (a caveat said only when an interval verdict goes one
    way) may come and go."""
    firm_c = {mask_numbers(s) for s in committed if not s.startswith(may_flip + may_appear)}
    firm_f = {mask_numbers(s) for s in fresh if not s.startswith(may_flip + may_appear)}
    problems = [f"claim no longer made: {s}" for s in sorted(firm_c - firm_f)]
    problems += [f"new claim: {s}" for s in sorted(firm_f - firm_c)]
    for prefix in may_flip:
        had = any(s.startswith(prefix) for s in committed)
        has = any(s.startswith(prefix) for s in fresh)
        if had != has:
            problems.append(f"the claim starting {prefix!r} is {'gone' if had else 'new'}")
    return problems


def compare_metrics(committed: dict, fresh: dict, cells=("accuracy",), may_flip=MAY_FLIP,
                    may_appear=()) -> list[str]:
    """Every way ``fresh`` departs from ``committed`` beyond the module's tolerances, as
    readable lines (empty: they agree). ``cells``: the sections of interval cells;
    ``may_flip``: the claim prefixes whose verdicts may change (:data:`SPECS`)."""
    problems = []
    for key in ("parameters", "labels"):
        if committed.get(key) != fresh.get(key):
            problems.append(f"{key} differ: committed {committed.get(key)} vs fresh {fresh.get(key)}")
    for section in cells:
        if section not in committed:
            problems.append(f"the committed metrics have no section {section!r}")
            continue
        problems += _compare_cells(section, committed[section], fresh.get(section, {}))
    return problems + _compare_claims(committed.get("claims", []), fresh.get("claims", []),
                                      tuple(may_flip), tuple(may_appear))


def compare_notebook(name: str, committed: dict, fresh: dict) -> list[str]:
    """:func:`compare_metrics` with notebook ``name``'s :data:`SPECS`."""
    spec = SPECS[name]
    return compare_metrics(committed, fresh, cells=spec["cells"], may_flip=spec["may_flip"],
                           may_appear=spec.get("may_appear", ()))


def _committed(name: str) -> dict:
    return json.loads((NOTEBOOKS / "metrics" / f"{name}.json").read_text())


# ----------------------------------------------------------------- the comparison itself
def test_committed_metrics_agree_with_themselves():
    assert set(SPECS) == set(CHECKED)
    for name in CHECKED:
        committed = _committed(name)
        assert all(committed[section] for section in SPECS[name]["cells"]), name
        assert compare_notebook(name, committed, committed) == []


def test_the_makefile_removes_the_metrics_of_every_checked_notebook():
    """make test must delete each checked notebook's old results before nbval writes fresh ones."""
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^CI_CHECKED\s*:=\s*(.*)$", makefile, re.M)
    assert listed and tuple(listed.group(1).split()) == CHECKED
    assert "rm -f $(foreach name,$(CI_CHECKED),results/$(name)/metrics.json)" in makefile


def test_ci_and_the_committed_notebooks_run_on_the_same_thread_count():
    """Summation order depends on torch's thread count; nbval and build.py both pin one."""
    makefile = (ROOT / "Makefile").read_text()
    assert "OMP_NUM_THREADS=1 $(PY) -m pytest tests --nbval-lax" in makefile
    assert 'os.environ["OMP_NUM_THREADS"] = "1"' in (NOTEBOOKS / "build.py").read_text()


@pytest.mark.parametrize("name", ["04_bound_check", "06_sensitivity"])
def test_drift_in_any_section_is_caught_and_noise_is_not(name):
    committed = _committed(name)
    section = SPECS[name]["cells"][-1]
    row = next(iter(committed[section]))
    column = next(iter(committed[section][row]))
    cell = committed[section][row][column]
    tol = _tolerance(cell)
    near = copy.deepcopy(committed)
    near[section][row][column]["value"] = cell["value"] + 0.9 * tol
    near["claims"] = [NUMBER.sub("7", s) for s in committed["claims"]]
    assert compare_notebook(name, committed, near) == []
    far = copy.deepcopy(committed)
    far[section][row][column]["value"] = cell["value"] + 1.1 * tol
    assert [p for p in compare_notebook(name, committed, far) if p.startswith(f"{section}: {row}/{column}")]
    flipped = copy.deepcopy(committed)
    may_flip = next(i for i, s in enumerate(committed["claims"]) if s.startswith(SPECS[name]["may_flip"]))
    flipped["claims"][may_flip] += " Within noise."   # a verdict may change
    assert compare_notebook(name, committed, flipped) == []
    firm = next(i for i, s in enumerate(committed["claims"]) if not s.startswith(SPECS[name]["may_flip"]))
    flipped["claims"][firm] += " Changed."
    assert any(p.startswith("claim no longer made") for p in compare_notebook(name, committed, flipped))


def test_drift_beyond_tolerance_is_caught_and_noise_is_not():
    committed = _committed("02_main_results")
    model, column = "drrdn", "worst_case"
    cell = committed["accuracy"][model][column]
    tol = _tolerance(cell)
    near = copy.deepcopy(committed)
    near["accuracy"][model][column]["value"] = cell["value"] + 0.9 * tol
    near["claims"] = [NUMBER.sub("7", s) for s in committed["claims"]]  # the last digits move
    assert compare_metrics(committed, near) == []
    far = copy.deepcopy(committed)
    far["accuracy"][model][column]["value"] = cell["value"] + 1.1 * tol
    assert [p for p in compare_metrics(committed, far) if p.startswith(f"{model}/{column}")]


def test_lost_keys_and_changed_words_are_caught():
    committed = _committed("02_main_results")
    fewer = copy.deepcopy(committed)
    del fewer["accuracy"]["mart"]["autoattack"]
    assert any("columns differ" in p for p in compare_metrics(committed, fewer))
    other = copy.deepcopy(committed)
    firm = next(i for i, s in enumerate(other["claims"]) if not s.startswith(MAY_FLIP))
    other["claims"][firm] = other["claims"][firm].replace("natural", "clean", 1) + " Changed."
    assert any(p.startswith("claim no longer made") for p in compare_metrics(committed, other))
    params = copy.deepcopy(committed)
    params["parameters"]["eps"] = 0.3
    assert any(p.startswith("parameters differ") for p in compare_metrics(committed, params))


# ----------------------------------------------------------------- the CI run (opt-in)
MODE = os.environ.get("DRRDN_CI_METRICS", "")


@pytest.mark.skipif(not MODE, reason="set DRRDN_CI_METRICS=1 after nbval has run the notebooks "
                                     "(or =execute to run them here); see the module docstring")
@pytest.mark.parametrize("name", CHECKED)
def test_ci_run_reproduces_the_committed_metrics(name, tmp_path):
    if MODE == "execute":
        from drrdn_lib.run_notebook import execute
        execute(NOTEBOOKS / f"{name}.ipynb", tmp_path, progress=False)
        fresh_file = tmp_path / "metrics.json"
    else:
        fresh_file = ROOT / "results" / name / "metrics.json"
    assert fresh_file.exists(), (f"{fresh_file} is missing: run nbval over notebooks/{name}.ipynb "
                                 "first (make test does), or set DRRDN_CI_METRICS=execute.")
    problems = compare_notebook(name, _committed(name), json.loads(fresh_file.read_text()))
    assert not problems, (f"the CI run of {name} departs from notebooks/metrics/{name}.json "
                          "(rebuild it with `python notebooks/build.py " + name + "` if the change "
                          "is intended):\n" + "\n".join(problems))


# ------------------------------------------------ 05_representations: its JS bounds

def _js_cells(metrics: dict) -> dict:
    """(table, method, representation, alignment or control, epoch) -> JS row of 05's metrics."""
    cells = {}
    for table, kind in (("js", "alignment"), ("controls", "control"), ("over_epochs", "alignment")):
        for r in metrics.get(table, []):
            cells[(table, r["method"], r["representation"], r[kind], r.get("from_start"))] = r
    return cells


def compare_representations(committed: dict, fresh: dict) -> list[str]:
    """05's JS bounds (by method, the controls, over epochs): the same cells, each within
    max(ABS_TOL, HALF_WIDTHS x the committed interval's half-width) nats."""
    c, f = _js_cells(committed), _js_cells(fresh)
    problems = [f"JS cells differ: only committed {sorted(set(c) - set(f))}, only fresh "
                f"{sorted(set(f) - set(c))}"] if set(c) != set(f) else []
    for key in sorted(set(c) & set(f), key=str):
        tol = max(ABS_TOL, HALF_WIDTHS * (c[key]["hi"] - c[key]["lo"]) / 2)
        if abs(f[key]["nats"] - c[key]["nats"]) > tol:
            problems.append(f"{'/'.join(map(str, key))}: {f[key]['nats']:.3f} nats vs committed "
                            f"{c[key]['nats']:.3f} (tolerance {tol:.3f})")
    return problems


def test_representation_bounds_drift_is_caught_and_noise_is_not():
    committed = _committed("05_representations")
    assert compare_metrics(committed, committed) == compare_representations(committed, committed) == []
    row = committed["js"][0]
    tol = max(ABS_TOL, HALF_WIDTHS * (row["hi"] - row["lo"]) / 2)
    for factor, caught in ((0.9, False), (1.1, True)):
        moved = copy.deepcopy(committed)
        moved["js"][0]["nats"] += factor * tol
        assert bool(compare_representations(committed, moved)) is caught
    fewer = copy.deepcopy(committed)
    fewer["controls"].pop()
    assert compare_representations(committed, fewer)[0].startswith("JS cells differ")


@pytest.mark.skipif(not MODE or "05_representations" not in CHECKED,
                    reason="set DRRDN_CI_METRICS=1 after nbval has run notebook 05")
def test_ci_run_reproduces_the_representation_bounds(tmp_path):
    name = "05_representations"
    if MODE == "execute":
        from drrdn_lib.run_notebook import execute
        execute(NOTEBOOKS / f"{name}.ipynb", tmp_path, progress=False)
        fresh_file = tmp_path / "metrics.json"
    else:
        fresh_file = ROOT / "results" / name / "metrics.json"
    assert fresh_file.exists(), f"{fresh_file} is missing: run nbval over notebooks/{name}.ipynb first."
    problems = compare_representations(_committed(name), json.loads(fresh_file.read_text()))
    assert not problems, (f"the CI run of {name} departs from its committed JS bounds:\n"
                          + "\n".join(problems))


def test_sections_with_non_cell_entries_compare_only_their_cells():
    """07's hybrids rows mix cells with the paper's numbers and labels: a cell that moves is
    caught, the numbers beside it are not compared, a changed label is."""
    committed = _committed("07_table3_hybrids")
    row = next(iter(committed["hybrids"]))
    moved = copy.deepcopy(committed)
    moved["hybrids"][row]["after"]["value"] += 0.5
    assert any(p.startswith(f"hybrids: {row}/after") for p in compare_notebook("07_table3_hybrids", committed, moved))
    assert compare_notebook("07_table3_hybrids", committed, copy.deepcopy(committed)) == []
    tsne = _committed("08_figure2_tsne")
    changed = copy.deepcopy(tsne)
    key = next(iter(changed["representations"]))
    changed["representations"][key]["model"] = "another model"
    assert any("another model" in p for p in compare_notebook("08_figure2_tsne", tsne, changed))


def test_a_caveat_may_come_and_go_but_a_firm_claim_may_not():
    committed = _committed("05_representations")
    with_caveat = copy.deepcopy(committed)
    with_caveat["claims"].append("Where the known shift is not detected, the estimator lacks power.")
    assert compare_notebook("05_representations", committed, with_caveat) == []
    firm = copy.deepcopy(committed)
    firm["claims"].append("A new firm sentence.")
    assert compare_notebook("05_representations", committed, firm) == ["new claim: A new firm sentence."]
