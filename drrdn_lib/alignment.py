"""How far apart two samples of representations are: a held-out lower bound on the
Jensen-Shannon divergence (Proposition 1's quantity), marginal and class-conditional.

The inequality. For distributions p, q and any measurable D: Z -> (0, 1),

    E_p[log D(z)] + E_q[log(1 - D(z))] <= 2 JS(p || q) - log 4,

with equality at D* = p / (p + q) (Goodfellow et al. 2014, Thm 1; the paper's
Proposition 1 at the optimal c_i). Hence, in nats,

    JS(p || q) >= log 2 - H(D),   H(D) = (E_p[-log D] + E_q[-log(1 - D)]) / 2,

H(D) being the balanced binary cross-entropy of D (label "p" = 1). The bound holds for
every D, so a discriminator fitted on one part of the data and evaluated on the other
gives, on the held-out part, an unbiased estimate of a valid lower bound (the held-out
rows are independent of D). It reaches log 2 only when D separates the samples
perfectly; JS itself lies in [0, log 2] nats ([0, 1] bit).

Choices (each a parameter):
- Discriminator: a probe of :mod:`drrdn_lib.probes` (``"linear"`` logistic regression, the
  exact family of D* for two Gaussians with one covariance; ``"mlp"`` one hidden layer), on
  features standardised with the training part's mean / sd. Its logit is shifted by
  ``-log(n_p / n_q)`` of the training part, so an unbalanced training part does not bias
  D towards the larger sample (D estimates p / (p + q), not the pooled posterior).
- Calibration (``calibration`` > 0): that share of the training rows (pairs) is held back
  from fitting D and used to fit ``a * logit + b`` (Platt scaling) by the balanced
  cross-entropy H itself. A flexible D fitted on a few hundred wide rows separates the
  domains well but is over-confident, and its held-out H exceeds log 2 (a bound below 0)
  although its accuracy is far above 1/2; the scaling shrinks the logit to what the
  calibration rows support (a -> 0 when D has found nothing), so the bound is near 0 when
  nothing is detected and positive when something is. ``a * logit + b`` is still a
  function into (0, 1) fixed before the held-out rows are seen: the bound stays valid.
- Clipping: the logit is clamped to ``±log((1 - clip) / clip)``, i.e. D to
  ``[clip, 1 - clip]`` (``clip`` = 1e-3). A clipped D is still a function into (0, 1), so
  the inequality still holds; one confident mistake then costs at most
  ``-log(clip) / (2 n_held)`` nats instead of making the bound -inf. The price: the
  estimate cannot exceed ``log 2 + log(1 - clip)`` (0.6921 nats for clip 1e-3).
- Interval: a normal (CLT) interval on the held-out mean log-likelihood, not a bootstrap
  (deterministic, cheap). Unpaired samples: variance ``(Var_p[log D] / n_p +
  Var_q[log(1 - D)] / n_q) / 4``. Paired samples (row i of each is example i, natural and
  adversarial): the split is by example (both rows on one side, no leakage) and the
  variance is that of the per-pair term ``(log D(z_i) + log(1 - D(z'_i))) / 2``.
- Reported raw, not clipped at 0: the estimate and its interval can be negative (a
  discriminator worse than the constant 1/2 on held-out data, e.g. overfitted noise); for
  two identical samples it is <= 0 exactly (log D + log(1 - D) <= -log 4 pointwise).
  ``JSBound.clipped`` gives ``max(0, nats)`` (also a valid lower bound, since JS >= 0).

Class-conditional alignment, two estimators (``estimator``). ``"per_class"``: the same
bound within each class k (p's rows of class k
against q's rows of class k), averaged with weights ``(n_p^k + n_q^k) / (n_p + n_q)``;
the classes are estimated independently, so the interval's variance is
``sum_k w_k^2 se_k^2``; each class then has a tenth of the rows, too few for a flexible,
calibrated D. ``"joint"`` (paired samples): one D on ``[z, one-hot(y)]``. When both samples
have the same class shares (always when paired),
``JS(p(z, y) || q(z, y)) = sum_k pi_k JS(p(z | k) || q(z | k))`` (the mixture factorises
as pi_k (p(z | k) + q(z | k)) / 2), so the joint bound is a lower bound on the weighted
class-conditional JS, from every row at once. By data processing the class-conditional JS
is never below the marginal one (forgetting y is a channel). Aligned marginals (what Proposition 1 asks) do not imply
aligned class-conditionals (e.g. labels swapped between the domains).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import norm

from .stats import Estimate, holm_rows, paired_mean_difference, proportion
from .probes import DEFAULT_STEPS, check_head, fit_head, split_indices, standardise
from .validate import check_features, check_labels, check_number

__all__ = ["LOG2", "ESTIMATORS", "JSBound", "ConditionalJS", "js_lower_bound", "js_bound_of",
           "fixed_right", "paired_js_difference", "paired_js_rows", "class_conditional_js",
           "alignment_table"]

LOG2 = math.log(2.0)
#: class-conditional estimators (module docstring)
ESTIMATORS = ("per_class", "joint")


@dataclass(frozen=True)
class JSBound:
    """A held-out lower-bound estimate of JS(p || q) (module docstring).

    Attributes:
        nats: the estimate log 2 - H(D) on the held-out rows, raw (may be < 0).
        lo, hi: its normal interval at ``confidence``, nats. se: its standard error.
        accuracy: the discriminator's held-out accuracy (both samples pooled, threshold
            D = 1/2), with its Wilson interval.
        n_train, n_heldout: rows (p, q) used to fit D / to evaluate it.
        clip: D was clamped to [clip, 1 - clip].
        right: bool (n_heldout_p + n_heldout_q,): D right on each held-out row, p's rows
            then q's (for a paired test against another discriminator on the same rows).
        heldout_index: (index into z_p, index into z_q) of the held-out rows
            (:func:`js_lower_bound`; None from :func:`js_bound_of`: every row).
        terms: paired bounds only, float64 (n_heldout,): each held-out pair's
            ``0.5 (log D(p_i) + log(1 - D(q_i)))``; ``nats`` is log 2 plus their mean, so two
            bounds on the same pairs compare by :func:`paired_js_difference`.
    """

    nats: float
    lo: float
    hi: float
    se: float
    confidence: float
    accuracy: Estimate
    n_train: tuple[int, int]
    n_heldout: tuple[int, int]
    clip: float
    right: torch.Tensor | None = field(default=None, compare=False, repr=False)
    heldout_index: tuple | None = field(default=None, compare=False, repr=False)
    terms: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @property
    def bits(self) -> float:
        """The estimate in bits (nats / log 2); JS <= 1 bit."""
        return self.nats / LOG2

    @property
    def clipped(self) -> float:
        """``max(0, nats)``: still a lower bound on JS (JS >= 0), no longer unbiased."""
        return max(0.0, self.nats)

    def to_dict(self) -> dict:
        return {"nats": self.nats, "lo": self.lo, "hi": self.hi, "se": self.se,
                "bits": self.bits, "confidence": self.confidence,
                "accuracy": self.accuracy.value, "accuracy_lo": self.accuracy.lo,
                "accuracy_hi": self.accuracy.hi, "n_train_p": self.n_train[0],
                "n_train_q": self.n_train[1], "n_heldout_p": self.n_heldout[0],
                "n_heldout_q": self.n_heldout[1], "clip": self.clip}


@dataclass(frozen=True)
class ConditionalJS:
    """The class-weighted mean of per-class JS lower bounds (module docstring).

    Attributes:
        nats, lo, hi, se: the weighted mean, its normal interval and standard error.
        per_class: class -> :class:`JSBound` (empty for the joint estimator); weights:
            class -> weight (sum 1). joint: the joint estimator's :class:`JSBound`, or None.
    """

    nats: float
    lo: float
    hi: float
    se: float
    confidence: float
    per_class: dict[int, JSBound]
    weights: dict[int, float]
    joint: JSBound | None = None

    @property
    def bits(self) -> float:
        return self.nats / LOG2


def _normal_interval(value: float, se: float, confidence: float) -> tuple[float, float]:
    z = float(norm.ppf(0.5 + confidence / 2))
    return value - z * se, value + z * se


def _check_levels(clip, confidence) -> float:
    """``clip`` in (0, 1/2) and ``confidence`` in (0, 1), else ``ValueError``; returns clip."""
    check_number("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True,
                 hint="e.g. 0.95")
    return check_number("clip", clip, 0.0, 0.5, low_open=True, high_open=True, hint="e.g. 1e-3")


def _fit_discriminator(train_p, train_q, *, head, seed, steps, hidden):
    """Fit D on the training rows; returns rows (m, D) -> logit of "p" (m,), standardised
    with the training rows' mean / sd and shifted by -log(n_p / n_q) (unclamped)."""
    fit, = standardise(torch.cat([train_p, train_q]))
    target = torch.cat([torch.ones(len(train_p)), torch.zeros(len(train_q))]).long()
    clf = fit_head(head, fit, target.to(fit.device), 2, seed=seed, steps=steps, hidden=hidden)
    prior = math.log(len(train_p) / len(train_q))
    pooled = torch.cat([train_p, train_q])

    def logit(rows: torch.Tensor) -> torch.Tensor:
        _, scaled = standardise(pooled, rows)
        with torch.no_grad():
            out = clf(scaled)
        return out[:, 1] - out[:, 0] - prior
    return logit


def _platt(logit_p: torch.Tensor, logit_q: torch.Tensor) -> tuple[float, float]:
    """(a, b) minimising the balanced cross-entropy H of sigmoid(a * logit + b) on the
    calibration rows (L-BFGS from a = 1, b = 0)."""
    lp, lq = logit_p.detach().double().cpu(), logit_q.detach().double().cpu()
    ab = torch.tensor([1.0, 0.0], dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = 0.5 * (F.softplus(-(ab[0] * lp + ab[1])).mean() + F.softplus(ab[0] * lq + ab[1]).mean())
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    a, b = ab.detach().tolist()
    return float(a), float(b)


def js_bound_of(logit_p: torch.Tensor, logit_q: torch.Tensor, *, paired: bool = False,
                clip: float = 1e-3, confidence: float = 0.95,
                n_train: tuple[int, int] = (0, 0)) -> JSBound:
    """The JS lower bound log 2 - H(D) of a discriminator already fixed, from its logits of
    "p" on rows of p (``logit_p``, (n_p,)) and of q (``logit_q``), rows it was not fitted on
    (e.g. DRRDN's own c_i on test examples). ``paired``: row i of each is one example.
    ``n_train``: rows D was fitted on, for the record. Arguments otherwise as
    :func:`js_lower_bound`."""
    clip = _check_levels(clip, confidence)
    if logit_p.ndim != 1 or logit_q.ndim != 1 or min(len(logit_p), len(logit_q)) < 2:
        raise ValueError(f"logit_p and logit_q must be 1-D with >= 2 rows each, got shapes "
                         f"{tuple(logit_p.shape)} and {tuple(logit_q.shape)}.")
    if paired and len(logit_p) != len(logit_q):
        raise ValueError(f"paired=True needs one row of z_q per row of z_p, got {len(logit_p)} "
                         f"and {len(logit_q)}; pass paired=False for independent samples.")
    bound = math.log((1.0 - clip) / clip)
    lp = logit_p.detach().clamp(-bound, bound).double()
    lq = logit_q.detach().clamp(-bound, bound).double()
    log_d_p, log_1md_q = F.logsigmoid(lp), F.logsigmoid(-lq)   # log D on p, log(1 - D) on q
    value = LOG2 + 0.5 * (float(log_d_p.mean()) + float(log_1md_q.mean()))
    terms = None
    if paired:
        terms = 0.5 * (log_d_p + log_1md_q)
        se = float(terms.std() / math.sqrt(len(terms)))
        terms = terms.cpu()
    else:
        se = 0.5 * math.sqrt(float(log_d_p.var()) / len(lp) + float(log_1md_q.var()) / len(lq))
    lo, hi = _normal_interval(value, se, confidence)
    right = torch.cat([lp > 0, lq <= 0]).cpu()
    return JSBound(value, lo, hi, se, float(confidence), proportion(int(right.sum()), len(right)),
                   tuple(n_train), (len(lp), len(lq)), clip, right=right, terms=terms)


def paired_js_difference(a: JSBound, b: JSBound, *, confidence: float = 0.95) -> tuple[Estimate, float]:
    """``a.nats - b.nats`` for two paired bounds held out on the same pairs (e.g. two models'
    natural vs adversarial representations of the same test digits, one split seed): the
    mean per-pair difference of their terms with its normal interval, and the two-sided
    p-value (``stats.paired_mean_difference``). ``ValueError`` if the held-out pairs differ."""
    if a.terms is None or b.terms is None:
        raise ValueError("both bounds must be paired (js_lower_bound(..., paired=True)).")
    same = (a.heldout_index is not None and b.heldout_index is not None
            and torch.equal(a.heldout_index[0], b.heldout_index[0]))
    if not same:
        raise ValueError("the two bounds were held out on different pairs (another n, split seed "
                         "or held-out share): a paired difference needs the same pairs.")
    return paired_mean_difference(a.terms.numpy(), b.terms.numpy(), confidence=confidence)


def fixed_right(bound: JSBound, logit_p: torch.Tensor, logit_q: torch.Tensor) -> torch.Tensor:
    """Whether a fixed discriminator (its logits of "p" on every row of z_p, ``logit_p``,
    and of z_q, e.g. DRRDN's c_i) is right on each held-out row of ``bound`` (from
    :func:`js_lower_bound`), in the order of ``bound.right``: the two compare by a paired
    test on the same rows (``stats.compare_paired``)."""
    if bound.heldout_index is None or bound.right is None:
        raise ValueError("bound has no held-out rows on record: use one from js_lower_bound.")
    hp, hq = bound.heldout_index
    return torch.cat([logit_p.detach()[hp] > 0, logit_q.detach()[hq] <= 0]).cpu()


def _split(n_p: int, n_q: int, paired: bool, fraction: float, seed: int):
    """((first_p, second_p), (first_q, second_q)) index splits, by example when paired;
    the second side gets ``fraction`` of the rows."""
    if paired:
        first, second = split_indices(n_p, fraction, seed)
        return (first, second), (first, second)
    return split_indices(n_p, fraction, seed), split_indices(n_q, fraction, seed + 1)


def js_lower_bound(z_p: torch.Tensor, z_q: torch.Tensor, *, paired: bool = False,
                   head: str = "linear", heldout_fraction: float = 0.5, seed: int = 0,
                   steps: int | None = None, hidden: int = 64, calibration: float = 0.0,
                   clip: float = 1e-3, confidence: float = 0.95) -> JSBound:
    """Held-out lower bound on JS(p || q), nats, from samples ``z_p`` (n_p, D) of p and
    ``z_q`` (n_q, D) of q (e.g. natural and adversarial z_s).

    Args:
        paired: row i of z_p and of z_q are one example (natural, adversarial): needs
            n_p == n_q; the split is by example and the interval uses the paired terms.
        head: ``"linear"`` or ``"mlp"`` discriminator; ``steps``/``hidden`` as in probes.
        heldout_fraction: share of each sample (of the pairs) held out to evaluate D.
        seed: seeds the split(s) and the discriminator.
        calibration: share of the training rows held back to Platt-scale D's logit (0: none;
            e.g. 0.3 with an MLP; module docstring).
        clip: D is clamped to [clip, 1 - clip], 0 < clip < 1/2.
        confidence: level of the normal interval.
    Returns: :class:`JSBound`. Raises ``ValueError`` for bad inputs, naming them.
    """
    check_head(head)
    _check_levels(clip, confidence)
    check_number("calibration", calibration, 0.0, 1.0, high_open=True, hint="e.g. 0.3, or 0")
    z_p = check_features(z_p, "z_p")
    z_q = check_features(z_q, "z_q").to(z_p.device)
    if z_p.shape[1] != z_q.shape[1]:
        raise ValueError(f"z_p has {z_p.shape[1]} features and z_q {z_q.shape[1]}; both "
                         f"samples must come from one representation (same width).")
    if paired and len(z_p) != len(z_q):
        raise ValueError(f"paired=True needs one row of z_q per row of z_p, got {len(z_p)} and "
                         f"{len(z_q)}; pass paired=False for independent samples.")
    (tp, hp), (tq, hq) = _split(len(z_p), len(z_q), paired, heldout_fraction, seed)
    if calibration:
        (fp, cp), (fq, cq) = _split(len(tp), len(tq), paired, calibration, seed + 2)
        (tp, cp), (tq, cq) = (tp[fp], tp[cp]), (tq[fq], tq[cq])
    logit = _fit_discriminator(z_p[tp], z_q[tq], head=head, seed=seed,
                               steps=steps or DEFAULT_STEPS[head], hidden=hidden)
    a, b = _platt(logit(z_p[cp]), logit(z_q[cq])) if calibration else (1.0, 0.0)
    n_train = (len(tp) + (len(cp) if calibration else 0), len(tq) + (len(cq) if calibration else 0))
    found = js_bound_of(a * logit(z_p[hp]) + b, a * logit(z_q[hq]) + b, paired=paired, clip=clip,
                        confidence=confidence, n_train=n_train)
    return replace(found, heldout_index=(hp.cpu(), hq.cpu()))


def class_conditional_js(z_p: torch.Tensor, z_q: torch.Tensor, labels_p: torch.Tensor,
                         labels_q: torch.Tensor | None = None, *, paired: bool = False,
                         estimator: str = "per_class", confidence: float = 0.95,
                         **kwargs) -> ConditionalJS:
    """The class-conditional JS lower bound, weighted by each class's share of all rows.

    Args:
        z_p, z_q: (n_p, D), (n_q, D) representations; labels_p (n_p,), labels_q (n_q,)
            int64 classes (the true labels; ``labels_q`` defaults to ``labels_p`` when
            ``paired``).
        estimator: ``"per_class"`` (one bound per class, weighted) or ``"joint"`` (one D on
            ``[z, one-hot(y)]``; needs ``paired``); module docstring.
        paired, confidence, kwargs: as :func:`js_lower_bound`.
    For ``"per_class"`` every class present in either sample must have enough rows in both
    for the split (``probes.MIN_SIDE`` per side); the error names the class.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; use one of {ESTIMATORS}.")
    z_p, z_q = check_features(z_p, "z_p"), check_features(z_q, "z_q")
    if labels_q is None:
        if not paired:
            raise ValueError("labels_q is required when paired=False (the two samples have "
                             "their own labels).")
        labels_q = labels_p
    check_labels(labels_p, len(z_p), name="labels_p")
    check_labels(labels_q, len(z_q), name="labels_q")
    if paired and not torch.equal(labels_p.cpu(), labels_q.cpu()):
        raise ValueError("paired=True but labels_p and labels_q differ; a natural example and "
                         "its adversarial version share the true label.")
    labels_p, labels_q = labels_p.to(z_p.device), labels_q.to(z_q.device)
    classes = sorted(set(labels_p.tolist()) | set(labels_q.tolist()))
    total = len(z_p) + len(z_q)
    weights = {k: float((labels_p == k).sum() + (labels_q == k).sum()) / total for k in classes}
    if estimator == "joint":
        return _joint_js(z_p, z_q, labels_p, classes, weights, paired, confidence, kwargs)
    per_class = {}
    for k in classes:
        in_p, in_q = labels_p == k, labels_q == k
        try:
            per_class[k] = js_lower_bound(z_p[in_p], z_q[in_q], paired=paired,
                                          confidence=confidence, **kwargs)
        except ValueError as err:
            raise ValueError(f"class {k} ({int(in_p.sum())} rows in z_p, {int(in_q.sum())} in "
                             f"z_q): {err}") from None
    value = sum(weights[k] * per_class[k].nats for k in classes)
    se = math.sqrt(sum((weights[k] * per_class[k].se) ** 2 for k in classes))
    lo, hi = _normal_interval(value, se, confidence)
    return ConditionalJS(value, lo, hi, se, float(confidence), per_class, weights)


def _joint_js(z_p, z_q, labels, classes, weights, paired, confidence, kwargs) -> ConditionalJS:
    """The joint estimator: :func:`js_lower_bound` on ``[z, one-hot(y)]`` of paired rows."""
    if not paired:
        raise ValueError("estimator='joint' needs paired=True (both samples must have the same "
                         "class shares); use estimator='per_class' for independent samples.")
    index = torch.tensor([classes.index(k) for k in labels.tolist()], device=z_p.device)
    one_hot = F.one_hot(index, len(classes)).to(z_p.dtype)
    bound = js_lower_bound(torch.cat([z_p, one_hot], 1), torch.cat([z_q, one_hot], 1),
                           paired=True, confidence=confidence, **kwargs)
    return ConditionalJS(bound.nats, bound.lo, bound.hi, bound.se, bound.confidence, {}, weights,
                         joint=bound)


def paired_js_rows(bounds: dict, pairs, *, confidence: float = 0.95) -> list[dict]:
    """Each pair ``(a, b)`` of keys of ``bounds`` (key -> paired :class:`JSBound` on the same
    held-out pairs; a key is a (method, representation) tuple) by
    :func:`paired_js_difference` (a minus b, nats), as JSON rows with Holm's adjusted p over
    the ``len(pairs)`` comparisons: ``a_method``, ``a_representation``, ``b_method``,
    ``b_representation``, ``difference``, ``lo``, ``hi``, ``n``, ``p_value``, ``p_holm``,
    ``family_size``."""
    rows = []
    for a, b in pairs:
        d, p = paired_js_difference(bounds[a], bounds[b], confidence=confidence)
        rows.append({"a_method": a[0], "a_representation": a[1], "b_method": b[0],
                     "b_representation": b[1], "difference": d.value, "lo": d.lo, "hi": d.hi,
                     "n": d.n, "p_value": p})
    return holm_rows(rows)


def alignment_table(z_p: torch.Tensor, z_q: torch.Tensor, labels_p: torch.Tensor,
                    labels_q: torch.Tensor | None = None, *, paired: bool = False,
                    estimator: str = "per_class", **kwargs) -> pd.DataFrame:
    """Marginal and class-conditional JS lower bounds side by side: rows ``marginal`` and
    ``class-conditional``, columns ``nats``, ``lo``, ``hi``, ``bits`` and the
    discriminator's held-out ``accuracy``, ``accuracy_lo``, ``accuracy_hi`` (Wilson; NaN for
    the per-class estimator, which has ten), and on the class-conditional row of a paired
    joint estimate ``minus_marginal``, ``minus_marginal_lo``, ``minus_marginal_hi``,
    ``minus_marginal_p``: the two bounds compared on their common held-out pairs
    (:func:`paired_js_difference`; NaN otherwise). Arguments as :func:`class_conditional_js`."""
    marginal = js_lower_bound(z_p, z_q, paired=paired, **kwargs)
    conditional = class_conditional_js(z_p, z_q, labels_p, labels_q, paired=paired,
                                       estimator=estimator, **kwargs)
    nan = float("nan")
    rows = []
    for name, b, single in (("marginal", marginal, marginal), ("class-conditional", conditional,
                                                                conditional.joint)):
        acc = single.accuracy if single is not None else None
        rows.append({"alignment": name, "nats": b.nats, "lo": b.lo, "hi": b.hi, "bits": b.bits,
                     "accuracy": acc.value if acc else nan, "accuracy_lo": acc.lo if acc else nan,
                     "accuracy_hi": acc.hi if acc else nan,
                     "minus_marginal": nan, "minus_marginal_lo": nan, "minus_marginal_hi": nan,
                     "minus_marginal_p": nan})
    if paired and conditional.joint is not None:
        d, p = paired_js_difference(conditional.joint, marginal)
        rows[1].update(minus_marginal=d.value, minus_marginal_lo=d.lo, minus_marginal_hi=d.hi,
                       minus_marginal_p=p)
    return pd.DataFrame(rows).set_index("alignment")
