"""The statistics of the claims: known answers, coverage by simulation, bad input."""
import numpy as np
import pytest
import torch
from scipy.stats import binom

from drrdn_lib import stats


# ----------------------------------------------------------------------------- one number
def test_proportion_takes_integer_counts_only():
    """A fractional count used to be truncated by int() into a plausible estimate."""
    assert stats.proportion(3, 10).value == 0.3
    assert stats.proportion(np.int64(3), torch.tensor(10)).n == 10
    with pytest.raises(ValueError, match=r"k=2\.7 must be an integer count"):
        stats.proportion(2.7, 10)
    with pytest.raises(ValueError, match=r"n must be an integer count, got a torch\.float32"):
        stats.proportion(3, torch.tensor(10.0))


def test_binomial_interval_edge_cases():
    assert stats.binomial_ci(0, 50, method="clopper-pearson")[0] == 0.0
    assert stats.binomial_ci(50, 50, method="clopper-pearson")[1] == 1.0
    lo, hi = stats.binomial_ci(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.1                  # Wilson: 0.0714
    lo, hi = stats.binomial_ci(25, 100)
    assert lo == pytest.approx(0.1754, abs=1e-3) and hi == pytest.approx(0.3430, abs=1e-3)


@pytest.mark.parametrize("method", stats.CI_METHODS)
@pytest.mark.parametrize("n", [30, 300])
def test_binomial_interval_coverage(method, n):
    """Exact coverage over a grid of true p (summing the binomial pmf, no simulation)."""
    intervals = [stats.binomial_ci(k, n, method=method) for k in range(n + 1)]
    pmf_k = np.arange(n + 1)
    coverage = []
    for p in np.linspace(0.02, 0.98, 25):
        covered = np.array([lo <= p <= hi for lo, hi in intervals])
        coverage.append(binom.pmf(pmf_k, n, p)[covered].sum())
    if method == "clopper-pearson":
        assert min(coverage) >= 0.95 - 1e-9
    else:
        assert min(coverage) >= 0.9 and abs(np.mean(coverage) - 0.95) < 0.01



def test_accuracy_cell_is_the_metrics_layout():
    cell = stats.accuracy_cell(876, 1000)
    assert cell["value"] == 0.876 and cell["n"] == 1000 and cell["kind"] == "wilson"
    assert (cell["lo"], cell["hi"]) == pytest.approx((0.854, 0.895), abs=1e-3)  # the README's 87.6 [85.4, 89.5]


# ----------------------------------------------------------------------------- paired
@pytest.mark.parametrize("a_only, b_only, p", [
    (47, 10, 7.5e-7),     # PGD-AT vs DRRDN, worst case on the 1,000 digits (issue 24)
    (132, 184, 0.0040),   # without MI vs full DRRDN, PGD-40, 10,000 digits
    (255, 150, 2.0e-7),   # the same, PGD-100
    (39, 9, 1.5e-5),      # without reconstruction vs full DRRDN, worst case
])
def test_mcnemar_known_answers(a_only, b_only, p):
    assert stats.mcnemar_p(a_only, b_only) == pytest.approx(p, rel=0.02)
    assert stats.mcnemar_p(b_only, a_only) == pytest.approx(p, rel=0.02)   # two-sided


def test_mcnemar_without_a_difference_is_one():
    assert stats.mcnemar_p(0, 0) == 1.0
    assert stats.mcnemar_p(20, 20) == 1.0


def test_paired_comparison_counts_and_interval():
    a = np.array([True] * 50 + [True] * 47 + [False] * 10 + [False] * 3)
    b = np.array([True] * 50 + [False] * 47 + [True] * 10 + [False] * 3)
    c = stats.compare_paired(a, torch.from_numpy(b))
    assert (c.both, c.a_only, c.b_only, c.neither, c.n) == (50, 47, 10, 3, 110)
    assert c.difference.value == pytest.approx(37 / 110)
    assert c.difference.lo < 37 / 110 < c.difference.hi and c.differs()
    same = stats.compare_paired(a, a)
    assert same.p_value == 1.0 and same.difference.value == 0 and not same.differs()
    assert same.difference.lo < 0 < same.difference.hi
    assert c.to_dict()["difference"]["n"] == 110


def test_paired_beats_overlap_on_correlated_models():
    """Two models right on nearly the same digits: intervals overlap, yet 30 / 0 discordant
    is a certain difference (the error issue 24 found in the repository's claims)."""
    a = np.ones(1000, bool)
    a[:100] = False
    b = a.copy()
    b[100:130] = False
    ia, ib = stats.proportion(int(a.sum()), 1000), stats.proportion(int(b.sum()), 1000)
    assert ia.lo <= ib.hi                                  # the intervals overlap
    c = stats.compare_paired(a, b)
    assert c.p_value < 1e-8 and c.difference.lo > 0


@pytest.mark.parametrize("n, p_a, p_b, rho", [(200, 0.9, 0.85, 0.6), (1000, 0.88, 0.84, 0.8),
                                              (100, 0.5, 0.5, 0.3)])
def test_newcombe_interval_covers_at_its_rate(n, p_a, p_b, rho):
    """Simulated correlated pairs: the 95% interval covers the true difference at 95% (within
    Monte-Carlo error, 2,000 draws: sd 0.5 points) and at least 93%."""
    rng = np.random.default_rng(0)
    cover = []
    for _ in range(2000):
        u = rng.random(n)
        shared = rng.random(n) < rho                       # shared latent: correlated outcomes
        v = np.where(shared, u, rng.random(n))
        a, b = u < p_a, v < p_b
        d = stats.compare_paired(a, b).difference
        cover.append(d.lo <= p_a - p_b <= d.hi)
    assert 0.93 <= np.mean(cover) <= 0.975


def test_mcnemar_rejects_at_its_level_under_the_null():
    rng = np.random.default_rng(1)
    rejections = []
    for _ in range(2000):
        u = rng.random(300)
        v = np.where(rng.random(300) < 0.5, u, rng.random(300))
        rejections.append(stats.compare_paired(u < 0.8, v < 0.8).differs())
    assert np.mean(rejections) <= 0.06       # exact test: conservative, never above alpha + MC error


def test_paired_rejects_bad_input():
    with pytest.raises(ValueError, match="same n"):
        stats.compare_paired(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="boolean"):
        stats.compare_paired(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        stats.mcnemar_p(-1, 3)


# ----------------------------------------------------------------------------- seeds
def test_over_seeds_never_shows_a_spread_from_one_seed():
    one = stats.over_seeds([0.923])
    assert one.sd is None and one.text() == "92.3 (n = 1, no spread)"
    three = stats.over_seeds([0.90, 0.92, 0.91])
    assert three.sd == pytest.approx(0.01) and three.text() == "91.0 ± 1.0 (sd, n = 3)"


def test_paired_seed_difference_t_interval():
    d = stats.paired_seed_difference({0: 0.90, 1: 0.92, 2: 0.91}, {0: 0.88, 1: 0.90, 2: 0.905, 3: 0.5})
    assert d.n == 3 and d.value == pytest.approx(0.015)
    half = 4.302653 * np.std([0.02, 0.02, 0.005], ddof=1) / np.sqrt(3)   # t(0.975, 2)
    assert (d.lo, d.hi) == pytest.approx((0.015 - half, 0.015 + half))
    with pytest.raises(ValueError, match="needs >= 2 seeds"):
        stats.paired_seed_difference({0: 0.9}, {0: 0.8})


def test_seed_t_interval_covers_at_its_rate():
    rng = np.random.default_rng(2)
    cover = []
    for _ in range(4000):
        a, b = rng.normal(0.9, 0.01, 3), rng.normal(0.88, 0.01, 3)
        d = stats.paired_seed_difference(dict(enumerate(a)), dict(enumerate(b)))
        cover.append(d.lo <= 0.02 <= d.hi)
    assert abs(np.mean(cover) - 0.95) < 0.015


# ----------------------------------------------------------------------------- several
def test_holm_known_answer():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.001]) == [0.001]


def test_format_p():
    assert stats.format_p(7.513e-7) == "7.5e-07"
    assert stats.format_p(0.004047) == "0.004"
    assert stats.format_p(0.31) == "0.31"
    assert stats.format_p(1.0) == "1"
    assert stats.format_p(0.0) == "1e-300 or less"


def test_paired_mean_difference_known_answer():
    import math
    from scipy.stats import norm
    from drrdn_lib.stats import mcnemar_p, paired_mean_difference
    est, p = paired_mean_difference([1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0])
    assert (est.value, est.lo, est.hi) == (1.0, 1.0, 1.0) and p == pytest.approx(2 / 16)  # 4 flips
    est, p = paired_mean_difference([1.0, -1.0] * 50, [0.0] * 100)
    assert est.value == 0.0 and p == pytest.approx(1.0)
    assert est.hi == pytest.approx(1.96 * 1.00504 / 10, rel=1e-3)
    # differences of +-1 (a McNemar design): exact for few, McNemar's z for many
    few = [1.0] * 6 + [0.0] * 594
    assert paired_mean_difference(few, [0.0] * 600)[1] == pytest.approx(mcnemar_p(6, 0))
    many = np.r_[np.ones(60), -np.ones(30), np.zeros(510)]
    z = 30 / math.sqrt(90)
    assert paired_mean_difference(many, np.zeros(600))[1] == pytest.approx(2 * norm.sf(z))
    assert paired_mean_difference([0.0] * 5, [0.0] * 5)[1] == 1.0
    with pytest.raises(ValueError, match="one of each per example"):
        paired_mean_difference([1.0, 2.0], [1.0])


def test_holm_rows_adjusts_one_family_in_place():
    rows = [{"p_value": 0.01}, {"p_value": 0.04}, {"p_value": 0.03}]
    assert stats.holm_rows(rows) is rows
    assert [r["p_holm"] for r in rows] == pytest.approx([0.03, 0.06, 0.06])
    assert {r["family_size"] for r in rows} == {3} and stats.holm_rows([]) == []
