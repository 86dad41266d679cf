"""The Tsipras et al. toy distribution: sampling, the exact attack, and the closed forms."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp, norm

from drrdn_lib import toy

P, DIM = 0.95, 100
ETA = 2 / math.sqrt(DIM)


@pytest.fixture(scope="module")
def big_sample():
    """60,000 toy examples (dim 100), shared by the Monte-Carlo checks."""
    return toy.sample_toy(60_000, dim=DIM, p=P, seed=1)


def mc_accuracy(sample, weights, eps):
    """Monte-Carlo accuracy of the linear rule under the exact worst-case attack."""
    x, y = sample
    x_adv = toy.worst_case_attack(x, y, weights, eps)
    z = toy.toy_representation(x_adv, weights)[:, 0]
    return float(((z > 0).long() == y).double().mean()), len(y)


# ----------------------------------------------------------------------------- sampling
def test_sample_shapes_dtypes_and_determinism():
    x, y = toy.sample_toy(500, dim=7, seed=3)
    assert x.shape == (500, 8) and x.dtype == torch.float32
    assert y.shape == (500,) and y.dtype == torch.int64 and set(y.tolist()) <= {0, 1}
    assert set(x[:, 0].tolist()) <= {-1.0, 1.0}
    x2, y2 = toy.sample_toy(500, dim=7, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, toy.sample_toy(500, dim=7, seed=4)[0])


def test_sample_statistics_match_the_definition():
    x, y = toy.sample_toy(40_000, dim=DIM, p=P, seed=0)
    sign = (2 * y - 1).float()
    assert abs(float(y.float().mean()) - 0.5) < 0.01
    assert abs(float((x[:, 0] == sign).float().mean()) - P) < 0.005
    assert abs(float((x[:, 1:] * sign[:, None]).mean()) - ETA) < 0.005
    assert abs(float(x[:, 1:].std()) - math.sqrt(1 + ETA ** 2)) < 0.005
    assert toy.default_eta(DIM) == pytest.approx(ETA)
    assert toy.default_eps(DIM) == pytest.approx(2 * ETA)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be a positive integer"),
    ({"n": 2.5}, "n must be a positive integer"),
    ({"n": 10, "dim": 0}, "dim=0 must be an integer >= 1 \\(the number of non-robust"),
    ({"n": 10, "p": 1.5}, r"p=1.5 must be a finite number in \[0, 1\] \(a probability"),
    ({"n": 10, "eta": -0.1}, "eta=-0.1 must be a finite number >= 0"),
    ({"n": 10, "eta": float("nan")}, "eta=nan must be a finite number >= 0"),
    ({"n": 10, "seed": "a"}, "seed='a' must be an integer >= 0"),
])
def test_sample_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy.sample_toy(**kwargs)


def test_representation_and_attack_reject_bad_input():
    x, y = toy.sample_toy(10, dim=3)
    with pytest.raises(ValueError, match="unknown rep_weights 'middle'"):
        toy.toy_representation(x, "middle")
    with pytest.raises(ValueError, match="not both zero"):
        toy.toy_representation(x, (0, 0))
    with pytest.raises(ValueError, match=r"features must be \(n, dim \+ 1\)"):
        toy.worst_case_attack(x[:, :1], y, (1, 0), 0.1)
    with pytest.raises(ValueError, match="eps=.* must be a finite number >= 0"):
        toy.worst_case_attack(x, y, (1, 0), -0.1)
    with pytest.raises(ValueError, match="weights must be a pair"):
        toy.linear_accuracy((1, 2, 3))


# ----------------------------------------------------------------------------- attack
def test_worst_case_attack_moves_every_coordinate_by_eps_and_costs_eps_l1():
    x, y = toy.sample_toy(1000, dim=5, seed=2)
    for weights in [(1.0, 0.0), (0.0, 1.0), (0.7, -2.0), (-1.0, 0.5)]:
        x_adv = toy.worst_case_attack(x, y, weights, 0.3)
        assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.3))
        sign = (2 * y - 1).float()
        margin = sign * toy.toy_representation(x, weights)[:, 0]
        margin_adv = sign * toy.toy_representation(x_adv, weights)[:, 0]
        drop = 0.3 * (abs(weights[0]) + abs(weights[1]))
        assert torch.allclose(margin - margin_adv, torch.full_like(margin, drop), atol=1e-5)


# ----------------------------------------------------------------------------- accuracies
def test_named_accuracies():
    assert toy.robust_only_accuracy(0.0, p=P) == pytest.approx(P)
    assert toy.robust_only_accuracy(0.99, p=P) == pytest.approx(P)
    assert toy.robust_only_accuracy(1.0, p=P) == 0.0
    assert toy.nonrobust_only_accuracy(0.0, DIM) == pytest.approx(norm.cdf(2))
    assert toy.nonrobust_only_accuracy(2 * ETA, DIM) == pytest.approx(norm.cdf(-2))


@pytest.mark.parametrize("weights, eps", [
    ((1.0, 0.0), 0.5), ((0.0, 1.0), 0.0), ((0.0, 1.0), 0.4), ((1.0, 1.0), 0.0),
    ((1.0, 1.0), 0.4), ((0.3, 1.0), 0.1), ((1.0, -0.5), 0.2), ((-1.0, 2.0), 0.05)])
def test_linear_accuracy_matches_monte_carlo(big_sample, weights, eps):
    exact = toy.linear_accuracy(weights, eps=eps, dim=DIM, p=P)
    estimate, n = mc_accuracy(big_sample, weights, eps)
    sd = math.sqrt(max(exact * (1 - exact), 1e-6) / n)
    assert abs(estimate - exact) < 4.5 * sd + 1e-4


# ----------------------------------------------------------------------------- bound terms
def test_bound_terms_robust_feature_exact_values():
    terms = toy.toy_bound_terms("robust", (1.0, 0.0), eps=0.5, dim=DIM, p=P)
    assert terms.err_nat == pytest.approx(1 - P) and terms.err_adv == pytest.approx(1 - P)
    assert terms.tv == pytest.approx(1.0)             # supports {+-1} vs {+-0.5, +-1.5}
    assert terms.d_h_threshold == pytest.approx(P)
    assert terms.d_hdh_threshold == pytest.approx(2 * P)
    assert terms.lambda_star_threshold == pytest.approx(2 * (1 - P))
    assert terms.lambda_star_bayes == pytest.approx(1 - P)


def test_bound_terms_nonrobust_features_same_marginals_but_flipped_labels():
    terms = toy.toy_bound_terms("nonrobust", (0.0, 1.0), eps=2 * ETA, dim=DIM, p=P)
    assert terms.tv < 1e-6 and terms.d_hdh_threshold < 1e-6
    assert terms.lambda_star_bayes == pytest.approx(1.0, abs=1e-6)
    assert terms.err_nat == pytest.approx(1 - norm.cdf(2))
    assert terms.err_adv == pytest.approx(norm.cdf(2))


@pytest.mark.parametrize("rep", ["robust", "nonrobust", (1.0, 1.0), (1.0, 0.3), (-0.5, 1.0)])
@pytest.mark.parametrize("attack, eps", [((1.0, 0.0), 0.5), ((0.0, 1.0), 0.4),
                                         ((1.0, 1.0), 0.3), ((1.0, -1.0), 1.2)])
def test_bound_holds_and_terms_are_ordered(rep, attack, eps):
    t = toy.toy_bound_terms(rep, attack, eps=eps, dim=DIM, p=P)
    tol = 1e-6
    assert t.err_adv <= t.bound_threshold + tol and t.err_adv <= t.bound_bayes + tol
    assert t.d_h_threshold <= t.d_hdh_threshold + tol <= 2 * t.tv + 2 * tol
    assert t.lambda_star_bayes <= t.lambda_star_threshold + tol
    assert t.lambda_star_threshold <= t.err_nat + t.err_adv + tol
    assert 0 <= t.tv <= 1 + tol


@pytest.mark.parametrize("weights, eps", [((1.0, 0.0), 0.5), ((0.0, 1.0), 0.4), ((1.0, 1.0), 0.4),
                                          ((0.3, 1.0), 0.1)])
def test_bound_term_errors_agree_with_linear_accuracy(weights, eps):
    t = toy.toy_bound_terms(weights, weights, eps=eps, dim=DIM, p=P)
    assert t.err_nat == pytest.approx(1 - toy.linear_accuracy(weights, eps=0.0, dim=DIM, p=P))
    assert t.err_adv == pytest.approx(1 - toy.linear_accuracy(weights, eps=eps, dim=DIM, p=P))


@pytest.mark.parametrize("rep, attack, eps", [((1.0, 1.0), (1.0, 1.0), 0.4),
                                              ((0.3, 1.0), (0.0, 1.0), 0.3)])
def test_gaussian_closed_forms_match_samples(big_sample, rep, attack, eps):
    """KS distance and the best threshold's joint error against their empirical versions."""
    x, y = big_sample
    z_nat = toy.toy_representation(x, rep)[:, 0].numpy().astype(float)
    z_adv = toy.toy_representation(toy.worst_case_attack(x, y, attack, eps), rep)[:, 0]
    z_adv, sign = z_adv.numpy().astype(float), (2 * y - 1).numpy()
    t = toy.toy_bound_terms(rep, attack, eps=eps, dim=DIM, p=P)
    assert 2 * ks_2samp(z_nat, z_adv).statistic == pytest.approx(t.d_h_threshold, abs=0.03)
    grid = np.linspace(-2, 2, 401)[:, None]
    joint = (np.where(z_nat > grid, 1, -1) != sign).mean(1) + \
        (np.where(z_adv > grid, 1, -1) != sign).mean(1)
    best = min(joint.min(), 2 - joint.max())
    assert best == pytest.approx(t.lambda_star_threshold, abs=0.01)


# ----------------------------------------------------------------------------- toy_tables
def test_tradeoff_curve_rows_match_the_closed_forms_and_the_simulation():
    from drrdn_lib import toy_tables
    rows = toy_tables.tradeoff_curve(3, eps=0.5, dim=DIM, p=P, n_samples=2000, seed=0)
    assert [r["w_nonrobust_share"] for r in rows] == [0.0, 0.5, 1.0]
    robust = rows[0]
    assert robust["nat_exact"] == toy.linear_accuracy((1.0, 0.0), eps=0.0, dim=DIM, p=P)
    assert robust["rob_exact"] == toy.linear_accuracy((1.0, 0.0), eps=0.5, dim=DIM, p=P)
    assert rows[-1]["nat_exact"] > robust["nat_exact"] and rows[-1]["rob_exact"] < robust["rob_exact"]
    for r in rows:
        assert r["nat_sim_lo"] - 0.01 <= r["nat_exact"] <= r["nat_sim_hi"] + 0.01
        assert r["rob_sim_lo"] - 0.01 <= r["rob_exact"] <= r["rob_sim_hi"] + 0.01


@pytest.mark.parametrize("call, match", [
    (lambda t: t.tradeoff_curve(1, eps=0.5, dim=DIM, p=P), r"n_points=1 must be an integer >= 2"),
    (lambda t: t.tradeoff_curve(3, eps=0.5, dim=DIM, p=P, n_samples=0), r"n_samples=0"),
    (lambda t: t.compare_bound_terms({}, eps=0.5, dim=DIM, p=P), r"non-empty dict"),
    (lambda t: t.compare_bound_terms({"r": "robust"}, eps=0.5, dim=DIM, p=P, steps=0), r"steps=0"),
])
def test_toy_tables_reject_bad_sizes(call, match):
    from drrdn_lib import toy_tables
    with pytest.raises(ValueError, match=match):
        call(toy_tables)
