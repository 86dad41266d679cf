"""Carry unfinished training runs from one machine to the next through the repository.

A robust cpu-scale run (13,000-16,000 core-seconds in float32) outlives a 3-hour session,
and ``results/`` stays on the machine that wrote it. ``park`` copies what a run needs to
resume (``metrics.json``, ``checkpoint_last.pt``: weights, optimisers, schedulers, RNG
states and the log; ``checkpoint_best.pt``) from ``results/runs/<dataset>/<run>/`` into
``parked/<dataset>/<run>/``, which is committed; ``unpark`` copies them back on the next
machine, where ``scripts/train_main_runs.py`` then continues each run from its last epoch.
Per-epoch weights (``checkpoint_epoch_*.pt``) are not carried unless ``--epochs`` (the
seed study takes each run's best weights into the zoo; notebooks 04/05 then read those).

    python scripts/park_runs.py park results/runs/mnist/pgd_at-f6545b5aa8
    python scripts/park_runs.py unpark          # every parked run not further along here
    python scripts/park_runs.py list

A run that a process is training (its folder lock is held) is refused: stop it first
(it resumes from its last checkpoint). ``unpark`` never overwrites a run that is as far
along or further here; ``drop`` removes a parked run once it has finished and its model
is in the zoo.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drrdn_lib import files  # noqa: E402
from drrdn_lib.train import TRAIN_LOCK  # noqa: E402

PARKED = ROOT / "parked"
RUNS = ROOT / "results" / "runs"
CARRIED = ("checkpoint_last.pt", "checkpoint_best.pt", "metrics.json")  # metrics last


class ParkError(RuntimeError):
    """A run that cannot be parked or unparked, with the reason."""


def epochs_done(run_dir: Path) -> int:
    """Epochs a run folder's ``metrics.json`` records as done (0 without one)."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return 0
    return int(json.loads(metrics.read_text()).get("epochs_done") or 0)


def _status(run_dir: Path) -> str:
    metrics = run_dir / "metrics.json"
    return json.loads(metrics.read_text()).get("status", "?") if metrics.is_file() else "empty"


def _copy_files(source: Path, target: Path, names) -> None:
    """Copy ``names`` from ``source`` into ``target``, each file atomically."""
    files.make_folder(target)
    for name in names:
        files.write_bytes_atomic(target / name, (source / name).read_bytes())


def _carried(run_dir: Path, with_epochs: bool) -> list[str]:
    missing = [n for n in CARRIED[:1] if not (run_dir / n).is_file()]
    if missing:
        raise ParkError(f"{run_dir} has no {missing[0]}: nothing to resume from.")
    names = [n for n in CARRIED if (run_dir / n).is_file()]
    epochs = sorted(p.name for p in run_dir.glob("checkpoint_epoch_*.pt")) if with_epochs else []
    return epochs + names


def park(run_dir: Path, parked_root: Path = PARKED, with_epochs: bool = False) -> Path:
    """Copy ``run_dir``'s resumable state to ``parked_root/<dataset>/<run>``; returns it."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise ParkError(f"{run_dir} is not a run folder.")
    target = parked_root / run_dir.parent.name / run_dir.name
    try:
        with files.folder_lock(run_dir, wait=0, name=TRAIN_LOCK):
            names = _carried(run_dir, with_epochs)
            stale = [p for p in target.glob("*") if p.name not in names] if target.is_dir() else []
            _copy_files(run_dir, target, names)
            for path in stale:  # e.g. epoch weights parked before, not carried now
                path.unlink()
    except files.FolderLocked as error:
        raise ParkError(f"{run_dir} is being trained ({error}); stop that process first: "
                        "the run resumes from its last checkpoint.") from None
    return target


def unpark(parked_dir: Path, runs_root: Path = RUNS) -> tuple[Path, bool]:
    """Copy a parked run back to ``runs_root/<dataset>/<run>`` unless the run there is as far
    along; returns (that folder, whether it was copied)."""
    parked_dir = Path(parked_dir)
    target = runs_root / parked_dir.parent.name / parked_dir.name
    if target.is_dir() and epochs_done(target) >= epochs_done(parked_dir):
        return target, False
    files.make_folder(target)
    try:
        with files.folder_lock(target, wait=0, name=TRAIN_LOCK):
            names = [n for n in sorted(p.name for p in parked_dir.glob("checkpoint_epoch_*.pt"))]
            _copy_files(parked_dir, target, names + [n for n in CARRIED if (parked_dir / n).is_file()])
    except files.FolderLocked as error:
        raise ParkError(f"{target} is being trained ({error}); not overwritten.") from None
    return target, True


def parked_runs(parked_root: Path = PARKED) -> list[Path]:
    """Every parked run folder, sorted."""
    return sorted(p.parent for p in parked_root.glob("*/*/metrics.json"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("park", help="copy run folders' resumable state into parked/")
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--epochs", action="store_true", help="carry the per-epoch weights too")
    sub.add_parser("unpark", help="copy every parked run back into results/runs/")
    sub.add_parser("list", help="the parked runs and how far each is")
    d = sub.add_parser("drop", help="remove parked runs (finished, in the zoo)")
    d.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "park":
            for run in args.runs:
                target = park(run, with_epochs=args.epochs)
                print(f"parked {run} ({epochs_done(target)} epochs, {_status(target)}) -> "
                      f"{target.relative_to(ROOT)}")
        elif args.command == "unpark":
            for parked_dir in parked_runs():
                target, copied = unpark(parked_dir)
                print(f"{'unparked' if copied else 'kept (as far along here)'} "
                      f"{parked_dir.relative_to(ROOT)} -> {target} ({epochs_done(target)} epochs)")
        elif args.command == "list":
            for parked_dir in parked_runs():
                print(f"{parked_dir.relative_to(ROOT)}: {epochs_done(parked_dir)} epochs, "
                      f"{_status(parked_dir)}")
        else:
            for run in args.runs:
                shutil.rmtree(PARKED / Path(run).parent.name / Path(run).name)
                print(f"dropped {run}")
    except ParkError as error:
        print(f"park_runs: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
