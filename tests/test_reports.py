"""The committed reports (reports/) and the README's headline table drawn from them: every
number the README shows is the report's, to the rounding shown."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "02_main_results_cpu"
COLUMNS = ["clean", "fgsm", "pgd40", "pgd100", "cw40", "cw100", "black_box"]
CELL = re.compile(r"^(?P<v>[\d.]+) \[(?P<lo>[\d.]+), (?P<hi>[\d.]+)\](?: / (?P<paper>[\d.]+))?$")


def _section_table(path: Path, heading: str) -> dict[str, list[str]]:
    """The first markdown table under ``heading`` in ``path``: first cell -> the other cells."""
    text = path.read_text()
    section = text[text.index(heading):]
    end = section.find("\n## ", 1)  # the next section, if any
    section = section if end == -1 else section[:end]
    rows = [line.strip("|").split("|") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def _headline_rows() -> dict[str, list[str]]:
    return _section_table(ROOT / "README.md", "## Headline")


def _columns(metrics: dict) -> list[str]:
    """The headline's columns: with AutoAttack on a subset, the worst case over the paper's
    attacks and the black box on every digit, then AutoAttack and the worst case over every
    attack on the subset."""
    if metrics["parameters"]["autoattack"] is None:
        return COLUMNS + ["worst_case"]
    return COLUMNS + ["worst_case_paper", "autoattack", "worst_case"]


def test_the_readme_headline_is_the_reports_table():
    metrics = json.loads((REPORT / "metrics.json").read_text())
    paper = {(r["model"], r["column"]): r["paper"] for r in metrics["paper_comparison"]}
    rows = _headline_rows()
    assert len(rows) == len(metrics["parameters"]["methods"])
    for method in metrics["parameters"]["methods"]:
        label = metrics["model_labels"][method]
        cells = next(v for k, v in rows.items() if k.startswith(label))
        for column, text in zip(_columns(metrics), cells, strict=True):
            match = CELL.match(text)
            assert match, f"{label} {column}: {text!r}"
            ours = metrics["accuracy"][method][column]
            for key in ("v", "lo", "hi"):
                value = ours["value" if key == "v" else key]
                assert float(match[key]) == pytest.approx(100 * value, abs=0.051), (label, column, key)
            if (method, column) in paper:
                assert float(match["paper"]) == pytest.approx(paper[(method, column)], abs=0.005)


def test_the_report_says_its_scale_and_what_it_left_out():
    metrics = json.loads((REPORT / "metrics.json").read_text())
    p = metrics["parameters"]
    assert p["dataset"] == "mnist" and p["eval_limit"] is None and p["from_zoo"] is True
    assert metrics["paper_budget"] is True and metrics["paper_scale"] is False and metrics["n_test"] == 10000
    if p["autoattack"] is None:  # the first stage: the claims must say what is missing
        assert any(c.startswith("AutoAttack was not run") for c in metrics["claims"])
        assert any(c.startswith("Gradient-masking checks: not run") for c in metrics["claims"])
    else:  # the second stage: AutoAttack and the checks on the stratified subset
        assert metrics["n_autoattack"] == p["autoattack_limit"] == 1000 and p["checks"] == "all"
        assert any(c.startswith("Gradient-masking checks (") for c in metrics["claims"])
    assert not metrics["provenance"]["commit"].endswith("+dirty")


ABLATION = ROOT / "reports" / "03_ablation_cpu"


def test_reports_readme_table_4_is_the_ablation_reports():
    metrics = json.loads((ABLATION / "metrics.json").read_text())
    rows = _section_table(ROOT / "reports" / "README.md", "## `03_ablation_cpu/`")
    paper = {r["variant"]: r for r in metrics["paper_comparison"]}
    best = {r["variant"]: r["best epoch"] for r in metrics["rows"]}
    assert set(rows) == set(metrics["parameters"]["variants"])
    for variant, cells in rows.items():
        assert int(cells[0]) == best[variant]
        for column, text in zip(["clean", "pgd40", "pgd100", "worst_case"], cells[1:], strict=True):
            match = CELL.match(text)
            assert match, f"{variant} {column}: {text!r}"
            ours = metrics["cells"][variant][column]
            for key in ("v", "lo", "hi"):
                assert float(match[key]) == pytest.approx(100 * ours["value" if key == "v" else key], abs=0.051)
            if column in ("pgd40", "pgd100"):
                assert float(match["paper"]) == pytest.approx(paper[variant][f"paper_{column}"], abs=0.005)


def test_the_ablation_report_is_the_cpu_scale_with_autoattack_and_checks():
    metrics = json.loads((ABLATION / "metrics.json").read_text())
    p = metrics["parameters"]
    assert p["dataset"] == "mnist" and p["eval_limit"] is None and p["epochs"] == 6
    assert metrics["n_test"] == 10000 and metrics["n_autoattack"] == 1000 and p["checks"] == "all"
    assert p["autoattack"] == "standard" and metrics["pgd_columns"] == ["pgd40", "pgd100"]
    assert {c["check"] for c in metrics["checks"]} >= {"stronger_pgd", "black_box"}
    assert not metrics["provenance"]["commit"].endswith("+dirty")


# ----------------------------------------------------------------------------- paired tests
PAIRED = [ROOT / "reports" / name / "paired.json" for name in ("02_main_results_cpu", "03_ablation_cpu")]
DISCORDANT = re.compile(r"(\d[\d,]*) / (\d[\d,]*)(?: discordant)?,? (?:McNemar )?p = ([0-9.e-]+)")


def _paired_rows() -> list[dict]:
    """The rows of reports 02's and 03's paired.json, and the "paired" rows every report
    notebook stores in its own metrics (07: the hybrids, 08: Figure 2's readings, ...)."""
    rows = [r for path in PAIRED for r in json.loads(path.read_text())["rows"]]
    for path in sorted((ROOT / "reports").glob("*/metrics.json")) + [ROOT / "docs" / "lambda_search.json"]:
        rows += json.loads(path.read_text()).get("paired", [])
    return [r for r in rows if "a_only" in r]  # McNemar rows (04's gap rows are mean differences)


def test_every_paired_claim_in_the_texts_is_a_committed_row():
    """Each "a / b discordant ... p = x" the READMEs and docs/method.md state is a row of a
    report's paired.json (scripts/paired_tests.py on the committed records) or of a report's
    metrics: its counts,
    either way round, and its raw or Holm p-value as printed."""
    from drrdn_lib.stats import format_p
    rows = _paired_rows()
    known = {(r["a_only"], r["b_only"]) for r in rows} | {(r["b_only"], r["a_only"]) for r in rows}
    texts = [ROOT / "README.md", ROOT / "reports" / "README.md", ROOT / "docs" / "method.md",
             ROOT / "docs" / "lambda_search.md"]
    found = 0
    for path in texts:
        for a, b, p in DISCORDANT.findall(path.read_text().replace("\n", " ")):
            pair = (int(a.replace(",", "")), int(b.replace(",", "")))
            assert pair in known, f"{path.name}: {a} / {b} discordant is in no paired.json row"
            ps = {format_p(r[k]) for r in rows for k in ("p_value", "p_holm")
                  if {(r["a_only"], r["b_only"]), (r["b_only"], r["a_only"])} & {pair}}
            assert p.rstrip(".") in ps, f"{path.name}: {a} / {b} with p = {p}, the rows give {sorted(ps)}"
            found += 1
    assert found >= 10


def test_paired_rows_agree_with_the_reports_accuracies():
    """The records behind paired.json are the report's: each row's two accuracies are cells of
    the report's metrics (same model, same n)."""
    metrics = json.loads((REPORT / "metrics.json").read_text())["accuracy"]
    rows = json.loads(PAIRED[0].read_text())["rows"]
    worst = [r for r in rows if r["what"].startswith("models, worst case over every attack")]
    assert worst and all(metrics[r["a"]]["worst_case"]["value"] == pytest.approx(r["acc_a"]) and
                         metrics[r["a"]]["worst_case"]["n"] == r["n"] for r in worst)
    pgd = [r for r in rows if r["what"] == "models, pgd40, all images"]
    assert pgd and all(metrics[r["b"]]["pgd40"]["value"] == pytest.approx(r["acc_b"]) for r in pgd)
