"""scripts/train_main_runs.py and scripts/evaluate_main_runs.py: the guards that keep a
background evaluation from training, and a parameter file's methods the only choice."""
import importlib.util
from pathlib import Path

import pytest
import torch
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


def test_training_refuses_a_file_that_takes_the_zoos_models(tmp_path):
    with pytest.raises(SystemExit, match="from_zoo: true, so the notebook takes the zoo's models"):
        _script("train_main_runs").main([_params(tmp_path, from_zoo=True)])


def test_evaluation_leaves_the_ci_recipe_to_the_notebook(tmp_path):
    with pytest.raises(SystemExit, match="from-scratch runs"):
        _script("evaluate_main_runs").main([_params(tmp_path, init_from_standard=True)])


def test_notebook_training_kw_takes_every_training_parameter_and_nothing_else():
    from drrdn_lib import experiments
    params = {"epochs": 6, "eps_ramp_epochs": 1, "bf16": True, "eval_limit": 100, "methods": ["trades"]}
    assert experiments.notebook_training_kw(params) == {"epochs": 6, "eps_ramp_epochs": 1, "bf16": True}


CPU_PARAMS = Path(__file__).resolve().parent.parent / "notebooks" / "params" / "02_main_results" / "cpu.yaml"


def _cpu_training(**changes):
    from drrdn_lib import experiments
    from drrdn_lib.notebook_params import parameters_from_file
    params = parameters_from_file(Path(_script("evaluate_main_runs").NOTEBOOK), CPU_PARAMS)
    return params, {**experiments.notebook_training_kw(params), **changes}


def test_the_cpu_scale_runs_are_the_zoos_models():
    """cpu.yaml's four runs resolve to the zoo cards that record them (no run folder needed),
    with the card's best weights and learning curve."""
    from drrdn_lib import experiments, zoo
    params, training = _cpu_training(from_zoo=True)
    runs = experiments.train_for_notebook(params["methods"], params["dataset"], params["seeds"], **training)
    assert sorted(m for m, _ in runs) == sorted(params["methods"])
    for (method, _), run in runs.items():
        card = zoo.card(method)
        assert run.config.to_dict() == card["training"]["config"]
        assert run.best["epoch"] == card["weights"]["epoch"] == card["training"]["learning_curve"]["best_epoch"]
        assert run.history == card["training"]["learning_curve"]["per_epoch"]
        assert run.out_dir is None and run.model is run.best_model and not run.best_model.training
        reference = zoo.load_pretrained(method).state_dict()
        assert all(torch.equal(v, reference[k]) for k, v in run.best_model.state_dict().items())


def test_a_configuration_no_card_records_is_refused_with_the_zoos_runs(tmp_path):
    from drrdn_lib import experiments, zoo
    params, training = _cpu_training(from_zoo=True, epochs=7)
    with pytest.raises(zoo.ZooError, match=r"no zoo model was trained as drrdn \(seed 0\).*'drrdn': 'drrdn-"):
        experiments.train_for_notebook(["drrdn"], params["dataset"], [0], **training)
    with pytest.raises(SystemExit, match=r"no zoo model was trained as pgd_at \(seed 0\)"):
        _script("evaluate_main_runs").main([_params(tmp_path), "--methods", "pgd_at", "--from-zoo",
                                            "--out-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing was evaluated


def test_a_zoo_run_names_its_origin_for_the_metrics():
    from drrdn_lib import experiments
    params, training = _cpu_training(from_zoo=True)
    run = experiments.train_for_notebook(["drrdn"], params["dataset"], [0], **training)[("drrdn", 0)]
    assert experiments.run_origin(run) == "zoo/drrdn.pt (run drrdn-029802bebb)"
    assert experiments.training_path(run) == []  # a zoo model kept its best epoch only


ABLATION_CPU = Path(__file__).resolve().parent.parent / "notebooks" / "params" / "03_ablation" / "cpu.yaml"


def _ablation_params(tmp_path, **values):
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump({"dataset": "mnist5k", "epochs": 1, "train_limit": 64,
                                    "variants": ["full DRRDN", "without MI"], **values}))
    return str(path)


def test_ablation_variants_must_be_the_parameter_files(tmp_path):
    with pytest.raises(SystemExit, match=r"--variants \['without L_BC'\] not among"):
        _script("train_ablation_runs").main([_ablation_params(tmp_path), "--variants", "without L_BC"])


def test_ablation_variants_are_named_and_ordered():
    from drrdn_lib import experiments
    assert list(experiments.ablation_variants(["without MI", "full DRRDN"])) == ["without MI", "full DRRDN"]
    assert experiments.ablation_variants(None) == experiments.ABLATIONS
    with pytest.raises(ValueError, match="unknown ablation variants \\['without MINE'\\]"):
        experiments.ablation_variants(["without MINE"])


def test_the_seed_studys_full_drrdn_is_one_run_for_notebooks_02_and_03():
    """03's seeds.yaml asks, for each seed, for the very run folder 02's seeds.yaml trains as
    DRRDN (TRADES init, lambda_rec 0.001, float32); its variant without reconstruction
    differs from it in lambda_rec alone; the control is every disentanglement weight off."""
    from drrdn_lib import experiments
    from drrdn_lib.notebook_params import parameters_from_file
    params_dir = Path(__file__).resolve().parent.parent / "notebooks" / "params"
    main = parameters_from_file(Path(_script("train_main_runs").NOTEBOOK),
                                params_dir / "02_main_results" / "seeds.yaml")
    ablation = parameters_from_file(Path(_script("train_ablation_runs").NOTEBOOK),
                                    params_dir / "03_ablation" / "seeds.yaml")
    assert main["seeds"] == ablation["seeds"] == [0, 1, 2]
    import inspect
    accepted = inspect.signature(experiments.training_kw).parameters
    main_kw = experiments.training_kw(**{k: v for k, v in experiments.notebook_training_kw(main).items()
                                         if k in accepted})  # as train_for_notebook builds them
    ablation_kw = experiments.ablation_training_kw(ablation)
    for seed in main["seeds"]:
        drrdn = experiments.make_config("drrdn", "mnist", seed=seed, hyper=main["hyper_by_method"]["drrdn"], **main_kw)
        assert drrdn.model_kwargs == {"init": "trades"} and drrdn.hyper["lambda_rec"] == 0.001 and not drrdn.bf16
        full = experiments.make_config("drrdn", "mnist", seed=seed, hyper={**ablation["base_hyper"]}, **ablation_kw)
        assert experiments.run_folder(full) == experiments.run_folder(drrdn)
        no_rec = experiments.make_config("drrdn", "mnist", seed=seed, hyper={
            **ablation["base_hyper"], **experiments.ABLATIONS["without reconstruction"]}, **ablation_kw)
        assert {k for k in no_rec.hyper if no_rec.hyper[k] != drrdn.hyper[k]} == {"lambda_rec"}
    control = parameters_from_file(Path(_script("train_ablation_runs").NOTEBOOK),
                                   params_dir / "03_ablation" / "control.yaml")
    assert control["seeds"] == [0] and control["variants"] == ["no disentanglement (L_CE only)"]
    assert experiments.ablation_training_kw(control) == ablation_kw


def test_the_ablation_cpu_scale_full_drrdn_is_the_zoos_and_the_variants_differ_only_in_hyper():
    """cpu.yaml of notebook 03 asks for the zoo's DRRDN (notebook 02's cpu-scale run) as its
    full DRRDN; each other variant is that run with one loss weight set to 0."""
    from drrdn_lib import experiments, zoo
    from drrdn_lib.notebook_params import parameters_from_file
    params = parameters_from_file(Path(_script("train_ablation_runs").NOTEBOOK), ABLATION_CPU)
    kw = experiments.ablation_training_kw(params)
    full = experiments.ablation_run(experiments.FULL_DRRDN, params["dataset"], from_zoo=True, **kw)
    assert full.config.to_dict() == zoo.card("drrdn")["training"]["config"]
    for variant in params["variants"][1:]:
        config = experiments.make_config("drrdn", params["dataset"], hyper=experiments.ABLATIONS[variant], **kw)
        changed = {k for k in config.hyper if config.hyper[k] != full.config.hyper[k]}
        assert changed == set(experiments.ABLATIONS[variant])
        assert {**config.to_dict(), "hyper": None} == {**full.config.to_dict(), "hyper": None, "out_dir": None}


def test_ablation_training_skips_the_zoos_full_drrdn_and_trains_the_rest(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from drrdn_lib import experiments
    trained = []

    def fake_run(method, dataset, **kw):
        trained.append((method, kw["hyper"]))
        return SimpleNamespace(best={"epoch": 1, "val_clean_acc": 0.5, "val_robust_acc": 0.25}, out_dir="x")
    monkeypatch.setattr(experiments, "shared_run", fake_run)
    _script("train_ablation_runs").main([_ablation_params(tmp_path, from_zoo=True)])
    assert trained == [("drrdn", {"lambda_mi": 0.0})]
    printed = capsys.readouterr().out
    assert "full DRRDN: the zoo's DRRDN (from_zoo), nothing to train" in printed
    assert "without MI seed 0: best epoch 1, val clean 0.5000, val PGD 0.2500" in printed


def test_attack_convergence_reports_every_attack_with_its_interval(tmp_path, monkeypatch):
    import json

    from torch import nn

    from tiny import N_CLASSES, SIDE, train_tiny
    model, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 40)
    script = _script("attack_convergence")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"n_autoattack": 40, "accuracy": {"tiny": {"autoattack": {"value": 0.1}}}}))
    monkeypatch.setattr(script, "REPORT", report)
    monkeypatch.setattr(script, "load_dataset", lambda *args, limit=None, **kw: (x[:limit], y[:limit]))
    monkeypatch.setattr(script.zoo, "load_pretrained", lambda name: model)
    monkeypatch.setattr(script, "ATTACKS", script.ATTACKS[:2] + [("PGD-3, step 0.1, 2 restarts", 3, 0.1, 2, "cw")])
    script.main(["--models", "tiny", "--out-dir", str(tmp_path)])
    rows = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    assert [r["attack"] for r in rows] == [a[0] for a in script.ATTACKS]
    clean = int((model(x).argmax(1) == y).sum())
    for r in rows:
        assert r["n"] == 40 and 0 <= r["n_correct"] <= clean and r["autoattack"] == {"value": 0.1}
        assert r["lo"] <= r["accuracy"] <= r["hi"]
    # a second model run into the same folder keeps the first one's rows; other digits are refused
    report.write_text(json.dumps({"n_autoattack": 40, "accuracy": {"tiny": {"autoattack": {"value": 0.1}},
                                                                    "other": {"autoattack": {"value": 0.2}}}}))
    script.main(["--models", "other", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["tiny"] * 3 + ["other"] * 3
    assert saved["parameters"]["models"] == "tiny,other"
    with pytest.raises(SystemExit, match="holds rows on 40 digits, not 20"):
        script.main(["--models", "other", "--limit", "20", "--out-dir", str(tmp_path)])


def test_ablation_evaluation_in_the_background_fills_the_notebooks_cache(tmp_path, monkeypatch):
    """--evaluate-into REPORT_DIR leaves nothing for the notebook's own evaluation to compute."""
    from drrdn_lib import experiments
    from drrdn_lib.notebook_params import parameters_from_file
    monkeypatch.setattr(experiments, "REPO_ROOT", tmp_path)  # run folders under tmp_path/results/runs
    path = _ablation_params(tmp_path, variants=["without MI"], eval_limit=20, autoattack=None,
                            attack_steps=[2, 3], checks="none")
    report = tmp_path / "report"
    _script("train_ablation_runs").main([path, "--evaluate-into", str(report)])
    assert len(list((report / "cache").glob("evaluate-*.pt"))) == 1
    params = parameters_from_file(Path(_script("train_ablation_runs").NOTEBOOK), path)
    run = experiments.ablation_run("without MI", "mnist5k", **experiments.ablation_training_kw(params))
    monkeypatch.setattr(experiments, "evaluate", lambda *args, **kwargs: 1 / 0)
    frame, checks, records, flags = experiments.evaluate_ablation_run(run.best_model, "without MI", 0, params,
                                                               report / "cache")
    assert set(frame.column) == {"clean", "fgsm", "pgd2", "pgd3", "cw2", "cw3", "worst_case"}
    assert checks.empty and list(checks.columns) == ["model", "check", "passed", "message", "seed"]
    assert list(records) == ["all images"] and records["all images"]["n"] == 20
    assert set(records["all images"]["attacks"]) == {"fgsm", "pgd2", "pgd3", "cw2", "cw3"}
    assert list(flags) == ["all images"] and flags["all images"]["pgd3"].shape == (20,)
    assert int(flags["all images"]["clean"].sum()) == records["all images"]["n_clean_correct"]


def test_seeds_and_device_reach_the_training_and_unknown_seeds_are_refused(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from drrdn_lib import experiments
    calls = []

    def fake_train(methods, dataset, seeds, **kw):
        calls.append((methods[0], seeds[0], kw["device"]))
        best = {"epoch": 1, "val_clean_acc": 0.5, "val_robust_acc": 0.25}
        return {(methods[0], seeds[0]): SimpleNamespace(best=best, out_dir="x")}
    monkeypatch.setattr(experiments, "train_for_notebook", fake_train)
    params = _params(tmp_path, seeds=[0, 1, 2])
    _script("train_main_runs").main([params, "--methods", "pgd_at", "--seeds", "1,2", "--device", "cuda"])
    assert calls == [("pgd_at", 1, "cuda"), ("pgd_at", 2, "cuda")]
    with pytest.raises(SystemExit, match=r"--seeds \[5\] not in"):
        _script("train_main_runs").main([params, "--seeds", "0,5"])
    with pytest.raises(SystemExit, match="whole numbers"):
        _script("train_ablation_runs").main([_ablation_params(tmp_path), "--seeds", "one"])


def test_ablation_device_reaches_the_run(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from drrdn_lib import experiments
    devices = []

    def fake_run(method, dataset, **kw):
        devices.append(kw["device"])
        return SimpleNamespace(best={"epoch": 1, "val_clean_acc": 0.5, "val_robust_acc": 0.25}, out_dir="x")
    monkeypatch.setattr(experiments, "shared_run", fake_run)
    _script("train_ablation_runs").main([_ablation_params(tmp_path, from_zoo=True), "--device", "cuda:1"])
    assert devices == ["cuda:1"]
