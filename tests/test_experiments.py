"""The notebooks' helpers: protocol presets, budgets, and one run folder per configuration."""
import pytest

from drrdn_lib import experiments
from drrdn_lib.attacks import BUDGETS


def test_protocol_presets_follow_docs():
    assert experiments.protocol("mnist5k")["model"] == "smallcnn"
    assert experiments.protocol("cifar10")["eval"] == BUDGETS["cifar10_eval"]
    with pytest.raises(ValueError, match="no protocol for dataset 'svhn'"):
        experiments.protocol("svhn")


def test_resized_budget_keeps_the_madry_step_rule():
    budget = experiments.eval_budget("mnist", steps=10, eps=0.2)
    assert (budget.eps, budget.steps) == (0.2, 10) and budget.step_size == pytest.approx(0.05)
    assert experiments.eval_budget("mnist") == BUDGETS["mnist_eval"]


def test_run_folder_is_one_per_configuration(tmp_path):
    base = dict(epochs=2, train_limit=100, eps=0.2, train_steps=2)
    same = [experiments.make_config("drrdn", "mnist5k", **base),
            experiments.make_config("drrdn", "mnist5k", hyper={"lambda_adv": 1.0}, **base),
            experiments.make_config("drrdn", "mnist5k", device="cpu", progress=False, **base)]
    assert len({experiments.run_folder(c, tmp_path) for c in same}) == 1
    other = experiments.make_config("drrdn", "mnist5k", hyper={"lambda_adv": 0.0}, **base)
    assert experiments.run_folder(other, tmp_path) != experiments.run_folder(same[0], tmp_path)
    assert experiments.run_folder(other, tmp_path).parent == tmp_path / "mnist5k"


def test_training_kw_is_one_rule_for_every_notebook():
    ci = experiments.training_kw(epochs=4, train_limit=1000, batch_size=32, eps=0.2, train_steps=5, lr=0.05)
    assert (ci["val_limit"], ci["val_steps"], ci["keep_every"], ci["lr"]) == (200, 5, 1, 0.05)
    assert "model" not in ci and ci["progress"] is False
    full = experiments.training_kw(epochs=100, model="wrn28_10")
    assert (full["val_limit"], full["keep_every"], full["model"]) == (None, 12, "wrn28_10")
    assert "lr" not in full  # the protocol's
    config = experiments.make_config("pgd_at", "cifar10", **full)
    assert (config.lr, config.model, config.keep_every) == (0.1, "wrn28_10", 12)
    assert (config.train_eps, config.train_step_size, config.train_steps) == (0.031, 0.007, 10)
    assert (config.momentum, config.weight_decay, config.batch_size) == (0.9, 2e-4, 128)
    assert config.resolved_milestones() == (55, 75, 90)
    # what is kept does not make another run
    kept = experiments.make_config("pgd_at", "cifar10", **{**full, "keep_every": 0})
    assert experiments.run_folder(kept) == experiments.run_folder(config)
