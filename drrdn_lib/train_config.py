"""The configuration of one training run (:class:`TrainConfig`), validated up front.

Defaults follow the paper's MNIST protocol (docs/protocol.md; ``drrdn_lib.protocol``):
SmallCNN, eps 0.3, training PGD-40 step 0.01, SGD lr 0.01, momentum 0.9, no weight decay,
batch 128, 100 epochs, lr x0.1 after 55, 75 and 90% of the epochs. For CIFAR-10 the
paper's values are eps 0.031, PGD-10 step 0.007, lr 0.1, ``model="wrn28_10"`` (or the
affordable ``"preact_resnet18"``); ``drrdn_lib.experiments.make_config`` fills them in.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from pathlib import Path
from typing import Any

from .validate import MAX_SEED, check_seed, is_int, is_number

__all__ = ["TrainConfig", "ConfigError", "config_from_dict", "SCHEDULES"]

SCHEDULES = ("piecewise", "cosine")
SELECT_ON = ("robust", "clean")
NUM_CLASSES = {"mnist5k": 10, "mnist": 10, "cifar10": 10}
# fields that may differ between an interrupted run and its resumption (they change where
# files go or what is kept, not what is trained)
OUTSIDE_RUN_IDENTITY = ("progress", "device", "out_dir", "data_dir", "keep_every")
# speed options: they change floating-point rounding (so they are part of the run's
# identity, not OUTSIDE_RUN_IDENTITY), and are written by to_dict() only when switched on, so
# configurations that leave them off keep their run hash and resume older checkpoints
OMIT_AT_DEFAULT = {"channels_last": False, "compile": False}
# options added after runs were committed: written by to_dict() only when set, so that
# configurations without them keep their run hash (and their checkpoints still resume)
OMIT_AT_DEFAULT.update({"eps_ramp_epochs": 0})


# fields whose value must be one of these types (None only where listed); the numbers'
# ranges are checked by the _check_* methods, which also refuse bools for numbers
FIELD_TYPES = {
    "method": (str,), "model": (str,), "dataset": (str,), "schedule": (str,),
    "milestones": (tuple, type(None)), "hyper": (dict,), "model_kwargs": (dict,),
    "select_on": (str, type(None)), "device": (str,), "bf16": (bool,),
    "augment": (bool, type(None)), "init_from": (str, type(None)),
    "data_dir": (str, type(None)), "out_dir": (str, type(None)),
    "channels_last": (bool,), "compile": (bool,), "progress": (bool,),
}
PATH_FIELDS = ("out_dir", "data_dir", "init_from")
# set while a recorded configuration (a card's, a checkpoint's) is read back: checks of this
# machine (does init_from exist here, is there a GPU) do not apply to a record
_RECORDED = contextvars.ContextVar("recorded_config", default=False)


class ConfigError(ValueError):
    """A training configuration that cannot run; the message says what to change."""


def _same_source(a: str | None, b: str | None) -> bool:
    """Two ``init_from`` paths name one source run: equal, or the same run folder
    (``<dataset>/<method>-<hash>``, the last two parts) in another checkout, so that a
    fine-tuned run cached in one checkout resumes (loads) in another."""
    if a is None or b is None:
        return a == b
    return a == b or Path(a).parts[-2:] == Path(b).parts[-2:]


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` beside it).

    Attributes (units: eps and step sizes in [0, 1] pixel units, L-inf):
        method: a name in ``drrdn_lib.methods.METHODS``.
        model: a name in ``drrdn_lib.models.MODELS``; model_kwargs go to its builder
            (for ``drrdn`` also ``mine_hidden``, ``rec_hidden``).
        dataset: ``mnist5k``, ``mnist`` or ``cifar10``; data_dir: where its files are.
        epochs, batch_size: ints >= 1.
        lr, momentum, weight_decay: SGD; lr_gamma: piecewise decay factor.
        schedule: ``"piecewise"`` (lr *= lr_gamma at each milestone epoch; milestones
            None means the paper's 55, 75 and 90% of the epochs) or ``"cosine"``.
        train_eps, train_step_size, train_steps: the attack budget inside the objective.
        eps_ramp_epochs: the training eps grows linearly, batch by batch, from 0 to
            ``train_eps`` over this many epochs (0: full eps from the first batch), then
            stays there; the step size and steps do not change. Adversarial cross-entropy
            from a random start at MNIST's eps 0.3 stays at chance with SGD lr 0.01
            (docs/protocol.md), so the cpu-scale runs ramp every method over one epoch.
            Validation always attacks at ``val_eps``.
        val_eps, val_step_size, val_steps: the PGD attack on the validation split.
        hyper: the objective's hyperparameters (e.g. ``{"beta": 6.0}``, DRRDN weights).
        select_on: the best checkpoint maximises validation ``"robust"`` or ``"clean"``
            accuracy; None (default) means ``"clean"`` for ``standard`` training and
            ``"robust"`` for every adversarial method.
        seed: initialisation, data order, attacks' random starts. data_seed: which
            ``train_limit`` / ``val_limit`` subset is used.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        bf16: train under bfloat16 autocast (CPU or CUDA; the weights, the optimiser and
            the validation stay float32; the training attack inside the update runs under
            autocast too). Part of the run's identity. Evaluation attacks never run under
            it: low-precision gradients can weaken an attack.
        augment: random crop + flip; None means on for cifar10 only.
        init_from: None (random initialisation) or a run folder (its best checkpoint) or
            a checkpoint file whose weights initialise the model where names and shapes
            match (the whole backbone must match: e.g. a DRRDN from a PGD-AT run).
        out_dir: where files go (None: nothing is written, no resume).
        channels_last: model and batches in NHWC memory format (faster convolutions on
            some CPUs, e.g. 1.2-1.4x for SmallCNN; see benchmarks/RESULTS.md).
        compile: ``torch.compile`` the model (in place). Both change floating-point
            rounding, not the math, and are written to config.json only when True.
        keep_every: also keep the weights after every ``keep_every``-th epoch as
            ``checkpoint_epoch_NNN.pt`` (0: none), e.g. to follow the bound over training.
            It changes what is kept, not what is trained (see :data:`OUTSIDE_RUN_IDENTITY`).
        progress: show a tqdm bar.
    """
    method: str = "pgd_at"
    model: str = "smallcnn"
    dataset: str = "mnist5k"
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "piecewise"
    milestones: tuple | None = None
    lr_gamma: float = 0.1
    train_eps: float = 0.3
    train_step_size: float = 0.01
    train_steps: int = 40
    eps_ramp_epochs: float = 0
    val_eps: float = 0.3
    val_step_size: float = 0.01
    val_steps: int = 40
    hyper: dict = dataclasses.field(default_factory=dict)
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    select_on: str | None = None
    seed: int = 0
    data_seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    augment: bool | None = None
    init_from: str | None = None
    train_limit: int | None = None
    val_limit: int | None = None
    eval_batch_size: int = 500
    data_dir: str | None = None
    out_dir: str | None = None
    channels_last: bool = False
    compile: bool = False
    keep_every: int = 0
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.milestones, list):
            self.milestones = tuple(self.milestones)
        for name in PATH_FIELDS:
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        if type(self.device).__name__ == "device":  # a torch.device names the same thing
            self.device = str(self.device)
        self.validate()

    # -- derived values ------------------------------------------------------------
    def resolved_milestones(self) -> tuple[int, ...]:
        """The piecewise schedule's milestone epochs (decay after that many epochs)."""
        if self.schedule != "piecewise":
            return ()
        if self.milestones is not None:
            return self.milestones
        from .protocol import milestones
        return milestones(self.epochs)

    def resolved_select_on(self) -> str:
        """The validation accuracy the best checkpoint maximises."""
        if self.select_on is not None:
            return self.select_on
        return "clean" if self.method == "standard" else "robust"

    def resolved_augment(self) -> bool:
        return self.dataset == "cifar10" if self.augment is None else bool(self.augment)

    def num_classes(self) -> int:
        return NUM_CLASSES[self.dataset]

    def objective(self):
        from .methods import get_method
        return get_method(self.method)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["milestones"] = None if self.milestones is None else list(self.milestones)
        for key, default in OMIT_AT_DEFAULT.items():
            if out[key] == default:
                del out[key]
        return out

    def differences(self, saved: dict) -> list[str]:
        """Names of the fields (other than :data:`OUTSIDE_RUN_IDENTITY`) whose values differ from
        ``saved`` (a ``to_dict()``, e.g. from a checkpoint)."""
        mine = self.to_dict()
        return [k for k in sorted(set(mine) | set(saved))
                if k not in OUTSIDE_RUN_IDENTITY and mine.get(k) != saved.get(k)
                and not (k == "init_from" and _same_source(mine.get(k), saved.get(k)))]

    # -- validation ----------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad value and what to use instead."""
        self._check_types()
        self._check_names()
        self._check_optimisation()
        self._check_schedule()
        self._check_attacks()
        self._check_runtime()

    def _check_types(self) -> None:
        """Every field of :data:`FIELD_TYPES` has one of its types (``augment="false"``, a
        string, would otherwise switch augmentation on)."""
        for name, types in FIELD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, types):
                words = {bool: "True or False", type(None): "None"}
                allowed = " or ".join(words.get(t, f"a {t.__name__}") for t in types)
                hint = "; write it without quotes" if bool in types and isinstance(value, str) else ""
                raise ConfigError(f"{name}={value!r} must be {allowed} (got "
                                  f"{type(value).__name__}{hint}).")

    def _check_names(self) -> None:
        from .methods import METHODS, check_hyper
        from .models import MODELS

        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; known methods: {sorted(METHODS)}.")
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; known models: {sorted(MODELS)}.")
        if self.dataset not in NUM_CLASSES:
            raise ConfigError(f"dataset {self.dataset!r} cannot be trained on here; use one "
                              f"of {sorted(NUM_CLASSES)}.")
        for name in ("hyper", "model_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a dict, got {getattr(self, name)!r}.")
        try:
            check_hyper(self.method, self.hyper)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self._check_model_kwargs()
        if self.select_on is not None and self.select_on not in SELECT_ON:
            raise ConfigError(f"select_on={self.select_on!r}; use one of {SELECT_ON} or None.")

    def _check_model_kwargs(self) -> None:
        """Build the network on the meta device (no memory, no time) so that an unknown or
        bad model keyword argument fails here, before any data is loaded."""
        import torch

        from .drrdn import build_drrdn
        from .models import build_model
        build = build_drrdn if self.method == "drrdn" else build_model
        try:
            with torch.device("meta"):
                build(self.model, num_classes=self.num_classes(), **self.model_kwargs)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model_kwargs={self.model_kwargs!r} do not fit model "
                              f"{self.model!r} (method {self.method!r}): {error}") from None

    def _check_optimisation(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1.")
        if not is_number(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr={self.lr!r} must be a finite number > 0 (e.g. 0.01 MNIST, 0.1 CIFAR-10).")
        if not is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum!r} must be in [0, 1) (0.9 in the protocol).")
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay!r} must be >= 0 (0 MNIST, 2e-4 CIFAR-10 in our protocol).")
        if not is_number(self.lr_gamma) or not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"lr_gamma={self.lr_gamma!r} must be in (0, 1].")

    def _check_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r}; use one of {SCHEDULES}.")
        if self.milestones is None:
            return
        if self.schedule == "cosine" and self.milestones:
            raise ConfigError(f"milestones={list(self.milestones)} only apply to the piecewise "
                              "schedule; drop them or use schedule='piecewise'.")
        previous = 0
        for m in self.milestones:
            if not is_int(m) or m <= previous:
                raise ConfigError(f"milestones={list(self.milestones)} must be increasing "
                                  "integers >= 1 (epochs after which the lr decays).")
            if m >= self.epochs:
                raise ConfigError(f"lr milestone {m} is not before the last epoch (epochs="
                                  f"{self.epochs}), so it would never take effect; use "
                                  f"milestones < {self.epochs} or more epochs.")
            previous = m

    def _check_attacks(self) -> None:
        for prefix in ("train", "val"):
            eps, step, steps = (getattr(self, f"{prefix}_{k}") for k in ("eps", "step_size", "steps"))
            if not is_number(eps) or not 0 <= eps <= 1:
                raise ConfigError(f"{prefix}_eps={eps!r} must be in [0, 1] (pixel units: 0.3 "
                                  "for MNIST, 0.031 for CIFAR-10).")
            if not is_number(step) or not 0 < step <= 1:
                raise ConfigError(f"{prefix}_step_size={step!r} must be in (0, 1] (pixel "
                                  "units: 0.01 for MNIST, 0.007 for CIFAR-10).")
            if not is_int(steps) or steps < 1:
                raise ConfigError(f"{prefix}_steps={steps!r} must be an integer >= 1.")
        ramp = self.eps_ramp_epochs
        if not is_number(ramp) or not 0 <= ramp <= self.epochs:
            raise ConfigError(f"eps_ramp_epochs={ramp!r} must be a number in [0, epochs="
                              f"{self.epochs}] (e.g. 1: eps grows from 0 over the first epoch).")

    def _check_runtime(self) -> None:
        import torch

        for name in ("seed", "data_seed"):
            try:
                check_seed(name, getattr(self, name), MAX_SEED)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        if not is_int(self.keep_every) or self.keep_every < 0:
            raise ConfigError(f"keep_every={self.keep_every!r} must be an integer >= 0.")
        for name in ("train_limit", "val_limit"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 2):
                raise ConfigError(f"{name}={value!r} must be None (all) or an integer >= 2.")
        if self.out_dir is not None and Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            raise ConfigError(f"out_dir={self.out_dir!r} is a file, not a folder; choose a "
                              "folder for the run's files.")
        recorded = _RECORDED.get()
        if self.init_from is not None and not recorded and not Path(self.init_from).exists():
            raise ConfigError(f"init_from={self.init_from!r} does not exist; give a run "
                              "folder or a checkpoint file, or None.")
        device = self.device
        if device != "cpu" and not (device == "cuda" or (device.startswith("cuda:")
                                                          and device[5:].isdigit())):
            raise ConfigError(f"device={device!r}; use 'cpu', 'cuda' or 'cuda:N'.")
        if device.startswith("cuda") and not recorded and not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but no CUDA GPU is visible; use device='cpu'.")


@contextlib.contextmanager
def _reading_a_record():
    token = _RECORDED.set(True)
    try:
        yield
    finally:
        _RECORDED.reset(token)


def config_from_dict(values: dict, *, recorded: bool = False) -> TrainConfig:
    """A :class:`TrainConfig` from ``to_dict()`` output (e.g. a run's config.json);
    unknown keys are an error naming them.

    ``recorded``: the values describe a run trained elsewhere or earlier (a zoo card, a
    finished run's config.json): every value is checked, but not against this machine
    (``init_from`` need not exist here, a CUDA device need not be visible)."""
    if not isinstance(values, dict):
        raise ConfigError(f"a configuration must be a mapping of field names to values; "
                          f"got {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown configuration field(s) {unknown}; known: {sorted(known)}.")
    with _reading_a_record() if recorded else contextlib.nullcontext():
        return TrainConfig(**values)
