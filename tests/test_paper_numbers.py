"""drrdn_lib.paper_numbers holds exactly the numbers docs/paper.md reports: the tests parse
the markdown (Tables 1-2 as tables, Tables 3-4 from their sentences) and compare."""
import re
from pathlib import Path

import pytest

from drrdn_lib.paper_numbers import COLUMNS, TABLES, paper_frame, paper_value

PAPER = Path(__file__).resolve().parents[1] / "docs" / "paper.md"


def _results_section() -> str:
    text = PAPER.read_text()
    start, end = text.index("## Results"), text.index("## Context")
    return text[start:end]


def _markdown_table(section: str, caption: str) -> dict[str, list[str]]:
    """Rows (model -> cells) of the first markdown table after ``caption``."""
    after = section[section.index(caption):]
    block = []
    for ln in after.splitlines()[1:]:
        if ln.startswith("|"):
            block.append(ln)
        elif block:
            break
    assert block, f"no table after {caption!r}"
    header = [c.strip() for c in block[0].strip("|").split("|")]
    assert header[0] == "model" and len(header) == 1 + len(COLUMNS)
    rows = {}
    for ln in block[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("table, caption", [("table1", "Table 1,"), ("table2", "Table 2,")])
def test_tables_1_and_2_match_the_markdown(table, caption):
    rows = _markdown_table(_results_section(), caption)
    assert list(rows) == list(TABLES[table])
    for model, cells in rows.items():
        for column, cell in zip(COLUMNS, cells):
            if cell == "-":
                assert column not in TABLES[table][model]
            else:
                assert paper_value(table, model, column) == float(cell), (table, model, column)
        assert len(TABLES[table][model]) == sum(c != "-" for c in cells)


def test_table3_matches_the_sentence():
    text = " ".join(_results_section().split())
    found = re.findall(r"(r\(z'?_s, z'?_i\)) (\d+\.\d+)", text)
    assert len(found) == 4
    assert {k: float(v) for k, v in found} == TABLES["table3"]["DRRDN"]


def test_table4_matches_the_sentence():
    text = " ".join(_results_section().split())
    sentence = text[text.index("Table 4"):]
    found = re.findall(r"(DRRDN|without MI|without reconstruction) (\d+\.\d+) / (\d+\.\d+)",
                       sentence)
    names = {"DRRDN": "DRRDN", "without MI": "DRRDN without MI",
             "without reconstruction": "DRRDN without reconstruction"}
    assert len(found) == 3
    for name, pgd40, pgd100 in found:
        assert TABLES["table4"][names[name]] == {"pgd40": float(pgd40), "pgd100": float(pgd100)}


def test_every_number_of_the_results_section_is_held_once():
    """The Results section's decimal numbers, as a multiset, are exactly the frame's values."""
    numbers = sorted(float(x) for x in re.findall(r"\b\d+\.\d+\b", _results_section()))
    frame = paper_frame()
    assert len(frame) == len(numbers) == 36 + 36 + 4 + 6
    assert sorted(frame["value"].tolist()) == numbers


def test_frame_and_lookup_errors():
    one = paper_frame("table4")
    assert list(one.columns) == ["table", "model", "column", "value"]
    assert set(one["table"]) == {"table4"} and len(one) == 6
    with pytest.raises(ValueError, match="table9"):
        paper_frame("table9")
    with pytest.raises(KeyError, match="own"):
        paper_value("table1", "DRRDN", "bb_drrdn")
