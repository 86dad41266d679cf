"""The model zoo: every committed card agrees with a re-evaluation of its weights on the
official MNIST test digits, and the mechanism itself is tested on a fixture model (a
Standard SmallCNN trained for one epoch on mnist5k, added to a temporary zoo), so that
the check is not vacuous while zoo/ is empty.

The statistics of the re-check (``official_eval.recheck``): a card reports p, the accuracy
on its n stratified test digits; the re-check evaluates m <= n of those same digits (a
stratified draw with the card's seed) with the card's own attack configurations and
counts k correct. If weights, data, attacks and code are what the card says, k/m differs
from p only by which m digits were drawn (and by PGD's random start, drawn per batch), so
"p lies inside the 95% Wilson interval of k of m" is the 5%-level score test of
"accuracy = p", and it is conservative (drawing from the card's own n digits makes k/m
vary less than a binomial). Clean accuracy and PGD-40 on 200 digits keep each card's
re-check near 10 s of one core (PGD-40: 40 forward-backward passes per digit).
"""
import json
import shutil

import pytest
import torch

from drrdn_lib import official_eval, zoo
from drrdn_lib.results import REPO_ROOT
from drrdn_lib.train import TrainConfig, load_model, train

REPO_ZOO = REPO_ROOT / "zoo"
COMMITTED = zoo.available(REPO_ZOO)
PAPER_KEYS = ["clean", "fgsm", "pgd40", "pgd100", "cw40", "cw100", "worst_case"]


@pytest.fixture(scope="module")
def fixture_zoo(tmp_path_factory):
    """(zoo folder, run folder): one quick Standard run on mnist5k added as 'fixture' with
    the paper's attacks on 80 official test digits (about 20 s of one core)."""
    root = tmp_path_factory.mktemp("zoo")
    config = TrainConfig(method="standard", dataset="mnist5k", model="smallcnn", epochs=1,
                         batch_size=32, lr=0.05, val_limit=100, val_steps=2, val_step_size=0.15,
                         out_dir=str(root / "run"), progress=False)
    train(config)
    zoo.add_to_zoo(root / "run", "fixture", command="pytest tests/test_zoo.py (fixture)",
                   eval_limit=80, seed=0, zoo_dir=root / "zoo")
    return root / "zoo", root / "run"


def _check_card(info: dict, folder) -> None:
    """Everything a card must say, consistent with itself and with its weights file."""
    weights = folder / info["weights"]["file"]
    assert weights.stat().st_size == info["weights"]["bytes"] <= zoo.MAX_WEIGHTS_BYTES
    if zoo.is_external(info):  # trained elsewhere: where from, under what licence, how mapped
        source = info["source"]
        assert all(source[k] for k in ("repository", "commit", "path", "licence", "recipe", "sha256"))
        assert len(source["key_map"]) == len(torch.load(weights, weights_only=True)["state_dict"])
        assert info["model"] == "smallcnn"
    else:
        assert info["method"] == info["training"]["config"]["method"]
        assert info["model"] == info["training"]["config"]["model"] == "smallcnn"
        training = info["training"]
        assert training["command"] and training["commit"] and training["provenance"]
        curve = training["learning_curve"]
        assert 1 <= curve["best_epoch"] <= curve["epochs_done"] == len(curve["per_epoch"])
    evaluation = info["evaluation"]
    assert evaluation["test_set"]["what"] == "official MNIST test set"
    assert evaluation["precision"] == "float32" and evaluation["paper_attacks"] is True
    subset = evaluation["subset"]
    assert sum(subset["class_counts"]) == subset["n"] and min(subset["class_counts"]) > 0
    results = evaluation["results"]
    assert list(results) == PAPER_KEYS
    for key, cell in results.items():
        assert cell["n"] == subset["n"] and cell["lo"] <= cell["accuracy"] <= cell["hi"], key
        if key not in ("clean", "worst_case"):
            assert cell["config"]["eps"] == pytest.approx(0.3), key
    assert results["pgd40"]["label"] == "PGD-40" and results["pgd40"]["config"]["steps"] == 40
    assert results["cw100"]["config"]["loss"] == "cw" and results["cw100"]["config"]["steps"] == 100


# ------------------------------------------------------------------ the committed zoo
@pytest.mark.parametrize("name", COMMITTED or [pytest.param(None, marks=pytest.mark.skip(
    reason="zoo/ holds no cards yet (add models with scripts/add_to_zoo.py); the mechanism "
           "is tested on the fixture below"))])
def test_every_committed_card_agrees_with_a_re_evaluation(name):
    info = zoo.card(name, REPO_ZOO)
    _check_card(info, REPO_ZOO)
    rows = zoo.verify_card(name, limit=200, columns=("clean", "pgd40"), zoo_dir=REPO_ZOO)
    for row in rows:
        assert row["agrees"], (f"{name}: {row['label']} re-evaluated at {row['accuracy']:.3f} "
                               f"[{row['lo']:.3f}, {row['hi']:.3f}] on {row['n']} digits; the card "
                               f"says {row['record_accuracy']:.3f} on {row['record_n']}")


# ------------------------------------------------------------------ the mechanism
def test_add_to_zoo_writes_weights_and_a_complete_card(fixture_zoo):
    folder, run = fixture_zoo
    assert zoo.available(folder) == ["fixture"]
    info = zoo.card("fixture", folder)
    _check_card(info, folder)
    assert info["training"]["config"] == json.loads((run / "config.json").read_text())
    _, labels, _ = official_eval.official_test_subset(None)
    share = torch.bincount(labels, minlength=10) / len(labels)
    counts = torch.tensor(info["evaluation"]["subset"]["class_counts"])
    assert counts.sum() == 80 and ((counts - 80 * share).abs() < 1).all()  # stratified by class
    assert info["training"]["learning_curve"]["selected_on"] == "validation clean accuracy"


def test_load_pretrained_returns_the_runs_best_weights_in_eval_mode(fixture_zoo):
    folder, run = fixture_zoo
    model = zoo.load_pretrained("fixture", zoo_dir=folder)
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    images, _, _ = official_eval.official_test_subset(50, seed=3)
    with torch.no_grad():
        assert torch.equal(model(images), load_model(run)(images))


def test_the_fixture_card_agrees_with_a_re_evaluation(fixture_zoo):
    folder, _ = fixture_zoo
    rows = zoo.verify_card("fixture", limit=50, zoo_dir=folder)
    assert [r["column"] for r in rows] == ["clean", "pgd40"] and all(r["n"] == 50 for r in rows)
    assert all(r["agrees"] for r in rows), rows
    clean = rows[0]
    assert clean["accuracy"] > 0.5  # the fixture learned: the clean check is not trivial


def test_a_card_that_misstates_its_accuracy_is_caught(fixture_zoo, tmp_path):
    folder, _ = fixture_zoo
    shutil.copytree(folder, tmp_path / "zoo")
    path = tmp_path / "zoo" / "fixture.json"
    info = json.loads(path.read_text())
    cell = info["evaluation"]["results"]["clean"]
    cell["accuracy"] = 0.3 if cell["accuracy"] > 0.65 else 1.0  # far outside any 50-digit interval
    path.write_text(json.dumps(info))
    rows = zoo.verify_card("fixture", limit=50, zoo_dir=tmp_path / "zoo")
    assert [r["agrees"] for r in rows] == [False, True]


def test_unknown_missing_and_corrupt_models_say_what_to_do(fixture_zoo, tmp_path):
    folder, _ = fixture_zoo
    with pytest.raises(zoo.ZooError, match=r"no model 'drrdn' in the zoo .*available: \['fixture'\]"):
        zoo.load_pretrained("drrdn", zoo_dir=folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.ZooError, match="available: none; add one with .*add_to_zoo.py"):
        zoo.card("fixture", tmp_path / "empty")
    shutil.copytree(folder, tmp_path / "zoo")
    weights = tmp_path / "zoo" / "fixture.pt"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(zoo.ZooError, match="are corrupt: their SHA-256 is not the card's"):
        zoo.load_pretrained("fixture", zoo_dir=tmp_path / "zoo")
    weights.unlink()
    with pytest.raises(zoo.ZooError, match=r"fixture.pt\) are missing"):
        zoo.load_pretrained("fixture", zoo_dir=tmp_path / "zoo")


def test_add_to_zoo_refuses_unfinished_runs_taken_names_and_bad_names(fixture_zoo, tmp_path):
    folder, run = fixture_zoo
    with pytest.raises(zoo.ZooError, match="already has 'fixture'; pass overwrite=True"):
        zoo.add_to_zoo(run, "fixture", command="x", eval_limit=10, zoo_dir=folder)
    with pytest.raises(zoo.ZooError, match="use lower-case letters"):
        zoo.add_to_zoo(run, "My Model", command="x", eval_limit=10, zoo_dir=folder)
    shutil.copytree(run, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    with pytest.raises(zoo.ZooError, match="is 'running' .*wait until it finishes"):
        zoo.add_to_zoo(tmp_path / "run", "other", command="x", eval_limit=10, zoo_dir=folder)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({**metrics, "provenance": []}))
    with pytest.raises(zoo.ZooError, match="records no provenance"):
        zoo.add_to_zoo(tmp_path / "run", "other", command="x", eval_limit=10, zoo_dir=folder)
    with pytest.raises(zoo.ZooError, match="has no checkpoint_best.pt"):
        zoo.add_to_zoo(tmp_path, "other", command="x", eval_limit=10, zoo_dir=folder)
    assert zoo.available(folder) == ["fixture"]  # nothing half-added


def test_the_zoo_folder_comes_from_the_environment(fixture_zoo, monkeypatch):
    folder, _ = fixture_zoo
    monkeypatch.setenv("DRRDN_ZOO", str(folder))
    assert zoo.available() == ["fixture"] and zoo.zoo_folder() == folder


# ------------------------------------------------------------------ nothing lost, nothing ambiguous
def _copy_zoo(fixture_zoo, tmp_path):
    """A copy of the fixture zoo and of its run folder, to be damaged at will."""
    folder, run = fixture_zoo
    shutil.copytree(folder, tmp_path / "zoo")
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "zoo", tmp_path / "run"


def test_a_failed_overwrite_keeps_the_old_model_and_a_killed_one_is_completed(fixture_zoo, tmp_path,
                                                                               monkeypatch):
    import errno
    import os
    from drrdn_lib.files import WriteError

    folder, run = _copy_zoo(fixture_zoo, tmp_path)
    monkeypatch.setattr(official_eval, "evaluate_official", lambda *a, **k: {"results": {"new": 1}})
    old_card, old_weights = (folder / "fixture.json").read_text(), (folder / "fixture.pt").read_bytes()
    # the run was fine-tuned from a folder that has since moved: the card still builds
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "init_from": str(tmp_path / "moved")}))

    def full_disk(*args, **kwargs):
        raise WriteError(errno.ENOSPC, "cannot write the card: the disk is full")
    monkeypatch.setattr(zoo, "write_json_atomic", full_disk)
    with pytest.raises(WriteError, match="disk is full"):
        zoo.add_to_zoo(run, "fixture", command="x", eval_limit=10, zoo_dir=folder, overwrite=True)
    monkeypatch.undo()
    assert (folder / "fixture.json").read_text() == old_card
    assert (folder / "fixture.pt").read_bytes() == old_weights
    assert sorted(p.name for p in folder.iterdir()) == ["fixture.json", "fixture.pt"]
    zoo.load_pretrained("fixture", zoo_dir=folder)  # not "corrupt"

    # killed between moving the weights and moving the card: the next read completes it
    monkeypatch.setattr(official_eval, "evaluate_official", lambda *a, **k: {"results": {"new": 1}})
    real_replace, calls = os.replace, []

    def killed_after_the_weights(src, dst):
        calls.append(dst)
        if str(dst).endswith("fixture.json"):
            raise KeyboardInterrupt
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", killed_after_the_weights)
    with pytest.raises(KeyboardInterrupt):
        zoo.add_to_zoo(run, "fixture", command="y", eval_limit=10, zoo_dir=folder, overwrite=True)
    monkeypatch.undo()
    assert zoo.card("fixture", folder)["training"]["command"] == "y"
    assert zoo.card("fixture", folder)["training"]["config"]["init_from"] == str(tmp_path / "moved")
    zoo.load_pretrained("fixture", zoo_dir=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["fixture.json", "fixture.pt"]


def test_a_mistyped_zoo_folder_and_two_cards_of_one_run_are_refused(fixture_zoo, tmp_path,
                                                                    monkeypatch):
    from drrdn_lib import experiments
    from drrdn_lib.train_config import config_from_dict

    folder, _ = _copy_zoo(fixture_zoo, tmp_path)
    with pytest.raises(zoo.ZooError, match=r"the zoo folder .*nowhere \(zoo_dir\) does not exist"):
        zoo.available(tmp_path / "nowhere")
    monkeypatch.setenv("DRRDN_ZOO", str(folder / "fixture.pt"))
    with pytest.raises(zoo.ZooError, match=r"\(\$DRRDN_ZOO\) is a file"):
        zoo.available()
    monkeypatch.delenv("DRRDN_ZOO")
    info = zoo.card("fixture", folder)
    monkeypatch.setattr(experiments, "make_config", lambda method, dataset, **kw: config_from_dict(
        info["training"]["config"], recorded=True))
    assert experiments.zoo_run("standard", "mnist5k", zoo_dir=folder).source == "zoo/fixture.pt"
    shutil.copy(folder / "fixture.json", folder / "fixture_copy.json")
    with pytest.raises(zoo.ZooError, match=r"\['fixture', 'fixture_copy'\] all record the training "
                                           r"configuration .*ambiguous"):
        experiments.zoo_run("standard", "mnist5k", zoo_dir=folder)


def test_weights_trained_elsewhere_map_by_position_and_carry_their_source(fixture_zoo, tmp_path):
    """A state dict with another network's key names (the TRADES authors' layout) goes in by
    position with its source recorded; it has no training run, and a lookup by training
    configuration never matches it; a tensor of another shape is refused."""
    from collections import OrderedDict

    from drrdn_lib import experiments
    folder, run = fixture_zoo
    theirs_names = ["feature_extractor.conv1.weight", "feature_extractor.conv1.bias",
                    "feature_extractor.conv2.weight", "feature_extractor.conv2.bias",
                    "feature_extractor.conv3.weight", "feature_extractor.conv3.bias",
                    "feature_extractor.conv4.weight", "feature_extractor.conv4.bias",
                    "classifier.fc1.weight", "classifier.fc1.bias", "classifier.fc2.weight",
                    "classifier.fc2.bias", "classifier.fc3.weight", "classifier.fc3.bias"]
    trained = load_model(run).state_dict()
    theirs = OrderedDict(zip(theirs_names, trained.values()))
    torch.save(theirs, tmp_path / "theirs.pt")
    source = {"repository": "https://example.org/theirs", "commit": "abc", "path": "theirs.pt",
              "licence": "MIT", "recipe": "1 epoch (the fixture)"}
    info = zoo.add_external(tmp_path / "theirs.pt", "external", method="standard", label="theirs",
                            source=source, eval_limit=40, zoo_dir=folder)
    _check_card(info, folder)
    assert info["source"]["key_map"]["classifier.fc3.weight"] == "head.weight"
    loaded = zoo.load_pretrained("external", zoo_dir=folder)
    for p, q in zip(loaded.state_dict().values(), trained.values()):
        assert torch.equal(p, q)
    assert info["evaluation"]["subset"]["n"] == 40 and info["weights"]["checkpoint"] == "published"
    with pytest.raises(zoo.ZooError, match="trained elsewhere"):
        zoo.training_run("external", zoo_dir=folder)
    config = json.loads((run / "config.json").read_text())
    assert experiments.zoo_run(config["method"], config["dataset"], zoo_dir=folder, **{
        k: config[k] for k in ("epochs", "batch_size", "lr", "val_limit", "val_steps", "val_step_size",
                               "model")}).source == "zoo/fixture.pt"  # the external card is skipped
    theirs["classifier.fc3.weight"] = torch.zeros(10, 100)
    torch.save(theirs, tmp_path / "bad.pt")
    with pytest.raises(zoo.ZooError, match="do not map by position"):
        zoo.add_external(tmp_path / "bad.pt", "bad", method="standard", label="bad", source=source,
                         eval_limit=40, zoo_dir=folder)
    with pytest.raises(zoo.ZooError, match="source must say \\['licence'\\]"):
        zoo.add_external(tmp_path / "theirs.pt", "nolicence", method="standard", label="x",
                         source={**source, "licence": ""}, eval_limit=40, zoo_dir=folder)
