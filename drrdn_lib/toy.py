"""The robust / non-robust features distribution of Tsipras et al. (2019) and its closed forms.

Tsipras, Santurkar, Engstrom, Turner, Madry, "Robustness may be at odds with accuracy",
ICLR 2019, section 2.1. A label ``y`` uniform in {-1, +1} (stored as 0/1, 1 meaning +1) and
``dim + 1`` features::

    x_1 = +y with probability p, -y with probability 1 - p      (the robust feature)
    x_2, ..., x_{dim+1} ~ N(eta * y, 1) i.i.d.                  (the non-robust features)

Tsipras et al. use ``eta = 2 / sqrt(dim)`` (:func:`default_eta`) and the L-inf budget
``eps = 2 * eta`` (:func:`default_eps`): the attack then moves every non-robust feature to
``N(-eta * y, 1)`` while ``x_1`` keeps its sign (eps < 1).

Notation used by every closed form below (all numbers are probabilities in [0, 1]):

- ``m = mean(x_2, ..., x_{dim+1})``: given y, ``y * m ~ N(eta, 1 / dim)``. It is a sufficient
  statistic of the non-robust part, so every linear rule here is written on ``(x_1, m)``.
- ``r = y * x_1`` in {+1 (prob p), -1 (prob 1 - p)}, independent of m.
- A linear classifier has ``weights = (w_robust, w_nonrobust)``:
  ``f(x) = w_robust * x_1 + w_nonrobust * m``, prediction +1 iff ``f(x) > 0``.
  Per coordinate its weights are ``(w_robust, w_nonrobust / dim, ...)``, so
  ``||w||_1 = |w_robust| + |w_nonrobust|``.
- The worst-case L-inf attack of radius eps against f (:func:`worst_case_attack`) moves every
  coordinate by eps against y: ``x'_j = x_j - eps * y * s_j`` with ``s_j = sign(w_j)`` and the
  convention ``sign(0) = +1`` (a coordinate the classifier ignores is still pushed against y;
  any move of it is equally bad for f, this one is fixed so the adversarial distribution of a
  representation is well defined). It lowers ``y * f`` by exactly ``eps * ||w||_1``.
- A 1-D representation ``z = a * x_1 + b * m`` (``rep_weights = (a, b)``; ``"robust"`` is
  (1, 0), ``"nonrobust"`` is (0, 1)). Given y and r, natural ``z ~ N(y * mu_r, b^2 / dim)`` with
  ``mu_r = a * r + b * eta``; adversarial
  ``z' ~ N(y * (mu_r - eps * (a * s_1 + b * s_m)), b^2 / dim)``.
  Both marginals are mixtures of 4 Gaussians (point masses when b = 0), symmetric under
  ``z -> -z``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, optimize
from scipy.stats import norm

from .validate import check_int, check_number, check_seed

DEFAULT_DIM = 100
DEFAULT_P = 0.95
REPRESENTATIONS = {"robust": (1.0, 0.0), "nonrobust": (0.0, 1.0)}

__all__ = ["DEFAULT_DIM", "DEFAULT_P", "REPRESENTATIONS", "default_eta", "default_eps",
           "sample_toy", "worst_case_attack", "toy_representation", "linear_accuracy",
           "robust_only_accuracy", "nonrobust_only_accuracy", "toy_bound_terms"]


# ----------------------------------------------------------------------------- arguments
def default_eta(dim: int) -> float:
    """Tsipras et al.'s mean of the non-robust features, ``2 / sqrt(dim)``."""
    _check_dim(dim)
    return 2.0 / math.sqrt(dim)


def default_eps(dim: int, eta: float | None = None) -> float:
    """Tsipras et al.'s L-inf budget ``2 * eta``: it flips the non-robust features' mean."""
    return 2.0 * _resolve_eta(dim, eta)


def _check_dim(dim) -> None:
    check_int("dim", dim, 1, hint="the number of non-robust features; Tsipras et al. use "
              "large dim, e.g. 100")


def _resolve_eta(dim, eta) -> float:
    _check_dim(dim)
    if eta is None:
        return 2.0 / math.sqrt(dim)
    return check_number("eta", eta, 0.0, hint="the non-robust features' mean times y; use "
                        "None for Tsipras' 2/sqrt(dim)")


def _check_p(p) -> float:
    return check_number("p", p, 0.0, 1.0, hint=f"a probability: how often x_1 = y; Tsipras "
                        f"et al. use p >= 0.5, e.g. {DEFAULT_P}")


def _check_eps(eps) -> float:
    return check_number("eps", eps, 0.0, hint="the L-inf radius")


def _check_weights(weights, what: str, *, allow_names: bool = False) -> tuple[float, float]:
    if allow_names and isinstance(weights, str):
        if weights not in REPRESENTATIONS:
            raise ValueError(f"unknown {what} {weights!r}; use one of {sorted(REPRESENTATIONS)} "
                             f"or a pair (weight on x_1, weight on the non-robust mean).")
        return REPRESENTATIONS[weights]
    try:
        a, b = (float(w) for w in weights)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (w_robust, w_nonrobust) of numbers, "
                         f"got {weights!r}.") from None
    if not (math.isfinite(a) and math.isfinite(b)) or (a == 0 and b == 0):
        raise ValueError(f"{what} must be finite and not both zero, got {weights!r}.")
    return a, b


def _sign(w: float) -> float:
    """sign with the convention sign(0) = +1 (see the module docstring)."""
    return -1.0 if w < 0 else 1.0


# ----------------------------------------------------------------------------- sampling
def sample_toy(n: int, dim: int = DEFAULT_DIM, p: float = DEFAULT_P, eta: float | None = None,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n examples of the Tsipras et al. distribution.

    Args:
        n: number of examples (>= 1).
        dim: number of non-robust features (>= 1); the features have ``dim + 1`` columns.
        p: probability that the robust feature equals y.
        eta: mean of the non-robust features times y; None means ``2 / sqrt(dim)``.
        seed: seeds a private numpy generator (the global RNGs are untouched).

    Returns:
        features float32 ``(n, dim + 1)`` (column 0 is the robust feature x_1, in {-1, +1})
        and labels int64 ``(n,)`` in {0, 1} (1 means y = +1).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (the number of examples), got {n!r}.")
    eta, p = _resolve_eta(dim, eta), _check_p(p)
    rng = np.random.default_rng(check_seed("seed", seed))
    y = rng.choice(np.array([-1.0, 1.0]), size=n)
    agree = rng.random(n) < p
    robust = np.where(agree, y, -y)
    nonrobust = rng.standard_normal((n, dim)) + eta * y[:, None]
    features = np.concatenate([robust[:, None], nonrobust], axis=1)
    labels = (y > 0).astype(np.int64)
    return torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels)


def worst_case_attack(features: torch.Tensor, labels: torch.Tensor, weights, eps: float
                      ) -> torch.Tensor:
    """The exact worst-case L-inf attack against the linear classifier ``weights``.

    ``x'_j = x_j - eps * y * sign(w_j)`` (sign(0) = +1), which lowers ``y * f(x)`` by
    ``eps * (|w_robust| + |w_nonrobust|)``. No clipping: the toy features are unbounded.

    Args:
        features: float ``(n, dim + 1)``, column 0 the robust feature.
        labels: int ``(n,)`` in {0, 1}.
        weights: ``(w_robust, w_nonrobust)`` of the attacked classifier.
        eps: L-inf radius (>= 0).

    Returns:
        adversarial features, same shape, dtype and device as ``features``.
    """
    w_robust, w_nonrobust = _check_weights(weights, "weights")
    eps = _check_eps(eps)
    if features.ndim != 2 or features.shape[1] < 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features must be (n, dim + 1) with dim >= 1 and labels (n,); got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}.")
    y = (2 * labels.to(features.dtype) - 1)[:, None]
    signs = torch.full((1, features.shape[1]), _sign(w_nonrobust),
                       dtype=features.dtype, device=features.device)
    signs[0, 0] = _sign(w_robust)
    return features - eps * y * signs


def toy_representation(features: torch.Tensor, rep_weights="robust") -> torch.Tensor:
    """The 1-D representation ``z = a * x_1 + b * mean(x_2..)`` as a ``(n, 1)`` tensor.

    ``rep_weights``: ``"robust"`` (x_1 alone), ``"nonrobust"`` (the mean alone) or a pair (a, b).
    """
    a, b = _check_weights(rep_weights, "rep_weights", allow_names=True)
    if features.ndim != 2 or features.shape[1] < 2:
        raise ValueError(f"features must be (n, dim + 1) with dim >= 1, got "
                         f"{tuple(features.shape)}.")
    return (a * features[:, 0] + b * features[:, 1:].mean(dim=1))[:, None]


# ----------------------------------------------------------------------------- accuracies
def linear_accuracy(weights, *, eps: float = 0.0, dim: int = DEFAULT_DIM, p: float = DEFAULT_P,
                    eta: float | None = None) -> float:
    """Exact (robust) accuracy of ``f(x) = w_robust * x_1 + w_nonrobust * m``.

    Under the worst-case L-inf attack of radius eps an example is correct iff
    ``y * f(x) - eps * ||w||_1 > 0`` (ties count as errors; eps = 0 gives natural accuracy)::

        acc = sum_{r in {+1, -1}} P(r) * P(w_r * r + w_n * M > c),   M ~ N(eta, 1/dim),
        c = eps * (|w_r| + |w_n|);  with t_r = (c - w_r * r) / w_n:
        w_n > 0: P = Phi((eta - t_r) * sqrt(dim));  w_n < 0: P = Phi((t_r - eta) * sqrt(dim));
        w_n = 0: P = 1[w_r * r > c].

    E.g. robust-only (1, 0): p for eps < 1, 0 for eps >= 1; non-robust-only (0, 1):
    ``Phi((eta - eps) * sqrt(dim))``.
    """
    w_r, w_n = _check_weights(weights, "weights")
    eta, p, eps = _resolve_eta(dim, eta), _check_p(p), _check_eps(eps)
    c = eps * (abs(w_r) + abs(w_n))
    total = 0.0
    for r, prob in ((1.0, p), (-1.0, 1.0 - p)):
        if w_n == 0:
            correct = float(w_r * r > c)
        else:
            t = (c - w_r * r) / w_n
            z = (eta - t) * math.sqrt(dim)
            correct = norm.cdf(z) if w_n > 0 else norm.cdf(-z)
        total += prob * correct
    return float(total)


def robust_only_accuracy(eps: float = 0.0, p: float = DEFAULT_P) -> float:
    """Accuracy of sign(x_1) under L-inf eps: p if eps < 1, else 0."""
    return linear_accuracy((1.0, 0.0), eps=eps, dim=1, p=p, eta=0.0)


def nonrobust_only_accuracy(eps: float = 0.0, dim: int = DEFAULT_DIM,
                            eta: float | None = None) -> float:
    """Accuracy of sign(mean(x_2..)) under L-inf eps: ``Phi((eta - eps) * sqrt(dim))``."""
    return linear_accuracy((0.0, 1.0), eps=eps, dim=dim, p=DEFAULT_P, eta=eta)


# ----------------------------------------------------------------------------- bound terms
@dataclass(frozen=True)
class _Mixture:
    """``sum_k weight_k * N(mean_k, sd^2)`` (point masses if sd = 0); component k has label[k]."""

    label: np.ndarray
    weight: np.ndarray
    mean: np.ndarray
    sd: float

    def cdf(self, t, label: int | None = None) -> np.ndarray:
        """``P(z <= t, y = label)`` (all labels if None) for an array of t."""
        t = np.asarray(t, dtype=float)[..., None]
        if self.sd == 0:
            below = (self.mean <= t).astype(float)
        else:
            below = norm.cdf((t - self.mean) / self.sd)
        keep = np.ones_like(self.weight) if label is None else (self.label == label)
        return (below * self.weight * keep).sum(-1)

    def pdf(self, t, label: int | None = None) -> np.ndarray:
        """Density of ``(z, y = label)`` (sd > 0 only)."""
        t = np.asarray(t, dtype=float)[..., None]
        keep = np.ones_like(self.weight) if label is None else (self.label == label)
        return (norm.pdf((t - self.mean) / self.sd) / self.sd * self.weight * keep).sum(-1)

    def threshold_error(self, t) -> np.ndarray:
        """Error of "predict +1 iff z > t": ``P(z <= t, y=+1) + P(z > t, y=-1)``."""
        return self.cdf(t, 1) + (self.weight[self.label == -1].sum() - self.cdf(t, -1))


def _toy_mixtures(rep_weights, attack_weights, eps, dim, p, eta) -> tuple[_Mixture, _Mixture]:
    """Natural and adversarial distributions of ``z = a * x_1 + b * m`` (module docstring)."""
    a, b = rep_weights
    shift = eps * (a * _sign(attack_weights[0]) + b * _sign(attack_weights[1]))
    label, weight, mu = [], [], []
    for y in (1.0, -1.0):
        for r, prob in ((1.0, p), (-1.0, 1.0 - p)):
            label.append(y)
            weight.append(0.5 * prob)
            mu.append(y * (a * r + b * eta))
    label, weight, mu = np.array(label), np.array(weight), np.array(mu)
    sd = abs(b) / math.sqrt(dim)
    return _Mixture(label, weight, mu, sd), _Mixture(label, weight, mu - label * shift, sd)


def _extremes(fn, natural: _Mixture, adversarial: _Mixture) -> tuple[float, float]:
    """(inf, sup) over t of a function of the threshold t built from the two mixtures' CDFs.

    Point masses: fn is a right-continuous step function, constant between support points,
    so it is evaluated between them and beyond both ends (exact). Gaussians: a grid of 4001
    points over the means +- 8 sd, refined by a bounded scalar search (error ~1e-9).
    """
    support = np.unique(np.concatenate([natural.mean, adversarial.mean]))
    if natural.sd == 0:
        ts = np.concatenate([[support[0] - 1], (support[1:] + support[:-1]) / 2, [support[-1] + 1]])
        values = fn(ts)
        return float(values.min()), float(values.max())
    grid = np.linspace(support[0] - 8 * natural.sd, support[-1] + 8 * natural.sd, 4001)
    values = fn(grid)
    found = []
    for sign, i in ((1.0, int(values.argmin())), (-1.0, int(values.argmax()))):
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        res = optimize.minimize_scalar(lambda t: sign * float(fn(t)), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-10})
        found.append(sign * min(sign * values[i], res.fun))
    return found[0], found[1]


def _atoms(mixtures_and_labels) -> dict:
    """Masses per rounded location: ``{z: total weight}`` of (mixture, label or None, sign)."""
    masses: dict = {}
    for mix, label, sign in mixtures_and_labels:
        for lab, w, mu in zip(mix.label, mix.weight, mix.mean):
            if label is None or lab == label:
                key = round(float(mu), 12)
                masses[key] = masses.get(key, 0.0) + sign * w
    return masses


def _integral(fn, natural: _Mixture, adversarial: _Mixture) -> float:
    """``int fn(z) dz`` of a vectorised density-level function (sd > 0).

    Simpson's rule on 4001 points per window ``mean +- 12 sd`` (overlapping windows merged);
    the mass outside the windows is < 1e-30; the kinks of abs / min bound the error by ~1e-6.
    """
    sd, windows = natural.sd, []
    for mu in np.unique(np.concatenate([natural.mean, adversarial.mean])):
        lo, hi = mu - 12 * sd, mu + 12 * sd
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    total = 0.0
    for lo, hi in windows:
        z = np.linspace(lo, hi, 4001 * max(1, round((hi - lo) / (24 * sd))))
        total += integrate.simpson(fn(z), x=z)
    return float(total)


def _total_variation(natural: _Mixture, adversarial: _Mixture) -> float:
    """``TV = sup_A |P_N(A) - P_A(A)| = 1/2 * int |p_N - p_A|``."""
    if natural.sd == 0:
        masses = _atoms([(natural, None, 1), (adversarial, None, -1)])
        return 0.5 * sum(abs(m) for m in masses.values())
    return 0.5 * _integral(lambda z: np.abs(natural.pdf(z) - adversarial.pdf(z)), natural,
                           adversarial)


def _bayes_joint_error(natural: _Mixture, adversarial: _Mixture) -> float:
    """``min_h err_N(h) + err_A(h)`` over all functions h: ``int min(f_+, f_-)``, f_y the
    summed natural + adversarial density of (z, y)."""
    if natural.sd == 0:
        plus = _atoms([(natural, 1, 1), (adversarial, 1, 1)])
        minus = _atoms([(natural, -1, 1), (adversarial, -1, 1)])
        return sum(min(w, minus.get(z, 0.0)) for z, w in plus.items())

    def smaller(z):
        return np.minimum(natural.pdf(z, 1) + adversarial.pdf(z, 1),
                          natural.pdf(z, -1) + adversarial.pdf(z, -1))
    return _integral(smaller, natural, adversarial)


@dataclass(frozen=True)
class ToyBoundTerms:
    """Closed-form terms of the bound on the toy (see :func:`toy_bound_terms`); all in [0, 2]."""

    rep_weights: tuple[float, float]
    attack_weights: tuple[float, float]
    eps: float
    err_nat: float
    err_adv: float
    tv: float
    d_h_threshold: float
    d_hdh_threshold: float
    lambda_star_threshold: float
    lambda_star_bayes: float
    bound_threshold: float
    bound_bayes: float

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON-serialisable)."""
        return {k: ([float(w) for w in v] if isinstance(v, tuple) else float(v))
                for k, v in self.__dict__.items()}


def toy_bound_terms(rep_weights="robust", attack_weights=(1.0, 0.0), *, eps: float,
                    dim: int = DEFAULT_DIM, p: float = DEFAULT_P, eta: float | None = None
                    ) -> ToyBoundTerms:
    """Exact terms of ``err_A(h) <= err_N(h) + d_HdH / 2 + lambda*`` on a 1-D toy representation.

    Domain N: natural toy examples; domain A: the worst-case L-inf eps attack against the
    linear classifier ``attack_weights`` (:func:`worst_case_attack`). The representation is
    ``z = a * x_1 + b * m`` (``rep_weights``: ``"robust"`` = (1, 0), ``"nonrobust"`` = (0, 1), or
    (a, b)); the head is ``h(z) = +1 iff z > 0`` (ties go to -1). With P_N, P_A the marginals
    of z and F_N, F_A their CDFs (point masses exact; Gaussian mixtures by Simpson quadrature and
    a refined 1-D search, error < 1e-6):

    - ``err_nat``, ``err_adv``: errors of h on N and on A. If rep_weights == attack_weights this
      is ``1 - linear_accuracy(weights, eps=0 / eps)`` (up to ties, which happen only for
      b = 0 and eps = 1).
    - ``tv``: total variation ``sup_A |P_N(A) - P_A(A)|``. With H all functions,
      ``d_HdH = 2 * tv``; the MLP proxy A-distance estimates ``2 * tv`` from below.
    - ``d_h_threshold``: ``d_H`` for H = 1-D thresholds of both orientations,
      ``2 * sup_t |F_N(t) - F_A(t)|`` (twice the Kolmogorov-Smirnov distance).
    - ``d_hdh_threshold``: ``d_HdH`` for thresholds; HdH = intervals and their complements, so
      ``2 * (sup_t (F_N - F_A) + sup_t (F_A - F_N))`` (twice the Kuiper distance).
    - ``lambda_star_threshold``: ``min_h' err_N(h') + err_A(h')`` over thresholds h'.
    - ``lambda_star_bayes``: the same minimum over all functions,
      ``int min(f_+(z), f_-(z)) dz``, f_y the natural + adversarial density of (z, y).
    - ``bound_threshold = err_nat + d_hdh_threshold / 2 + lambda_star_threshold`` and
      ``bound_bayes = err_nat + tv + lambda_star_bayes``: both are >= err_adv (Ben-David et
      al. 2010, Thm 2, with population quantities).

    Note: both marginals are symmetric under z -> -z, so a logistic-regression domain
    classifier (population optimum: zero weight) has proxy A-distance 0 on this toy; it only
    bounds ``d_h_threshold`` from below.
    """
    rep = _check_weights(rep_weights, "rep_weights", allow_names=True)
    attack = _check_weights(attack_weights, "attack_weights")
    eta, p, eps = _resolve_eta(dim, eta), _check_p(p), _check_eps(eps)
    nat, adv = _toy_mixtures(rep, attack, eps, dim, p, eta)
    err_nat, err_adv = float(nat.threshold_error(0.0)), float(adv.threshold_error(0.0))
    d_min, d_max = _extremes(lambda t: nat.cdf(t) - adv.cdf(t), nat, adv)
    e_min, e_max = _extremes(lambda t: nat.threshold_error(t) + adv.threshold_error(t), nat, adv)
    kuiper, lam_thr = max(d_max, 0.0) - min(d_min, 0.0), min(e_min, 2.0 - e_max)
    tv, lam_bayes = _total_variation(nat, adv), _bayes_joint_error(nat, adv)
    return ToyBoundTerms(
        rep_weights=rep, attack_weights=attack, eps=eps, err_nat=err_nat, err_adv=err_adv,
        tv=tv, d_h_threshold=2 * max(abs(d_min), abs(d_max)), d_hdh_threshold=2 * kuiper,
        lambda_star_threshold=lam_thr, lambda_star_bayes=lam_bayes,
        bound_threshold=err_nat + kuiper + lam_thr, bound_bayes=err_nat + tv + lam_bayes)
