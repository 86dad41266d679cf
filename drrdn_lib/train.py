"""The training loop: one :class:`TrainConfig` in, one :class:`TrainResult` out.

``train(config)`` trains ``config.model`` with the objective ``config.method``
(``drrdn_lib.methods``) by SGD (momentum, weight decay) under a per-epoch learning-rate
schedule, measures clean and PGD accuracy on the validation split after every epoch,
keeps the best (highest validation robust accuracy; clean accuracy for ``standard``;
never the test set) and the last weights, and writes into ``config.out_dir``:

- ``config.json``: the full configuration;
- ``metrics.json``: the per-epoch log (every loss term, learning rate, validation
  accuracies, seconds of training and of validation), the best and last epochs, the run's
  status and its provenance (``drrdn_lib.provenance``: one entry per process that trained
  part of it, with the epochs it trained); rewritten atomically after every epoch;
- ``checkpoint_last.pt``: model, every optimiser and scheduler of the method's update
  (``drrdn_lib.objective_base``; DRRDN has one per step of Algorithm 1), every RNG state and the log,
  written atomically after every epoch, so that ``train(config, resume=True)`` after a
  crash ends with the same numbers as an uninterrupted run (on the CPU);
- ``checkpoint_best.pt``: the weights of the best validation epoch;
- ``checkpoint_epoch_NNN.pt``: with ``config.keep_every = k``, the weights after every
  k-th epoch (``epoch_checkpoints`` lists them; ``load_model(run, which=epoch)``).

A non-finite loss raises :class:`TrainingDiverged` before the bad step is taken, and so
does a step that leaves a weight (or a batch-norm statistic) NaN or infinite while the
loss was finite; the last good checkpoint stays, and ``metrics.json`` says ``"diverged"``
with the error and ``diverged_at`` (epoch, batch, reason). Any other error ends the run
with ``"failed"`` and the error (``"interrupted"`` for Ctrl-C), so ``metrics.json`` never
stays ``"running"`` after a run that this process saw end. ``load_checkpoint`` /
``load_model`` read runs back.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .provenance import provenance
from .files import FolderLocked, folder_lock, make_folder, save_torch_atomic, write_json_atomic
from .objective_base import NonFiniteLoss
from .train_config import ConfigError, TrainConfig
from .torch_utils import no_tf32

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "ConfigError", "CheckpointError", "train",
           "load_checkpoint", "load_model", "epoch_checkpoints", "build_run_model",
           "evaluate_accuracy", "init_weights_from", "wall_seconds"]

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
TRAIN_LOCK = ".train.lock"  # the lock a training process holds on its run folder
EPOCH = "checkpoint_epoch_{:03d}.pt"
CHECKPOINT_FORMAT = 2  # 2: one state per optimiser of the method's update, by name


class TrainingDiverged(RuntimeError):
    """The training loss, or a weight after a step, became NaN or infinite; the last good
    checkpoint is kept. ``where``: ``{"epoch", "batch", "reason"}`` (also in metrics.json)."""

    def __init__(self, message: str, where: dict | None = None):
        super().__init__(message)
        self.where = where or {}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        config: the run's configuration.
        model: the last epoch's weights (eval mode, on ``config.device``).
        best_model: the weights of the best validation epoch (eval mode).
        history: one dict per epoch (``epoch``, ``lr``, ``train_<term>`` means,
            ``val_clean_acc``, ``val_robust_acc`` in [0, 1], ``seconds``).
        best, last: the history entries of the best and of the last epoch.
        out_dir: where the files are (None when ``config.out_dir`` is None).
        source: where the weights were loaded from when not from ``out_dir`` (a zoo model:
            ``"zoo/<name>.pt"``, :func:`drrdn_lib.zoo.training_run`); None otherwise.
    """
    config: TrainConfig
    model: nn.Module
    best_model: nn.Module
    history: list
    best: dict
    last: dict
    out_dir: Path | None
    source: str | None = None


# ----------------------------------------------------------------------------- setup
def build_run_model(spec: dict) -> nn.Module:
    """A freshly initialised model from a checkpoint's ``model_spec``
    (keys ``method``, ``model``, ``num_classes``, ``in_channels``, ``model_kwargs``)."""
    from .drrdn import build_drrdn
    from .models import build_model

    build = build_drrdn if spec["method"] == "drrdn" else build_model
    return build(spec["model"], num_classes=spec["num_classes"],
                 in_channels=spec["in_channels"], **spec["model_kwargs"])


def init_weights_from(model: nn.Module, source: str | os.PathLike) -> list[str]:
    """Copy into ``model`` every tensor of a checkpoint whose name and shape match.

    ``source`` is a run folder (its best checkpoint is used) or a checkpoint file. Every
    ``backbone.*`` tensor must match; the others (heads) may not exist on either side.
    Returns the names of the model's tensors that kept their initialisation.
    """
    path = Path(source)
    checkpoint = load_checkpoint(path / BEST if path.is_dir() else path)
    theirs, mine = checkpoint["model"], model.state_dict()
    copied = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    missing = [k for k in mine if k.startswith("backbone.") and k not in copied]
    if missing:
        raise ConfigError(f"init_from={str(source)!r} does not fit this model's backbone "
                          f"({len(missing)} tensors missing or of another shape, e.g. "
                          f"{missing[0]}); use a run of the same model name.")
    model.load_state_dict(copied, strict=False)
    return [k for k in mine if k not in copied]


def _load_data(config: TrainConfig, device: torch.device):
    """(train_x, train_y, val_x, val_y) on ``device``; subsets chosen by ``data_seed``."""
    from .data import load_dataset

    kw = {"data_dir": config.data_dir, "seed": config.data_seed}
    train_x, train_y = load_dataset(config.dataset, "train", limit=config.train_limit, **kw)
    val_x, val_y = load_dataset(config.dataset, "val", limit=config.val_limit, **kw)
    if train_x.ndim != 4:
        raise ConfigError(f"dataset {config.dataset!r} gives {train_x.ndim}-d inputs; the "
                          "training loop needs images (N, C, H, W).")
    return [t.to(device) for t in (train_x, train_y, val_x, val_y)]


def _optimizer_factory(config: TrainConfig):
    """``make_optimizer(param_groups)``: SGD with the run's lr, momentum and weight decay
    (a group may set its own ``weight_decay``), as the methods' updates expect."""
    def make_optimizer(param_groups: list[dict]) -> torch.optim.Optimizer:
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return make_optimizer


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The per-epoch learning-rate schedule of one optimiser."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.resolved_milestones()), gamma=config.lr_gamma)


def _seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return the data-order generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- RNG state
def _rng_state(order: torch.Generator) -> dict:
    """Every RNG state, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                      int(has_gauss), float(gauss)],
            "python": [version, list(py_state), py_gauss],
            "data_order": order.get_state()}


def _set_rng_state(state: dict, order: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    order.set_state(state["data_order"])


# ----------------------------------------------------------------------------- files
class CheckpointError(ValueError):
    """A checkpoint file that cannot be read back: truncated, empty or not written by
    :func:`train`."""


CHECKPOINT_KEYS = ("format", "epoch", "model", "model_spec", "config")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`train` (safe loading: tensors and plain types).

    Keys: ``format``, ``epoch`` (epochs completed), ``model`` (state dict),
    ``model_spec``, ``config``, and in the last checkpoint also ``optimizers`` and
    ``schedulers`` ({name: state}), ``rng``, ``history``, ``best_epoch``.
    Raises FileNotFoundError (no file) or :class:`CheckpointError` (unreadable or foreign).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; a run folder holds {LAST} and {BEST}.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, empty, or holding objects other than tensors
        raise CheckpointError(
            f"{path} cannot be read as a training checkpoint ({type(error).__name__}: the "
            "file is truncated, empty, or was not written by drrdn_lib.train); delete it and "
            "train again, or point at another run.") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is not a drrdn_lib training checkpoint (missing "
                              f"{missing}); point at a run folder written by train().")
    return checkpoint


def epoch_checkpoints(run_dir: str | os.PathLike) -> dict[int, Path]:
    """{epoch: path} of the per-epoch weights a run kept (``TrainConfig.keep_every``),
    in epoch order; empty if it kept none."""
    found = {}
    for path in Path(run_dir).glob("checkpoint_epoch_*.pt"):
        suffix = path.stem.rsplit("_", 1)[-1]
        if suffix.isdigit():
            found[int(suffix)] = path
    return dict(sorted(found.items()))


def load_model(run_dir: str | os.PathLike, which: str | int = "best", device="cpu") -> nn.Module:
    """The model of a finished or interrupted run, in eval mode on ``device``.

    Args:
        run_dir: the run's ``out_dir``.
        which: ``"best"`` (best validation accuracy, see ``TrainConfig.select_on``),
            ``"last"``, or an epoch number the run kept (:func:`epoch_checkpoints`).
    """
    files = {"best": BEST, "last": LAST}
    if isinstance(which, int) and not isinstance(which, bool):
        kept = epoch_checkpoints(run_dir)
        if which not in kept:
            raise ValueError(f"{run_dir} kept no weights of epoch {which} (kept: "
                             f"{list(kept) or 'none'}); train with keep_every to keep them.")
        path = kept[which]
    elif which in files:
        path = Path(run_dir) / files[which]
    else:
        raise ValueError(f"which={which!r}; use 'best', 'last' or an epoch number.")
    checkpoint = load_checkpoint(path)
    model = build_run_model(checkpoint["model_spec"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def wall_seconds(history: list) -> dict:
    """Seconds of training and of validation summed over a run's epochs (``history``:
    :attr:`TrainResult.history`); None where an epoch did not record them (a zoo card's
    learning curve keeps no validation seconds)."""
    def total(key):
        return sum(h[key] for h in history) if all(key in h for h in history) else None
    return {"train": total("seconds"), "validation": total("val_seconds")}


def _write_metrics(out_dir: Path | None, config: TrainConfig, history: list,
                   best_epoch: int | None, status: str, error: str | None = None,
                   sessions: list | None = None, diverged_at: dict | None = None) -> None:
    if out_dir is None:
        return
    by_epoch = {h["epoch"]: h for h in history}
    write_json_atomic(out_dir / "metrics.json", {
        "status": status, "method": config.method, "model": config.model,
        "dataset": config.dataset, "seed": config.seed, "epochs_done": len(history),
        "epochs": config.epochs, "history": history, "error": error,
        **({"diverged_at": diverged_at} if diverged_at else {}),
        "best": by_epoch.get(best_epoch), "last": history[-1] if history else None,
        "wall_seconds": wall_seconds(history),
        "provenance": sessions or []})


# ----------------------------------------------------------------------------- evaluation
def evaluate_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      attack=None, batch_size: int = 500) -> tuple[float, float | None]:
    """Clean accuracy and, if ``attack`` is given, accuracy on ``attack(model, x, y)``
    (both in [0, 1]); images and labels validated first, eval mode (restored)."""
    from .torch_utils import predict_labels
    from .validate import check_images, check_labels

    check_images(images)
    check_labels(labels, len(images))
    if len(labels) == 0:
        raise ValueError("evaluate_accuracy got no examples; pass at least one.")
    clean = (predict_labels(model, images, batch_size) == labels).sum().item()
    if attack is None:
        return clean / len(labels), None
    robust = 0
    for start in range(0, len(labels), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        robust += (predict_labels(model, attack(model, x, y), batch_size) == y).sum().item()
    return clean / len(labels), robust / len(labels)


# ----------------------------------------------------------------------------- the loop
def _augment(images: torch.Tensor, order: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip per image, the CIFAR-10
    protocol; random numbers from the CPU generator ``order``. (B, C, H, W) -> same."""
    n, _, h, w = images.shape
    flip = (torch.rand(n, generator=order) < 0.5).to(images.device)
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=order).to(images.device)
    rows = offsets[0][:, None] + torch.arange(h, device=images.device)
    cols = offsets[1][:, None] + torch.arange(w, device=images.device)
    padded = nn.functional.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)
    index = torch.arange(n, device=images.device)[:, None, None]
    crops = padded[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flip[:, None, None, None], crops.flip(3), crops).contiguous()


def _batches(n: int, batch_size: int, order: torch.Generator) -> list[torch.Tensor]:
    """A fresh random permutation of range(n) cut into batches; a trailing batch of one
    example is dropped (batch norm cannot train on it)."""
    perm = torch.randperm(n, generator=order)
    batches = list(perm.split(batch_size))
    return batches[:-1] if len(batches) > 1 and len(batches[-1]) < 2 else batches


class _Run:
    """The state of one run: model, update (optimisers), schedulers, data, log, best epoch."""

    def __init__(self, config: TrainConfig, resume: bool):
        from .attacks import PGD, AttackBudget
        from .methods import make_update

        self.config = config
        self.device = torch.device(config.device)
        no_tf32(self.device)  # float32 means float32 on a GPU too (bf16 runs use autocast)
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self.order = _seed_everything(config.seed)
        self.train_x, self.train_y, self.val_x, self.val_y = _load_data(config, self.device)
        self.spec = {"method": config.method, "model": config.model,
                     "num_classes": int(config.num_classes()),
                     "in_channels": int(self.train_x.shape[1]),
                     "model_kwargs": dict(config.model_kwargs)}
        self.model = build_run_model(self.spec).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.update = make_update(config.method, self.model, _optimizer_factory(config),
                                  config.hyper)
        self.optimizers = self.update.optimizers
        self.schedulers = {name: _scheduler(opt, config) for name, opt in self.optimizers.items()}
        self.budget = AttackBudget(config.train_eps, config.train_step_size, config.train_steps)
        self.val_attack = PGD(config.val_eps, config.val_step_size, config.val_steps)
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.start_epoch = 0
        self.sessions: list[dict] = []  # provenance of each process that trained this run
        if config.init_from is not None:
            init_weights_from(self.model, config.init_from)
        self._prepare_out_dir(resume)
        if self.start_epoch < config.epochs:  # a process that only loads a finished run trains nothing
            self.sessions.append({**provenance(config.device, "bfloat16" if config.bf16 else "float32"),
                                  "first_epoch": self.start_epoch + 1})
        if config.compile:
            self.model.compile()  # in place: state_dict names and the class are kept

    # -- files ---------------------------------------------------------------------
    def _prepare_out_dir(self, resume: bool) -> None:
        if self.out_dir is None:
            if resume:
                raise ConfigError("resume=True needs config.out_dir (the run to continue).")
            return
        make_folder(self.out_dir)
        last = self.out_dir / LAST
        if last.exists() and not resume:
            raise ConfigError(f"{self.out_dir} already holds a run ({LAST}); pass resume=True "
                              "to continue it, or choose a new out_dir.")
        if last.exists():
            self._restore(load_checkpoint(last))  # CPU: RNG states must stay on the CPU
        write_json_atomic(self.out_dir / "config.json", self.config.to_dict())

    def _restore(self, checkpoint: dict) -> None:
        """Continue from a last checkpoint: weights, optimisers, schedulers, RNG, log."""
        differing = self.config.differences(checkpoint["config"])
        if differing:
            raise ConfigError(f"cannot resume {self.out_dir}: the configuration differs in "
                              f"{differing}; use the saved config.json or a new out_dir.")
        self.model.load_state_dict(checkpoint["model"])
        optimizers, schedulers = _optimizer_states(checkpoint)
        if set(optimizers) != set(self.optimizers):
            raise ConfigError(f"{self.out_dir / LAST} holds the optimisers {sorted(optimizers)}, "
                              f"this method uses {sorted(self.optimizers)}; use a new out_dir.")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(optimizers[name])
            self.schedulers[name].load_state_dict(schedulers[name])
        _set_rng_state(checkpoint["rng"], self.order)
        self.history = list(checkpoint["history"])
        self.sessions = list(checkpoint.get("sessions", []))
        self.start_epoch = checkpoint["epoch"]
        self.best_epoch = checkpoint["best_epoch"]
        if self.best_epoch == self.start_epoch:  # the best file may predate a crash: rewrite
            self.best_state = _cpu_copy(self.model.state_dict())
            save_torch_atomic({"format": CHECKPOINT_FORMAT, "epoch": self.best_epoch,
                          "model_spec": self.spec, "config": self.config.to_dict(),
                          "model": self.best_state, "metrics": self.history[-1]},
                         self.out_dir / BEST)
        elif self.best_epoch is not None:
            best = load_checkpoint(self.out_dir / BEST)
            if best["epoch"] != self.best_epoch:
                raise ConfigError(f"{self.out_dir / BEST} holds epoch {best['epoch']}, the "
                                  f"log says the best epoch is {self.best_epoch}.")
            self.best_state = best["model"]

    def save(self) -> None:
        """Last checkpoint first, then (if this epoch is the best) the best checkpoint:
        a crash between the two is repaired on resume from the last one."""
        if self.out_dir is None:
            return
        epoch = len(self.history)
        common = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model_spec": self.spec,
                  "config": self.config.to_dict()}
        save_torch_atomic({**common, "model": self.model.state_dict(),
                      "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                      "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                      "rng": _rng_state(self.order),
                      "history": self.history, "best_epoch": self.best_epoch,
                      "sessions": self.sessions},
                     self.out_dir / LAST)
        if self.best_epoch == epoch:
            save_torch_atomic({**common, "model": self.best_state,
                          "metrics": self.history[-1]}, self.out_dir / BEST)
        if self.config.keep_every and epoch % self.config.keep_every == 0:
            save_torch_atomic({**common, "model": self.model.state_dict(),
                          "metrics": self.history[-1]}, self.out_dir / EPOCH.format(epoch))
        _write_metrics(self.out_dir, self.config, self.history, self.best_epoch, "running",
                       sessions=self.sessions)


def _optimizer_states(checkpoint: dict) -> tuple[dict, dict]:
    """({name: optimizer state}, {name: scheduler state}) of a last checkpoint; a format-1
    checkpoint held one optimiser, the ``all`` of a single-loss method."""
    if "optimizers" in checkpoint:
        return checkpoint["optimizers"], checkpoint["schedulers"]
    return {"all": checkpoint["optimizer"]}, {"all": checkpoint["scheduler"]}


def _cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


# ----------------------------------------------------------------------------- epochs
def ramped_budget(budget, ramp_epochs: float, progress: float):
    """``budget`` with eps scaled by min(1, progress / ramp_epochs), where ``progress`` is
    the epochs done by the end of this batch (e.g. 0.5 halfway through the first); the
    full budget when ``ramp_epochs`` is 0. Step size and steps are unchanged."""
    if ramp_epochs <= 0 or progress >= ramp_epochs:
        return budget
    return dataclasses.replace(budget, eps=budget.eps * progress / ramp_epochs)


def _train_epoch(run: _Run, epoch: int, bar) -> dict[str, float]:
    """One pass over the training set; returns the mean of every term (weighted by batch)."""
    config, sums, seen = run.config, {}, 0
    run.model.train()
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=config.bf16)
    batches = _batches(len(run.train_y), config.batch_size, run.order)
    for index, batch in enumerate(batches):
        budget = ramped_budget(run.budget, config.eps_ramp_epochs, epoch + (index + 1) / len(batches))
        batch = batch.to(run.device)
        images, labels = run.train_x[batch], run.train_y[batch]
        if config.resolved_augment():
            images = _augment(images, run.order)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        try:
            with autocast:
                terms = run.update(images, labels, budget)
        except NonFiniteLoss as error:
            raise _diverged(run, epoch, index, str(error), f"terms {error.terms}") from None
        bad = _non_finite_tensor(run.model)
        if bad is not None:
            raise _diverged(run, epoch, index, f"the weights became non-finite ({bad} holds NaN "
                            "or inf) after the step", f"the loss was finite: {terms['loss']:.4g}")
        value = terms["loss"]
        for name, term in terms.items():
            sums[name] = sums.get(name, 0.0) + term * len(labels)
        seen += len(labels)
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", refresh=False)
    return {f"train_{name}": total / seen for name, total in sums.items()}


def _non_finite_tensor(model: nn.Module) -> str | None:
    """The name of the first floating parameter or buffer holding a NaN or an infinity, or
    None (one reduction per tensor, one synchronisation)."""
    named = [(name, t) for name, t in (*model.named_parameters(), *model.named_buffers())
             if t.is_floating_point()]
    if not named:
        return None
    bad = torch.stack([~torch.isfinite(t.detach()).all() for _, t in named])
    return named[int(bad.nonzero()[0, 0])][0] if bool(bad.any()) else None


def _diverged(run: _Run, epoch: int, index: int, reason: str, detail: str) -> TrainingDiverged:
    """The :class:`TrainingDiverged` of batch ``index`` of ``epoch`` (0-based): where, why,
    what to do, and where the last good checkpoint is."""
    config = run.config
    kept = (f"The last good checkpoint (epoch {len(run.history)}) is in {run.out_dir}."
            if run.out_dir is not None and run.history else "No checkpoint was written.")
    return TrainingDiverged(
        f"{config.method}: {reason} at epoch {epoch + 1}, batch {index + 1} ({detail}); lower "
        f"the lr ({config.lr}) or the loss weights. {kept}",
        {"epoch": epoch + 1, "batch": index + 1, "reason": reason})


def _end_epoch(run: _Run, epoch: int, train_terms: dict, seconds: float) -> dict:
    """Step the schedule, validate, log, pick the best, checkpoint; return the log entry."""
    lr = next(iter(run.optimizers.values())).param_groups[0]["lr"]
    for scheduler in run.schedulers.values():
        scheduler.step()
    started = time.perf_counter()
    clean, robust = evaluate_accuracy(run.model, run.val_x, run.val_y, run.val_attack,
                                      run.config.eval_batch_size)
    entry = {"epoch": epoch + 1, "lr": lr, **train_terms, "val_clean_acc": clean,
             "val_robust_acc": robust, "seconds": seconds,
             "val_seconds": time.perf_counter() - started}
    run.history.append(entry)
    key = "val_robust_acc" if run.config.resolved_select_on() == "robust" else "val_clean_acc"
    best = None if run.best_epoch is None else run.history[run.best_epoch - 1]
    if best is None or (entry[key], entry["val_clean_acc"]) > (best[key], best["val_clean_acc"]):
        run.best_epoch, run.best_state = epoch + 1, _cpu_copy(run.model.state_dict())
    run.save()
    return entry


def _result(run: _Run) -> TrainResult:
    best_model = build_run_model(run.spec).to(run.device)
    best_model.load_state_dict(run.best_state)
    return TrainResult(config=run.config, model=run.model.eval(), best_model=best_model.eval(),
                       history=run.history, best=run.history[run.best_epoch - 1],
                       last=run.history[-1], out_dir=run.out_dir)


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train ``config.model`` with ``config.method``; see the module docstring.

    Args:
        config: the run (validated before anything else happens).
        resume: continue the run in ``config.out_dir`` from its last checkpoint (a run
            that finished is returned as it is); without a checkpoint there, start afresh.
    Raises:
        ConfigError: bad configuration, or ``out_dir`` holds another run.
        TrainingDiverged: a non-finite loss, or non-finite weights after a step;
            ``metrics.json`` says ``"diverged"``, with ``diverged_at`` (epoch, batch, reason).
    """
    config.validate()
    with _run_folder_lock(config, resume):
        run = _Run(config, resume)
        _train_epochs(run, config)
        _write_metrics(run.out_dir, config, run.history, run.best_epoch, "finished",
                       sessions=run.sessions)
        return _result(run)


@contextlib.contextmanager
def _run_folder_lock(config: TrainConfig, resume: bool):
    """An exclusive lock on ``out_dir`` while this process writes it (released by the
    kernel if the process dies). Resuming waits for another writer (a shared run another
    notebook is training is then loaded, not trained twice); a fresh run fails at once."""
    with contextlib.ExitStack() as stack:
        if config.out_dir is not None:
            try:
                stack.enter_context(folder_lock(config.out_dir, wait=None if resume else 0,
                                                name=TRAIN_LOCK))
            except FolderLocked as error:
                raise ConfigError(str(error)) from None
        yield


def _train_epochs(run: _Run, config: TrainConfig) -> None:
    from tqdm.auto import tqdm

    steps = len(_batches(len(run.train_y), config.batch_size, torch.Generator()))
    bar = tqdm(total=config.epochs * steps, initial=run.start_epoch * steps,
               disable=not config.progress, desc=f"{config.method}/{config.model}")
    def ended(status: str, error: BaseException, **extra) -> None:
        _write_metrics(run.out_dir, config, run.history, run.best_epoch, status,
                       f"{type(error).__name__}: {error}" if status != "diverged" else str(error),
                       sessions=run.sessions, **extra)
    try:
        for epoch in range(run.start_epoch, config.epochs):
            started = time.perf_counter()
            terms = _train_epoch(run, epoch, bar)
            _end_epoch(run, epoch, terms, time.perf_counter() - started)
    except TrainingDiverged as error:
        ended("diverged", error, diverged_at=error.where)
        raise
    except Exception as error:
        ended("failed", error)
        raise
    except KeyboardInterrupt as error:
        ended("interrupted", error)
        raise
    finally:
        bar.close()
