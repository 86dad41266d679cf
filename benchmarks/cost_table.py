"""What one seed of a protocol costs, from what the runs recorded (no timing here):
training wall seconds from zoo cards, evaluation seconds per stage from a report's
evaluation records (``<report>/cache/evaluate-*.pt``).

    python benchmarks/cost_table.py --cards standard_s0 pgd_at_s0 standard pgd_at trades drrdn \\
        --records reports/02_main_results_cpu/cache reports/03_ablation_cpu/cache

Seconds are one process's wall time on the machine and thread count each card or record
names (evaluation records: one thread); a record resumed across sessions counts only its
last session in ``seconds``, so its checks' time (total minus the attacks') is shown only
where that difference is positive.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import zoo  # noqa: E402
from drrdn_lib.eval_cache import safe_load  # noqa: E402

PAPER = ("fgsm", "pgd40", "pgd100", "cw40", "cw100")


def training_rows(names: list[str]) -> list[str]:
    rows = []
    for name in names:
        info = zoo.card(name)
        training = info.get("training") or {}
        wall, config = training.get("wall_seconds") or {}, training.get("config") or {}
        sessions = training.get("provenance") or []  # one entry per session that trained it
        machines = sorted({f"{s.get('device_name', '?')} x{s.get('threads', '?')}" for s in sessions})
        precision = "/".join(sorted({s.get("precision", "?") for s in sessions}))
        rows.append(f"| {name} | {config.get('epochs', '?')} | {precision} | "
                    f"{', '.join(machines)} ({len(sessions)} session(s)) | "
                    f"{wall.get('train', float('nan')):,.0f} | {wall.get('validation', float('nan')):,.0f} |")
    return rows


def record_rows(folders: list[str]) -> list[str]:
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).glob("evaluate-*.pt")):
            record = safe_load(path)
            attacks = {k: v.seconds for k, v in record.attacks.items()}
            paper = sum(attacks.get(k, 0.0) for k in PAPER)
            aa = attacks.get("autoattack")
            checks = record.seconds - sum(attacks.values())
            rows.append(f"| {Path(folder).parent.name}/{path.stem[9:17]} | {record.n:,} | "
                        f"{record.n_clean_correct / record.n:.3f} | {paper:,.0f} | "
                        f"{'' if aa is None else f'{aa:,.0f}'} | "
                        f"{f'{checks:,.0f}' if checks > 0 and record.checks else 'n/a'} |")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cards", nargs="*", default=[])
    p.add_argument("--records", nargs="*", default=[])
    args = p.parse_args(argv)
    print("| zoo model | epochs | precision | machine x threads | training s | validation s |")
    print("| --- | ---: | --- | --- | ---: | ---: |")
    print("\n".join(training_rows(args.cards)))
    print()
    print("| record | digits | clean | paper's five attacks s | AutoAttack s | checks s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(record_rows(args.records)))


if __name__ == "__main__":
    main()
