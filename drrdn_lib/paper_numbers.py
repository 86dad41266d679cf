"""The paper's reported numbers (Tables 1-4 of Yang et al., AAAI 2021, as in docs/paper.md),
as data, so a notebook can show "ours | paper | difference".

All values are test-set accuracies in percent, exactly as printed. Column keys follow the
project's attack names (``drrdn_lib.protocol.WHITE_BOX_NAMES``): ``natural``, ``fgsm``,
``pgd40``, ``pgd100``, ``cw40``, ``cw100``, then ``bb_<surrogate>`` for the black-box
columns (``bb_standard``, ``bb_madry``, ``bb_trades``, ``bb_drrdn``). A model is never
attacked with its own examples in the black-box columns: those cells ("-" in the paper)
are absent. Model names are the paper's; :data:`METHOD_OF_MODEL` maps them to
``drrdn_lib.methods`` names. ``tests/test_paper_numbers.py`` parses docs/paper.md and
checks that every number there is here, so the two cannot drift.

    paper_frame()                      # every number: table, model, column, value
    paper_frame("table1")              # one table
    TABLES["table1"]["DRRDN"]["pgd40"] # 97.55
"""
from __future__ import annotations

import pandas as pd

__all__ = ["MODELS", "METHOD_OF_MODEL", "COLUMNS", "HYBRID_COLUMNS", "TABLES",
           "TABLE_CAPTIONS", "paper_frame", "paper_value"]

#: the paper's models, in its row order
MODELS = ("Standard", "Madry", "TRADES", "DRRDN")
#: the paper's model name -> the ``drrdn_lib.methods`` name that trains it
METHOD_OF_MODEL = {"Standard": "standard", "Madry": "pgd_at", "TRADES": "trades",
                   "DRRDN": "drrdn"}
#: Tables 1 and 2's columns, in the paper's order
COLUMNS = ("natural", "fgsm", "pgd40", "pgd100", "cw40", "cw100",
           "bb_standard", "bb_madry", "bb_trades", "bb_drrdn")
#: Table 3's hybrid representations (``drrdn_lib.hybrids.HYBRIDS`` uses the same names)
HYBRID_COLUMNS = ("r(z_s, z_i)", "r(z'_s, z_i)", "r(z_s, z'_i)", "r(z'_s, z'_i)")


def _row(values: tuple, model: str) -> dict[str, float]:
    """One row of Table 1 or 2; the cell of the model's own black-box column is left out."""
    row = dict(zip(COLUMNS, values))
    own = f"bb_{model.lower()}"
    if row[own] is not None:
        raise AssertionError(f"{model}'s own black-box cell must be empty ('-').")
    return {k: v for k, v in row.items() if v is not None}


TABLE_CAPTIONS = {
    "table1": "MNIST, SmallCNN: white box at eps 0.3, black box from the named surrogate",
    "table2": "CIFAR-10, WRN-28-10: white box at eps 0.031, black box from the named surrogate",
    "table3": "MNIST: hybrid representations classified by the fine-tuned Standard classifier",
    "table4": "MNIST ablation: PGD-40 / PGD-100 accuracy",
}

#: table -> row -> column -> accuracy in percent
TABLES: dict[str, dict[str, dict[str, float]]] = {
    "table1": {
        "Standard": _row((99.49, 86.44, 0.36, 0.30, 0.00, 0.00, None, 90.26, 83.83, 98.24), "Standard"),
        "Madry": _row((99.45, 98.88, 96.58, 95.32, 96.62, 95.43, 97.74, None, 97.02, 98.03), "Madry"),
        "TRADES": _row((99.50, 98.98, 96.95, 95.73, 96.88, 95.88, 97.77, 96.93, None, 97.95), "TRADES"),
        "DRRDN": _row((99.56, 99.13, 97.55, 96.78, 97.52, 96.93, 98.05, 97.38, 97.59, None), "DRRDN"),
    },
    "table2": {
        "Standard": _row((95.32, 37.22, 0.0, 0.0, 0.0, 0.0, None, 45.22, 47.79, 50.40), "Standard"),
        "Madry": _row((86.53, 55.86, 45.49, 44.97, 47.29, 46.95, 79.55, None, 68.66, 71.42), "Madry"),
        "TRADES": _row((84.66, 60.30, 50.91, 50.32, 49.73, 49.11, 81.60, 70.79, None, 74.52), "TRADES"),
        "DRRDN": _row((85.76, 62.81, 52.32, 52.21, 51.88, 51.33, 82.65, 72.26, 72.33, None), "DRRDN"),
    },
    "table3": {
        "DRRDN": dict(zip(HYBRID_COLUMNS, (99.31, 99.02, 95.82, 95.01))),
    },
    "table4": {
        "DRRDN": {"pgd40": 97.55, "pgd100": 96.78},
        "DRRDN without MI": {"pgd40": 96.88, "pgd100": 96.25},
        "DRRDN without reconstruction": {"pgd40": 97.32, "pgd100": 96.43},
    },
}


def paper_value(table: str, model: str, column: str) -> float:
    """One reported accuracy (percent); ``KeyError`` naming what exists if it is absent."""
    if table not in TABLES:
        raise KeyError(f"no table {table!r}; use one of {sorted(TABLES)}.")
    rows = TABLES[table]
    if model not in rows:
        raise KeyError(f"{table} has no row {model!r}; rows: {list(rows)}.")
    if column not in rows[model]:
        raise KeyError(f"{table} row {model!r} has no column {column!r} (a model's own "
                       f"black-box cell is empty in the paper); columns: {list(rows[model])}.")
    return rows[model][column]


def paper_frame(table: str | None = None) -> pd.DataFrame:
    """The paper's numbers as a tidy frame with columns ``table``, ``model``, ``column``,
    ``value`` (percent), one row per reported number, in the paper's order; ``table``
    (e.g. "table1") keeps one table."""
    if table is not None and table not in TABLES:
        raise ValueError(f"no table {table!r}; use one of {sorted(TABLES)} or None for all.")
    records = [{"table": t, "model": model, "column": column, "value": value}
               for t, rows in TABLES.items() if table in (None, t)
               for model, row in rows.items() for column, value in row.items()]
    return pd.DataFrame.from_records(records, columns=["table", "model", "column", "value"])
