"""The model zoo: trained weights, each with a card saying how it was trained and what it
scored on the official MNIST test set (the idea of RobustBench's zoo, at this project's scale).

    from drrdn_lib import zoo
    zoo.available()                        # names of the installed models, sorted
    zoo.card("drrdn")                      # its card (a dict; zoo/drrdn.json)
    model = zoo.load_pretrained("drrdn")   # nn.Module, eval mode, float32
    zoo.add_to_zoo("results/runs/mnist/drrdn-0123456789", "drrdn",
                   command="python scripts/train_main_runs.py ...", eval_limit=1000)
    zoo.verify_card("drrdn", limit=200)    # does a re-evaluation agree with the card?
    run = zoo.training_run("drrdn")        # the same model as a finished TrainResult

The folder: the ``zoo_dir`` argument, else ``$DRRDN_ZOO``, else ``zoo/`` in the repository.
Each model is two files there:

- ``<name>.pt``: ``{"format", "model_spec", "state_dict"}`` with float32 tensors, what
  ``train.build_run_model(model_spec)`` and ``load_state_dict`` need (for DRRDN the whole
  network: disentanglers, MINE and reconstructor, which notebooks 03-05 use); at most
  :data:`MAX_WEIGHTS_BYTES`;
- ``<name>.json``: the card: ``name``, ``method``, ``model``, ``dataset`` (trained on),
  ``weights`` (file, SHA-256, bytes, parameters, epoch), ``training`` (the run's full
  TrainConfig, the command that trained it, the commit and provenance of every process
  that trained it, the learning curve) and ``evaluation``
  (:func:`drrdn_lib.official_eval.evaluate_official`: test subset, attacks, accuracies
  with 95% Wilson intervals).

A model trained elsewhere (:func:`add_external`, e.g. the TRADES authors' published MNIST
SmallCNN) has ``source`` in place of ``training``: where the weights came from (repository,
commit, path, licence, the original file's SHA-256, what its authors say of the recipe) and
how its tensors were mapped onto this library's network. Such a model has no training run
here: :func:`training_run` refuses it, and notebooks that look models up by their training
configuration (``experiments.zoo_run``) never match it.

:func:`add_to_zoo` evaluates and builds the whole card (weights serialised in memory,
their SHA-256, the training record) before writing anything; both files are then written
beside the old ones (``.<name>.pt.new``, ``.<name>.json.new``) and moved into place,
weights first, card last. A failure before the moves leaves the old model as it was; a
process killed between the two moves leaves a pending card that matches the new weights,
and the next read of the zoo completes the move (:func:`_finish_pending`). So a failed
``overwrite=True`` never destroys the model it was to replace. :func:`load_pretrained`
checks the weights' SHA-256 against the card and loads with ``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from .files import make_folder, write_bytes_atomic, write_json_atomic
from .results import REPO_ROOT, repo_relative

__all__ = ["ZooError", "zoo_folder", "available", "card", "load_pretrained", "training_run",
           "add_to_zoo", "add_external", "is_external", "summary", "verify_card", "MAX_WEIGHTS_BYTES"]

WEIGHTS_FORMAT = 1
CARD_FORMAT = 1
MAX_WEIGHTS_BYTES = 16 * 2 ** 20  # 16 MiB: a DRRDN SmallCNN is 15.4 MiB
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ADD_HINT = "add one with `python scripts/add_to_zoo.py RUN_DIR NAME --command ...`"


class ZooError(ValueError):
    """An unknown model name, or a zoo file that is missing, corrupt or inconsistent."""


def zoo_folder(zoo_dir: str | os.PathLike | None = None) -> Path:
    """The zoo's folder: ``zoo_dir``, else ``$DRRDN_ZOO``, else the repository's ``zoo/``."""
    if zoo_dir is not None and not isinstance(zoo_dir, (str, os.PathLike)):
        raise ZooError(f"zoo_dir={zoo_dir!r} must be a folder path (str or Path) or None.")
    return Path(zoo_dir or os.environ.get("DRRDN_ZOO") or REPO_ROOT / "zoo").expanduser()


def _existing_folder(zoo_dir: str | os.PathLike | None) -> Path | None:
    """The zoo's folder; ZooError when a folder named by ``zoo_dir`` or ``$DRRDN_ZOO`` is not
    one (a mistyped path must not read as an empty zoo); None for a missing default."""
    folder = zoo_folder(zoo_dir)
    if folder.is_dir():
        return folder
    if zoo_dir or os.environ.get("DRRDN_ZOO"):
        source = "zoo_dir" if zoo_dir else "$DRRDN_ZOO"
        what = "is a file" if folder.exists() else "does not exist"
        raise ZooError(f"the zoo folder {folder} ({source}) {what}; give the folder that holds "
                       f"the <name>.pt and <name>.json files (default: {REPO_ROOT / 'zoo'}).")
    return None


def available(zoo_dir: str | os.PathLike | None = None) -> list[str]:
    """The names of the models whose card is in the zoo, sorted ([] when the default zoo/
    is missing; :class:`ZooError` when a folder given by ``zoo_dir`` or ``$DRRDN_ZOO`` is)."""
    folder = _existing_folder(zoo_dir)
    if folder is None:
        return []
    for pending in folder.glob(".*.json.new"):
        _finish_pending(folder, pending.name[1:-len(".json.new")])
    return sorted(p.stem for p in folder.glob("*.json"))


def card(name: str, zoo_dir: str | os.PathLike | None = None) -> dict:
    """The card of model ``name`` (see the module docstring)."""
    names = available(zoo_dir)  # also completes a pending install
    if name not in names:
        raise ZooError(f"no model {name!r} in the zoo ({zoo_folder(zoo_dir)}); available: "
                       f"{names or 'none'}" + ("." if names else f"; {ADD_HINT}."))
    path = zoo_folder(zoo_dir) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZooError(f"the card {path} cannot be read ({error}); restore it (git checkout -- "
                       f"{path.name}) or add the model again.") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pending(folder: Path, name: str) -> tuple[Path, Path]:
    """The staged weights and card of ``name`` (written beside the installed files)."""
    return folder / f".{name}.pt.new", folder / f".{name}.json.new"


def _finish_pending(folder: Path, name: str) -> None:
    """Complete an install that a dead process left between its two moves: a pending card
    whose SHA-256 is that of the installed weights goes into place. Other pending files
    (an install under way, or one that died before its moves) are left to the next
    :func:`add_to_zoo` of that name, which writes over them."""
    weights, card_path = _pending(folder, name)
    try:
        info = json.loads(card_path.read_text())
        installed = folder / info["weights"]["file"]
        done = not weights.exists() and installed.is_file() and _sha256(installed) == info["weights"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        done = False
    if done:
        os.replace(card_path, folder / f"{name}.json")


def _install(folder: Path, name: str, weights: bytes, info: dict) -> None:
    """Write ``<name>.pt`` and ``<name>.json`` beside the old ones, then move them into
    place, weights first, card last (the module docstring). On a failure before the moves
    the staged files are removed and the old model is untouched."""
    staged_weights, staged_card = _pending(folder, name)
    try:
        write_bytes_atomic(staged_weights, weights)
        write_json_atomic(staged_card, info)
    except BaseException:
        staged_weights.unlink(missing_ok=True)
        staged_card.unlink(missing_ok=True)
        raise
    os.replace(staged_weights, folder / info["weights"]["file"])
    os.replace(staged_card, folder / f"{name}.json")


def load_pretrained(name: str, device: str | torch.device = "cpu",
                    zoo_dir: str | os.PathLike | None = None) -> nn.Module:
    """Model ``name`` of the zoo with its weights, float32, in eval mode on ``device``.

    Raises :class:`ZooError` for an unknown name (listing the available ones) and for a
    weights file that is missing, differs from the card's SHA-256, or cannot be loaded."""
    from .train import build_run_model

    info = card(name, zoo_dir)
    path = zoo_folder(zoo_dir) / info["weights"]["file"]
    if not path.is_file():
        raise ZooError(f"the weights of {name!r} ({path}) are missing; restore the file (git "
                       f"checkout -- {path.name}) or add the model again.")
    if _sha256(path) != info["weights"]["sha256"]:
        raise ZooError(f"the weights of {name!r} ({path}) are corrupt: their SHA-256 is not the "
                       "card's; restore the file (git checkout) or add the model again.")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = build_run_model(saved["model_spec"])
        model.load_state_dict(saved["state_dict"])
    except Exception as error:  # noqa: BLE001 - any failure here means an unusable file
        raise ZooError(f"the weights of {name!r} ({path}) cannot be loaded ({type(error).__name__}: "
                       f"{error}); add the model again with this code version.") from None
    return model.float().to(device).eval()


def training_run(name: str, device: str | torch.device = "cpu",
                 zoo_dir: str | os.PathLike | None = None):
    """Model ``name`` of the zoo as the finished run that trained it
    (:class:`drrdn_lib.train.TrainResult`), so that code written for training runs (the
    notebooks' tables, :func:`drrdn_lib.experiments.learning_curves`) reads zoo models.

    Only the best epoch's weights travel with the zoo: ``model`` and ``best_model`` are the
    same module. ``config`` is the run's TrainConfig (its ``out_dir`` names the folder it was
    trained in, on the machine that trained it; ``out_dir`` of the result is None);
    ``history`` the card's learning curve (per epoch: ``epoch``, ``lr``, ``train_loss``,
    ``val_clean_acc``, ``val_robust_acc``, ``seconds``)."""
    from .train import TrainResult
    from .train_config import config_from_dict

    info = card(name, zoo_dir)
    if is_external(info):
        raise ZooError(f"{name!r} was trained elsewhere ({info['source']['repository']}): it has "
                       "no training run here; load its weights with zoo.load_pretrained.")
    model = load_pretrained(name, device, zoo_dir)
    curve = info["training"]["learning_curve"]
    history = curve["per_epoch"]
    best = next(h for h in history if h["epoch"] == curve["best_epoch"])
    return TrainResult(config=config_from_dict(info["training"]["config"], recorded=True), model=model,
                       best_model=model, history=history, best=best, last=history[-1], out_dir=None,
                       source=f"zoo/{info['weights']['file']}")


# ----------------------------------------------------------------------------- adding
def _read_run(run_dir: Path, allow_unfinished: bool) -> tuple[dict, dict, dict]:
    """(best checkpoint, config dict, metrics dict) of a training run folder."""
    from .train import BEST, load_checkpoint

    for needed in (BEST, "metrics.json", "config.json"):
        if not (run_dir / needed).is_file():
            raise ZooError(f"{run_dir} has no {needed}: point at a run folder written by "
                           "drrdn_lib.train (results/runs/<dataset>/<method>-<hash>).")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("status") != "finished" and not allow_unfinished:
        raise ZooError(f"the run in {run_dir} is {metrics.get('status')!r} ({metrics.get('epochs_done')} "
                       f"of {metrics.get('epochs')} epochs); wait until it finishes, or pass "
                       "allow_unfinished=True (--allow-unfinished) to add its best epoch so far.")
    if not metrics.get("provenance"):
        raise ZooError(f"{run_dir / 'metrics.json'} records no provenance (commit, software, "
                       "machine), so a card could not say where the model came from; train the "
                       "run with the current code (drrdn_lib.train records it).")
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("dataset") not in ("mnist", "mnist5k"):
        raise ZooError(f"the zoo holds MNIST models (evaluated on the official MNIST test set); "
                       f"this run trained on {config.get('dataset')!r}.")
    return load_checkpoint(run_dir / BEST), config, metrics


def _training_record(run_dir: Path, config: dict, metrics: dict, command: str) -> dict:
    """How the run was trained: configuration, command, commits, provenance, learning curve."""
    from .data import VAL_SIZE
    from .train_config import config_from_dict

    sessions = metrics.get("provenance") or []
    history, best = metrics["history"], metrics["best"]
    select = config_from_dict(config, recorded=True).resolved_select_on()
    keep = ("epoch", "lr", "train_loss", "val_clean_acc", "val_robust_acc", "seconds")
    return {
        "command": command,
        "run_dir": str(repo_relative(run_dir)),
        "config": config, "status": metrics.get("status"),
        "commit": sessions[0]["commit"],
        "commits": sorted({s["commit"] for s in sessions}),
        "provenance": sessions, "wall_seconds": metrics.get("wall_seconds"),
        "learning_curve": {
            "epochs": config["epochs"], "epochs_done": len(history), "best_epoch": best["epoch"],
            "selected_on": f"validation {'PGD' if select == 'robust' else 'clean'} accuracy",
            "val_clean_acc": best["val_clean_acc"], "val_robust_acc": best["val_robust_acc"],
            "val_n": config.get("val_limit") or VAL_SIZE.get(config["dataset"]),
            "val_attack": {"name": "pgd", "eps": config["val_eps"],
                           "step_size": config["val_step_size"], "steps": config["val_steps"]},
            "per_epoch": [{k: h.get(k) for k in keep} for h in history]},
    }


def _weights(name: str, spec: dict, state: dict) -> tuple[nn.Module, bytes, dict]:
    """(the model with ``state`` loaded, the serialised weights file, the card's ``weights``
    entry without its checkpoint fields) for zoo model ``name``; a :class:`ZooError` above
    :data:`MAX_WEIGHTS_BYTES`."""
    from .train import build_run_model

    size = sum(v.numel() * v.element_size() for v in state.values())
    if size > MAX_WEIGHTS_BYTES:
        raise ZooError(f"{name}: {size / 2 ** 20:.1f} MiB of weights, more than the zoo's "
                       f"{MAX_WEIGHTS_BYTES / 2 ** 20:.0f} MiB per model (files live in git).")
    model = build_run_model(spec)
    model.load_state_dict(state)
    buffer = io.BytesIO()
    torch.save({"format": WEIGHTS_FORMAT, "model_spec": spec, "state_dict": state}, buffer)
    weights = buffer.getvalue()
    return model, weights, {"file": f"{name}.pt", "sha256": hashlib.sha256(weights).hexdigest(),
                            "bytes": len(weights), "dtype": "float32",
                            "parameters": sum(p.numel() for p in model.parameters())}


def add_to_zoo(run_dir: str | os.PathLike, name: str, *, command: str, eval_limit: int | None,
               seed: int = 0, attack_steps=None, zoo_dir: str | os.PathLike | None = None,
               device: str = "cpu", batch_size: int = 256, allow_unfinished: bool = False,
               overwrite: bool = False, progress: bool = False) -> dict:
    """Add the best checkpoint of the training run in ``run_dir`` to the zoo as ``name``.

    Args:
        command: the command that trained the run (recorded on the card).
        eval_limit: official test digits to evaluate on (stratified, drawn by ``seed``);
            None: all 10,000.
        attack_steps: None for the paper's PGD/CW-40 and -100; (a, b) for a reduced
            evaluation (keys ``pgd<a>`` ..., never the paper's names).
        device: where to evaluate (float32 either way); the weights are stored on the CPU.
        allow_unfinished: add a run that has not finished (its best epoch so far).
        overwrite: replace a model of the same name.
    Returns the card (also written to ``<zoo>/<name>.json``).
    """
    from .official_eval import evaluate_official

    folder = zoo_folder(zoo_dir)
    _check_name(name, folder, overwrite)
    if not isinstance(command, str) or not command.strip():
        raise ZooError("command must say how the run was trained (e.g. 'python "
                       "scripts/train_main_runs.py notebooks/params/02_main_results/cpu.yaml').")
    run_dir = Path(run_dir)
    checkpoint, config, metrics = _read_run(run_dir, allow_unfinished)
    state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in checkpoint["model"].items()}
    model, weights, entry = _weights(name, checkpoint["model_spec"], state)
    training = _training_record(run_dir, config, metrics, command)  # checked before the hours of evaluation
    evaluation = evaluate_official(model.to(device), limit=eval_limit, seed=seed,
                                   attack_steps=attack_steps, batch_size=batch_size,
                                   progress=progress)
    from .experiments import MODEL_LABELS
    info = {
        "format": CARD_FORMAT, "name": name, "method": config["method"],
        "method_label": MODEL_LABELS.get(config["method"], config["method"]),
        "model": config["model"], "dataset": config["dataset"],
        "weights": {**entry, "checkpoint": "best", "epoch": int(checkpoint["epoch"])},
        "training": training,
        "evaluation": evaluation,
    }
    make_folder(folder)
    _install(folder, name, weights, info)
    return info


def is_external(info: dict) -> bool:
    """Whether a card describes weights trained elsewhere (``source``, no ``training``)."""
    return "source" in info and "training" not in info


def summary(info: dict) -> dict:
    """One row about a card for tables: where it was trained, its kept epoch, validation
    accuracies, test digits and PGD-40 of its own evaluation, and the commit (ours or the
    source's)."""
    pgd = info["evaluation"]["results"]["pgd40"]
    n = info["evaluation"]["subset"]["n"]
    row = {"test digits": n, "PGD-40 (card)": f"{100 * pgd['accuracy']:.1f}% "
                                                f"[{100 * pgd['lo']:.1f}, {100 * pgd['hi']:.1f}]"}
    if is_external(info):
        return {"trained": f"elsewhere: {info['source']['repository']}", "kept epoch": "published",
                "val clean / PGD": "not recorded", **row, "commit": info["source"]["commit"][:10]}
    curve = info["training"]["learning_curve"]
    return {"trained": f"{info['dataset']}, {curve['epochs_done']} epochs",
            "kept epoch": curve["best_epoch"],
            "val clean / PGD": f"{curve['val_clean_acc']:.3f} / {curve['val_robust_acc']:.3f}",
            **row, "commit": info["training"]["commit"][:10]}


def _check_name(name: str, folder: Path, overwrite: bool) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ZooError(f"name={name!r}: use lower-case letters, digits, '_', '.', '-' (at most 64, "
                       "e.g. 'drrdn_smallcnn_mnist').")
    if (folder / f"{name}.json").exists() and not overwrite:
        raise ZooError(f"the zoo ({folder}) already has {name!r}; pass overwrite=True "
                       "(--overwrite) to replace it, or choose another name.")


def add_external(weights_file: str | os.PathLike, name: str, *, method: str, label: str,
                 source: dict, eval_limit: int | None, model: str = "smallcnn",
                 model_kwargs: dict | None = None, seed: int = 0,
                 zoo_dir: str | os.PathLike | None = None, device: str = "cpu",
                 batch_size: int = 256, overwrite: bool = False, progress: bool = False) -> dict:
    """Add a state dict trained elsewhere as zoo model ``name``, evaluated as every zoo model.

    ``weights_file``: a PyTorch state dict (read with ``weights_only=True``) whose tensors
    are, in order, this library's ``model`` (``models.build_model(model, **model_kwargs)``)
    with equal shapes: they are mapped by position, and any difference in count or shape is
    an error. ``method``: the training method its authors used (e.g. ``"trades"``);
    ``label``: how tables name it. ``source``: ``repository``, ``commit``, ``path``,
    ``licence`` and ``recipe`` (what the authors say of its training), all required; the
    original file's SHA-256 and the key mapping are added. Returns the card."""
    from .official_eval import evaluate_official
    from .train import build_run_model

    folder = zoo_folder(zoo_dir)
    _check_name(name, folder, overwrite)
    missing = [k for k in ("repository", "commit", "path", "licence", "recipe") if not source.get(k)]
    if missing:
        raise ZooError(f"source must say {missing} (where the weights come from and under what licence).")
    weights_file = Path(weights_file)
    theirs = torch.load(weights_file, map_location="cpu", weights_only=True)
    spec = {"method": method, "model": model, "num_classes": 10, "in_channels": 1,
            "model_kwargs": dict(model_kwargs or {})}
    mine = build_run_model(spec).state_dict()
    shapes = ([tuple(v.shape) for v in theirs.values()], [tuple(v.shape) for v in mine.values()])
    if shapes[0] != shapes[1]:
        raise ZooError(f"{weights_file}: its {len(theirs)} tensors {shapes[0]} do not map by position "
                       f"onto {model}'s {len(mine)} {shapes[1]}.")
    state = {k: v.float().contiguous() for k, v in zip(mine, theirs.values())}
    net, weights, entry = _weights(name, spec, state)
    evaluation = evaluate_official(net.to(device), limit=eval_limit, seed=seed,
                                   batch_size=batch_size, progress=progress)
    info = {
        "format": CARD_FORMAT, "name": name, "method": method, "method_label": label,
        "model": model, "dataset": "mnist",
        "weights": {**entry, "checkpoint": "published", "epoch": None},
        "source": {**source, "sha256": _sha256(weights_file),
                   "key_map": {a: b for a, b in zip(theirs, mine)}},
        "evaluation": evaluation,
    }
    make_folder(folder)
    _install(folder, name, weights, info)
    return info


def verify_card(name: str, *, limit: int = 200, columns=("clean", "pgd40"),
                zoo_dir: str | os.PathLike | None = None, device: str = "cpu") -> list[dict]:
    """Re-evaluate zoo model ``name`` on ``limit`` of its card's test digits with the card's
    attack configurations; one row per column with ``agrees`` (the card's accuracy lies in
    the re-evaluation's 95% Wilson interval; the statistics: ``official_eval.recheck``)."""
    from .official_eval import recheck

    info = card(name, zoo_dir)
    model = load_pretrained(name, device, zoo_dir)
    rows = recheck(model, info["evaluation"], limit=limit, columns=columns)
    return [{"name": name, **row} for row in rows]
