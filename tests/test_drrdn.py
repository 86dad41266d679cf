"""DRRDN as the paper writes it (drrdn_lib.drrdn, drrdn_lib.drrdn_objective): the network's
split, each loss's value at known optima, which parameters each loss updates, and the
order of Algorithm 1's steps. Training runs are in test_methods.py and test_train.py."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from drrdn_lib.attacks import AttackBudget
from drrdn_lib.data import load_dataset
from drrdn_lib.drrdn import DRRDN, PARAMETER_GROUPS, build_drrdn
from drrdn_lib.drrdn_objective import (ALGORITHM_1, LOSS_PARAMETERS, Algorithm1Update,
                                       alignment_loss, drrdn, drrdn_losses, entropy_loss,
                                       mine_lower_bound)
from drrdn_lib.methods import make_update
from drrdn_lib.models import build_model
from drrdn_lib.objective_base import pgd_examples
from drrdn_lib.train import TrainConfig

BUDGET = AttackBudget(0.3, 0.1, 2)
ALL_ON = {"lambda_bc": 1.0, "lambda_adv": 1.0, "lambda_ent": 1.0, "lambda_mi": 1.0,
          "lambda_rec": 1.0, "entropy_form": "stated", "rec_form": "relative"}


@pytest.fixture(scope="module")
def batch():
    return load_dataset("mnist5k", "train", limit=32)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_drrdn("smallcnn", dropout=0.0, **kw)


def _sgd(lr=0.1, weight_decay=0.0):
    return lambda groups: torch.optim.SGD(groups, lr=lr, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- network
def test_network_split_and_widths(batch):
    images, _ = batch
    model = _model().eval()
    reps = model.representations(images)
    assert {k: tuple(v.shape) for k, v in reps.items()} == {
        "z": (32, 1024), "z_s": (32, 1024), "z_i": (32, 1024)}
    assert torch.allclose(model(images), model.c_s(model.d_s(model.g(images))))
    baseline = build_model("smallcnn")
    head_shapes = [p.shape for p in baseline.backbone[12:].parameters()] + \
                  [p.shape for p in baseline.head.parameters()]
    assert [p.shape for p in model.c_s.parameters()] == head_shapes  # the baseline's classifier
    assert [p.shape for p in model.c_i.parameters()][:-2] == head_shapes[:-2]
    assert model.c_i(reps["z_s"]).shape == (32, 1) == model.c_i(reps["z_i"]).shape
    assert model.mine(reps["z_s"], reps["z_i"]).shape == (32,)
    assert model.r(torch.cat([reps["z_s"], reps["z_i"]], 1)).shape == (32, 1024)
    groups = model.groups()
    assert set(groups) == set(PARAMETER_GROUPS)
    flat = [id(p) for ps in groups.values() for p in ps]
    assert sorted(flat) == sorted(id(p) for p in model.parameters())  # a partition
    resnet = build_drrdn("preact_resnet18")
    assert isinstance(resnet.c_s, torch.nn.Linear) and resnet.c_i.out_features == 1


def test_bad_widths_and_options_fail_clearly():
    with pytest.raises(ValueError, match="no .robust_dim.*both have the width"):
        build_drrdn("smallcnn", robust_dim=64, nonrobust_dim=32)
    with pytest.raises(ValueError, match="takes 200 inputs"):
        DRRDN(torch.nn.Flatten(), 784, torch.nn.Linear(200, 10), 10)
    with pytest.raises(ValueError, match="mine_hidden=0 must be an integer >= 1"):
        build_drrdn("smallcnn", mine_hidden=0)
    for hyper, message in (({"w_align": 1.0}, "no hyperparameter"),
                           ({"lambda_adv": -1.0}, "lambda_adv=-1.0"),
                           ({"lambda_mi": math.nan}, "lambda_mi=nan"),
                           ({"entropy_form": "cross"}, "entropy_form='cross'")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(method="drrdn", hyper=hyper)


# ----------------------------------------------------------------------------- routing
def _changed_groups(model, before) -> set:
    return {name for name, params in model.groups().items()
            if any(not torch.equal(p, b) for p, b in zip(params, before[name]))}


@pytest.mark.parametrize("loss_name", sorted(LOSS_PARAMETERS))
def test_each_loss_updates_exactly_its_groups(loss_name, batch):
    """Gradient per group, and one SGD step over ALL parameters: only the named groups
    receive a gradient and only they change."""
    images, labels = batch
    model = _model().train()
    torch.manual_seed(1)
    adv = pgd_examples(model, images, labels, BUDGET)
    loss = drrdn_losses(model, images, adv, labels, ALL_ON)[loss_name]
    groups = model.groups()
    with_gradient = set()
    for name, params in groups.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        if any(g is not None and g.abs().sum() > 0 for g in grads):
            with_gradient.add(name)
    assert with_gradient == set(LOSS_PARAMETERS[loss_name])
    before = {k: [p.detach().clone() for p in v] for k, v in groups.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss.backward()
    optimizer.step()
    assert _changed_groups(model, before) == set(LOSS_PARAMETERS[loss_name])


def test_algorithm1_optimisers_and_weight_decay():
    model = _model()
    update = Algorithm1Update(model, drrdn, _sgd(weight_decay=5e-4), {})
    assert list(update.optimizers) == [step for step, _ in ALGORITHM_1]
    groups = {k: {id(p) for p in v} for k, v in model.groups().items()}
    decays = {}
    for step, losses in ALGORITHM_1:
        named = {g for loss in losses for g in LOSS_PARAMETERS[loss]}
        held = {id(p) for group in update.optimizers[step].param_groups for p in group["params"]}
        assert held == set().union(*(groups[g] for g in named)), step
        for group in update.optimizers[step].param_groups:
            for p in group["params"]:
                decays[id(p)] = decays.get(id(p), 0) + (group["weight_decay"] > 0)
    assert set(decays.values()) == {1}  # every parameter decays in exactly one step
    fewer = Algorithm1Update(_model(), drrdn, _sgd(), {"lambda_mi": 0.0, "lambda_rec": 0.0})
    assert list(fewer.optimizers) == ["classify", "disentangle"]  # no step without a loss


def test_algorithm1_takes_its_steps_in_order(batch, monkeypatch):
    model = _model()
    update = make_update("drrdn", model, _sgd(), ALL_ON)
    order = []
    for name, optimizer in update.optimizers.items():
        step = optimizer.step
        monkeypatch.setattr(optimizer, "step", lambda *a, _n=name, _s=step: (order.append(_n), _s()))
    before = {k: [p.detach().clone() for p in v] for k, v in model.groups().items()}
    terms = update(*batch, BUDGET)
    assert order == [step for step, _ in ALGORITHM_1]
    assert _changed_groups(model, before) == set(PARAMETER_GROUPS)
    assert set(terms) >= {"ce", "bc", "adv", "ent", "mi", "rec", "loss", "domain_acc_s"}
    assert all(math.isfinite(v) for v in terms.values())


def test_switched_off_losses_leave_their_modules_alone(batch):
    model = _model()
    update = make_update("drrdn", model, _sgd(), {"lambda_mi": 0.0, "lambda_rec": 0.0,
                                                  "lambda_bc": 0.0})
    before = {k: [p.detach().clone() for p in v] for k, v in model.groups().items()}
    terms = update(*batch, BUDGET)
    assert _changed_groups(model, before) == {"g", "d_s", "c_s", "d_i"}  # no c_i, T, r
    assert not {"mi", "rec", "bc"} & set(terms)


def _smooth_model():
    """A DRRDN on a smooth encoder: SmallCNN's max pooling on MNIST's flat background has
    ties, so its gradient jumps under parameter changes of 1e-6 (measured: 29%)."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 48), torch.nn.Tanh())
    classifier = torch.nn.Sequential(torch.nn.Linear(48, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    return DRRDN(encoder, 48, classifier, 10, mine_hidden=32, rec_hidden=32)


def test_one_signature_objective_agrees_with_algorithm1_to_first_order(batch, monkeypatch):
    """The gradients Algorithm 1's steps apply to each group, summed over the steps, equal
    the gradient of drrdn()'s loss at the step's start, up to O(lr): with plain SGD the
    update is -lr times that sum. (The sums are recorded at each step, not read from
    parameter differences, which float32 rounding would blur at a small lr.)"""
    monkeypatch.setattr(torch, "randperm", lambda n, device=None: torch.arange(n - 1, -1, -1))
    model = _smooth_model()
    torch.manual_seed(3)
    loss, _ = drrdn(model, *batch, BUDGET, **ALL_ON)
    loss.backward()
    gradient = {k: torch.cat([p.grad.flatten() for p in v]) for k, v in model.groups().items()}
    model.zero_grad(set_to_none=True)
    applied = {k: torch.zeros_like(v) for k, v in gradient.items()}
    update = make_update("drrdn", model, _sgd(lr=1e-6), ALL_ON)
    for optimizer in update.optimizers.values():
        step = optimizer.step

        def recording_step(_step=step):
            for name, params in model.groups().items():
                applied[name] += torch.cat([(p.grad if p.grad is not None else
                                             torch.zeros_like(p)).flatten() for p in params])
            return _step()
        monkeypatch.setattr(optimizer, "step", recording_step)
    torch.manual_seed(3)
    update(*batch, BUDGET)
    for name in gradient:
        error = (applied[name] - gradient[name]).norm() / gradient[name].norm()
        assert error < 1e-3, f"{name}: relative difference {error:.2e}"


# ----------------------------------------------------------------------------- optima
def _js_gaussians(shift: float) -> float:
    """JS(N(0,1) || N(shift,1)) in nats by quadrature."""
    p, q = stats.norm(0, 1).pdf, stats.norm(shift, 1).pdf
    def integrand(z):
        m = 0.5 * (p(z) + q(z))
        return 0.5 * (p(z) * np.log(p(z) / m) + q(z) * np.log(q(z) / m))
    return integrate.quad(integrand, -12, 12 + shift)[0]


def test_proposition1_adv_loss_at_the_optimal_discriminator():
    """With c_i* = p / (p + q) (logit log p - log q), L_ADV = 2 JS(p || q) - log 4, and it
    is smallest when the two distributions are equal."""
    torch.manual_seed(0)
    n, values = 200_000, {}
    for shift in (0.0, 0.5, 1.0, 2.0):
        natural = torch.randn(n, 1, dtype=torch.float64)
        adversarial = torch.randn(n, 1, dtype=torch.float64) + shift
        optimal = lambda z, s=shift: (-0.5 * z ** 2 + 0.5 * (z - s) ** 2)  # log p - log q
        values[shift] = alignment_loss(optimal, torch.cat([natural, adversarial])).item()
        expected = 2 * _js_gaussians(shift) - math.log(4)
        assert values[shift] == pytest.approx(expected, abs=0.01), shift
    assert values[0.0] == pytest.approx(-math.log(4), abs=0.01)
    assert min(values, key=values.get) == 0.0
    assert values[0.0] < values[0.5] < values[1.0] < values[2.0]


def test_entropy_loss_optimum_is_the_uniform_prediction():
    torch.manual_seed(0)
    classes = 10
    c_s = torch.nn.Linear(16, classes)  # 16 > K - 1: the uniform output is reachable
    z_i = torch.randn(64, 16, requires_grad=True)
    start = torch.softmax(c_s(z_i), 1).max(1).values.mean().item()
    optimizer = torch.optim.Adam([z_i], lr=0.05)
    for _ in range(400):
        optimizer.zero_grad()
        entropy_loss(c_s, z_i).backward()
        optimizer.step()
    probs = torch.softmax(c_s(z_i), 1)
    assert start > 0.2 and (probs - 1 / classes).abs().max() < 0.01
    assert entropy_loss(c_s, z_i).item() == pytest.approx(-2 * math.log(classes), abs=1e-3)
    printed = entropy_loss(c_s, z_i, "printed")  # the typeset cross term, same optimum here
    assert printed.item() == pytest.approx(-math.log(classes), abs=1e-3)


def test_mine_estimates_the_mutual_information_of_correlated_gaussians():
    """I(X; Y) = -d/2 log(1 - rho^2) for d pairs of unit Gaussians with correlation rho."""
    torch.manual_seed(0)
    rho, dim = 0.8, 2
    truth = -dim / 2 * math.log(1 - rho ** 2)  # 1.02 nats

    def sample(n):
        x = torch.randn(n, dim)
        return x, rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, dim)

    model = _model(mine_hidden=64)
    statistic = type(model.mine)(dim, 64)
    optimizer = torch.optim.Adam(statistic.parameters(), lr=1e-3)
    for _ in range(1500):
        optimizer.zero_grad()
        (-mine_lower_bound(statistic, *sample(512))).backward()
        optimizer.step()
    with torch.no_grad():
        estimate = np.mean([mine_lower_bound(statistic, *sample(4096)).item() for _ in range(5)])
    assert truth - 0.15 < estimate < truth + 0.05, (estimate, truth)


def test_protocol_presets_are_the_papers():
    from drrdn_lib.attacks import CWInf, PGD
    from drrdn_lib.protocol import PAPER, milestones, white_box_attacks
    assert PAPER["mnist"].train.to_dict() == {"eps": 0.3, "step_size": 0.01, "steps": 40}
    assert PAPER["cifar10"].train.to_dict() == {"eps": 0.031, "step_size": 0.007, "steps": 10}
    assert (PAPER["mnist"].lr, PAPER["cifar10"].lr, PAPER["cifar10"].model) == (0.01, 0.1, "wrn28_10")
    assert PAPER["cifar10"].black_box.to_dict() == {"eps": 0.031, "step_size": 0.003, "steps": 20}
    assert milestones(100) == (55, 75, 90) and milestones(10) == (5, 7, 9) and milestones(1) == ()
    attacks = white_box_attacks("cifar10")
    assert list(attacks) == ["fgsm", "pgd40", "pgd100", "cw40", "cw100"]
    fgsm = attacks["fgsm"]
    assert isinstance(fgsm, PGD) and fgsm.steps == 1 and not fgsm.random_start
    assert fgsm.step_size == pytest.approx(0.03) and fgsm.eps == 0.031
    assert isinstance(attacks["cw100"], CWInf) and attacks["cw100"].steps == 100
    assert white_box_attacks("mnist5k")["pgd40"].step_size == 0.01
