"""The held-out JS lower bound on samples whose JS is known: identical (0), disjoint
(log 2), 1-D Gaussians (quadrature), and label-swapped domains (marginal 0, conditional
log 2); the calibrated MLP on few wide rows (near 0 on one distribution, positive on a
shift), a fixed optimal discriminator (the JS itself) and the joint class-conditional
estimator."""
import math

import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from drrdn_lib.alignment import (LOG2, alignment_table, class_conditional_js, fixed_right,
                                  js_bound_of, js_lower_bound, paired_js_difference)
from drrdn_lib.stats import compare_paired


def _gaussians(n, shift, dim=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + shift


def _js_unit_gaussians(mu: float) -> float:
    """JS(N(0,1) || N(mu,1)) in nats by quadrature."""
    def integrand(x):
        p, q = norm.pdf(x), norm.pdf(x, mu)
        m = (p + q) / 2
        return 0.5 * (p * math.log(p / m) if p > 0 else 0.0) + \
            0.5 * (q * math.log(q / m) if q > 0 else 0.0)
    return integrate.quad(integrand, -20, 20 + mu, limit=200)[0]


def test_quadrature_reference_is_right():
    assert _js_unit_gaussians(0.0) == pytest.approx(0.0, abs=1e-12)
    assert _js_unit_gaussians(40.0) == pytest.approx(LOG2, abs=1e-6)


def test_identical_samples_give_at_most_zero():
    z = torch.randn(600, 4, generator=torch.Generator().manual_seed(1))
    for head in ("linear", "mlp"):
        bound = js_lower_bound(z, z.clone(), paired=True, head=head)
        assert bound.nats <= 0.0                 # log D + log(1 - D) <= -log 4 pointwise
        assert bound.nats > -0.01 and bound.clipped == 0.0
        assert bound.accuracy.lo <= 0.5 + 0.1


def test_two_samples_of_one_distribution_interval_covers_zero():
    z_p, z_q = _gaussians(2000, 0.0, dim=3, seed=2)
    bound = js_lower_bound(z_p, z_q)
    assert bound.lo <= 0.0 <= bound.hi
    assert abs(bound.nats) < 3 * bound.se


def test_disjoint_samples_reach_log2_less_the_clip():
    z_p, z_q = _gaussians(1000, 10.0, dim=2, seed=3)
    clip = 1e-3
    bound = js_lower_bound(z_p, z_q, clip=clip)
    ceiling = LOG2 + math.log(1 - clip)
    assert bound.nats <= ceiling + 1e-9
    assert bound.nats > ceiling - 1e-3          # every held-out row nearly at the clamp
    assert bound.accuracy.value == 1.0
    assert bound.bits == pytest.approx(bound.nats / LOG2)


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_gaussians_with_known_js(mu):
    truth = _js_unit_gaussians(mu)
    z_p, z_q = _gaussians(4000, mu, seed=4)
    bound = js_lower_bound(z_p, z_q)       # linear: the family of the optimal D for this pair
    assert bound.lo <= truth                # a lower bound, up to noise
    assert abs(bound.nats - truth) <= 3 * bound.se
    assert bound.n_train == (2000, 2000) and bound.n_heldout == (2000, 2000)


def test_one_confident_mistake_is_finite_and_costs_at_most_the_clip():
    z_p, z_q = _gaussians(400, 10.0, dim=1, seed=5)
    clean = js_lower_bound(z_p, z_q)
    # the held-out side is the first rows of the seeded permutation: put every held-out p
    # row far inside q's region, then only one of them
    held_p = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:200]
    z_bad = z_p.clone()
    z_bad[held_p[0]] = 20.0
    bound = js_lower_bound(z_bad, z_q)
    assert math.isfinite(bound.nats) and math.isfinite(bound.lo)
    assert bound.nats >= clean.nats + 0.5 * math.log(1e-3) / 200 - 1e-9
    assert bound.nats < clean.nats


def test_unbalanced_samples_and_paired_checks():
    z_p, _ = _gaussians(300, 0.0, seed=6)
    _, z_q = _gaussians(900, 0.0, seed=7)
    bound = js_lower_bound(z_p, z_q)        # the prior shift keeps D near 1/2
    assert abs(bound.nats) < 0.02 and bound.n_heldout == (150, 450)
    with pytest.raises(ValueError, match="paired=True needs one row"):
        js_lower_bound(z_p, z_q, paired=True)
    with pytest.raises(ValueError, match="same width"):
        js_lower_bound(z_p, torch.zeros(300, 2))
    with pytest.raises(ValueError, match="clip"):
        js_lower_bound(z_p, z_p, clip=0.0)
    with pytest.raises(ValueError, match="too few"):
        js_lower_bound(z_p[:8], z_p[:8])
    with pytest.raises(ValueError, match="2-D"):
        js_lower_bound(z_p[:, 0], z_p[:, 0])


def _label_swapped(n=800, seed=8):
    """Domain p: class 0 at 0, class 1 at 6; domain q: the reverse. Same marginals."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centre = 6.0 * y.float()[:, None]
    z_p = torch.randn(n, 2, generator=g) + centre
    z_q = torch.randn(n, 2, generator=g) + (6.0 - centre)
    return z_p, z_q, y


def test_label_swap_marginal_zero_conditional_log2():
    z_p, z_q, y = _label_swapped()
    table = alignment_table(z_p, z_q, y, y, head="mlp")
    marginal, conditional = table.loc["marginal"], table.loc["class-conditional"]
    assert marginal["lo"] <= 0.0 and marginal["nats"] < 0.05
    assert conditional["nats"] > LOG2 - 0.01 and conditional["lo"] > 0.6
    result = class_conditional_js(z_p, z_q, y, y, paired=True)
    assert set(result.per_class) == {0, 1}
    assert result.weights == {0: 0.5, 1: 0.5}
    assert result.nats == pytest.approx(sum(0.5 * b.nats for b in result.per_class.values()))


def test_alignment_table_compares_the_joint_bound_with_the_marginal_on_the_same_pairs():
    z_p, z_q, y = _label_swapped()
    table = alignment_table(z_p, z_q, y, paired=True, estimator="joint", head="mlp")
    marginal, conditional = table.loc["marginal"], table.loc["class-conditional"]
    assert conditional["minus_marginal"] == pytest.approx(conditional["nats"] - marginal["nats"], abs=1e-9)
    assert conditional["minus_marginal_lo"] > 0.5 and conditional["minus_marginal_p"] < 1e-10
    assert math.isnan(marginal["minus_marginal_p"])
    unpaired = alignment_table(z_p, z_q, y, y, head="mlp")
    assert math.isnan(unpaired.loc["class-conditional", "minus_marginal_p"])


def test_class_conditional_errors_name_the_class():
    z_p, z_q, y = _label_swapped(n=100)
    y_few = y.clone()
    y_few[:6] = 2                             # three rows of class 2 per side: too few
    with pytest.raises(ValueError, match="class 2"):
        class_conditional_js(z_p, z_q, y_few, y_few)
    with pytest.raises(ValueError, match="labels_q is required"):
        class_conditional_js(z_p, z_q, y)
    with pytest.raises(ValueError, match="labels_p and labels_q differ"):
        class_conditional_js(z_p, z_q, y, 1 - y, paired=True)


# ------------------------------------------------- calibrated MLP, fixed D, joint estimator
def _wide(n=400, dim=200, shift=1.0, shifted=10, seed=9):
    """Paired wide samples: q = p's distribution moved by ``shift`` in ``shifted`` columns."""
    g = torch.Generator().manual_seed(seed)
    z_p, z_q = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    z_q[:, :shifted] += shift
    return z_p, z_q


def test_calibrated_mlp_identical_near_zero_disjoint_near_log2():
    z = torch.randn(600, 4, generator=torch.Generator().manual_seed(1))
    same = js_lower_bound(z, z.clone(), paired=True, head="mlp", calibration=0.3)
    assert -0.01 < same.nats <= 0.0 and same.clipped == 0.0
    assert same.n_train == (300, 300) and same.n_heldout == (300, 300)
    z_p, z_q = _gaussians(1000, 10.0, dim=2, seed=3)
    apart = js_lower_bound(z_p, z_q, paired=True, head="mlp", calibration=0.3)
    assert apart.nats > LOG2 + math.log(1 - 1e-3) - 1e-3 and apart.accuracy.value == 1.0


def test_calibration_makes_an_over_confident_discriminator_informative():
    """Few wide rows: the uncalibrated MLP's bound is far below 0 on one distribution (it
    cannot say "nothing"); calibrated it is near 0 there and clearly positive on a shift."""
    z_p, _ = _wide()
    _, z_null = _wide(shift=0.0, seed=10)
    raw = js_lower_bound(z_p, z_null, paired=True, head="mlp")
    null = js_lower_bound(z_p, z_null, paired=True, head="mlp", calibration=0.3)
    assert raw.hi < -0.5
    assert null.lo <= 0.0 and null.nats > -0.05
    shifted = js_lower_bound(*_wide(), paired=True, head="mlp", calibration=0.3)
    assert shifted.lo > 0.1 and shifted.accuracy.lo > 0.75
    with pytest.raises(ValueError, match="calibration"):
        js_lower_bound(z_p, z_null, calibration=1.0)


def test_a_fixed_optimal_discriminator_attains_the_js():
    """js_bound_of with D* = p / (p + q) (logit log p/q) equals the JS, up to noise."""
    mu = 1.0
    g = torch.Generator().manual_seed(11)
    x, y = torch.randn(20000, generator=g), torch.randn(20000, generator=g) + mu
    bound = js_bound_of(-mu * x + mu ** 2 / 2, -mu * y + mu ** 2 / 2)
    assert abs(bound.nats - _js_unit_gaussians(mu)) <= 3 * bound.se
    assert bound.n_train == (0, 0) and bound.n_heldout == (20000, 20000)
    blind = js_bound_of(torch.zeros(50), torch.zeros(50), paired=True)   # D = 1/2
    assert blind.nats == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="1-D"):
        js_bound_of(torch.zeros(5, 2), torch.zeros(5))


def test_a_fixed_discriminator_is_scored_on_the_fresh_ones_heldout_rows():
    """fixed_right marks a fixed discriminator (the optimal one, and a blind one) on exactly
    the held-out rows of a fitted bound, so that the two compare by McNemar on those rows."""
    mu = 2.0
    p, q = _gaussians(600, mu)
    fresh = js_lower_bound(p, q, paired=True, calibration=0.3, seed=3)
    assert fresh.right.dtype == torch.bool and len(fresh.right) == sum(fresh.n_heldout)
    assert fresh.right.float().mean().item() == pytest.approx(fresh.accuracy.value)
    hp, hq = fresh.heldout_index
    assert len(hp) == fresh.n_heldout[0] and torch.equal(hp, hq)  # paired: the same examples
    optimal = fixed_right(fresh, mu ** 2 / 2 - mu * p[:, 0], mu ** 2 / 2 - mu * q[:, 0])
    assert torch.equal(optimal, torch.cat([p[hp, 0] < mu / 2, q[hq, 0] >= mu / 2]))
    row = compare_paired(optimal, fresh.right)
    assert abs(row.a_only - row.b_only) <= 3 * math.sqrt(max(1, row.a_only + row.b_only))  # both near-optimal
    blind = fixed_right(fresh, torch.zeros(600), torch.zeros(600))  # D = 1/2: right on q only
    assert blind.sum().item() == fresh.n_heldout[1]
    assert compare_paired(blind, fresh.right).p_value < 1e-6
    with pytest.raises(ValueError, match="no held-out rows"):
        fixed_right(js_bound_of(torch.zeros(5), torch.zeros(5)), torch.zeros(5), torch.zeros(5))


def test_two_bounds_on_the_same_pairs_compare_by_their_paired_difference():
    """Two shifts of the same natural sample (1.5 vs 0.5): the paired difference equals the
    difference of the bounds, is positive beyond noise, and an equal shift gives p > 0.05;
    bounds held out on other pairs are refused."""
    g = torch.Generator().manual_seed(5)
    nat, noise = torch.randn(1200, 1, generator=g), torch.randn(1200, 1, generator=g)
    far = js_lower_bound(nat, nat + 1.5 + 0.3 * noise, paired=True, seed=1)
    near = js_lower_bound(nat, nat + 0.5 + 0.3 * noise, paired=True, seed=1)
    again = js_lower_bound(nat, nat + 0.5 + 0.3 * torch.randn(1200, 1, generator=g), paired=True, seed=1)
    d, p = paired_js_difference(far, near)
    assert d.value == pytest.approx(far.nats - near.nats, abs=1e-9) and d.n == 600
    assert d.lo > 0 and p < 1e-6
    assert paired_js_difference(near, again)[1] > 0.05 or abs(near.nats - again.nats) < 0.02
    with pytest.raises(ValueError, match="different pairs"):
        paired_js_difference(far, js_lower_bound(nat, nat + 0.5, paired=True, seed=2))
    with pytest.raises(ValueError, match="must be paired"):
        paired_js_difference(far, js_lower_bound(nat, nat + 0.5, seed=1))


def test_joint_estimator_sees_the_label_swap_and_is_never_below_the_marginal():
    z_p, z_q, y = _label_swapped()
    table = alignment_table(z_p, z_q, y, paired=True, head="mlp", calibration=0.3, estimator="joint")
    marginal, conditional = table.loc["marginal"], table.loc["class-conditional"]
    assert marginal["lo"] <= 0.0 < conditional["lo"]
    assert conditional["nats"] > LOG2 - 0.01 and conditional["accuracy_lo"] > 0.99
    result = class_conditional_js(z_p, z_q, y, paired=True, head="mlp", estimator="joint")
    assert result.per_class == {} and result.joint.nats == result.nats
    assert result.weights == {0: 0.5, 1: 0.5}
    with pytest.raises(ValueError, match="needs paired=True"):
        class_conditional_js(z_p, z_q, y, y, estimator="joint")
    with pytest.raises(ValueError, match="unknown estimator"):
        class_conditional_js(z_p, z_q, y, paired=True, estimator="pooled")
