"""The training loop (drrdn_lib.train): validation, determinism, checkpoints, resume
after a real SIGKILL, divergence, loading runs back."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from drrdn_lib import methods
from drrdn_lib.drrdn import DRRDN
from drrdn_lib.train import (CheckpointError, ConfigError, TrainConfig, TrainingDiverged, _augment,
                             epoch_checkpoints, load_checkpoint, load_model, train)

REPO = Path(__file__).resolve().parent.parent
TINY = dict(method="pgd_at", epochs=2, batch_size=32, lr=0.05, train_eps=0.2,
            train_step_size=0.1, train_steps=1, val_eps=0.2, val_step_size=0.1, val_steps=1,
            train_limit=96, val_limit=32, progress=False)




# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("change, message", [
    ({"method": "fgsm_at"}, "unknown method 'fgsm_at'; known methods"),
    ({"model": "resnet50"}, "unknown model 'resnet50'; known models"),
    ({"dataset": "imagenet"}, "dataset 'imagenet'"),
    ({"method": "drrdn", "hyper": {"lambda_adv": -0.5}}, "lambda_adv=-0.5 must be a finite number >= 0"),
    ({"method": "trades", "hyper": {"bta": 6}}, "no hyperparameter\\(s\\) \\['bta'\\]"),
    ({"train_eps": 1.5}, "train_eps=1.5 must be in \\[0, 1\\]"),
    ({"val_eps": -0.1}, "val_eps=-0.1 must be in \\[0, 1\\]"),
    ({"train_steps": 0}, "train_steps=0 must be an integer >= 1"),
    ({"epochs": 10, "milestones": (5, 12)}, "milestone 12 is not before the last epoch"),
    ({"milestones": (3, 2), "epochs": 5}, "must be increasing"),
    ({"schedule": "cosine", "milestones": (1,)}, "only apply to the piecewise"),
    ({"schedule": "step"}, "schedule='step'; use one of"),
    ({"lr": 0.0}, "lr=0.0 must be a finite number > 0"),
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001 must be >= 0"),
    ({"momentum": 1.0}, "momentum=1.0 must be in \\[0, 1\\)"),
    ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
    ({"bf16": "yes"}, "bf16='yes' must be True or False"),
    ({"device": "tpu"}, "device='tpu'; use 'cpu'"),
    ({"train_limit": 1}, "train_limit=1 must be None"),
    ({"select_on": "loss"}, "select_on='loss'"),
    ({"init_from": "/nonexistent/run"}, "init_from='/nonexistent/run' does not exist"),
    ({"keep_every": -1}, "keep_every=-1 must be an integer >= 0"),
    ({"eps_ramp_epochs": 3}, "eps_ramp_epochs=3 must be a number in \\[0, epochs=2\\]"),
    ({"eps_ramp_epochs": -1}, "eps_ramp_epochs=-1 must be a number"),
    ({"seed": 1.5}, "seed=1.5 must be an integer >= 0"),
    ({"seed": "3"}, "seed='3' must be an integer >= 0"),
    ({"model_kwargs": {"dropoutt": 0.1}}, "do not fit model 'smallcnn'.*unexpected keyword argument 'dropoutt'"),
    ({"method": "drrdn", "model_kwargs": {"robust_dim": 8}}, "no 'robust_dim'"),
    ({"out_dir": __file__}, "is a file, not a folder"),
    ({"augment": "false"}, "augment='false' must be True or False or None \\(got str; write it without quotes\\)"),
    ({"progress": 1}, "progress=1 must be True or False \\(got int\\)"),
    ({"method": ["pgd_at"]}, "method=\\['pgd_at'\\] must be a str \\(got list\\)"),
    ({"milestones": "5"}, "milestones='5' must be a tuple or None"),
    ({"init_from": 3}, "init_from=3 must be a str or None"),
    ({"device": "cuda:x"}, "device='cuda:x'; use 'cpu', 'cuda' or 'cuda:N'"),
])
def test_bad_config_rejected_before_training(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{**TINY, **change})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_rejected():
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        TrainConfig(**TINY, device="cuda")


def test_a_recorded_configuration_is_checked_but_not_against_this_machine(tmp_path):
    """A zoo card's (or a moved run's) configuration names an init_from folder that need not
    exist here; read as a record it loads, typed and range-checked all the same."""
    from drrdn_lib.train_config import config_from_dict
    values = {**TrainConfig(**TINY).to_dict(), "init_from": str(tmp_path / "moved")}
    with pytest.raises(ConfigError, match="does not exist"):
        config_from_dict(values)
    assert config_from_dict(values, recorded=True).init_from == str(tmp_path / "moved")
    with pytest.raises(ConfigError, match="augment='no' must be True or False or None"):
        config_from_dict({**values, "augment": "no"}, recorded=True)
    assert TrainConfig(**TINY, out_dir=tmp_path).out_dir == str(tmp_path)  # paths become strings


def test_default_milestones_and_config_roundtrip():
    config = TrainConfig(epochs=8)
    assert config.resolved_milestones() == (4, 6, 7)  # the paper's 55/75/90% of the epochs
    assert TrainConfig().resolved_milestones() == (55, 75, 90)
    assert TrainConfig(**json.loads(json.dumps(config.to_dict()))) == config
    fixed = TrainConfig(epochs=8, milestones=[2, 5])
    assert fixed.milestones == (2, 5) and fixed.to_dict()["milestones"] == [2, 5]
    assert TrainConfig(**json.loads(json.dumps(fixed.to_dict()))) == fixed


# ----------------------------------------------------------------------------- runs
def _strip(history):
    return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in history]


def test_same_seed_same_numbers_and_files(tmp_path):
    a = train(TrainConfig(**TINY, out_dir=str(tmp_path / "a")))
    b = train(TrainConfig(**TINY, out_dir=str(tmp_path / "b")))
    assert _strip(a.history) == _strip(b.history)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and len(metrics["history"]) == 2
    assert metrics["best"]["epoch"] == a.best["epoch"] and metrics["last"]["epoch"] == 2
    assert json.loads((tmp_path / "a" / "config.json").read_text())["method"] == "pgd_at"
    assert a.history[0]["lr"] == 0.05 and a.history[1]["lr"] == pytest.approx(0.005)
    c = train(TrainConfig(**{**TINY, "seed": 1}))
    assert _strip(c.history) != _strip(a.history)


def test_best_and_last_checkpoints(tmp_path):
    result = train(TrainConfig(**TINY, out_dir=str(tmp_path)))
    last, best = load_checkpoint(tmp_path / "checkpoint_last.pt"), load_checkpoint(tmp_path / "checkpoint_best.pt")
    assert last["epoch"] == 2 and best["epoch"] == result.best["epoch"]
    assert set(last) >= {"model", "optimizers", "schedulers", "rng", "history", "config"}
    assert set(last["optimizers"]) == {"all"} == set(last["schedulers"])  # one for PGD-AT
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python", "data_order"}
    model = load_model(tmp_path, "last")
    assert not model.training
    for p, q in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(p, q)
    best_model = load_model(tmp_path, "best")
    for p, q in zip(best_model.state_dict().values(), result.best_model.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="which='final'"):
        load_model(tmp_path, "final")
    with pytest.raises(ConfigError, match="already holds a run"):
        train(TrainConfig(**TINY, out_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="configuration differs in \\['lr'\\]"):
        train(TrainConfig(**{**TINY, "lr": 0.1}, out_dir=str(tmp_path)), resume=True)
    again = train(TrainConfig(**TINY, out_dir=str(tmp_path)), resume=True)  # finished: as is
    assert _strip(again.history) == _strip(result.history)


def test_kept_epoch_weights_are_those_of_that_epoch(tmp_path):
    config = {**TINY, "epochs": 3}
    kept = train(TrainConfig(**config, keep_every=2, out_dir=str(tmp_path / "kept")))
    assert list(epoch_checkpoints(tmp_path / "kept")) == [2]
    short = train(TrainConfig(**{**config, "epochs": 2, "milestones": (1,)}))  # same first 2 epochs
    assert _strip(short.history) == _strip(kept.history[:2])
    for p, q in zip(load_model(tmp_path / "kept", 2).state_dict().values(),
                    short.model.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="kept no weights of epoch 3 \\(kept: \\[2\\]\\)"):
        load_model(tmp_path / "kept", 3)
    assert epoch_checkpoints(tmp_path / "nothing") == {}
    # what is kept is not part of the run: resuming with another keep_every is allowed
    again = train(TrainConfig(**config, keep_every=1, out_dir=str(tmp_path / "kept")), resume=True)
    assert _strip(again.history) == _strip(kept.history)


WORKER = """
import json, sys, torch
torch.set_num_threads(1)
from drrdn_lib.train import TrainConfig, train
train(TrainConfig(**json.loads(sys.argv[1])), resume=sys.argv[2] == "resume")
"""


def _worker(config: dict, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config),
                             "resume" if resume else "fresh"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """Kill a run with SIGKILL once its first checkpoint exists, resume it, and compare
    with a run never interrupted (both in fresh processes, one thread each)."""
    config = {**TINY, "method": "drrdn", "epochs": 3, "train_limit": 192, "train_steps": 2,
              "hyper": {"lambda_mi": 0.5, "lambda_rec": 0.1}, "model_kwargs": {"dropout": 0.3}}
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole = _worker({**config, "out_dir": str(whole_dir)}, resume=False)
    cut = _worker({**config, "out_dir": str(cut_dir)}, resume=False)
    deadline = time.time() + 120
    while not (cut_dir / "checkpoint_last.pt").exists():
        assert cut.poll() is None, cut.communicate()[1][-2000:]
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    os.kill(cut.pid, signal.SIGKILL)
    cut.wait()
    assert cut.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(cut_dir / "checkpoint_last.pt")["epoch"]
    assert killed_at < 3, "the run finished before it was killed: nothing was tested"
    resumed = _worker({**config, "out_dir": str(cut_dir)}, resume=True)
    for proc in (whole, resumed):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
    a, b = (load_checkpoint(d / "checkpoint_last.pt") for d in (whole_dir, cut_dir))
    assert a["epoch"] == b["epoch"] == 3
    assert set(a["optimizers"]) == {"classify", "disentangle", "estimate_mi", "minimise_mi",
                                    "reconstruct"}  # every optimiser of Algorithm 1 resumed
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert _strip(a["history"]) == _strip(b["history"]) and a["best_epoch"] == b["best_epoch"]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole_dir, cut_dir))
    assert mb["status"] == "finished" and _strip(ma["history"]) == _strip(mb["history"])


def _nan_in_second_epoch():
    calls = {"n": 0}

    def objective(model, images, labels, budget):
        loss, terms = methods.standard(model, images, labels, budget)
        calls["n"] += 1
        if calls["n"] > 3:  # 96 images / 32 = 3 batches per epoch
            loss = loss * math.nan
            terms = {**terms, "loss": math.nan}
        return loss, terms
    return objective


def test_nan_loss_stops_run_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "nan_test", _nan_in_second_epoch())
    config = TrainConfig(**{**TINY, "method": "nan_test"}, out_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2, batch 1.*epoch 1"):
        train(config)
    checkpoint = load_checkpoint(tmp_path / "checkpoint_last.pt")
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "nan" in metrics["error"]


def _nan_gradient_in_last_batch_of_first_epoch():
    """A finite loss whose gradient is NaN (0 * d sqrt(z)/dz at z = 0) on batch 3 of epoch 1:
    the step makes every weight NaN while the loss stays finite."""
    calls = {"n": 0}

    def objective(model, images, labels, budget):
        loss, terms = methods.standard(model, images, labels, budget)
        calls["n"] += 1
        if calls["n"] == 3:
            total = sum(p.sum() for p in model.parameters())
            loss = loss + 0.0 * torch.sqrt(total - total.detach())
        return loss, terms
    return objective


def test_a_step_that_makes_the_weights_non_finite_is_recorded_as_divergence(tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "nan_grad_test", _nan_gradient_in_last_batch_of_first_epoch())
    config = TrainConfig(**{**TINY, "method": "nan_grad_test"}, out_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite \(\S+ holds NaN or inf\) "
                                               r"after the step at epoch 1, batch 3 \(the loss was finite"):
        train(config)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "non-finite" in metrics["error"]
    assert metrics["diverged_at"]["epoch"] == 1 and metrics["diverged_at"]["batch"] == 3
    assert not (tmp_path / "checkpoint_last.pt").exists()  # no NaN weights were saved

    # any other error ends the run as failed, never "running"
    def broken_validation(*args, **kwargs):
        raise ValueError("validation broke")
    monkeypatch.setitem(methods.METHODS, "ok_test", methods.standard)
    from drrdn_lib import train as train_module
    monkeypatch.setattr(train_module, "evaluate_accuracy", broken_validation)
    with pytest.raises(ValueError, match="validation broke"):
        train(TrainConfig(**{**TINY, "method": "ok_test"}, out_dir=str(tmp_path / "b")))
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"] == "ValueError: validation broke"


def test_drrdn_initialised_from_a_plain_run(tmp_path):
    plain = train(TrainConfig(**{**TINY, "epochs": 1}, out_dir=str(tmp_path / "plain")))
    config = TrainConfig(**{**TINY, "method": "drrdn", "epochs": 1, "lr": 1e-9, "momentum": 0.0,
                            "weight_decay": 0.0, "init_from": str(tmp_path / "plain")})
    result = train(config)
    assert isinstance(result.model, DRRDN)
    encoder = result.model.backbone.state_dict()
    assert encoder and set(encoder) < set(plain.best_model.backbone.state_dict())  # conv part
    for name, tensor in encoder.items():
        assert torch.allclose(tensor, plain.best_model.backbone.state_dict()[name], atol=1e-6), name


def test_cosine_schedule_and_augmentation():
    result = train(TrainConfig(**{**TINY, "schedule": "cosine", "epochs": 2, "augment": True}))
    assert result.history[1]["lr"] == pytest.approx(0.025)
    images = torch.rand(5, 3, 8, 8)
    out = _augment(images, torch.Generator().manual_seed(0), pad=0)
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(2)) for o, i in zip(out, images))
    assert _augment(images, torch.Generator().manual_seed(0)).shape == images.shape


def test_bf16_trains_under_autocast_and_validates_in_float32(tmp_path, monkeypatch):
    """bfloat16 autocast covers the update only: the weights stay float32 and the validation
    attack (as every evaluation attack) sees float32 logits outside autocast."""
    from drrdn_lib import attacks
    seen = []
    original = attacks.PGD.__call__

    def recording(self, model, images, labels):
        seen.append((torch.is_autocast_enabled("cpu"), model(images[:2]).dtype))
        return original(self, model, images, labels)
    monkeypatch.setattr(attacks.PGD, "__call__", recording)
    result = train(TrainConfig(**{**TINY, "epochs": 1, "bf16": True}))
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert (True, torch.bfloat16) in seen  # the training attack, inside the update
    assert seen[-1] == (False, torch.float32)  # the validation attack, after the epoch
    assert result.history[0]["val_clean_acc"] is not None


def test_a_second_writer_of_a_run_folder_is_refused_or_waits(tmp_path):
    """Two processes training into one folder: a fresh run fails at once naming the holder;
    a resuming one waits and then loads the finished run instead of overwriting it."""
    import multiprocessing
    from drrdn_lib.files import folder_lock
    config = TrainConfig(**{**TINY, "epochs": 1}, out_dir=str(tmp_path / "run"))
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(str(tmp_path / "run"), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            train(config)
    finally:
        release.set()
        holder.join(30)
    first = train(config)
    again = train(config, resume=True)  # finished: loaded, not retrained
    assert again.history == first.history
    with folder_lock(tmp_path / "run", wait=0, name=".train.lock"):
        pass  # released after each run


def _hold_lock(folder, ready, release):
    from drrdn_lib.files import folder_lock
    with folder_lock(folder, wait=0, name=".train.lock"):
        ready.set()
        release.wait(30)


@pytest.mark.parametrize("content, message", [
    (b"", "truncated, empty"), (b"not a checkpoint", "truncated, empty"), (None, "missing")])
def test_bad_checkpoints_get_one_clear_message(tmp_path, content, message):
    path = tmp_path / "checkpoint_last.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)  # a foreign file
    else:
        path.write_bytes(content)
    for read in (lambda: load_checkpoint(path), lambda: load_model(tmp_path, "last")):
        with pytest.raises(CheckpointError, match=message) as error:
            read()
        assert str(path) in str(error.value) and "weights_only" not in str(error.value)


# ----------------------------------------------------------------------------- eps ramp
def test_ramped_budget_grows_linearly_then_stays():
    from drrdn_lib.attacks import AttackBudget
    from drrdn_lib.train import ramped_budget
    full = AttackBudget(0.3, 0.01, 40)
    assert ramped_budget(full, 0, 0.1) is full
    half = ramped_budget(full, 2, 1.0)
    assert half.eps == pytest.approx(0.15) and (half.step_size, half.steps) == (0.01, 40)
    assert ramped_budget(full, 2, 2.0) == full and ramped_budget(full, 2, 5.5) == full


def test_eps_ramp_reaches_the_update_batch_by_batch(monkeypatch):
    """With a one-epoch ramp the first epoch's batches see eps growing to train_eps; the
    second epoch sees train_eps throughout; the ramp is in the run's identity only when set."""
    seen = []
    original = methods.make_update

    def recording(*args, **kwargs):
        update = original(*args, **kwargs)

        def wrapped(images, labels, budget):
            seen.append(budget.eps)
            return update(images, labels, budget)
        wrapped.optimizers = update.optimizers
        return wrapped
    monkeypatch.setattr(methods, "make_update", recording)
    train(TrainConfig(**{**TINY, "eps_ramp_epochs": 1}))
    assert seen[:3] == pytest.approx([0.2 / 3, 0.4 / 3, 0.2]) and seen[3:] == [0.2] * 3
    assert "eps_ramp_epochs" not in TrainConfig(**TINY).to_dict()  # old run hashes kept
    assert TrainConfig(**{**TINY, "eps_ramp_epochs": 1}).to_dict()["eps_ramp_epochs"] == 1


def test_metrics_carry_provenance_and_wall_time(tmp_path):
    train(TrainConfig(**{**TINY, "epochs": 1, "bf16": True, "out_dir": str(tmp_path)}))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (session,) = metrics["provenance"]
    assert session["precision"] == "bfloat16" and session["first_epoch"] == 1
    assert session["torch"] == torch.__version__ and session["threads"] >= 1
    assert session["commit"] != "" and session["device"] == "cpu" and session["device_name"]
    assert metrics["wall_seconds"]["train"] > 0 and metrics["wall_seconds"]["validation"] > 0
    train(TrainConfig(**{**TINY, "epochs": 1, "bf16": True, "out_dir": str(tmp_path)}), resume=True)
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["provenance"] == metrics["provenance"]  # loading a finished run trains nothing


def test_wall_seconds_sums_epochs_and_says_none_where_an_epoch_did_not_record_them():
    from drrdn_lib.train import wall_seconds
    history = [{"seconds": 10.0, "val_seconds": 1.0}, {"seconds": 12.5, "val_seconds": 2.0}]
    assert wall_seconds(history) == {"train": 22.5, "validation": 3.0}
    assert wall_seconds([{"seconds": 10.0}, {"seconds": 12.5}]) == {"train": 22.5, "validation": None}
