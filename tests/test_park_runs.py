"""scripts/park_runs.py: an unfinished run carried through parked/ to a fresh results
folder resumes to the same weights as a run never interrupted."""
import importlib.util
from pathlib import Path

import pytest
import torch

from drrdn_lib import files, train as train_module
from drrdn_lib.train import TrainConfig, load_checkpoint, train
from test_train import TINY

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("park_runs", REPO / "scripts" / "park_runs.py")
park_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(park_runs)


def _interrupted_run(run_dir: Path, config: dict, monkeypatch) -> None:
    """Train ``config`` in ``run_dir`` and stop it (KeyboardInterrupt) before epoch 2."""
    real = train_module._train_epoch

    def stop_at_second(run, epoch, bar):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(run, epoch, bar)

    monkeypatch.setattr(train_module, "_train_epoch", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**config, out_dir=str(run_dir)))
    monkeypatch.setattr(train_module, "_train_epoch", real)


def test_parked_run_resumes_elsewhere_as_if_never_stopped(tmp_path, monkeypatch):
    config = {**TINY, "epochs": 2, "keep_every": 1}
    whole = train(TrainConfig(**config, out_dir=str(tmp_path / "whole" / "mnist5k" / "r")))
    run_dir = tmp_path / "here" / "mnist5k" / "r"
    _interrupted_run(run_dir, config, monkeypatch)
    assert park_runs.epochs_done(run_dir) == 1 and park_runs._status(run_dir) == "interrupted"

    parked = park_runs.park(run_dir, tmp_path / "parked")
    assert parked == tmp_path / "parked" / "mnist5k" / "r"
    assert sorted(p.name for p in parked.iterdir()) == sorted(park_runs.CARRIED)  # no epoch weights
    with_epochs = park_runs.park(run_dir, tmp_path / "parked_e", with_epochs=True)
    assert (with_epochs / "checkpoint_epoch_001.pt").is_file()

    fresh = tmp_path / "fresh"  # the next machine: no results/ yet
    target, copied = park_runs.unpark(parked, fresh)
    assert copied and target == fresh / "mnist5k" / "r"
    assert park_runs.unpark(parked, fresh) == (target, False)  # as far along: kept
    resumed = train(TrainConfig(**config, out_dir=str(target)), resume=True)
    assert [h["val_robust_acc"] for h in resumed.history] == [h["val_robust_acc"] for h in whole.history]
    a, b = (load_checkpoint(d / "checkpoint_last.pt") for d in (Path(whole.out_dir), target))
    assert a["epoch"] == b["epoch"] == 2
    for p, q in zip(a["model"].values(), b["model"].values()):
        assert torch.equal(p, q)
    # a finished run further along here is never overwritten by an older parked one
    assert park_runs.unpark(parked, fresh) == (target, False)


def test_park_refuses_a_run_being_trained_and_a_folder_without_checkpoint(tmp_path):
    run_dir = tmp_path / "mnist5k" / "r"
    with pytest.raises(park_runs.ParkError, match="no checkpoint_last.pt"):
        park_runs.park(files.make_folder(run_dir), tmp_path / "parked")
    (run_dir / "checkpoint_last.pt").write_bytes(b"x")
    with files.folder_lock(run_dir, name=park_runs.TRAIN_LOCK):
        with pytest.raises(park_runs.ParkError, match="is being trained"):
            park_runs.park(run_dir, tmp_path / "parked")
    with pytest.raises(park_runs.ParkError, match="is not a run folder"):
        park_runs.park(tmp_path / "absent", tmp_path / "parked")
