"""scripts/device/pack_runs.py: finished runs packed within the device tool's limits on
files coming back, each run once across calls."""
import importlib.util
import json
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "device" / "pack_runs.py"


def _pack():
    spec = importlib.util.spec_from_file_location("pack_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, name: str, weight_bytes: int, status: str = "finished") -> None:
    run = root / "mnist" / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"status": status}))
    (run / "config.json").write_text("{}")
    (run / "checkpoint_best.pt").write_bytes(b"0" * weight_bytes)
    (run / "checkpoint_last.pt").write_bytes(b"0" * weight_bytes)  # never packed


def test_runs_are_packed_within_the_limits_once_each(tmp_path):
    runs, mib = tmp_path / "runs", 2 ** 20
    for i in range(3):
        _run(runs, f"drrdn-{i}", int(0.9 * mib))
    for i in range(4):
        _run(runs, f"pgd_at-{i}", int(0.2 * mib))
    _run(runs, "trades-x", int(0.2 * mib), status="running")
    ledger, args = tmp_path / "packed.txt", ["--runs", str(runs), "--file-mib", "1", "--files", "3",
                                             "--total-mib", "2.5"]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    _pack().main([str(first), "--ledger", str(ledger), *args])
    tars = sorted(first.glob("*.tar"))
    assert len(tars) == 3 and all(t.stat().st_size <= 1.01 * mib for t in tars)
    names = [m.name for t in tars for m in tarfile.open(t).getmembers()]
    assert not any(n.endswith("checkpoint_last.pt") or "trades-x" in n for n in names)
    # largest first, first fit: a DRRDN-sized run per tar, the small ones in the third, 2.4 MiB
    assert {n.split("/")[1] for n in names} == {"drrdn-0", "drrdn-1", "pgd_at-0", "pgd_at-1", "pgd_at-2"}
    _pack().main([str(second), "--ledger", str(ledger), *args])
    names2 = {m.name.split("/")[1] for t in second.glob("*.tar") for m in tarfile.open(t).getmembers()}
    assert names2 == {"drrdn-2", "pgd_at-3"}
    assert len(ledger.read_text().split()) == 7  # every finished run, once
