"""The statistics of every claim: one accuracy, two models (or attacks) on the same examples,
methods over training seeds, several claims at once.

- **One accuracy** (k of n right): :class:`Accuracy` (counts, value, interval) and
  :func:`proportion` (an :class:`Estimate`), the Wilson score interval (:func:`binomial_ci`;
  Clopper-Pearson on request); :func:`accuracy_cell` is the dict the notebooks' metrics
  store, ``{"value", "lo", "hi", "n", "kind": "wilson"}``.
- **Two models or two attacks scored on the same n examples** (paired data): interval
  overlap is the wrong test there. :func:`compare_paired` counts the discordant examples
  (right under A only, under B only) and gives the exact two-sided McNemar p-value (a
  binomial test of the discordant split against 1/2) and an interval for the difference of
  accuracies by Newcombe's method 10 (Newcombe 1998, hybrid score interval for paired
  proportions, no continuity correction): chosen over a bootstrap because it is exact to
  compute, defined at 0 discordant examples and keeps its coverage near 95% at the n and
  accuracies of this project (checked by simulation in ``tests/test_stats.py``).
- **Two models' per-example scores on the same n examples** (e.g. the per-pair terms of
  two JS bounds, the per-digit gap terms of two models): :func:`paired_mean_difference`, the
  mean of the per-example differences with its normal (CLT) interval and the p-value of the
  paired sign-flip test (exact for few non-zero differences).
- **Methods over training seeds**: :func:`over_seeds` (mean, sd, n; no spread from one seed,
  never "± 0") and :func:`paired_seed_difference`, a t-interval of the mean difference
  of two methods paired by seed (needs n >= 2).
- **Several claims in one table**: :func:`holm` adjusts their p-values (Holm 1979); a
  table says how many comparisons it tests.

Accuracies and differences are fractions in [0, 1] ([-1, 1] for differences).
"""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm
from scipy.stats import t as student_t

from .validate import check_number

__all__ = ["CI_METHODS", "ALPHA", "Estimate", "Accuracy", "binomial_ci", "proportion", "accuracy_cell",
           "check_ci", "PairedComparison", "mcnemar_p", "newcombe_paired_ci", "compare_paired",
           "SeedSummary", "over_seeds", "paired_seed_difference", "holm", "format_p", "paired_rows",
           "paired_words", "paired_mean_difference", "holm_rows"]

CI_METHODS = ("wilson", "clopper-pearson")
#: the level of every test and interval (two-sided 95%)
ALPHA = 0.05


# ----------------------------------------------------------------------------- one number
@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval [lo, hi], from n examples."""

    value: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_ci(confidence, method) -> None:
    """Raise ``ValueError`` for an unknown interval method or a confidence outside (0, 1)."""
    if method not in CI_METHODS:
        raise ValueError(f"unknown ci_method {method!r}; use one of {CI_METHODS}.")
    check_number("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True, hint="e.g. 0.95")


def binomial_ci(k: int, n: int, *, confidence: float = 0.95, method: str = "wilson"
                ) -> tuple[float, float]:
    """Two-sided interval for a proportion from k successes in n trials.

    ``"wilson"``: the score interval; ``"clopper-pearson"``: the exact (conservative) one from
    Beta quantiles, lo = 0 when k = 0 and hi = 1 when k = n.
    """
    check_ci(confidence, method)
    if not (isinstance(n, int) and isinstance(k, int) and n >= 1 and 0 <= k <= n):
        raise ValueError(f"need integers 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}.")
    alpha = 1.0 - confidence
    if method == "clopper-pearson":
        lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
        return lo, hi
    z, phat = float(norm.ppf(1 - alpha / 2)), k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    lo = 0.0 if k == 0 else max(0.0, centre - half)    # exact ends at k = 0 and k = n
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def _as_count(value, name: str) -> int:
    """An integer count from a Python, NumPy or 0-d torch integer; ``ValueError`` otherwise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer count, got a {value.dtype} tensor of "
                             f"shape {tuple(value.shape)}.")
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name}={value!r} must be an integer count (use int(...) on an exact "
                         f"count, never on a fraction).") from None


def proportion(k: int, n: int, *, confidence: float = 0.95, method: str = "wilson") -> Estimate:
    """``k / n`` with its binomial interval; k and n integers (a float count such as 2.7 is
    an error, not rounded)."""
    k, n = _as_count(k, "k"), _as_count(n, "n")
    lo, hi = binomial_ci(k, n, confidence=confidence, method=method)
    return Estimate(k / n, lo, hi, n)


@dataclass(frozen=True)
class Accuracy:
    """An accuracy from counts: ``n_correct`` of ``n`` right; ``accuracy`` in [0, 1] with its
    Wilson interval [lo, hi]. ``to_dict()`` is the zoo cards' layout, :meth:`cell` the
    notebooks' metrics layout."""

    n_correct: int
    n: int
    accuracy: float
    lo: float
    hi: float

    @classmethod
    def from_counts(cls, n_correct: int, n: int, confidence: float = 0.95) -> "Accuracy":
        """The accuracy of ``n_correct`` right out of ``n`` (integer counts, n >= 1)."""
        e = proportion(n_correct, n, confidence=confidence)
        return cls(int(n_correct), e.n, e.value, e.lo, e.hi)

    def to_dict(self) -> dict:
        return asdict(self)

    def cell(self) -> dict:
        """``{"value", "lo", "hi", "n", "kind": "wilson"}``."""
        return {"value": self.accuracy, "lo": self.lo, "hi": self.hi, "n": self.n, "kind": "wilson"}


def accuracy_cell(k: int, n: int) -> dict:
    """The metrics' accuracy cell ``{"value", "lo", "hi", "n", "kind": "wilson"}`` of k right
    out of n (95% Wilson)."""
    return Accuracy.from_counts(k, n).cell()


# ----------------------------------------------------------------------------- paired
@dataclass(frozen=True)
class PairedComparison:
    """A against B on the same n examples: ``a_only`` right under A only, ``b_only`` under B
    only (the discordant pairs); ``difference`` = acc_a - acc_b with Newcombe's interval;
    ``p_value``: exact two-sided McNemar."""

    n: int
    both: int
    a_only: int
    b_only: int
    neither: int
    acc_a: float
    acc_b: float
    difference: Estimate
    p_value: float

    def differs(self, alpha: float = ALPHA, p_value: float | None = None) -> bool:
        """Whether A and B differ beyond example noise at level ``alpha`` (``p_value``: an
        adjusted one, e.g. :func:`holm`'s, in place of the raw)."""
        return (self.p_value if p_value is None else p_value) < alpha

    def to_dict(self) -> dict:
        out = asdict(self)
        out["difference"] = self.difference.to_dict()
        return out


def mcnemar_p(a_only: int, b_only: int) -> float:
    """The exact two-sided McNemar p-value: a binomial test of ``a_only`` successes in
    ``a_only + b_only`` trials at 1/2; 1 when there is no discordant pair."""
    a_only, b_only = _as_count(a_only, "a_only"), _as_count(b_only, "b_only")
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only} and {b_only}.")
    if a_only + b_only == 0:
        return 1.0
    return float(min(1.0, binomtest(a_only, a_only + b_only, 0.5).pvalue))


def newcombe_paired_ci(both: int, a_only: int, b_only: int, neither: int, *,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval for acc_a - acc_b on paired data: the Wilson
    intervals of both accuracies, combined with the phi correlation of the 2x2 table."""
    n = both + a_only + b_only + neither
    p_a, p_b = (both + a_only) / n, (both + b_only) / n
    l_a, u_a = binomial_ci(both + a_only, n, confidence=confidence)
    l_b, u_b = binomial_ci(both + b_only, n, confidence=confidence)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = 0.0 if margins == 0 else (both * neither - a_only * b_only) / math.sqrt(margins)
    d = p_a - p_b
    lower = (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2
    upper = (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2
    return max(-1.0, d - math.sqrt(max(lower, 0.0))), min(1.0, d + math.sqrt(max(upper, 0.0)))


def _flags(values, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or array.dtype != bool:
        raise ValueError(f"{name} must be a 1-d boolean vector (per example: right?), got "
                         f"dtype {array.dtype}, shape {array.shape}.")
    return array


def compare_paired(correct_a, correct_b, *, confidence: float = 0.95) -> PairedComparison:
    """A against B from their per-example "right?" vectors on the same examples, in the same
    order (bool, shape (n,): numpy, torch or a list)."""
    a, b = _flags(correct_a, "correct_a"), _flags(correct_b, "correct_b")
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must score the same n >= 1 examples, got "
                         f"{a.size} and {b.size}.")
    both, a_only = int((a & b).sum()), int((a & ~b).sum())
    b_only, neither = int((~a & b).sum()), int((~a & ~b).sum())
    lo, hi = newcombe_paired_ci(both, a_only, b_only, neither, confidence=confidence)
    n = a.size
    diff = Estimate((a_only - b_only) / n, lo, hi, n)
    return PairedComparison(n, both, a_only, b_only, neither, float(a.mean()), float(b.mean()),
                            diff, mcnemar_p(a_only, b_only))


# ----------------------------------------------------------------------------- seeds
@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample sd over n training seeds (sd None when n = 1: no spread is known)."""

    mean: float
    sd: float | None
    n: int
    values: tuple

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"92.3 ± 0.4 (sd, n = 3)"``, or ``"92.3 (n = 1, no spread)"``."""
        if self.sd is None:
            return f"{scale * self.mean:.{digits}f} (n = 1, no spread)"
        return f"{scale * self.mean:.{digits}f} ± {scale * self.sd:.{digits}f} (sd, n = {self.n})"


def _values(values, name: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a non-empty list of finite numbers, got {values!r}.")
    return array


def over_seeds(values) -> SeedSummary:
    """Mean, sd (ddof 1) and n of one number over training seeds."""
    v = _values(values, "values")
    return SeedSummary(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else None, int(v.size),
                       tuple(float(x) for x in v))


def paired_seed_difference(a_by_seed: dict, b_by_seed: dict, *, confidence: float = 0.95) -> Estimate:
    """Mean over seeds of a[seed] - b[seed] with its t-interval (n - 1 degrees of freedom),
    on the seeds both have; ``ValueError`` with fewer than 2 common seeds (one seed says
    nothing about a method)."""
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if len(seeds) < 2:
        raise ValueError(f"a difference between methods needs >= 2 seeds that both have; got "
                         f"{seeds} (one training run compares two models, not two methods).")
    d = _values([a_by_seed[s] - b_by_seed[s] for s in seeds], "differences")
    half = float(student_t.ppf(0.5 + confidence / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return Estimate(float(d.mean()), float(d.mean()) - half, float(d.mean()) + half, int(d.size))


#: at most this many non-zero paired differences: the sign-flip test enumerates all 2^m flips
EXACT_SIGN_FLIPS = 16


def _sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of the paired sign-flip (randomisation) test of "the differences are
    symmetric about 0", conditional on their sizes: exact over every flip of the non-zero
    differences when there are at most :data:`EXACT_SIGN_FLIPS`, else its normal
    approximation z = sum d / sqrt(sum d^2) (for differences of +-1 this is McNemar's z)."""
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    observed = abs(float(d.sum()))
    if d.size <= EXACT_SIGN_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        sums = np.abs(signs @ d)
        return float(np.mean(sums >= observed - 1e-12 * max(1.0, observed)))
    return float(min(1.0, 2 * norm.sf(observed / math.sqrt(float((d ** 2).sum())))))


def paired_mean_difference(scores_a, scores_b, *, confidence: float = 0.95) -> tuple[Estimate, float]:
    """Mean of ``scores_a[i] - scores_b[i]`` over the same n examples (n >= 2), with its
    normal interval (sd / sqrt(n), ddof 1), and the two-sided p-value of the paired
    sign-flip test (:func:`_sign_flip_p`: exact for few non-zero differences, so that a
    handful of discordant examples is not over-read). Returns (estimate, p)."""
    a, b = _values(scores_a, "scores_a"), _values(scores_b, "scores_b")
    if a.size != b.size or a.size < 2:
        raise ValueError(f"paired scores need one of each per example (>= 2), got {a.size} and {b.size}.")
    d = a - b
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(norm.ppf(0.5 + confidence / 2)) * se
    return Estimate(mean, mean - half, mean + half, int(d.size)), _sign_flip_p(d)


# ----------------------------------------------------------------------------- several
def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = _values(p_values, "p_values")
    order = np.argsort(p, kind="stable")
    adjusted, running = np.empty_like(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return [float(x) for x in adjusted]


def format_p(p: float) -> str:
    """``"7.5e-07"`` below 0.001, else ``"0.004"``/``"0.31"``, ``"1"`` at 1; below 1e-300
    (a normal tail that underflows to 0) ``"1e-300 or less"``."""
    if p >= 0.9995:
        return "1"
    if p < 1e-300:
        return "1e-300 or less"
    return f"{p:.1e}" if p < 0.001 else f"{p:.2g}" if p >= 0.01 else f"{p:.3f}"


def paired_rows(flags: dict, pairs, *, what: str = "") -> list[dict]:
    """Every pair ``(a, b)`` of ``flags`` (label -> per-example "right?" vector on the same
    examples) compared by :func:`compare_paired`, as JSON rows with the Holm-adjusted p-value
    over this family of ``len(pairs)`` comparisons (``p_holm``) and the family's size."""
    return holm_rows([{"what": what, "a": a, "b": b, **compare_paired(flags[a], flags[b]).to_dict()}
                      for a, b in pairs])


def holm_rows(rows: list[dict]) -> list[dict]:
    """``rows`` (each with a ``p_value``), one family of comparisons, each given its Holm-
    adjusted ``p_holm`` and the ``family_size``; updated in place and returned."""
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]) if rows else []):
        row.update(p_holm=adjusted, family_size=len(rows))
    return rows


def paired_words(row: dict, p_key: str = "p_holm", order: str = "") -> str:
    """The words for one paired row (:func:`paired_rows`), in the models-on-examples
    vocabulary: "differ beyond example noise (McNemar p = ..., a / b discordant)" or "not
    distinguishable on these n examples (...)"; ``order`` names the two after the counts
    (e.g. "c_i / fresh")."""
    p = row.get(p_key, row["p_value"])
    detail = (f"McNemar p = {format_p(p)}{' (Holm)' if p_key == 'p_holm' and 'p_holm' in row else ''}, "
              f"{row['a_only']} / {row['b_only']} discordant{', ' + order if order else ''}")
    if p < ALPHA:
        return f"differ beyond example noise ({detail})"
    return f"not distinguishable on these {row['n']:,} examples ({detail})"
