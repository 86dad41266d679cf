"""scripts/train_main_runs.py and scripts/evaluate_main_runs.py: the guards that keep a
background evaluation from training, and a parameter file's methods the only choice."""
import importlib.util
from pathlib import Path

import pytest
import yaml

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params(tmp_path, **values):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dataset": "mnist5k", "methods": ["standard", "pgd_at"],
                                    "init_from_standard": False, "epochs": 1, "train_limit": 100,
                                    **values}))
    return str(path)


@pytest.mark.parametrize("name", ["train_main_runs", "evaluate_main_runs"])
def test_methods_must_be_the_parameter_files(tmp_path, name):
    with pytest.raises(SystemExit, match=r"--methods \['mart'\] not in"):
        _script(name).main([_params(tmp_path), "--methods", "standard,mart"])


def test_evaluation_refuses_a_run_that_has_not_finished(tmp_path, monkeypatch):
    from drrdn_lib import experiments
    monkeypatch.setattr(experiments, "REPO_ROOT", tmp_path)  # run folders under tmp_path/results/runs
    with pytest.raises(SystemExit, match="not started, not finished; train it first"):
        _script("evaluate_main_runs").main([_params(tmp_path), "--methods", "pgd_at",
                                            "--out-dir", str(tmp_path / "out")])
    assert not (tmp_path / "results" / "runs").exists()  # nothing was trained


def test_evaluation_leaves_the_ci_recipe_to_the_notebook(tmp_path):
    with pytest.raises(SystemExit, match="from-scratch runs"):
        _script("evaluate_main_runs").main([_params(tmp_path, init_from_standard=True)])


def test_notebook_training_kw_takes_every_training_parameter_and_nothing_else():
    from drrdn_lib import experiments
    params = {"epochs": 6, "eps_ramp_epochs": 1, "bf16": True, "eval_limit": 100, "methods": ["trades"]}
    assert experiments.notebook_training_kw(params) == {"epochs": 6, "eps_ramp_epochs": 1, "bf16": True}
