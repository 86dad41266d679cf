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

Class-conditional alignment: the same bound within each class k (p's rows of class k
against q's rows of class k), averaged with weights ``(n_p^k + n_q^k) / (n_p + n_q)``;
the classes are estimated independently, so the interval's variance is
``sum_k w_k^2 se_k^2``. Aligned marginals (what Proposition 1 asks) do not imply
aligned class-conditionals (e.g. labels swapped between the domains).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import norm

from .bounds import Estimate, proportion
from .probes import DEFAULT_STEPS, check_head, fit_head, split_indices, standardise
from .validate import check_features, check_labels, check_number

__all__ = ["LOG2", "JSBound", "ConditionalJS", "js_lower_bound", "class_conditional_js",
           "alignment_table"]

LOG2 = math.log(2.0)


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
        per_class: class -> :class:`JSBound`; weights: class -> weight (sum 1).
    """

    nats: float
    lo: float
    hi: float
    se: float
    confidence: float
    per_class: dict[int, JSBound]
    weights: dict[int, float]

    @property
    def bits(self) -> float:
        return self.nats / LOG2


def _normal_interval(value: float, se: float, confidence: float) -> tuple[float, float]:
    z = float(norm.ppf(0.5 + confidence / 2))
    return value - z * se, value + z * se


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


def js_lower_bound(z_p: torch.Tensor, z_q: torch.Tensor, *, paired: bool = False,
                   head: str = "linear", heldout_fraction: float = 0.5, seed: int = 0,
                   steps: int | None = None, hidden: int = 64, clip: float = 1e-3,
                   confidence: float = 0.95) -> JSBound:
    """Held-out lower bound on JS(p || q), nats, from samples ``z_p`` (n_p, D) of p and
    ``z_q`` (n_q, D) of q (e.g. natural and adversarial z_s).

    Args:
        paired: row i of z_p and of z_q are one example (natural, adversarial): needs
            n_p == n_q; the split is by example and the interval uses the paired terms.
        head: ``"linear"`` or ``"mlp"`` discriminator; ``steps``/``hidden`` as in probes.
        heldout_fraction: share of each sample (of the pairs) held out to evaluate D.
        seed: seeds the split(s) and the discriminator.
        clip: D is clamped to [clip, 1 - clip], 0 < clip < 1/2.
        confidence: level of the normal interval.
    Returns: :class:`JSBound`. Raises ``ValueError`` for bad inputs, naming them.
    """
    check_head(head)
    clip = check_number("clip", clip, 0.0, 0.5, low_open=True, high_open=True, hint="e.g. 1e-3")
    check_number("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True,
                 hint="e.g. 0.95")
    z_p = check_features(z_p, "z_p")
    z_q = check_features(z_q, "z_q").to(z_p.device)
    if z_p.shape[1] != z_q.shape[1]:
        raise ValueError(f"z_p has {z_p.shape[1]} features and z_q {z_q.shape[1]}; both "
                         f"samples must come from one representation (same width).")
    if paired and len(z_p) != len(z_q):
        raise ValueError(f"paired=True needs one row of z_q per row of z_p, got {len(z_p)} and "
                         f"{len(z_q)}; pass paired=False for independent samples.")
    if paired:
        train, held = split_indices(len(z_p), heldout_fraction, seed)
        (tp, hp), (tq, hq) = (train, held), (train, held)
    else:
        tp, hp = split_indices(len(z_p), heldout_fraction, seed)
        tq, hq = split_indices(len(z_q), heldout_fraction, seed + 1)
    logit = _fit_discriminator(z_p[tp], z_q[tq], head=head, seed=seed,
                               steps=steps or DEFAULT_STEPS[head], hidden=hidden)
    bound = math.log((1.0 - clip) / clip)
    lp = logit(z_p[hp]).clamp(-bound, bound).double()
    lq = logit(z_q[hq]).clamp(-bound, bound).double()
    log_d_p, log_1md_q = F.logsigmoid(lp), F.logsigmoid(-lq)   # log D on p, log(1 - D) on q
    value = LOG2 + 0.5 * (float(log_d_p.mean()) + float(log_1md_q.mean()))
    if paired:
        terms = 0.5 * (log_d_p + log_1md_q)
        se = float(terms.std() / math.sqrt(len(terms))) if len(terms) > 1 else math.inf
    else:
        se = 0.5 * math.sqrt(float(log_d_p.var()) / len(lp) + float(log_1md_q.var()) / len(lq))
    lo, hi = _normal_interval(value, se, confidence)
    right = int((lp > 0).sum()) + int((lq <= 0).sum())
    return JSBound(value, lo, hi, se, float(confidence), proportion(right, len(lp) + len(lq)),
                   (len(tp), len(tq)), (len(hp), len(hq)), clip)


def class_conditional_js(z_p: torch.Tensor, z_q: torch.Tensor, labels_p: torch.Tensor,
                         labels_q: torch.Tensor | None = None, *, paired: bool = False,
                         confidence: float = 0.95, **kwargs) -> ConditionalJS:
    """The JS lower bound within each class, weighted by the class's share of all rows.

    Args:
        z_p, z_q: (n_p, D), (n_q, D) representations; labels_p (n_p,), labels_q (n_q,)
            int64 classes (the true labels; ``labels_q`` defaults to ``labels_p`` when
            ``paired``).
        paired, confidence, kwargs: as :func:`js_lower_bound`, per class.
    Every class present in either sample must have enough rows in both for the split
    (``probes.MIN_SIDE`` per side); the error names the class.
    """
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
    per_class, weights, total = {}, {}, len(z_p) + len(z_q)
    for k in classes:
        in_p, in_q = labels_p == k, labels_q == k
        try:
            per_class[k] = js_lower_bound(z_p[in_p], z_q[in_q], paired=paired,
                                          confidence=confidence, **kwargs)
        except ValueError as err:
            raise ValueError(f"class {k} ({int(in_p.sum())} rows in z_p, {int(in_q.sum())} in "
                             f"z_q): {err}") from None
        weights[k] = float(in_p.sum() + in_q.sum()) / total
    value = sum(weights[k] * per_class[k].nats for k in classes)
    se = math.sqrt(sum((weights[k] * per_class[k].se) ** 2 for k in classes))
    lo, hi = _normal_interval(value, se, confidence)
    return ConditionalJS(value, lo, hi, se, float(confidence), per_class, weights)


def alignment_table(z_p: torch.Tensor, z_q: torch.Tensor, labels_p: torch.Tensor,
                    labels_q: torch.Tensor | None = None, *, paired: bool = False,
                    **kwargs) -> pd.DataFrame:
    """Marginal and class-conditional JS lower bounds side by side: rows ``marginal`` and
    ``class-conditional``, columns ``nats``, ``lo``, ``hi``, ``bits`` (arguments as
    :func:`class_conditional_js`)."""
    marginal = js_lower_bound(z_p, z_q, paired=paired, **kwargs)
    conditional = class_conditional_js(z_p, z_q, labels_p, labels_q, paired=paired, **kwargs)
    rows = [{"alignment": name, "nats": b.nats, "lo": b.lo, "hi": b.hi, "bits": b.bits}
            for name, b in (("marginal", marginal), ("class-conditional", conditional))]
    return pd.DataFrame(rows).set_index("alignment")
