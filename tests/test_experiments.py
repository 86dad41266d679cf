"""The notebooks' helpers: protocol presets, budgets, and one run folder per configuration."""
import copy
import pytest
import torch

from drrdn_lib import experiments
from drrdn_lib.attacks import AttackBudget
from drrdn_lib.protocol import BUDGETS


def test_protocol_presets_follow_docs():
    assert experiments.protocol("mnist5k")["model"] == "smallcnn"
    assert experiments.protocol("cifar10")["eval"] == BUDGETS["cifar10_eval"]
    with pytest.raises(ValueError, match="no protocol for dataset 'svhn'"):
        experiments.protocol("svhn")


def test_resized_budget_keeps_the_madry_step_rule():
    budget = experiments.eval_budget("mnist", steps=10, eps=0.2)
    assert (budget.eps, budget.steps) == (0.2, 10) and budget.step_size == pytest.approx(0.05)
    assert experiments.eval_budget("mnist") == BUDGETS["mnist_eval"]


def test_attack_scale_is_the_protocols_only_for_mnist_from_scratch_at_its_eps_and_steps():
    protocol = dict(eps=None, attack_steps=None, train_limit=None, init_from_standard=False,
                    epochs=6, eval_limit=2000)
    full, budget, words = experiments.attack_scale("mnist", **protocol)
    assert full and budget == BUDGETS["mnist_eval"]
    assert words == "mnist, the protocol's eps 0.3 and PGD-40, 6 training epochs, 2000 test images"
    ci = dict(protocol, eps=0.2, attack_steps=10, train_limit=1000, init_from_standard=True, eval_limit=300)
    full, budget, words = experiments.attack_scale("mnist5k", **ci)
    assert not full and (budget.eps, budget.steps) == (0.2, 10)
    assert words == "CI scale: mnist5k, 1000 training images, eps 0.2, PGD-10, 300 test images"
    for one_change in ({"init_from_standard": True}, {"train_limit": 1000}, {"attack_steps": 10}):
        assert not experiments.attack_scale("mnist", **{**protocol, **one_change})[0]


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


# ------------------------------------------------------------- Tables 1 and 2 (notebook 02)
def test_paper_attacks_are_the_protocols_at_its_eps():
    from drrdn_lib.protocol import white_box_attacks
    ours, theirs = experiments.paper_attacks("mnist"), white_box_attacks("mnist")
    assert list(ours) == list(theirs) == ["fgsm", "pgd40", "pgd100", "cw40", "cw100"]
    for name in ours:
        a, b = ours[name].config(), theirs[name].config()
        assert a.pop("step_size") == pytest.approx(b.pop("step_size")) and a == b


def test_paper_attacks_scale_with_eps_and_name_reduced_steps():
    scaled = experiments.paper_attacks("mnist5k", eps=0.2)
    assert scaled["pgd40"].eps == 0.2 and scaled["pgd40"].step_size == pytest.approx(0.01 * 0.2 / 0.3)
    assert scaled["fgsm"].steps == 1 and scaled["fgsm"].step_size == pytest.approx(0.2 / 3)
    assert not scaled["fgsm"].random_start
    reduced = experiments.paper_attacks("mnist5k", eps=0.2, steps=(10, 20))
    assert list(reduced) == ["fgsm", "pgd10", "pgd20", "cw10", "cw20"]  # never "pgd40"
    assert reduced["pgd10"].step_size == pytest.approx(2.5 * 0.2 / 10) and reduced["cw20"].loss == "cw"
    with pytest.raises(ValueError, match="two increasing step counts"):
        experiments.paper_attacks("mnist", steps=(20, 10))
    assert experiments.black_box_budget("mnist") == AttackBudget(0.3, 0.01, 40)
    bb = experiments.black_box_budget("mnist5k", eps=0.2, steps=10)
    assert (bb.eps, bb.steps) == (0.2, 10) and bb.step_size == pytest.approx(0.05)


def test_labels_never_pass_a_reduced_attack_off_as_the_standard_one():
    assert experiments.attack_label("autoattack", "fast") == \
        "reduced AutoAttack (APGD-CE + APGD-T, 10 iterations)"
    assert experiments.attack_label("autoattack", "standard") == "AutoAttack (standard)"
    assert experiments.attack_label("pgd10") == "PGD-10" and experiments.attack_label("cw100") == "CW-100"
    assert experiments.attack_label("bb_pgd_at") == "black box from Madry (PGD-AT)"
    assert experiments.paper_column("pgd10", (10, 20)) == "pgd40"
    assert experiments.paper_column("cw20", (10, 20)) == "cw100"
    assert experiments.paper_column("bb_pgd_at") == "bb_madry"
    assert experiments.paper_column("bb_mart") is None and experiments.paper_column("autoattack") is None


def test_a_fine_tuned_run_folder_does_not_depend_on_the_checkout(tmp_path):
    base = dict(epochs=1, train_limit=100, eps=0.2, train_steps=2)
    folders = []
    for checkout in ("a", "b"):
        root = tmp_path / checkout / "runs"
        source = root / "mnist5k" / "standard-0123456789"
        source.mkdir(parents=True)
        config = experiments.make_config("pgd_at", "mnist5k", init_from=str(source), **base)
        folders.append(experiments.run_folder(config, root).relative_to(root))
    assert folders[0] == folders[1]
    plain = experiments.make_config("pgd_at", "mnist5k", **base)
    assert experiments.run_folder(plain, tmp_path).name != folders[0].name


def test_a_fine_tuned_run_cached_in_another_checkout_resumes(tmp_path):
    """The checkpoint's init_from is the other checkout's path; the run folder is the same."""
    base = dict(epochs=1, train_limit=100, eps=0.2, train_steps=2)
    configs = {}
    for checkout, name in (("a", "standard-0123456789"), ("b", "standard-0123456789"),
                           ("c", "standard-9876543210")):
        source = tmp_path / checkout / "runs" / "mnist5k" / name
        source.mkdir(parents=True)
        configs[checkout] = experiments.make_config("pgd_at", "mnist5k", init_from=str(source), **base)
    assert configs["b"].differences(configs["a"].to_dict()) == []
    assert configs["c"].differences(configs["a"].to_dict()) == ["init_from"]


def test_main_table_worst_case_covers_every_attack_and_transfer():
    """Two tiny models: columns, the diagonal left out, and the worst case as the AND of
    clean, every white-box attack, AutoAttack and the other model's transfer examples."""
    from torch import nn
    from tiny import N_CLASSES, SIDE, train_tiny

    def build():
        return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 32), nn.ReLU(), nn.Linear(32, N_CLASSES))
    a, x, y = train_tiny(build, 60)
    b, _, _ = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 1)
    table = experiments.evaluate_main_table({"standard": a, "trades": b}, x, y, "mnist5k", eps=0.05,
                                            attack_steps=(2, 3), black_box_steps=2, autoattack=None,
                                            checks="cheap", check_samples=20)
    assert table.columns == ["clean", "fgsm", "pgd2", "pgd3", "cw2", "cw3", "bb_standard",
                             "bb_trades", "black_box", "worst_case"]
    assert table.cell("standard", "bb_standard") is None
    flags = table.per_example["standard"]
    expected = flags["clean"].clone()
    for key in ("fgsm", "pgd2", "pgd3", "cw2", "cw3", "bb_trades"):
        expected &= flags[key]
    assert torch.equal(flags["worst_case"], expected)
    frame = table.to_frame()
    assert set(frame.model) == {"standard", "trades"} and (frame.lo <= frame.accuracy).all()
    assert len(table.checks_frame()) == 4  # two cheap checks per model
    assert table.transfer.examples == {}  # not kept in memory


def test_main_table_cached_and_autoattack_on_a_subset(tmp_path, monkeypatch):
    """A second evaluation with the same cache folder computes nothing; with AutoAttack on
    a subset, the full table's worst case is renamed and the subset's rows keep their n."""
    from torch import nn
    from tiny import N_CLASSES, SIDE, train_tiny
    a, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 40)
    kw = dict(eps=0.05, attack_steps=(2, 3), black_box_steps=2, checks="none", cache_dir=tmp_path)
    models = {"standard": a, "trades": copy.deepcopy(a)}
    full = experiments.evaluate_main_table(models, x, y, "mnist5k", autoattack=None, **kw)
    monkeypatch.setattr(experiments, "evaluate", lambda *args, **kwargs: 1 / 0)  # must not run
    again = experiments.evaluate_main_table(models, x, y, "mnist5k", autoattack=None, **kw)
    assert again.to_frame().equals(full.to_frame())
    monkeypatch.undo()
    fake = experiments.MainTable(full.models, full.columns[:-1] + ["autoattack", "worst_case"],
                                 {m: {**{c: f[:10] for c, f in full.per_example[m].items()},
                                      "autoattack": full.per_example[m]["clean"][:10]}
                                  for m in full.models}, full.records, full.transfer)
    rows = experiments.with_autoattack_subset(full, fake)
    assert "worst_case_paper" in set(rows.column) and set(rows[rows.column == "worst_case_paper"].n) == {40}
    assert set(rows[rows.column.isin(["autoattack", "worst_case"])].n) == {10}
    assert (rows.column == "worst_case").sum() == 2  # one per model, from the subset
    with pytest.raises(ValueError, match="no AutoAttack column"):
        experiments.with_autoattack_subset(full, full)


def test_summarise_seeds_wilson_for_one_seed_sd_for_several():
    import pandas as pd
    rows = [{"model": "trades", "column": "clean", "n_correct": 80, "n": 100, "accuracy": 0.8,
             "lo": 0.71, "hi": 0.87, "seed": 0}]
    one = experiments.summarise_seeds(pd.DataFrame(rows)).iloc[0]
    assert (one.kind, one.n, one.lo) == ("wilson", 100, 0.71)
    two = experiments.summarise_seeds(pd.DataFrame(rows + [{**rows[0], "accuracy": 0.9, "seed": 1}])).iloc[0]
    assert (two.kind, two.n) == ("sd", 2) and two.value == pytest.approx(0.85)
    assert two.hi - two.value == pytest.approx(two.sd) and two.sd == pytest.approx(0.0707, abs=1e-3)
    assert experiments.format_accuracy(0.85, 0.78, 0.92, "sd", 2) == "85.0 ± 7.0 (n=2)"
    assert experiments.format_accuracy(0.8, 0.71, 0.87, "wilson", 100) == "80.0 [71.0, 87.0]"


def test_compare_with_paper_pairs_our_columns_with_the_papers():
    import pandas as pd
    summary = pd.DataFrame([
        {"model": "drrdn", "column": "pgd10", "value": 0.5, "lo": 0.4, "hi": 0.6, "kind": "wilson", "n": 100, "sd": None},
        {"model": "mart", "column": "pgd10", "value": 0.5, "lo": 0.4, "hi": 0.6, "kind": "wilson", "n": 100, "sd": None},
        {"model": "drrdn", "column": "bb_drrdn", "value": 0.5, "lo": 0.4, "hi": 0.6, "kind": "wilson", "n": 100, "sd": None},
        {"model": "pgd_at", "column": "bb_standard", "value": 0.98, "lo": 0.97, "hi": 0.99, "kind": "wilson", "n": 100, "sd": None}])
    comparison = experiments.compare_with_paper(summary, "mnist5k", (10, 20))
    assert list(comparison.paper_column) == ["pgd40", "bb_standard"]  # MART and own column left out
    assert comparison.difference.iloc[0] == pytest.approx(50 - 97.55)
    assert list(comparison.paper_inside) == [False, True]


# ------------------------------------------------------------------ notebooks 04 and 06
def _fake_run(folder, epochs, best=None, init_from=None):
    import json
    from types import SimpleNamespace
    folder.mkdir(parents=True)
    for e in epochs:
        (folder / f"checkpoint_epoch_{e:03d}.pt").write_bytes(b"")
    (folder / "metrics.json").write_text(json.dumps({"best": {"epoch": best or max(epochs)}}))
    return SimpleNamespace(out_dir=folder, config=SimpleNamespace(init_from=init_from and str(init_from)))


def test_training_path_puts_the_pre_training_before_a_fine_tuned_runs_epochs(tmp_path):
    pre = _fake_run(tmp_path / "standard", [1, 2, 3, 4], best=3)
    tuned = _fake_run(tmp_path / "pgd_at", [1, 2], init_from=pre.out_dir)
    path = experiments.training_path(tuned)
    assert [(s["epoch"], s["stage"], s["run_epoch"]) for s in path] == [
        (1, "pre-training", 1), (2, "pre-training", 2), (3, "pre-training", 3), (4, "own", 1), (5, "own", 2)]
    assert path[0]["run_dir"] == pre.out_dir and path[-1]["run_dir"] == tuned.out_dir
    assert [s["epoch"] for s in experiments.training_path(pre)] == [1, 2, 3, 4]


def test_summarise_estimates_keeps_one_seeds_interval_and_gives_sd_for_several():
    rows = [{"method": "drrdn", "seed": 0, "n": 1000, "gap": 0.3, "gap_lo": 0.2, "gap_hi": 0.4}]
    one = experiments.summarise_estimates(rows, "method", ["gap"]).iloc[0]
    assert (one.model, one.column, one.kind, one.lo, one.hi) == ("drrdn", "gap", "interval", 0.2, 0.4)
    two = experiments.summarise_estimates(rows + [{**rows[0], "seed": 1, "gap": 0.5}], "method", ["gap"]).iloc[0]
    assert (two.kind, two.n) == ("sd", 2) and two.value == pytest.approx(0.4)
    assert experiments.format_estimate(1.2, 1.0, 1.4, "interval", 500) == "1.200 [1.000, 1.400]"


def test_evaluating_one_model_at_a_time_fills_the_cache_of_the_joint_evaluation(tmp_path, monkeypatch):
    """What scripts/evaluate_main_runs.py relies on: each model evaluated alone (white box
    and its transfer examples) leaves nothing to compute for the notebook's joint call."""
    from torch import nn
    from drrdn_lib import transfer
    from tiny import N_CLASSES, SIDE, train_tiny
    a, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 30)
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[1].bias.add_(0.1)
    models = {"standard": a, "trades": b}
    monkeypatch.setattr(experiments, "load_dataset", lambda *args, limit=None, **kw: (x[:limit], y[:limit]))
    kw = dict(eps=0.05, attack_steps=(2, 3), black_box_steps=2, checks="none", autoattack=None,
              cache_dir=tmp_path)
    for name, model in models.items():
        experiments.evaluate_for_notebook({0: {name: model}}, "mnist5k", **kw)
    monkeypatch.setattr(experiments, "evaluate", lambda *args, **kwargs: 1 / 0)
    monkeypatch.setattr(transfer, "craft_transfer_examples", lambda *args, **kwargs: 1 / 0)
    tables, subsets, frame = experiments.evaluate_for_notebook({0: models}, "mnist5k", **kw)
    assert subsets[0] is tables[0] and tables[0].n == 30
    assert set(frame.column) >= {"clean", "pgd3", "bb_trades", "black_box", "worst_case"}
    assert set(frame.seed) == {0}


def test_a_table_without_black_box_crafts_no_transfer_examples(tmp_path, monkeypatch):
    """Notebook 03's variants are evaluated alone, without a transfer matrix."""
    from torch import nn
    from drrdn_lib import transfer
    from tiny import N_CLASSES, SIDE, train_tiny
    a, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 30)
    monkeypatch.setattr(transfer, "craft_transfer_examples", lambda *args, **kwargs: 1 / 0)
    for models in ({"drrdn": a}, {"drrdn": a, "copy": copy.deepcopy(a)}):
        table = experiments.evaluate_main_table(models, x, y, "mnist5k", eps=0.05, attack_steps=(2, 3),
                                                autoattack=None, checks="none", black_box=False)
        assert table.columns == ["clean", "fgsm", "pgd2", "pgd3", "cw2", "cw3", "worst_case"]
        assert set(table.to_frame().column) == set(table.columns)


def test_evaluate_for_notebook_puts_autoattack_on_the_stratified_subset(tmp_path, monkeypatch):
    from torch import nn
    from tiny import N_CLASSES, SIDE, train_tiny
    a, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 30)
    monkeypatch.setattr(experiments, "load_dataset", lambda *args, limit=None, **kw: (x[:limit], y[:limit]))
    monkeypatch.setattr(experiments, "FAST_AUTOATTACK", {"attacks": ["apgd-ce"], "n_iter": 2, "n_target_classes": 1})
    tables, subsets, frame = experiments.evaluate_for_notebook(
        {0: {"standard": a}}, "mnist5k", eval_limit=30, autoattack="fast", autoattack_limit=12,
        eps=0.05, attack_steps=(2, 3), black_box_steps=2, checks="none", cache_dir=tmp_path)
    assert (tables[0].n, subsets[0].n) == (30, 12)
    n = frame.set_index("column")["n"]
    assert n["clean"] == 30 and n["worst_case_paper"] == 30 and n["autoattack"] == 12 and n["worst_case"] == 12


def test_the_full_set_stage_alone_is_the_first_stage_of_the_split_evaluation(tmp_path, monkeypatch):
    """subset_stage=False (scripts/evaluate_main_runs.py --full-set-only) computes exactly the
    stage on all images, under its cache keys, and no AutoAttack."""
    from torch import nn
    from tiny import N_CLASSES, SIDE, train_tiny
    a, x, y = train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES)), 30)
    monkeypatch.setattr(experiments, "load_dataset", lambda *args, limit=None, **kw: (x[:limit], y[:limit]))
    monkeypatch.setattr(experiments, "FAST_AUTOATTACK", {"attacks": ["apgd-ce"], "n_iter": 2, "n_target_classes": 1})
    kw = dict(eval_limit=30, autoattack="fast", autoattack_limit=12, eps=0.05, attack_steps=(2, 3),
              black_box_steps=2, checks="none", cache_dir=tmp_path)
    tables, subsets, frame = experiments.evaluate_for_notebook({0: {"standard": a}}, "mnist5k",
                                                               subset_stage=False, **kw)
    assert subsets[0] is tables[0] and tables[0].n == 30 and "autoattack" not in set(frame.column)
    calls = []
    real = experiments.evaluate
    monkeypatch.setattr(experiments, "evaluate", lambda *args, **kwargs: calls.append(len(args[1])) or real(*args, **kwargs))
    _, subsets, _ = experiments.evaluate_for_notebook({0: {"standard": a}}, "mnist5k", **kw)
    assert calls == [12] and subsets[0].n == 12  # the full set came from the cache


def test_load_only_refuses_a_run_that_has_not_finished(tmp_path):
    import json
    kw = dict(epochs=1, train_limit=100, eps=0.2, train_steps=2, root=tmp_path)
    with pytest.raises(experiments.RunNotFinished, match="not started"):
        experiments.shared_run("pgd_at", "mnist5k", load_only=True, **kw)
    config = experiments.make_config("pgd_at", "mnist5k", **{k: v for k, v in kw.items() if k != "root"})
    folder = experiments.run_folder(config, tmp_path)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(experiments.RunNotFinished, match="running, not finished"):
        experiments.shared_run("pgd_at", "mnist5k", load_only=True, **kw)
    with pytest.raises(ValueError, match="from-scratch"):
        experiments.train_for_notebook(["pgd_at"], "mnist5k", [0], epochs=1, init_from_standard=True,
                                       load_only=True)


def test_learning_curves_give_each_epochs_validation_cells_and_the_ramped_eps(tmp_path):
    import json
    from types import SimpleNamespace
    settings = {"val_limit": None, "dataset": "mnist", "eps_ramp_epochs": 2, "train_eps": 0.3}
    history = [{"epoch": e, "lr": 0.01, "train_loss": 1.0 / e, "val_clean_acc": c, "val_robust_acc": r}
               for e, c, r in ((1, 0.9, 0.5), (2, 0.95, 0.8), (3, 0.97, 0.9))]
    def run(init_from=None):
        config = SimpleNamespace(init_from=init_from, to_dict=lambda: settings)
        return SimpleNamespace(config=config, history=history)
    curves = experiments.learning_curves({("pgd_at", 0): run()})
    assert len(curves) == 6 and set(curves.n) == {1000} and set(curves.stage) == {"own"}
    pgd = curves[curves.split == "PGD"].set_index("epoch")
    assert pgd.loc[2, "value"] == 0.8 and pgd.loc[2, "lo"] < 0.8 < pgd.loc[2, "hi"]
    assert list(pgd.eps.round(3)) == [0.15, 0.3, 0.3]
    # fine-tuned from another run: that run's epochs up to its best come first
    source = tmp_path / "standard"
    source.mkdir()
    (source / "metrics.json").write_text(json.dumps({"best": {"epoch": 2}, "history": history}))
    (source / "config.json").write_text(json.dumps({**settings, "eps_ramp_epochs": 0}))
    tuned = experiments.learning_curves({("trades", 0): run(str(source))})
    natural = tuned[tuned.split == "natural"]
    assert list(natural.epoch) == [1, 2, 3, 4, 5]
    assert list(natural.stage) == ["pre-training"] * 2 + ["own"] * 3
    from drrdn_lib import plots
    fig = plots.plot_learning_curves(pd_concat([curves, tuned]), {"pgd_at": "PGD-AT"}, "test")
    assert len(fig.axes) == 2 and len(fig.axes[0].containers) == 2  # one error-bar line per model
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None


def pd_concat(frames):
    import pandas as pd
    return pd.concat(frames, ignore_index=True)


def test_learning_curves_mark_the_lr_drops_and_the_kept_epoch():
    import pandas as pd
    from drrdn_lib import plots
    rows = [{"method": "drrdn", "seed": 0, "epoch": e, "split": split, "stage": "own", "value": v,
             "lo": v - 0.02, "hi": v + 0.02, "lr": lr}
            for e, p, lr in ((1, 0.6, 0.01), (2, 0.9, 0.01), (3, 0.8, 0.001), (4, 0.85, 0.0001))
            for split, v in (("PGD", p), ("natural", 0.95))]
    fig = plots.plot_learning_curves(pd.DataFrame(rows), {"drrdn": "DRRDN"}, "test")
    for ax in fig.axes:
        drops = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
        assert drops == [2.5, 3.5]                      # before epochs 3 and 4, the lowered lrs
        from matplotlib.collections import PathCollection
        kept = [c.get_offsets()[0][0] for c in ax.collections
                if isinstance(c, PathCollection) and c.get_facecolors().size == 0]
        assert len(kept) == 1 and round(kept[0]) == 2   # the best validation PGD: epoch 2


def test_accuracy_and_paper_figures_zoom_where_the_robust_models_are():
    import pandas as pd
    from drrdn_lib import plots
    summary = pd.DataFrame([{"model": m, "column": c, "value": v, "lo": v - 0.01, "hi": v + 0.01}
                            for m, vals in (("standard", (0.99, 0.01)), ("pgd_at", (0.99, 0.95)),
                                            ("drrdn", (0.98, 0.91))) for c, v in zip(("clean", "pgd"), vals)])
    fig = plots.plot_accuracy_intervals(summary, ["clean", "pgd"], {}, {}, "t", zoom=["pgd_at", "drrdn"])
    full, zoom = fig.axes
    assert full.get_ylim() == (-0.02, 1.05)
    assert zoom.get_ylim()[0] == pytest.approx(0.89) and zoom.get_ylim()[1] == pytest.approx(1.01)
    comparison = pd.DataFrame({"model": ["pgd_at", "pgd_at", "standard"], "paper": [99.0, 96.0, 1.0],
                               "ours": [98.0, 94.0, 0.5], "lo": [97.0, 93.0, 0.1], "hi": [99.0, 95.0, 2.0]})
    full, zoom = plots.plot_paper_vs_ours(comparison, {}, "t").axes
    assert zoom.get_xlim() == pytest.approx((0.95, 1.0)) and zoom.get_ylim() == pytest.approx((0.92, 1.0))
