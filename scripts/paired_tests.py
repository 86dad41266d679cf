"""Paired tests of a report's comparisons, from its committed per-digit evaluation records
(no training, no attacks): writes ``<report>/paired.json`` and prints a markdown table.

    python scripts/paired_tests.py reports/02_main_results_cpu reports/03_ablation_cpu

Each record in ``<report>/cache/evaluate-*.pt`` is matched to its entry of
``metrics.json["evaluations"]`` by its counts (n, clean, worst case, every attack), so every
row says which model and which digits it rests on. Two models (or two attacks) on the same
digits are compared by the exact McNemar test and Newcombe's interval for the difference
(drrdn_lib.stats); every family of comparisons a report claims is Holm-corrected.
Records hold the white-box attacks only: the "worst case" rows here are over the white-box
attacks (and AutoAttack on the 1,000 digits); each row's accuracies are checked against
the report's metrics where the report has the same column.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drrdn_lib.eval_cache import safe_load as load_record  # noqa: E402
from drrdn_lib.files import write_text_atomic  # noqa: E402
from drrdn_lib.stats import format_p, paired_rows  # noqa: E402

#: the report's label of each white-box worst case the records give
WORST = {"all images": "worst case, paper's white-box attacks", "autoattack subset": "worst case over every attack"}


def _summary(evaluation: dict) -> tuple:
    return (evaluation["n"], evaluation["n_clean_correct"], evaluation["n_worst_case_correct"],
            tuple(sorted((k, a["n_correct"]) for k, a in evaluation["attacks"].items())))


def _record_summary(record) -> tuple:
    return (record.n, record.n_clean_correct, record.n_worst_case_correct,
            tuple(sorted((k, a.n_correct) for k, a in record.attacks.items())))


def matched_records(report: Path) -> dict:
    """``{(model, stage): per_example}`` for every evaluation of ``report``; stage is "all
    images" or "autoattack subset"."""
    metrics = json.loads((report / "metrics.json").read_text())
    records = {_record_summary(r): r for r in map(load_record, sorted((report / "cache").glob("evaluate-*.pt")))}
    out = {}
    for key, evaluation in metrics["evaluations"].items():
        model, _seed, *rest = key.split("/")
        stage = rest[0] if rest else "all images"
        record = records.get(_summary(evaluation))
        if record is None:
            raise SystemExit(f"{report}: no record in cache/ matches evaluation {key!r}")
        out[(model, stage)] = {k: v.numpy() for k, v in record.per_example.items()}
    return out


def main_results(report: Path) -> list[dict]:
    """Report 02: the robust models against each other (every column, both stages) and, per
    model on the 1,000 digits, its lowest paper attack against the worst case."""
    flags = matched_records(report)
    robust = [m for m in ("pgd_at", "trades", "drrdn") if (m, "all images") in flags]
    rows = []
    for stage, columns in (("all images", ("fgsm", "pgd40", "pgd100", "cw40", "cw100", "worst_case")),
                           ("autoattack subset", ("autoattack", "worst_case"))):
        for column in columns:
            by_model = {m: flags[(m, stage)][column] for m in robust}
            label = WORST[stage] if column == "worst_case" else column
            rows += paired_rows(by_model, list(itertools.combinations(robust, 2)),
                                what=f"models, {label}, {stage}")
    overstate, pairs = {}, []
    for m in robust:
        f = flags[(m, "autoattack subset")]
        lowest = min(("fgsm", "pgd40", "pgd100", "cw40", "cw100"), key=lambda c: f[c].sum())
        overstate[f"{m}: {lowest}"], overstate[f"{m}: worst case"] = f[lowest], f["worst_case"]
        pairs.append((f"{m}: {lowest}", f"{m}: worst case"))
    rows += paired_rows(overstate, pairs, what="attacks, lowest paper attack vs worst case, autoattack subset")
    return rows


def ablation(report: Path) -> list[dict]:
    """Report 03: each variant against the full DRRDN, PGD-40 and PGD-100 on all 10,000
    digits and the worst case on the 1,000 (one Holm family)."""
    flags = matched_records(report)
    variants = [m for m, s in flags if s == "all images" and m != "full DRRDN"]
    items, pairs = {}, []
    for stage, column in (("all images", "pgd40"), ("all images", "pgd100"), ("autoattack subset", "worst_case")):
        label = WORST[stage] if column == "worst_case" else column
        for m in ["full DRRDN", *variants]:
            items[f"{m}: {label}"] = flags[(m, stage)][column]
        pairs += [(f"{v}: {label}", f"full DRRDN: {label}") for v in variants]
    return paired_rows(items, pairs, what="variants vs full DRRDN")


def markdown(rows: list[dict]) -> str:
    lines = ["| comparison | A | B | n | acc A | acc B | A - B [95% Newcombe] (points) | A only / B only | McNemar p | Holm p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["difference"]
        lines.append(f"| {r['what']} | {r['a']} | {r['b']} | {r['n']:,} | {100 * r['acc_a']:.1f} | "
                     f"{100 * r['acc_b']:.1f} | {100 * d['value']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] | "
                     f"{r['a_only']} / {r['b_only']} | {format_p(r['p_value'])} | {format_p(r['p_holm'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report folders (02_main_results_*, 03_ablation_*)")
    args = parser.parse_args(argv)
    for report in args.reports:
        kind = json.loads((report / "metrics.json").read_text())
        rows = ablation(report) if "summary" in kind and "pgd_columns" in kind else main_results(report)
        out = {"command": "python scripts/paired_tests.py " + " ".join(map(str, args.reports)),
               "report": report.name, "rows": rows}
        write_text_atomic(report / "paired.json", json.dumps(out, indent=1) + "\n")
        print(f"## {report.name} ({len(rows)} comparisons; Holm within each family)\n\n{markdown(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
