"""Bound estimators: intervals, divergence, lambda*, TRADES, the toy's closed forms, bad input."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from drrdn_lib import bounds, probes, toy
from drrdn_lib.stats import Estimate
from drrdn_lib.plots import plot_bound_over_training, plot_bound_terms

matplotlib.use("Agg")
P, DIM = 0.95, 100
ETA = 2 / math.sqrt(DIM)


def toy_case(n, rep, attack, eps, seed=0):
    """(z_nat, z_adv, y, pred_nat, pred_adv) for a 1-D toy representation, head sign(z)."""
    x, y = toy.sample_toy(n, dim=DIM, p=P, seed=seed)
    x_adv = toy.worst_case_attack(x, y, attack, eps)
    z_nat, z_adv = toy.toy_representation(x, rep), toy.toy_representation(x_adv, rep)
    return z_nat, z_adv, y, (z_nat[:, 0] > 0).long(), (z_adv[:, 0] > 0).long()


def gaussian_pair(n, shift, dim=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z_nat = torch.randn(n, dim, generator=gen)
    z_adv = torch.randn(n, dim, generator=gen)
    z_adv[:, 0] += shift
    return z_nat, z_adv


def inside(value, est, slack=0.0):
    return est.lo - slack <= value <= est.hi + slack


# ----------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("head", probes.HEADS)
def test_identical_distributions_give_divergence_near_zero(head):
    divergence, e_dom = bounds.domain_divergence(*gaussian_pair(1000, 0.0), head=head)
    assert divergence.value < 0.2 and divergence.lo == 0.0
    assert inside(0.5, e_dom)


@pytest.mark.parametrize("head", probes.HEADS)
def test_separated_distributions_give_divergence_near_two(head):
    divergence, _ = bounds.domain_divergence(*gaussian_pair(1000, 8.0), head=head)
    assert divergence.value > 1.95 and divergence.lo > 1.9


def test_linear_proxy_converges_to_gaussian_closed_form():
    """Equal-covariance Gaussians at distance 1: Bayes e_dom = Phi(-1/2), logistic regression
    is Bayes-optimal, so the proxy tends to 2 (1 - 2 Phi(-1/2)) = 2 TV."""
    exact = 2 * (1 - 2 * norm.cdf(-0.5))
    errors = []
    for n in (400, 4000):
        divergence, _ = bounds.domain_divergence(*gaussian_pair(n, 1.0, seed=n), head="linear")
        errors.append(abs(divergence.value - exact))
        assert inside(exact, divergence)
    assert errors[1] < 0.05


# ----------------------------------------------------------------------------- on the toy
def test_toy_robust_feature_estimates_converge_to_closed_forms():
    exact = toy.toy_bound_terms("robust", (1.0, 0.0), eps=0.5, dim=DIM, p=P)
    widths = []
    for n in (400, 4000):
        report = bounds.estimate_bound_from_representations(
            *toy_case(n, "robust", (1.0, 0.0), 0.5, seed=n), heads=("mlp",))
        mlp = report.checks["mlp"]
        assert inside(exact.err_nat, report.err_nat) and inside(exact.err_adv, report.err_adv)
        assert inside(2 * exact.tv, mlp.divergence)         # the MLP separates the atoms
        assert inside(exact.lambda_star_bayes, mlp.lambda_star)
        assert report.holds and exact.err_adv <= exact.bound_bayes
        widths.append(mlp.lambda_star.hi - mlp.lambda_star.lo)
    assert widths[1] < widths[0] / 2


def test_toy_nonrobust_features_zero_divergence_and_lambda_one():
    exact = toy.toy_bound_terms("nonrobust", (0.0, 1.0), eps=2 * ETA, dim=DIM, p=P)
    report = bounds.estimate_bound_from_representations(
        *toy_case(2000, "nonrobust", (0.0, 1.0), 2 * ETA, seed=1))
    assert inside(exact.err_nat, report.err_nat) and inside(exact.err_adv, report.err_adv)
    for head in probes.HEADS:
        check = report.checks[head]
        assert inside(2 * exact.tv, check.divergence) and check.divergence.value < 0.1
        assert inside(exact.lambda_star_bayes, check.lambda_star)
        assert check.holds and check.slack == pytest.approx(check.bound - check.err_adv)


def test_toy_gaussian_mixture_estimates_respect_closed_form_limits():
    """Mixed representation: a trained head is no better than the best one in its class."""
    exact = toy.toy_bound_terms((1.0, 1.0), (1.0, 1.0), eps=0.4, dim=DIM, p=P)
    report = bounds.estimate_bound_from_representations(
        *toy_case(2000, (1.0, 1.0), (1.0, 1.0), 0.4))
    assert inside(exact.err_adv, report.err_adv)
    mlp, linear = report.checks["mlp"], report.checks["linear"]
    assert mlp.divergence.lo <= 2 * exact.tv and mlp.divergence.value > 1.8
    assert linear.divergence.lo == 0.0                     # symmetric marginals
    assert mlp.lambda_star.hi >= exact.lambda_star_bayes
    assert linear.lambda_star.hi >= exact.lambda_star_threshold
    assert report.holds


# ----------------------------------------------------------------------------- TRADES
def test_trades_identity_is_exact():
    gen = torch.Generator().manual_seed(0)
    correct_nat = torch.rand(997, generator=gen) < 0.8
    correct_adv = torch.rand(997, generator=gen) < 0.5
    split = bounds.trades_decomposition(correct_nat, correct_adv, ci_method="clopper-pearson")
    assert split.identity_holds and split.n_rob_wrong == split.n_nat_wrong + split.n_bdy
    assert split.r_rob.value == pytest.approx(split.r_nat.value + split.r_bdy.value, abs=1e-12)
    assert split.n_adv_fixed == int((~correct_nat & correct_adv).sum())


def test_report_uses_worst_case_vector_and_serialises():
    z_nat, z_adv, y, pred_nat, pred_adv = toy_case(400, "robust", (1.0, 0.0), 0.5)
    worst = torch.zeros(400, dtype=torch.bool)
    report = bounds.estimate_bound_from_representations(
        z_nat, z_adv, y, pred_nat, pred_adv, worst_case_correct=worst, heads=("linear",),
        ci_method="clopper-pearson")
    assert report.trades.r_rob.value == 1.0 and report.trades.identity_holds
    assert report.n_train + report.n_heldout == 400
    restored = json.loads(json.dumps(report.to_dict()))
    assert restored["checks"]["linear"]["lambda_star"]["n"] == report.n_heldout
    row = report.to_record("linear")
    assert {"err_nat", "err_adv", "divergence", "lambda_star", "bound", "r_bdy"} <= set(row)


def test_smallest_gap_and_divergence_compare_paired_on_the_same_digits():
    """Three models on the same 600 digits: the smallest gap against the others by the paired
    mean of the per-digit gap terms (equal to the difference of the gaps), the divergence by
    McNemar on the domain rows; reports on other digits are refused."""
    g = torch.Generator().manual_seed(0)
    n = 600
    y = torch.randint(0, 2, (n,), generator=g)
    z_nat = torch.randn(n, 2, generator=g)
    flips = {"small": 30, "mid": 33, "large": 200}  # adversarial predictions wrong on the first k
    reports = {}
    for name, k in flips.items():
        pred_adv = y.clone()
        pred_adv[:k] = 1 - y[:k]
        z_adv = z_nat + (0.2 if name != "large" else 3.0)
        reports[name] = bounds.estimate_bound_from_representations(
            z_nat, z_adv, y, y.clone(), pred_adv, heads=("linear",))
    assert json.loads(json.dumps(reports["small"].to_dict()))["n"] == n  # per_example not serialised
    gap = bounds.smallest_versus_others(reports, "gap", head="linear")
    assert [(r["a"], r["b"]) for r in gap] == [("small", "mid"), ("small", "large")]
    assert gap[0]["difference"] == pytest.approx(-3 / n) and gap[0]["p_holm"] > 0.05
    assert gap[1]["difference"] == pytest.approx(-170 / n) and gap[1]["p_holm"] < 1e-10
    assert gap[0]["family_size"] == 2 and gap[1]["lo"] < gap[1]["difference"] < gap[1]["hi"]
    div = bounds.smallest_versus_others(reports, "divergence", head="linear")
    large = next(r for r in div if r["b"] == "large")
    assert large["difference"] < 0 and large["b_only"] > large["a_only"] and large["p_holm"] < 1e-6
    other = bounds.estimate_bound_from_representations(
        z_nat[:500], z_nat[:500], y[:500], y[:500], y[:500], heads=("linear",))
    with pytest.raises(ValueError, match="same examples"):
        bounds.smallest_versus_others({"small": reports["small"], "other": other}, "gap", head="linear")
    assert bounds.smallest_versus_others({"small": reports["small"]}, "gap") == []


# ----------------------------------------------------------------------------- from a model
class ToyLinear(nn.Module):
    """f(x) = w_r x_1 + w_n mean(x_2..), two logits; representation = (x_1, mean)."""

    def __init__(self, weights):
        super().__init__()
        self.weights = nn.Parameter(torch.tensor(weights))

    def representation(self, x):
        return torch.stack([x[:, 0], x[:, 1:].mean(1)], dim=1)

    def forward(self, x):
        score = self.representation(x) @ self.weights
        return torch.stack([-score, score], dim=1) / 2


class ToyAttack:
    def __init__(self, eps):
        self.eps = eps

    def __call__(self, model, x, y):
        return toy.worst_case_attack(x, y, model.weights.tolist(), self.eps)


def test_estimate_bound_from_model_matches_representation_path():
    x, y = toy.sample_toy(300, dim=10, seed=4)
    model = ToyLinear([1.0, 1.0]).train()
    report = bounds.estimate_bound(model, x, y, attack=ToyAttack(0.4), bounds=None, heads=("linear",))
    assert model.training                                   # mode restored
    x_adv = toy.worst_case_attack(x, y, (1.0, 1.0), 0.4)
    direct = bounds.estimate_bound_from_representations(
        model.representation(x).detach(), model.representation(x_adv).detach(), y,
        model(x).argmax(1), model(x_adv).argmax(1), heads=("linear",))
    assert report.to_dict() == direct.to_dict()
    again = bounds.estimate_bound(model, x, y, x_adv, eps=0.4, bounds=None, heads=("linear",),
                                  batch_size=64)
    assert again.to_dict() == direct.to_dict()


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def good():
    return toy_case(200, "robust", (1.0, 0.0), 0.5)


def call(good, **changes):
    names = ("z_nat", "z_adv", "labels", "pred_nat", "pred_adv")
    args = dict(zip(names, good)) | {"heads": ("linear",)}
    args.update(changes)
    return bounds.estimate_bound_from_representations(**args)


@pytest.mark.parametrize("changes, match", [
    ({"z_adv": torch.zeros(199, 1)}, "z_adv has 199 rows but there are 200 examples"),
    ({"labels": torch.zeros(150, dtype=torch.long)}, "z_nat has 200 rows but there are 150"),
    ({"pred_adv": torch.zeros(10, dtype=torch.long)}, r"pred_adv must be .* shape \(200,\)"),
    ({"z_nat": torch.zeros(200)}, r"z_nat must be 2-D \(n, D\), got shape \(200,\)"),
    ({"z_adv": torch.zeros(200, 3)}, "must have the same shape"),
    ({"labels": torch.zeros(200)}, r"labels must be an int64 tensor .* got torch\.float32; convert with \.long\(\)"),
    ({"pred_nat": torch.zeros(200, dtype=torch.int32)}, r"pred_nat must be an int64 tensor .*int32"),
    ({"labels": torch.full((200,), -1)}, r"labels in \[-1, -1\] include negative values"),
    ({"z_nat": torch.ones(200, 1).index_fill(0, torch.tensor([7]), float("nan"))},
     r"z_nat holds 1 NaN/inf value\(s\) \(first in example 7\)"),
    ({"heldout_fraction": 1.0}, r"heldout_fraction=1\.0 must be a finite number in \(0, 1\)"),
    ({"heldout_fraction": 0.02}, "each side needs >= 10; pass at least 475 examples"),
    ({"ci_method": "bootstrap"}, "unknown ci_method 'bootstrap'"),
    ({"confidence": 95}, r"confidence=95 must be a finite number in \(0, 1\)"),
    ({"heads": ("svm",)}, "unknown head 'svm'"),
    ({"worst_case_correct": torch.ones(5, dtype=torch.bool)}, "worst_case_correct must be"),
])
def test_bad_input_raises(good, changes, match):
    with pytest.raises(ValueError, match=match):
        call(good, **changes)


def test_too_few_examples_names_the_minimum():
    z_nat, z_adv, y, pred_nat, pred_adv = toy_case(15, "robust", (1.0, 0.0), 0.5)
    with pytest.raises(ValueError, match="15 examples are too few .* pass at least 20 examples"):
        bounds.estimate_bound_from_representations(z_nat, z_adv, y, pred_nat, pred_adv)


@pytest.mark.parametrize("representation, match", [
    (lambda x: x[:, 0], r"returned \(.*,\) for a batch"),
    (lambda x: x[:1], r"returned \(1, 11\) for a batch of 50 natural inputs"),
])
def test_bad_representation_function_raises(representation, match):
    x, y = toy.sample_toy(50, dim=10)
    with pytest.raises(ValueError, match=match):
        bounds.estimate_bound(ToyLinear([1.0, 0.0]), x, y, x, eps=0.1, bounds=None,
                              representation=representation)


def test_estimate_bound_needs_exactly_one_adversarial_source():
    x, y = toy.sample_toy(50, dim=10)
    with pytest.raises(ValueError, match="pass exactly one of x_adv"):
        bounds.estimate_bound(ToyLinear([1.0, 0.0]), x, y)
    with pytest.raises(ValueError, match="x_adv has shape"):
        bounds.estimate_bound(ToyLinear([1.0, 0.0]), x, y, x[:10], eps=0.1, bounds=None)
    with pytest.raises(ValueError, match="has no .representation"):
        bounds.estimate_bound(nn.Linear(11, 2), x, y, x, eps=0.1, bounds=None)


# ----------------------------------------------------------------------------- plot
@pytest.mark.parametrize("x", ["method", "epoch"])
def test_plot_bound_terms_returns_a_figure(x):
    rows = [{"method": m, "epoch": e, "err_nat": 0.1 + e / 100, "err_adv": 0.5, "divergence": 0.4,
             "lambda_star": 0.3, "bound": 0.6} for m in ("pgd_at", "drrdn") for e in (1, 2)]
    figure = plot_bound_terms(rows, x=x)
    assert len(figure.axes) == 1 and figure.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match=r"records lack columns \['seed'\]"):
        plot_bound_terms(rows, x="seed")


def test_plot_bound_over_training_has_one_panel_per_method():
    rows = [{"method": m, "epoch": e, "err_nat": 0.1 + e / 100, "err_adv": 0.5, "divergence": 0.4,
             "lambda_star": 0.3, "bound": 0.6} for m in ("pgd_at", "trades", "drrdn") for e in (1, 2, 3)]
    figure = plot_bound_over_training(rows)
    assert [ax.get_title() for ax in figure.axes] == ["pgd_at", "trades", "drrdn"]
    assert [ax.get_legend() is not None for ax in figure.axes] == [False, False, True]
    with pytest.raises(ValueError, match="need a 'method' column"):
        plot_bound_over_training([])


# ----------------------------------------------------------- bad images never become a bound
class ImageProbe(nn.Module):
    """A tiny image classifier (N, 1, 4, 4) -> 2 logits, with a 3-D representation."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        self.head = nn.Linear(3, 2)

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.fixture(scope="module")
def image_case():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 4, 4, generator=gen) * 0.8 + 0.1
    y = torch.randint(0, 2, (60,), generator=gen)
    return ImageProbe().eval(), x, y


def test_estimate_bound_on_images_inside_the_ball_works(image_case):
    model, x, y = image_case
    x_adv = (x + 0.05 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(1))))
    report = bounds.estimate_bound(model, x, y, x_adv.clamp(0, 1), eps=0.05, heads=("linear",))
    assert report.n == 60 and 0 <= report.err_adv.value <= 1


@pytest.mark.parametrize("make_adv, kw, match", [
    (lambda x: x + 0.5, {"eps": 0.6}, r"x_adv has values in \[.*\], outside the allowed range \[0\.0, 1\.0\]"),
    (lambda x: (x + 0.2).clamp(0, 1), {"eps": 0.1},
     r"x_adv is outside the Linf eps-ball: distance up to 0\.2.* > eps 0\.1"),
    (lambda x: (x + 0.2).clamp(0, 1), {"eps": 0.1, "norm": "L2"}, r"outside the L2 eps-ball"),
    (lambda x: x.clone(), {}, r"pass eps=.*the radius x_adv was made with"),
    (lambda x: x.index_fill(0, torch.tensor([4]), float("nan")), {"eps": 0.1},
     r"x_adv holds 16 NaN/inf value\(s\) \(first in example 4\)"),
    (lambda x: x.double(), {"eps": 0.1}, r"x_adv.*float64.*convert with \.float\(\)"),
])
def test_estimate_bound_rejects_bad_adversarial_images(image_case, make_adv, kw, match):
    model, x, y = image_case
    with pytest.raises(ValueError, match=match):
        bounds.estimate_bound(model, x, y, make_adv(x), heads=("linear",), **kw)


@pytest.mark.parametrize("change, match", [
    (lambda x, y: (x.index_fill(0, torch.tensor([2]), float("nan")), y), r"x_nat holds .*NaN/inf"),
    (lambda x, y: (x * 255, y), r"x_nat has values .* outside the allowed range"),
    (lambda x, y: (x.permute(0, 2, 3, 1).expand(60, 4, 4, 3).contiguous(), y), r"NHWC"),
    (lambda x, y: (x, y.float()), r"labels.*float32.*\.long\(\)"),
    (lambda x, y: (x, y + 2), r"labels.*outside.*\[0, 1\]"),
])
def test_estimate_bound_rejects_bad_natural_images_and_labels(image_case, change, match):
    model, x, y = image_case
    x, y = change(x, y)
    with pytest.raises(ValueError, match=match):
        bounds.estimate_bound(model, x, y, attack=lambda m, a, b: a, eps=0.1, heads=("linear",))


def test_estimate_bound_takes_the_ball_from_an_attack_object(image_case):
    """A PGD carries eps, norm and bounds; a plain callable needs eps=."""
    from drrdn_lib.attacks import PGD
    model, x, y = image_case
    report = bounds.estimate_bound(model, x, y, attack=PGD(0.05, 0.02, 3, seed=0), heads=("linear",))
    assert report.n == 60
    with pytest.raises(ValueError, match=r"pass eps="):
        bounds.estimate_bound(model, x, y, attack=lambda m, a, b: a, heads=("linear",))


# ----------------------------------------------------------- verdicts by interval ends
def est(value, half=0.05):
    return Estimate(value, value - half, value + half, 100)


@pytest.mark.parametrize("bound, gap, gap_bound, verdict", [
    (0.90, 0.20, 0.40, "holds"),        # gap's upper end 0.25 <= gap_bound's lower end 0.35
    (0.90, 0.30, 0.35, "undecided"),    # the intervals overlap
    (0.50, 0.60, 0.40, "fails"),        # gap's lower end 0.55 above gap_bound's upper end 0.45
    (1.20, 0.20, 0.40, "vacuous"),      # above 1 says nothing, whatever the gap
])
def test_bound_verdict_uses_the_interval_ends(bound, gap, gap_bound, verdict):
    assert bounds.bound_verdict(bound, est(gap), est(gap_bound)) == verdict


def test_lambda_verdict_asks_whether_lambda_alone_covers_the_gap():
    assert bounds.lambda_verdict(est(0.2), est(0.5)) == "covers"
    assert bounds.lambda_verdict(est(0.5), est(0.2)) == "short"
    assert bounds.lambda_verdict(est(0.3), est(0.35)) == "undecided"


def test_report_gap_interval_verdict_and_lambda_by_n():
    z_nat, z_adv, y, pred_nat, pred_adv = toy_case(600, "robust", (1.0, 0.0), 0.5)
    report = bounds.estimate_bound_from_representations(
        z_nat, z_adv, y, pred_nat, pred_adv, heads=("linear",), lambda_sizes=(20, 100))
    gap = report.gap
    assert gap.value == pytest.approx(report.err_adv.value - report.err_nat.value)
    assert gap.lo < gap.value < gap.hi and gap.lo <= report.err_adv.lo - report.err_nat.lo
    check = report.checks["linear"]
    assert check.gap_bound.value == pytest.approx(check.divergence.value / 2 + check.lambda_star.value)
    assert check.verdict == bounds.bound_verdict(check.bound, gap, check.gap_bound)
    assert set(check.lambda_by_n) == {20, 100}
    assert all(e.n == report.n_heldout for e in check.lambda_by_n.values())
    row = report.to_record("linear")
    assert {"gap", "gap_lo", "gap_bound_hi", "verdict", "lambda_alone", "n_train"} <= set(row)
    json.dumps(report.to_dict())
    with pytest.raises(ValueError, match=r"lambda_sizes \[400\] are not pair counts in \[1, 300\]"):
        bounds.estimate_bound_from_representations(z_nat, z_adv, y, pred_nat, pred_adv,
                                                   heads=("linear",), lambda_sizes=(400,))


def test_plot_lambda_by_n_draws_one_line_per_method_and_a_line_at_one():
    from drrdn_lib.plots import plot_lambda_by_n
    rows = [{"method": m, "pairs": k, "value": 1 / k ** 0.3, "lo": 0.5 / k ** 0.3, "hi": 1.5 / k ** 0.3,
             "learned": m != "mart"} for m in ("trades", "mart") for k in (25, 50, 100)]
    figure = plot_lambda_by_n(rows, {"trades": "TRADES", "mart": "MART"}, "title")
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "TRADES" in texts and "MART (not trained)" in texts
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in figure.axes[0].get_lines())


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_the_probes_per_row_records_are_the_estimates_they_count(head):
    """domain_probe_right / probe_right are the rows behind domain_divergence / probe_accuracy
    (same split, seed and head), so two representations compare on the same rows."""
    z_nat, z_adv = gaussian_pair(400, 1.0)
    _, e_dom = bounds.domain_divergence(z_nat, z_adv, head=head, seed=3)
    right = probes.domain_probe_right(z_nat, z_adv, head=head, seed=3)
    assert right.shape == (400,) and right.dtype == torch.bool
    assert int(right.sum()) == round((1 - e_dom.value) * 400)
    labels = (z_nat[:, 1] > 0).long()
    rows = probes.probe_right(z_nat, labels, head=head, seed=3)
    assert rows.shape == (200,) and math.isclose(float(rows.float().mean()), probes.probe_accuracy(z_nat, labels, head=head, seed=3))
    assert float(rows.float().mean()) > 0.8  # the class is in column 1: the probe finds it
