"""White-box attacks with one API: built with a budget, called ``attack(model, images, labels)``.

=============  ==================================================  ==========================
registry name  attack                                              class
=============  ==================================================  ==========================
``fgsm``       one signed-gradient step of size eps                :class:`FGSM`
``pgd``        projected gradient ascent on CE, L-inf or L2        :class:`PGD`
``cw``         PGD (L-inf) on the Carlini-Wagner margin loss       :class:`CWInf`
``autoattack`` AutoAttack (standard), pyautoattack behind adapter  ``AutoAttackAdapter``
=============  ==================================================  ==========================

(``AutoAttackAdapter`` lives in :mod:`drrdn_lib.autoattack_adapter`; the names are
resolved by :mod:`drrdn_lib.attack_registry`.)

Every attack returns adversarial images of the input's shape, inside the eps-ball around
the input (up to float32 rounding, 1e-6) and inside ``bounds`` ([0, 1] by default). It
runs the model in eval mode and puts every submodule back in the mode it was in. It
takes gradients with respect to the input only (``torch.autograd.grad``, with the
parameters' ``requires_grad`` switched off meanwhile, :func:`frozen_parameters`), so the
parameters' ``.grad`` is never touched and an attack can run inside a training step.

Budgets are in [0, 1] pixel units (0.3 MNIST, 0.031 CIFAR-10 as the paper writes it).
The paper's budgets are ``drrdn_lib.protocol.BUDGETS`` (the whole protocol:
:mod:`drrdn_lib.protocol`, docs/protocol.md). The registry of every attack by name (AutoAttack included) is
:mod:`drrdn_lib.attack_registry`.

Inputs are checked before anything runs (:mod:`drrdn_lib.validate`): finite float32
images, NCHW when 4-D, inside ``bounds``; int64 labels in ``[0, num_classes)``; finite
logits that are not probabilities. A model whose input gradient is NaN/inf raises
instead of returning unattacked (``sign(NaN)`` is 0) or NaN images.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .torch_utils import eval_mode
from .validate import check_images, check_int, check_labels, check_logits, check_number, is_number

__all__ = ["AttackBudget", "Attack", "FGSM", "PGD", "CWInf", "frozen_parameters",
           "margin_loss", "check_input_gradient"]

NORMS = ("Linf", "L2")
LOSSES = ("ce", "cw")


# ------------------------------------------------------------------------- budgets
def _check_eps(eps, norm: str = "Linf", pixels: bool = True) -> float:
    """Validate a perturbation radius >= 0; an L-inf radius on [0, 1] pixels is at most 1."""
    if not is_number(eps):
        raise ValueError(f"eps={eps!r} must be a finite number (the radius of the {norm} "
                         f"ball in [0, 1] pixel units, e.g. 8/255 or 0.3).")
    if eps < 0:
        raise ValueError(f"eps={eps} is negative; eps is the radius of the {norm} ball and must "
                         f"be in [0, 1] for L-inf (e.g. 8/255 for CIFAR-10, 0.3 for MNIST) "
                         f"or >= 0 for L2.")
    if norm == "Linf" and pixels and eps > 1:
        raise ValueError(f"eps={eps} > 1 for an L-inf attack; pixels are in [0, 1], so eps "
                         f"must be in [0, 1]. Did you mean {eps}/255 = {eps / 255:.5f}?")
    return float(eps)


def _check_step_size(step_size) -> float:
    """Validate a step size > 0 (pixel units)."""
    return check_number("step_size", step_size, 0.0, low_open=True,
                        hint="[0, 1] pixel units, e.g. 2/255 for CIFAR-10, 0.01 for MNIST")


@dataclass(frozen=True)
class AttackBudget:
    """The threat model of a training or evaluation attack.

    Attributes:
        eps: radius of the L-inf ball, in [0, 1] pixel units (0.3 MNIST, 0.031 CIFAR-10).
        step_size: PGD step, pixel units, > 0.
        steps: number of PGD iterations, >= 1.
    Presets: ``drrdn_lib.protocol.budget("cifar10", "eval")``.
    """

    eps: float
    step_size: float
    steps: int

    def __post_init__(self):
        _check_eps(self.eps)
        _check_step_size(self.step_size)
        check_int("steps", self.steps)

    def to_dict(self) -> dict:
        """``{"eps", "step_size", "steps"}``."""
        return asdict(self)


# ------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """Switch off ``requires_grad`` of the model's parameters, restore it on exit.

    An attack needs the gradient with respect to its input only: eager autograd already
    skips the weight gradients, but a ``torch.compile``d model's backward graph computes
    every gradient its inputs require, weights included (about 1.3x the time)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for param in params:
            param.requires_grad_(True)


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, kappa: float = math.inf) -> torch.Tensor:
    """Carlini-Wagner margin ``min(max_{j != y} z_j - z_y, kappa)`` per example, (B,).

    Positive means misclassified; ascent pushes towards the best wrong class.
    """
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf)
    return (others.amax(1) - true_logit).clamp(max=kappa)


def _flat_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, broadcastable to x: (B, ...) -> (B, 1, ..., 1)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))


def _project(adv: torch.Tensor, images: torch.Tensor, eps: float, norm: str,
             bounds: tuple[float, float] | None) -> torch.Tensor:
    """Project ``adv`` onto the ``norm`` ball of radius eps around ``images``, then into bounds."""
    delta = adv - images
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    adv = images + delta
    return adv if bounds is None else adv.clamp(*bounds)


# ---------------------------------------------------------------------- base class
class Attack:
    """Base class: validation, eval mode, input checks; subclasses implement ``_perturb``.

    Args:
        eps: radius of the perturbation ball, [0, 1] pixel units.
        norm: ``"Linf"`` or ``"L2"``.
        bounds: valid input range ``(low, high)`` ((0, 1)); ``None`` for unbounded features.
    ``attack(model, images (B, ...), labels (B,) int64) -> adv (B, ...)``, detached,
    on the images' device.
    """

    name = "attack"

    def __init__(self, eps: float, norm: str = "Linf", bounds: tuple[float, float] | None = (0.0, 1.0)):
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not supported; use one of {NORMS}.")
        if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
            raise ValueError(f"bounds={bounds!r} must be None or (low, high) with low < high.")
        self.norm = norm
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        self.eps = _check_eps(eps, norm, pixels=self.bounds == (0.0, 1.0))

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial examples for ``images`` (B, ...) with true ``labels`` (B,)."""
        check_images(images, self.bounds)
        check_labels(labels, images.shape[0])
        if images.shape[0] == 0:
            return images.detach().clone()
        with eval_mode(model), frozen_parameters(model), torch.enable_grad():
            adv = self._perturb(model, images.detach(), labels.detach())
        adv = _project(adv.detach().to(images.device), images.detach(), self.eps, self.norm, self.bounds)
        _raise_if_nonfinite(~torch.isfinite(adv).flatten(1).all(1), f"{self.name} returned "
                            f"NaN/inf adversarial images")
        return adv

    def _perturb(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict:
        """The attack's name and hyper-parameters, JSON-ready (for evaluation records)."""
        return {"name": self.name, "eps": self.eps, "norm": self.norm,
                "bounds": None if self.bounds is None else list(self.bounds)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _input_gradient(model: nn.Module, adv: torch.Tensor, labels: torch.Tensor, loss: str,
                    kappa: float, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed per-example loss w.r.t. ``adv``, and the per-example loss (B,)."""
    adv = adv.detach().requires_grad_(True)
    logits = model(adv)
    if check:
        check_logits(logits, labels)
    if loss == "ce":
        per_example = F.cross_entropy(logits, labels, reduction="none")
    else:
        per_example = margin_loss(logits, labels, kappa)
    grad, = torch.autograd.grad(per_example.sum(), adv)
    return grad, per_example.detach()


def _nonfinite_rows(grad: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the examples whose gradient holds a NaN/inf (no synchronisation)."""
    return ~torch.isfinite(grad).flatten(1).all(1)


def _raise_if_nonfinite(bad: torch.Tensor, what: str = "the model has a non-finite (NaN/inf) "
                        "input gradient") -> None:
    """Raise ``ValueError`` if any entry of the (B,) bool ``bad`` is set (one sync)."""
    if bool(bad.any()):
        raise ValueError(f"{what} for {int(bad.sum())} of {len(bad)} examples (first: "
                         f"{int(bad.nonzero()[0])}); no attack can follow it (a NaN step is "
                         f"either NaN or, through sign(), no step at all). Find the operation "
                         f"with an infinite derivative (sqrt or log at 0, division by 0) with "
                         f"torch.autograd.detect_anomaly().")


def check_input_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` if the cross-entropy gradient w.r.t. ``images`` is NaN/inf for
    any example (one forward and backward pass; for attacks that do not see the gradient
    themselves, such as the AutoAttack package)."""
    with torch.enable_grad():
        grad, _ = _input_gradient(model, images, labels, "ce", math.inf, check=False)
    _raise_if_nonfinite(_nonfinite_rows(grad))


# --------------------------------------------------------------------------- FGSM
class FGSM(Attack):
    """Fast Gradient Sign Method (Goodfellow, Shlens, Szegedy, ICLR 2015).

    ``adv = clip(x + eps * sign(grad_x CE(f(x), y)))``: one L-inf step of size eps from
    the clean input (no random start).

    Args:
        eps: L-inf radius, [0, 1] pixel units (0.3 MNIST, 8/255 CIFAR-10).
        bounds: valid input range ((0, 1)).
    Shapes: images (B, ...) in bounds, labels (B,) int64 -> adv (B, ...).
    """

    name = "fgsm"

    def __init__(self, eps: float, bounds: tuple[float, float] | None = (0.0, 1.0)):
        super().__init__(eps, "Linf", bounds)

    def _perturb(self, model, images, labels):
        grad, _ = _input_gradient(model, images, labels, "ce", math.inf, check=True)
        _raise_if_nonfinite(_nonfinite_rows(grad))
        return images + self.eps * grad.sign()


# ---------------------------------------------------------------------------- PGD
class PGD(Attack):
    """Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018).

    From a random start in the ball (``random_start``), ``steps`` ascent steps on the
    loss, each followed by projection onto the ball and into ``bounds``. L-inf steps are
    ``step_size * sign(grad)``; L2 steps are ``step_size * grad / ||grad||_2``. The L-inf
    random start is uniform in the cube; the L2 one is a uniformly random direction with
    radius ``U(0, 1) * eps``. With ``restarts == 1`` the last iterate is returned; with
    more, per example the first restart that misclassifies it wins, and an example that
    no restart misclassifies keeps the restart with the highest final loss.

    Args:
        eps: radius, [0, 1] pixel units (8/255 CIFAR-10 L-inf, 0.3 MNIST, 0.5 CIFAR-10 L2).
        step_size: > 0, pixel units (2/255 CIFAR-10, 0.01 MNIST).
        steps: iterations >= 1 (10 CIFAR-10 training, 20 CIFAR-10 eval, 40 MNIST).
        norm: ``"Linf"`` (default) or ``"L2"``.
        random_start: start uniformly in the ball (True) or at the clean input.
        restarts: independent runs >= 1 (1).
        loss: ``"ce"`` (cross-entropy, default) or ``"cw"`` (margin, see :class:`CWInf`).
        kappa: margin cap for ``loss="cw"`` (inf).
        seed: None draws the random start from the global torch RNG; an int uses a
            private generator, so the result is reproducible and the global RNG untouched.
        bounds: valid input range ((0, 1)); None for unbounded features.
    Shapes: images (B, ...) in bounds, labels (B,) int64 -> adv (B, ...).
    """

    name = "pgd"

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "Linf",
                 random_start: bool = True, restarts: int = 1, loss: str = "ce",
                 kappa: float = math.inf, seed: int | None = None,
                 bounds: tuple[float, float] | None = (0.0, 1.0)):
        super().__init__(eps, norm, bounds)
        self.step_size = _check_step_size(step_size)
        self.steps = check_int("steps", steps)
        self.restarts = check_int("restarts", restarts)
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not supported; use one of {LOSSES}.")
        if not kappa > 0:
            raise ValueError(f"kappa={kappa!r} must be > 0 (math.inf for an uncapped margin).")
        self.loss, self.kappa = loss, float(kappa)
        self.random_start, self.seed = bool(random_start), seed

    def config(self) -> dict:
        return {**super().config(), "step_size": self.step_size, "steps": self.steps,
                "random_start": self.random_start, "restarts": self.restarts,
                "loss": self.loss, "kappa": None if math.isinf(self.kappa) else self.kappa,
                "seed": self.seed}

    def _start(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A random point of the ball around ``images`` (or ``images`` itself)."""
        if not self.random_start or self.eps == 0:
            return images.clone()
        if self.norm == "Linf":
            noise = torch.empty_like(images).uniform_(-self.eps, self.eps, generator=generator)
        else:
            direction = torch.empty_like(images).normal_(generator=generator)
            radius = torch.empty(images.shape[0], device=images.device).uniform_(generator=generator)
            noise = direction / _flat_norm(direction).clamp_min(1e-12)
            noise = noise * self.eps * radius.view(-1, *([1] * (images.ndim - 1)))
        return _project(images + noise, images, self.eps, self.norm, self.bounds)

    def _step(self, adv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One ascent step (before projection)."""
        if self.norm == "Linf":
            return adv + self.step_size * grad.sign()
        return adv + self.step_size * grad / _flat_norm(grad).clamp_min(1e-12)

    def _run(self, model, images, labels, generator, check: bool) -> torch.Tensor:
        """One PGD run: the last iterate (B, ...)."""
        adv = self._start(images, generator)
        bad = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for i in range(self.steps):
            grad, _ = _input_gradient(model, adv, labels, self.loss, self.kappa, check and i == 0)
            bad |= _nonfinite_rows(grad)
            adv = _project(self._step(adv, grad), images, self.eps, self.norm, self.bounds)
        _raise_if_nonfinite(bad)
        return adv

    def _score(self, model, adv, labels) -> torch.Tensor:
        """Per-example loss of ``adv`` (B,), +inf where it is misclassified."""
        with torch.no_grad():
            logits = model(adv)
            loss = (F.cross_entropy(logits, labels, reduction="none") if self.loss == "ce"
                    else margin_loss(logits, labels, self.kappa))
            fooled = logits.argmax(1) != labels
        return torch.where(fooled, torch.full_like(loss, math.inf), loss)

    def _perturb(self, model, images, labels):
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=images.device).manual_seed(self.seed)
        best = self._run(model, images, labels, generator, check=True)
        if self.restarts == 1:
            return best
        best_score = self._score(model, best, labels)
        for _ in range(self.restarts - 1):
            open_ = ~torch.isinf(best_score)  # not yet misclassified
            if not open_.any():
                break
            adv = self._run(model, images[open_], labels[open_], generator, check=False)
            score = self._score(model, adv, labels[open_])
            better = score > best_score[open_]
            idx = open_.nonzero().squeeze(1)[better]
            best[idx], best_score[idx] = adv[better], score[better]
        return best


class CWInf(PGD):
    """CW-inf: L-inf PGD on the Carlini-Wagner margin loss (Carlini & Wagner, IEEE S&P
    2017), as used to evaluate TRADES and MART.

    Ascent on ``min(max_{j != y} z_j - z_y, kappa)`` (logits z); ``kappa`` (50, as in
    MART's evaluation code) caps the margin, so a point stops moving once it is
    misclassified by kappa. Random start, projection and restarts as :class:`PGD`.

    Args:
        eps, step_size, steps: as :class:`PGD` (CIFAR-10: 8/255, 2/255, 20).
        kappa: confidence cap > 0 (50.0). random_start, restarts, seed, bounds: as PGD.
    Shapes: images (B, ...) in bounds, labels (B,) int64 -> adv (B, ...).
    """

    name = "cw"

    def __init__(self, eps: float, step_size: float, steps: int, kappa: float = 50.0,
                 random_start: bool = True, restarts: int = 1, seed: int | None = None,
                 bounds: tuple[float, float] | None = (0.0, 1.0)):
        super().__init__(eps, step_size, steps, "Linf", random_start, restarts, "cw", kappa,
                         seed, bounds)
