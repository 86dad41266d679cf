"""Evaluation: per-attack and worst-case accuracy, the record and its JSON, the
gradient-masking checks (they pass on an honest model and flag a masked one)."""
import copy
import json
import warnings

import pytest
import torch
from torch import nn

from drrdn_lib.attacks import FGSM, PGD, AttackBudget, CWInf
from drrdn_lib.autoattack_adapter import AutoAttackAdapter
from drrdn_lib.evaluate import EvaluationRecord, evaluate, protocol_attacks
from drrdn_lib.protocol import budget
from drrdn_lib.masking_checks import (ALL_CHECKS, CHEAP_CHECKS, GradientMaskingWarning,
                                      gradient_masking_checks)

from tiny import N_CLASSES, SIDE, train_tiny

EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    """A tiny MLP (with batch norm) trained for ~1 s, and 96 held-out examples."""
    return train_tiny(lambda: nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 32), nn.BatchNorm1d(32),
                                            nn.ReLU(), nn.Linear(32, N_CLASSES)), held_out=96)


def small_attacks():
    budget = AttackBudget(EPS, EPS / 4, 10)
    return protocol_attacks(budget, autoattack="custom", n_iter=5, n_queries=20, n_target_classes=2)


def run(model, images, labels, **kw):
    kw = {"checks": "none", "progress": False, "batch_size": 40, **kw}
    return evaluate(model, images, labels, kw.pop("attacks", small_attacks()), **kw)


@pytest.fixture(scope="module")
def record(trained):
    return run(*trained)


def test_worst_case_is_never_above_any_single_attack(record):
    assert list(record.attacks) == ["fgsm", "pgd", "cw", "autoattack"]
    assert record.n == 96 and record.clean_accuracy > 0.9
    for result in record.attacks.values():
        assert record.worst_case_accuracy <= result.accuracy <= record.clean_accuracy
        assert result.n == 96
    assert record.attacks["pgd"].accuracy < record.clean_accuracy - 0.2
    flags = record.per_example
    expected = flags["clean"] & flags["fgsm"] & flags["pgd"] & flags["cw"] & flags["autoattack"]
    assert torch.equal(flags["worst_case"], expected)
    assert record.n_worst_case_correct == int(expected.sum())


def test_cascade_runs_each_attack_on_the_survivors(trained, record):
    cascade = run(*trained, mode="cascade")
    accs = [cascade.clean_accuracy] + [r.accuracy for r in cascade.attacks.values()]
    assert accs == sorted(accs, reverse=True)
    assert cascade.worst_case_accuracy == accs[-1]
    assert torch.equal(cascade.per_example["worst_case"], cascade.per_example["autoattack"])
    assert cascade.attacks["fgsm"].accuracy == record.attacks["fgsm"].accuracy  # deterministic


def test_record_serialises_with_the_attack_configurations(record, tmp_path):
    path = tmp_path / "sub" / "robustness.json"
    data = json.loads(record.to_json(path))
    assert json.loads(path.read_text()) == data
    assert data["n"] == 96 and data["mode"] == "individual"
    assert data["worst_case_accuracy"] == record.worst_case_accuracy
    assert data["attacks"]["pgd"]["config"] == {
        "name": "pgd", "eps": EPS, "norm": "Linf", "bounds": [0.0, 1.0], "step_size": EPS / 4,
        "steps": 10, "random_start": True, "restarts": 1, "loss": "ce", "kappa": None, "seed": 0}
    assert data["attacks"]["cw"]["config"]["kappa"] == 50.0
    aa = data["attacks"]["autoattack"]
    assert aa["config"]["standard"] is False and aa["config"]["square_n_queries"] == 20
    assert aa["report"]["n_clean_correct"] == record.n_clean_correct
    assert set(data) >= {"clean_accuracy", "n_clean_correct", "checks", "warnings", "attack_order"}
    assert record.summary()["worst_case"] == record.worst_case_accuracy
    assert record.accuracy("pgd") == record.attacks["pgd"].accuracy
    with pytest.raises(KeyError, match="'square'.*'fgsm'"):
        record.accuracy("square")


def test_model_mode_restored_and_names_or_lists_accepted(trained):
    model, images, labels = trained
    model.train()
    try:
        rec = run(model, images[:20], labels[:20], attacks=["fgsm", "pgd"],
                  budget=AttackBudget(EPS, EPS / 4, 3))
        assert model.training
    finally:
        model.eval()
    assert list(rec.attacks) == ["fgsm", "pgd"]
    rec = run(model, images[:20], labels[:20], attacks=[PGD(EPS, 0.05, 2), PGD(EPS, 0.05, 4)])
    assert list(rec.attacks) == ["pgd", "pgd_2"]


def test_checks_pass_on_an_honest_model(trained):
    """At eps 0.05 PGD-10 has converged on this model (at 0.1, where its accuracy falls
    steeply, 3 restarts of PGD-50 do find more, and stronger_pgd rightly says so)."""
    model, images, labels = trained
    eps = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientMaskingWarning)
        rec = run(model, images, labels, attacks={"pgd": PGD(eps, eps / 4, 10, seed=0)},
                  checks="all", check_samples=48, square_queries=50)
    assert [c.name for c in rec.checks] == list(ALL_CHECKS)
    assert rec.checks_passed and rec.warnings == [], [c.message for c in rec.checks]
    details = {c.name: c.details for c in rec.checks}
    assert details["eps_monotone"]["eps"] == [0.0, eps / 2, eps, 2 * eps]
    assert details["large_eps_chance"]["accuracy"] <= 0.2
    data = json.loads(rec.to_json())
    assert data["checks"][0]["passed"] is True
    assert data["check_settings"] == {"reference": rec.attacks["pgd"].config, "n": 48,
                                      "square_queries": 50}


class Quantised(nn.Module):
    """Rounds the input to {0, 1} first: a classic gradient-masking 'defence' whose input
    gradient is zero everywhere."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(torch.round(x)) * 1.0


def test_checks_flag_a_gradient_masking_model_loudly(trained):
    model, images, labels = trained
    masked = Quantised(model)
    with pytest.warns(GradientMaskingWarning) as caught:
        rec = run(masked, images, labels, attacks={"pgd": PGD(EPS, EPS / 4, 5, seed=0)},
                  checks=["deterministic", "nonzero_gradients", "black_box"], check_samples=32,
                  square_queries=50)
    results = {c.name: c for c in rec.checks}
    assert results["deterministic"].passed is True
    assert results["nonzero_gradients"].passed is False
    assert results["nonzero_gradients"].details["n_zero"] == 32
    assert results["black_box"].passed is False  # Square finds what zero gradients hide
    assert results["black_box"].details["n_fooled"] > 0
    assert not rec.checks_passed
    failed = ["nonzero_gradients", "black_box"]
    assert [name for name in failed if any(name in w for w in rec.warnings)] == failed
    assert [name for name in failed if any(name in str(w.message) for w in caught)] == failed
    assert json.loads(rec.to_json())["checks_passed"] is False


def test_cheap_checks_and_the_standalone_function(trained):
    model, images, labels = trained
    results = gradient_masking_checks(model, images[:16], labels[:16], PGD(EPS, 0.05, 2),
                                      which=CHEAP_CHECKS)
    assert [r.name for r in results] == list(CHEAP_CHECKS) and all(r.passed for r in results)
    skipped = gradient_masking_checks(nn.Linear(3, 2), torch.rand(4, 3), torch.tensor([0, 1, 0, 1]),
                                      PGD(0.1, 0.05, 2), which=["black_box"])
    assert skipped[0].passed is None


def test_standard_autoattack_in_protocol_attacks():
    attacks = protocol_attacks(budget("cifar10", "eval"))
    assert isinstance(attacks["fgsm"], FGSM) and isinstance(attacks["cw"], CWInf)
    assert attacks["pgd"].steps == 40 and attacks["pgd"].step_size == 0.003  # the paper's PGD-40
    assert attacks["autoattack"].config()["standard"] is True
    assert "autoattack" not in protocol_attacks(AttackBudget(0.3, 0.01, 40), autoattack=None)
    assert isinstance(attacks["autoattack"], AutoAttackAdapter)


@pytest.mark.parametrize("kw, match", [
    ({"mode": "worst"}, r"mode='worst'.*individual.*cascade"),
    ({"checks": "some"}, r"checks='some'.*cheap"),
    ({"checks": ["gradients"]}, r"\['gradients'\].*nonzero_gradients"),
    ({"batch_size": 0}, r"batch_size=0"),
    ({"attacks": ["pgd"]}, r"'pgd' given by name: pass budget"),
])
def test_bad_arguments_are_explained(trained, kw, match):
    model, images, labels = trained
    with pytest.raises(ValueError, match=match):
        run(model, images[:4], labels[:4], **kw)


def test_inputs_outside_0_1_are_rejected(trained):
    model, images, labels = trained
    with pytest.raises(ValueError, match=r"outside the allowed range \[0\.0, 1\.0\]"):
        run(model, images * 255, labels)
    assert isinstance(run(model, images[:0], labels[:0]), EvaluationRecord)


# ------------------------------------------------------------ bad input never becomes a number
def test_nan_images_are_rejected_not_scored(trained):
    """An all-NaN batch used to score 10%: NaN logits read as class 0."""
    model, images, labels = trained
    bad = images.clone()
    bad[5] = float("nan")
    with pytest.raises(ValueError, match=r"images hold 64 NaN/inf value\(s\) \(first in example 5\)"):
        run(model, bad, labels)
    with pytest.raises(ValueError, match=r"NaN/inf"):
        run(model, torch.full_like(images, float("nan")), labels, attacks={"fgsm": FGSM(EPS)})


@pytest.mark.parametrize("bad_label, match", [
    (N_CLASSES, r"labels in \[0, 10\] are outside the allowed range \[0, 9\]"),
    (-1, r"labels in \[-1, 9\] include negative values")])
def test_labels_outside_the_classes_are_rejected(trained, bad_label, match):
    """The check used to run only inside the attacks, on the clean-correct examples."""
    model, images, labels = trained
    wrong = labels.clone()
    wrong[3] = bad_label
    with pytest.raises(ValueError, match=match):
        run(model, images, wrong, attacks={"fgsm": FGSM(EPS)})


@pytest.mark.parametrize("change, match", [
    (lambda x, y: (x.permute(0, 2, 3, 1), y), r"NHWC.*x\.permute\(0, 3, 1, 2\)"),
    (lambda x, y: (x.double(), y), r"float64.*convert with \.float\(\)"),
    (lambda x, y: (x, y.int()), r"int32.*convert with \.long\(\)"),
    (lambda x, y: (x, y.float()), r"float32.*convert with \.long\(\)"),
    (lambda x, y: (x, y[:-1]), r"labels .*shape \(96,\)"),
])
def test_bad_layouts_and_dtypes_say_what_to_do(trained, change, match):
    model, images, labels = trained
    with pytest.raises(ValueError, match=match):
        run(model, *change(images, labels), attacks={"fgsm": FGSM(EPS)})


class NanModel(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], N_CLASSES), float("nan")) + 0.0 * x.flatten(1)[:, :1]


def test_a_model_returning_nan_is_rejected_not_scored(trained):
    _, images, labels = trained
    with pytest.raises(ValueError, match=r"model returned NaN/inf logits for 96 of 96 examples"):
        run(NanModel(), images, labels, attacks={"fgsm": FGSM(EPS)})


def test_masking_checks_validate_their_inputs(trained):
    model, images, labels = trained
    bad = images[:8].clone()
    bad[0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN/inf"):
        gradient_masking_checks(model, bad, labels[:8], PGD(EPS, 0.05, 2), which=CHEAP_CHECKS)
    with pytest.raises(ValueError, match=r"labels.*outside"):
        gradient_masking_checks(model, images[:8], labels[:8] + N_CLASSES, PGD(EPS, 0.05, 2),
                                which=CHEAP_CHECKS)


def test_a_plain_callable_attack_is_checked_too(trained):
    """Attack objects project their output; a plain function's output is validated."""
    model, images, labels = trained
    with pytest.raises(ValueError, match=r"attack 'shift': adversarial images have values in \[.*\], outside"):
        run(model, images, labels, attacks={"shift": lambda m, x, y: x + 0.5})
    with pytest.raises(ValueError, match=r"'crop' returned shape \(.*\) for a batch of shape"):
        run(model, images, labels, attacks={"crop": lambda m, x, y: x[:, :, :4]})


class CountingPGD(PGD):
    """A PGD that records each call's batch size and raises KeyboardInterrupt at call ``die_at``."""

    def __init__(self, *args, die_at=None, **kw):
        super().__init__(*args, **kw)
        self.calls, self.die_at = [], die_at

    def __call__(self, model, images, labels):
        self.calls.append(len(images))
        if len(self.calls) == self.die_at:
            raise KeyboardInterrupt
        return super().__call__(model, images, labels)


def test_a_killed_evaluation_resumes_after_its_last_batch_with_the_same_flags(trained, tmp_path):
    """96 examples in batches of 40: killed in the third batch, the second call attacks only
    that batch and ends with the flags of an uninterrupted run."""
    model, images, labels = trained
    whole = run(model, images, labels, attacks={"pgd": PGD(EPS, EPS / 4, 10, seed=0)})
    state = tmp_path / "evaluate.partial.pt"
    dying = CountingPGD(EPS, EPS / 4, 10, seed=0, die_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(model, images, labels, attacks={"pgd": dying}, resume_file=state)
    assert state.is_file() and len(dying.calls) == 3
    dying.calls.clear()
    resumed = run(model, images, labels, attacks={"pgd": dying}, resume_file=state)
    assert dying.calls == [int(whole.per_example["clean"][80:].sum())]  # only the last batch's clean-correct
    for name in ("clean", "pgd", "worst_case"):
        assert torch.equal(resumed.per_example[name], whole.per_example[name]), name
    assert not state.exists()  # a finished evaluation leaves no progress behind


def test_a_resume_file_serves_only_the_computation_it_was_written_for(trained, tmp_path):
    """The PGD-AT-at-42% bug: progress written for one model (or attack, or examples) is
    refused for any other, by a message naming what differs; an unbound file of the old
    format is refused; a plain callable cannot be bound."""
    from drrdn_lib.evaluate import ResumeMismatch

    model, images, labels = trained
    other = copy.deepcopy(model)
    with torch.no_grad():
        other[-1].bias.add_(1.0)
    state = tmp_path / "evaluate.partial.pt"
    with pytest.raises(KeyboardInterrupt):
        run(model, images, labels, attacks={"pgd": CountingPGD(EPS, EPS / 4, 10, seed=0, die_at=2)},
            resume_file=state)
    saved = state.read_bytes()
    pgd = CountingPGD(EPS, EPS / 4, 10, seed=0)
    cases = [(other, images, labels, {"pgd": pgd}, "the model's weights differ"),
             (model, images, labels, {"pgd": CountingPGD(EPS, EPS / 4, 11, seed=0)}, "the attacks or their"),
             (model, images.flip(0), labels.flip(0), {"pgd": pgd}, "the images or labels differ")]
    for net, x, y, attacks, message in cases:
        with pytest.raises(ResumeMismatch, match=message):
            run(net, x, y, attacks=attacks, resume_file=state)
        assert state.read_bytes() == saved  # refused, not overwritten
    fresh = run(other, images, labels, attacks={"pgd": pgd})
    state.unlink()
    assert run(other, images, labels, attacks={"pgd": pgd}, resume_file=state).summary() == fresh.summary()
    torch.save({"n": 96, "batch_size": 40, "attacks": ["pgd"], "next": 40}, state)
    with pytest.raises(ResumeMismatch, match="older version that did not record what it belongs to"):
        run(model, images, labels, attacks={"pgd": pgd}, resume_file=state)
    with pytest.raises(ValueError, match=r"\['plain'\] are plain callables"):
        run(model, images, labels, attacks={"plain": lambda m, x, y: x}, resume_file=state)


def test_channels_last_evaluation_gives_the_nchw_outcomes_up_to_rounding():
    """A zoo SmallCNN on 128 official test digits: every digit's outcome under FGSM, PGD-10
    and CW-10 with the kernels in channels_last is its NCHW outcome, except digits whose
    fate float rounding decides (counted, at most 1 per attack here); the clean logits agree
    to float32 rounding."""
    from drrdn_lib import official_eval, zoo
    from drrdn_lib.torch_utils import channels_last_layout, predict_logits

    model = zoo.load_pretrained("pgd_at")
    images, labels, _ = official_eval.official_test_subset(128, seed=0)
    attacks = {"fgsm": FGSM(0.3), "pgd": PGD(0.3, 0.01, 10, seed=0), "cw": CWInf(0.3, 0.01, 10, seed=0)}
    records = {layout: evaluate(model, images, labels, attacks, checks="none", progress=False,
                                channels_last=layout) for layout in (False, True)}
    with channels_last_layout(model):
        fast = predict_logits(model, images)
    torch.testing.assert_close(fast, predict_logits(model, images), rtol=1e-4, atol=1e-4)
    assert all(p.is_contiguous() for p in model.parameters())  # the layout given back
    for name in ("clean", *attacks):
        nchw, cl = records[False].per_example[name], records[True].per_example[name]
        moved = int((nchw != cl).sum())
        assert moved <= 1, f"{name}: {moved} of 128 digits change outcome with the layout"
        assert abs(int(nchw.sum()) - int(cl.sum())) <= moved
