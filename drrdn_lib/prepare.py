"""Convert the official MNIST / CIFAR-10 archives into this project's npz files, verified.

Download the official files yourself (nothing here downloads), then::

    python -m drrdn_lib.prepare mnist   --source DIR_WITH_IDX_FILES      [--out data/]
    python -m drrdn_lib.prepare cifar10 --source DIR/cifar-10-batches-py [--out data/]
    python -m drrdn_lib.prepare mnist-test --source "$DRRDN_DATA"        [--out data/]
    python -m drrdn_lib.prepare verify  --source data/

``mnist-test`` writes ``mnist_test.npz``, the official test split alone (the file the
repository ships), from a folder holding ``mnist.npz`` or the four IDX files (set
DRRDN_DATA to the folder holding mnist.npz).

Every array's content SHA-256 is checked against the official data's (the table in
data/README.md) before anything is written; a mismatch writes nothing. Each
file is written atomically (:mod:`drrdn_lib.files`): a kill or a full disk during the
write leaves the previous file as it was.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .data_files import (CIFAR_NPZ, MNIST_IDX, MNIST_NPZ, MNIST_TEST_NPZ, DataError,
                         check_arrays, read_cifar_batches, read_idx, read_mnist_test, read_raw,
                         verify_arrays)
from .files import save_npz_atomic


def read_official(name: str, source: Path) -> dict[str, np.ndarray]:
    """Read the official format: MNIST IDX files (optionally .gz) or ``cifar-10-batches-py``."""
    if name == "mnist":
        arrays = {key: read_idx(source / stem) for key, stem in MNIST_IDX.items()}
    else:
        folder = source if (source / "data_batch_1").exists() else source / "cifar-10-batches-py"
        arrays = read_cifar_batches(folder)
    check_arrays(name, arrays, source)
    return arrays


def write_npz(name: str, arrays: dict[str, np.ndarray], out: Path) -> list[Path]:
    """Write the verified arrays in the layout of ../shared/data (CIFAR-10 train split in two).

    Each file is replaced atomically; the CIFAR-10 parts one after another (a failure
    between two of them leaves a mix of old and new parts, each whole, which the
    content hashes of :func:`verify_folder` and ``load_dataset`` then catch).
    """
    if name == "mnist":
        return [save_npz_atomic(out / MNIST_NPZ, arrays)]
    half = len(arrays["y_train"]) // 2
    parts = [{"x_train": arrays["x_train"][:half], "y_train": arrays["y_train"][:half]},
             {"x_train": arrays["x_train"][half:], "y_train": arrays["y_train"][half:]},
             {"x_test": arrays["x_test"], "y_test": arrays["y_test"]}]
    return [save_npz_atomic(out / filename, part) for filename, part in zip(CIFAR_NPZ, parts)]


def prepare(name: str, source: Path, out: Path) -> list[Path]:
    """Read, verify and write one dataset; returns the files written."""
    arrays = read_official(name, source)
    verify_arrays(name, arrays, source)
    return write_npz(name, arrays, out)


TEST_KEYS = ("x_test", "y_test")


def prepare_mnist_test(source: Path, out: Path) -> Path:
    """Write ``out/mnist_test.npz`` (``x_test``, ``y_test``; ``np.savez_compressed``) from
    the full MNIST in ``source`` (``mnist.npz`` or the IDX files), hashes verified first."""
    arrays = {k: v for k, v in read_raw("mnist", source).items() if k in TEST_KEYS}
    verify_arrays("mnist", arrays, source, keys=TEST_KEYS)
    return save_npz_atomic(out / MNIST_TEST_NPZ, arrays)


def verify_folder(folder: Path) -> dict[str, str]:
    """Check the npz files present in ``folder``; returns ``{dataset: "ok" | reason}``
    (``mnist_test`` too when ``mnist_test.npz`` is there)."""
    status = {}
    for name in ("mnist", "cifar10"):
        try:
            verify_arrays(name, read_raw(name, folder), folder)
            status[name] = "ok"
        except DataError as err:
            status[name] = str(err)
    if (folder / MNIST_TEST_NPZ).exists():
        try:
            arrays = read_mnist_test(folder / MNIST_TEST_NPZ)
            verify_arrays("mnist", arrays, folder / MNIST_TEST_NPZ, keys=TEST_KEYS)
            status["mnist_test"] = "ok"
        except DataError as err:
            status["mnist_test"] = str(err)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10", "mnist-test", "verify"])
    parser.add_argument("--source", type=Path, required=True,
                        help="folder with the official files (mnist-test: with mnist.npz)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    args = parser.parse_args(argv)
    try:
        if args.dataset == "verify":
            status = verify_folder(args.source)
            for name, state in status.items():
                print(f"{name}: {state}")
            return 0 if all(s == "ok" for s in status.values()) else 1
        if args.dataset == "mnist-test":
            path = prepare_mnist_test(args.source, args.out)
            print(f"wrote {path} (x_test, y_test verified against the official SHA-256)")
            return 0
        for path in prepare(args.dataset, args.source, args.out):
            print(f"wrote {path} (content verified against the official SHA-256)")
        return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
