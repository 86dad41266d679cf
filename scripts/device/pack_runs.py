"""Pack the finished run folders not packed before into tar files under ``out`` within the
device tool's limits on files coming back (at most 8 files of 16 MiB, 64 MiB together):
per run only what ``zoo.add_to_zoo`` reads (config.json, metrics.json, checkpoint_best.pt),
runs put together first-fit into tars of at most ``--file-mib``, at most ``--files`` tars
and ``--total-mib`` in all; what is packed is listed in ``--ledger`` so that the next call
packs the rest.

    python scripts/device/pack_runs.py "$OUT" --runs results/runs --ledger results/logs/device/packed.txt
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

KEEP = ("config.json", "metrics.json", "checkpoint_best.pt")
MIB = 2 ** 20


def finished(runs: Path) -> list[Path]:
    """Run folders (runs/<dataset>/<run>) whose metrics.json says finished."""
    out = []
    for metrics in sorted(runs.glob("*/*/metrics.json")):
        try:
            if json.loads(metrics.read_text()).get("status") == "finished":
                out.append(metrics.parent)
        except (OSError, ValueError):
            continue
    return out


def size(run: Path) -> int:
    return sum((run / name).stat().st_size for name in KEEP if (run / name).is_file())


def plan(runs: list[Path], file_bytes: int, files: int, total_bytes: int) -> list[list[Path]]:
    """First-fit bins of runs, largest first, within the limits; runs that do not fit wait."""
    bins: list[list[Path]] = []
    used: list[int] = []
    for run in sorted(runs, key=size, reverse=True):
        s = size(run)
        if s > file_bytes or sum(used) + s > total_bytes:
            continue
        for i, u in enumerate(used):
            if u + s <= file_bytes:
                bins[i].append(run)
                used[i] += s
                break
        else:
            if len(bins) < files:
                bins.append([run])
                used.append(s)
    return bins


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--ledger", default="results/logs/device/packed.txt")
    p.add_argument("--file-mib", type=float, default=15.9)
    p.add_argument("--files", type=int, default=7, help="tars (one file is left for the logs)")
    p.add_argument("--total-mib", type=float, default=63.0)
    args = p.parse_args(argv)
    ledger = Path(args.ledger)
    done = set(ledger.read_text().split()) if ledger.is_file() else set()
    todo = [r for r in finished(Path(args.runs)) if r.name not in done]
    bins = plan(todo, int(args.file_mib * MIB), args.files, int(args.total_mib * MIB))
    for i, group in enumerate(bins):
        with tarfile.open(Path(args.out) / f"runs_{i}.tar", "w") as tar:
            for run in group:
                for name in KEEP:
                    tar.add(run / name, arcname=f"{run.parent.name}/{run.name}/{name}")
    packed = [run.name for group in bins for run in group]
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.writelines(f"{name}\n" for name in packed)
    left = [r.name for r in todo if r.name not in packed]
    print(f"packed {len(packed)} run(s) into {len(bins)} tar(s): {packed}; left for the next call: {left}")


if __name__ == "__main__":
    main()
