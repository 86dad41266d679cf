"""Shared fixtures: where the real MNIST/CIFAR-10 files are (``$DRRDN_DATA``)."""
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # the test models are tiny: one thread is faster, and robust to a busy machine


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder with mnist.npz and the CIFAR-10 npz files.

    Skipped when ``$DRRDN_DATA`` is unset locally; under ``CI=true`` a missing folder fails.
    """
    folder = os.environ.get("DRRDN_DATA")
    if folder and Path(folder, "mnist.npz").exists():
        return Path(folder)
    message = f"real data not found (DRRDN_DATA={folder!r}); set DRRDN_DATA=../shared/data"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
