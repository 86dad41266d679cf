"""Attacks: they work, they respect the threat model, they match a reference PGD, they
restore the model, they reject bad budgets; the AutoAttack adapter runs the standard
configuration of pyautoattack."""
import logging
import math
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from drrdn_lib.attack_registry import ATTACKS, make_attack
from drrdn_lib.protocol import BUDGETS, budget
from drrdn_lib.attacks import FGSM, PGD, AttackBudget, CWInf, margin_loss
from drrdn_lib.autoattack_adapter import AutoAttackAdapter, AutoAttackCheckWarning

from tiny import N_CLASSES, SIDE, synthetic, train_tiny


def tiny_net() -> nn.Module:
    """Linear-BN-ReLU-dropout-linear: has both layers whose behaviour depends on the mode."""
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 32), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Dropout(0.1), nn.Linear(32, N_CLASSES))


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained for ~2 s (clean accuracy ~1), and 64 held-out examples."""
    return train_tiny(tiny_net, held_out=64)


def accuracy(model, images, labels) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


EPS = 0.1
STRONG = {
    "fgsm": lambda: FGSM(EPS),
    "pgd": lambda: PGD(EPS, EPS / 4, 10, seed=0),
    "cw": lambda: CWInf(EPS, EPS / 4, 10, seed=0),
    "pgd_l2": lambda: PGD(1.0, 0.25, 10, norm="L2", seed=0),
}


# ------------------------------------------------------------------ effectiveness
@pytest.mark.parametrize("name", sorted(STRONG))
def test_attacks_lower_the_accuracy_of_a_trained_model(trained, name):
    model, images, labels = trained
    clean = accuracy(model, images, labels)
    assert clean > 0.9
    adv = STRONG[name]()(model, images, labels)
    assert accuracy(model, adv, labels) < clean - 0.2


def test_pgd_is_at_least_as_strong_as_fgsm_and_restarts_only_add(trained):
    model, images, labels = trained
    fgsm = accuracy(model, FGSM(EPS)(model, images, labels), labels)
    one = PGD(EPS, EPS / 4, 10, seed=3)(model, images, labels)
    three = PGD(EPS, EPS / 4, 10, restarts=3, seed=3)(model, images, labels)
    assert accuracy(model, one, labels) <= fgsm
    with torch.no_grad():
        fooled_one = model(one).argmax(1) != labels
        fooled_three = model(three).argmax(1) != labels
    # the first restart is the same run; later restarts never undo a success
    assert torch.equal(three[fooled_one], one[fooled_one])
    assert (fooled_three | ~fooled_one).all()


# ------------------------------------------------------------------------- invariants
def _make(kind: str, eps: float, step: float, steps: int):
    if kind == "fgsm":
        return FGSM(eps)
    if kind == "pgd_l2":
        return PGD(eps * 8, step * 8, steps, norm="L2", restarts=2)
    if kind == "cw":
        return CWInf(eps, step, steps, restarts=2)
    return PGD(eps, step, steps, random_start=kind == "pgd", restarts=2)


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(["fgsm", "pgd", "pgd_no_start", "pgd_l2", "cw"]),
       eps=st.floats(0.0, 0.5), step=st.floats(1e-3, 0.3), steps=st.integers(1, 3),
       seed=st.integers(0, 2**16), batch=st.integers(1, 5))
def test_result_stays_in_the_ball_and_in_0_1(kind, eps, step, steps, seed, batch):
    torch.manual_seed(seed)
    model = tiny_net()
    images = torch.rand(batch, 1, SIDE, SIDE)
    images[0, 0, 0] = torch.tensor([0.0, 1.0] * (SIDE // 2))  # pixels at both bounds
    labels = torch.randint(0, N_CLASSES, (batch,))
    attack = _make(kind, eps, step, steps)
    adv = attack(model, images, labels)
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - images).flatten(1)
    if attack.norm == "Linf":
        assert delta.abs().max() <= attack.eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= attack.eps * (1 + 1e-5) + 1e-6


def test_features_without_bounds_stay_in_the_ball():
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    feats = torch.randn(16, 5) * 3
    labels = torch.randint(0, 2, (16,))
    adv = PGD(0.5, 0.2, 5, bounds=None)(model, feats, labels)
    assert (adv - feats).abs().max() <= 0.5 + 1e-6
    assert (adv - feats).abs().max() > 0.4  # it moved (not clipped to [0, 1])


# --------------------------------------------------------------------- reference PGD
def reference_pgd(model, x, y, eps, alpha, steps):
    """Madry et al.'s L-inf PGD in ten lines (random start, sign steps, projection)."""
    adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        grad, = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv


def test_pgd_agrees_with_a_plain_reference_on_the_same_seed(trained):
    model, images, labels = trained
    torch.manual_seed(123)
    expected = reference_pgd(model, images, labels, 0.08, 0.02, 7)
    torch.manual_seed(123)
    got = PGD(0.08, 0.02, 7)(model, images, labels)
    assert torch.allclose(got, expected, atol=1e-6)


def test_seeded_pgd_is_reproducible_and_leaves_the_global_rng_alone(trained):
    model, images, labels = trained
    state = torch.get_rng_state()
    a = PGD(EPS, 0.02, 3, seed=7)(model, images, labels)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, PGD(EPS, 0.02, 3, seed=7)(model, images, labels))
    assert not torch.equal(a, PGD(EPS, 0.02, 3, seed=8)(model, images, labels))


def test_margin_loss():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    labels = torch.tensor([0, 2])
    assert torch.allclose(margin_loss(logits, labels), torch.tensor([-1.0, 6.0]))
    assert torch.allclose(margin_loss(logits, labels, kappa=2.0), torch.tensor([-1.0, 2.0]))


# ------------------------------------------------------------------ mode and gradients
@pytest.mark.parametrize("name", sorted(STRONG))
def test_mode_restored_and_no_side_effects(trained, name):
    model, images, labels = trained
    model.train()
    model[4].eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    stats = model[2].running_mean.clone()
    try:
        STRONG[name]()(model, images, labels)
        assert [m.training for m in model.modules()] == modes
        assert torch.equal(model[2].running_mean, stats)  # ran in eval mode
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_attack_works_inside_no_grad(trained):
    model, images, labels = trained
    with torch.no_grad():
        adv = PGD(EPS, EPS / 4, 5, seed=0)(model, images, labels)
    assert accuracy(model, adv, labels) < accuracy(model, images, labels)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: PGD(-0.1, 0.01, 10), r"eps=-0\.1 is negative.*\[0, 1\]"),
    (lambda: PGD(8, 2, 10), r"eps=8 > 1.*8/255"),
    (lambda: PGD(0.3, 0.0, 10), r"step_size=0\.0 must be .*> 0"),
    (lambda: PGD(0.3, -1e-3, 10), r"step_size=-0\.001"),
    (lambda: PGD(0.3, 0.01, 0), r"steps=0 must be an integer >= 1"),
    (lambda: PGD(0.3, 0.01, 2.5), r"steps=2\.5 must be an integer"),
    (lambda: PGD(0.3, 0.01, 10, restarts=0), r"restarts=0"),
    (lambda: PGD(0.3, 0.01, 10, norm="L1"), r"norm='L1'.*Linf.*L2"),
    (lambda: PGD(0.3, 0.01, 10, loss="dlr"), r"loss='dlr'"),
    (lambda: CWInf(0.3, 0.01, 10, kappa=0), r"kappa=0"),
    (lambda: FGSM(float("nan")), r"eps=nan must be a finite number"),
    (lambda: AttackBudget(-1.0, 0.01, 10), r"eps=-1\.0 is negative"),
    (lambda: AttackBudget(0.3, 0, 10), r"step_size=0 must be"),
    (lambda: AttackBudget(0.3, 0.01, 0), r"steps=0"),
    (lambda: make_attack("deepfool", eps=0.3), r"'deepfool'.*autoattack.*pgd"),
    (lambda: budget("svhn", "eval"), r"svhn_eval.*cifar10_eval"),
    (lambda: AutoAttackAdapter(8 / 255, n_iter=10), r"n_iter.*version='custom'"),
    (lambda: AutoAttackAdapter(8 / 255, version="rand"), r"version='rand'"),
    (lambda: AutoAttackAdapter(8 / 255, version="custom", attacks=["pgd"]), r"\['pgd'\]"),
])
def test_bad_budgets_name_the_value_and_the_range(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("attack", [FGSM(0.1), PGD(0.1, 0.05, 2), CWInf(0.1, 0.05, 2),
                                    AutoAttackAdapter(0.1, version="custom", n_iter=1)],
                         ids=["fgsm", "pgd", "cw", "autoattack"])
def test_bad_inputs_are_rejected(attack):
    model = tiny_net()
    images = torch.rand(4, 1, SIDE, SIDE)
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"values in \[.*\], outside the allowed range \[0\.0, 1\.0\]"):
        attack(model, images * 255, labels)
    with pytest.raises(ValueError, match=r"outside the allowed range"):
        attack(model, images - 0.5, labels)
    with pytest.raises(ValueError, match=r"probabilities.*remove the final softmax"):
        attack(nn.Sequential(model, nn.Softmax(dim=1)), images, labels)
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(4,\)"):
        attack(model, images, labels.float())
    with pytest.raises(ValueError, match=r"labels in \[0, 10\] are outside .*\[0, 9\]"):
        attack(model, images, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"got torch\.uint8; convert with \.float\(\) / 255"):
        attack(model, (images * 255).to(torch.uint8), labels)


def test_empty_batch_and_zero_eps():
    model = tiny_net()
    empty = torch.rand(0, 1, SIDE, SIDE)
    assert PGD(0.1, 0.01, 2)(model, empty, torch.zeros(0, dtype=torch.int64)).shape == empty.shape
    images = torch.rand(3, 1, SIDE, SIDE)
    assert torch.equal(PGD(0.0, 0.01, 2)(model, images, torch.zeros(3, dtype=torch.int64)), images)


# --------------------------------------------------------------------- budgets, registry
def test_protocol_budgets():
    assert BUDGETS["mnist_eval"] == AttackBudget(0.3, 0.01, 40) == BUDGETS["mnist_train"]
    assert BUDGETS["cifar10_train"] == AttackBudget(0.031, 0.007, 10)  # the paper's, not 8/255
    assert budget("cifar10", "eval") == AttackBudget(0.031, 0.003, 40)
    assert BUDGETS["cifar10_eval"].to_dict() == {"eps": 0.031, "step_size": 0.003, "steps": 40}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_registry_builds_every_attack_from_a_budget(name):
    budget = BUDGETS["cifar10_eval"]
    attack = make_attack(name, budget)
    assert isinstance(attack, ATTACKS[name])
    assert attack.eps == budget.eps
    config = attack.config()
    assert config["name"] == name and config["eps"] == budget.eps
    if hasattr(attack, "steps"):
        assert (attack.step_size, attack.steps) == (budget.step_size, budget.steps)
    keywords = make_attack(name, eps=0.3, step_size=0.01, steps=40)
    assert keywords.eps == 0.3


def test_make_attack_passes_extra_keywords():
    attack = make_attack("pgd", BUDGETS["mnist_eval"], restarts=3, norm="L2", eps=1.5)
    assert (attack.restarts, attack.norm, attack.eps, attack.steps) == (3, "L2", 1.5, 40)
    with pytest.raises(TypeError):
        make_attack("fgsm", BUDGETS["mnist_eval"], restarts=3)


# ----------------------------------------------------------------------- AutoAttack
def test_autoattack_standard_configuration_of_the_package_object():
    runner = AutoAttackAdapter(8 / 255).build(tiny_net())
    assert runner.version == "standard"
    assert runner.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert runner.epsilon == 8 / 255 and runner.norm == "Linf" and runner.seed == 0
    assert runner.apgd.n_iter == runner.apgd_targeted.n_iter == runner.fab.n_iter == 100
    assert runner.apgd.n_restarts == runner.apgd_targeted.n_restarts == runner.fab.n_restarts == 1
    assert runner.apgd_targeted.n_target_classes == runner.fab.n_target_classes == 9
    assert runner.square.n_queries == 5000 and runner.square.p_init == 0.8
    assert runner.apgd.eot_iter == 1 and runner.apgd.thr_decr == 0.75
    config = AutoAttackAdapter(8 / 255).config()
    assert config["standard"] is True and config["square_n_queries"] == 5000
    assert config["apgd_t_n_target_classes"] == 9 and config["package"] == "pyautoattack"


def _aa_side_effects():
    logger = logging.getLogger("auto-attack")
    return (logger.level, logger.propagate, list(logger.handlers), sys.gettrace())


def test_autoattack_standard_runs_and_cleans_up(trained):
    """The standard version end to end on 6 points; the budget is large enough that
    APGD-CE breaks every point, so the (slow) later attacks are skipped."""
    model, images, labels = trained
    images, labels = images[:6], labels[:6]
    before, rng = _aa_side_effects(), torch.get_rng_state()
    model.train()
    attack = AutoAttackAdapter(0.3)
    try:
        adv = attack(model, images, labels)
        assert model.training
    finally:
        model.eval()
    assert _aa_side_effects() == before and torch.equal(torch.get_rng_state(), rng)
    assert (adv - images).abs().max() <= 0.3 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    report = attack.last_report
    assert report.n == 6 and report.fooled["apgd-ce"] == report.n_clean_correct == 6
    assert accuracy(model, adv, labels) == 0.0


def test_autoattack_custom_runs_all_four_attacks_reduced(trained):
    model, images, labels = trained
    images, labels = images[:8], labels[:8]
    attack = AutoAttackAdapter(0.02, version="custom", n_iter=5, n_queries=30, n_target_classes=2)
    assert attack.config()["standard"] is False
    adv = attack(model, images, labels)
    report = attack.last_report
    assert list(report.fooled) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    n_robust = round(accuracy(model, adv, labels) * 8)
    assert n_robust == report.n_clean_correct - sum(report.fooled.values())
    assert (adv - images).abs().max() <= 0.02 + 1e-6


class NoisyModel(nn.Module):
    """Adds fresh noise to the logits at every call: a randomised defence."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        logits = self.base(x)
        return logits + 0.5 * torch.randn_like(logits)


def test_autoattack_check_warnings_reach_the_report(trained):
    model, images, labels = trained
    attack = AutoAttackAdapter(0.02, version="custom", attacks=["apgd-ce"], n_iter=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attack(NoisyModel(model), images[:8], labels[:8])
    assert any("randomized defense" in w for w in attack.last_report.warnings)
    assert any(issubclass(w.category, AutoAttackCheckWarning) for w in caught)
    assert math.isfinite(attack.last_report.n)


def test_attack_freezes_parameters_while_it_runs_and_restores_them():
    """Input gradients only: requires_grad is off during the attack (a compiled model's
    backward would otherwise compute weight gradients) and restored after, frozen ones kept."""
    net = tiny_net()
    net[1].bias.requires_grad_(False)  # a parameter the user froze stays frozen
    seen = []
    net[5].register_forward_hook(lambda m, i, o: seen.append(any(p.requires_grad for p in net.parameters())))
    images, labels = synthetic(8, torch.Generator().manual_seed(0))
    PGD(0.1, 0.05, 2)(net, images, labels)
    assert seen and not any(seen)
    assert [p.requires_grad for p in net.parameters()] == [True, False, True, True, True, True]
    assert all(p.grad is None for p in net.parameters())


# ------------------------------------------------------------ bad input never becomes a number
class NanGradient(nn.Module):
    """Finite logits but a NaN input gradient (d/dx sqrt(|x - x0|) at x0 is inf * 0)."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(x) + 0.0 * torch.sqrt((x - x.detach()).abs()).flatten(1).sum(1, keepdim=True)


class NanLogits(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], N_CLASSES), float("nan")) + 0.0 * x.flatten(1)[:, :1]


ALL_FOUR = [FGSM(0.1), PGD(0.1, 0.05, 2), CWInf(0.1, 0.05, 2),
            AutoAttackAdapter(0.1, version="custom", n_iter=1, n_queries=2, n_target_classes=1)]
ALL_FOUR_IDS = ["fgsm", "pgd", "cw", "autoattack"]


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
def test_nan_or_inf_images_are_rejected(attack):
    images, labels = torch.rand(4, 1, SIDE, SIDE), torch.zeros(4, dtype=torch.int64)
    images[2, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"images hold 1 NaN/inf value\(s\) \(first in example 2\)"):
        attack(tiny_net(), images, labels)
    images[2, 0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match=r"NaN/inf"):
        attack(tiny_net(), images, labels)


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
@pytest.mark.parametrize("shape", [(4, SIDE, SIDE, 1), (4, SIDE, SIDE, 3)])
def test_nhwc_images_get_the_permute_hint(attack, shape):
    """Flatten + Linear would silently accept (4, 8, 8, 1): the layout must be checked."""
    with pytest.raises(ValueError, match=r"NHWC.*permute to NCHW: x\.permute\(0, 3, 1, 2\)"):
        attack(tiny_net(), torch.rand(*shape), torch.zeros(4, dtype=torch.int64))


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
def test_float64_images_get_the_convert_hint(attack):
    images = torch.rand(4, 1, SIDE, SIDE, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"float64.*convert with \.float\(\)"):
        attack(tiny_net(), images, torch.zeros(4, dtype=torch.int64))


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
def test_labels_must_be_int64(attack):
    with pytest.raises(ValueError, match=r"int32.*convert with \.long\(\)"):
        attack(tiny_net(), torch.rand(4, 1, SIDE, SIDE), torch.zeros(4, dtype=torch.int32))


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
def test_a_model_with_nan_gradients_is_reported_not_attacked(attack):
    """sign(NaN) is 0 in torch, and the AutoAttack package leaves such examples alone: without
    the check every attack silently does nothing."""
    torch.manual_seed(0)
    model = NanGradient(tiny_net()).eval()
    images, labels = torch.rand(4, 1, SIDE, SIDE), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"non-finite \(NaN/inf\) input gradient for 4 of 4 examples"):
        attack(model, images, labels)


@pytest.mark.parametrize("attack", ALL_FOUR, ids=ALL_FOUR_IDS)
def test_a_model_with_nan_logits_is_reported(attack):
    images, labels = torch.rand(4, 1, SIDE, SIDE), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"model returned NaN/inf logits for 4 of 4 examples"):
        attack(NanLogits(), images, labels)


def test_an_attack_is_rebuilt_exactly_from_its_config():
    from drrdn_lib.attack_registry import attack_from_config
    from drrdn_lib.experiments import paper_attacks
    for key, attack in paper_attacks("mnist").items():
        rebuilt = attack_from_config(attack.config())
        assert type(rebuilt) is type(attack) and rebuilt.config() == attack.config(), key
    fgsm = FGSM(0.1)
    assert attack_from_config(fgsm.config()).config() == fgsm.config()
    with pytest.raises(ValueError, match="'name' must be one of"):
        attack_from_config({"name": "autoattack", "eps": 0.3})
    with pytest.raises(ValueError, match="lacks \\['steps'"):
        attack_from_config({k: v for k, v in PGD(0.3, 0.01, 40).config().items() if k != "steps"})
