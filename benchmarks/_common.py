"""Helpers shared by the benchmark scripts: the machine, round-robin timing, the matmul
limit, and one training step of a method (optionally channels_last / torch.compile).

Not a test module: the scripts in this folder are run on demand and print figures.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drrdn_lib import official_eval, zoo  # noqa: E402
from drrdn_lib.methods import make_update  # noqa: E402
from drrdn_lib.train import build_run_model  # noqa: E402

# name -> (method, hyperparameters); the DRRDN variants show what its options cost
VARIANTS = {
    "standard": ("standard", {}),
    "pgd_at": ("pgd_at", {}),
    "trades": ("trades", {"beta": 6.0}),
    "mart": ("mart", {"beta": 6.0}),
    "drrdn": ("drrdn", {}),
    "drrdn(no mi, no rec)": ("drrdn", {"lambda_mi": 0.0, "lambda_rec": 0.0}),
}

#: input shape (C, H, W) and training-set size (examples) per dataset
DATASETS = {"mnist5k": ((1, 28, 28), 3500), "mnist": ((1, 28, 28), 59000),
            "cifar10": ((3, 32, 32), 49000)}


def machine(threads: int, device: str = "cpu") -> dict:
    """CPU model, cores, torch version, threads, date and load average (1, 5, 15 min)."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": threads, "device": device,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "loadavg": [round(v, 2) for v in os.getloadavg()]}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def print_machine(info: dict) -> None:
    print("# " + ", ".join(f"{k}={v}" for k, v in info.items()))


def sync(device: str) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    """Seconds one call of ``fn`` takes (synchronised on CUDA)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def round_robin(cases: dict[str, Callable[[], object]], repeats: int, device: str = "cpu",
                warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each case, timed in turn (case 1, 2, ..., 1, 2, ...) so
    that load from other processes hits every case alike; ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_flops(n: int = 2048, repeats: int = 7, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> float:
    """Dense matmul FLOP/s in ``dtype`` (2 n^3 per product), median of ``repeats``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = round_robin({"mm": lambda: a @ b}, repeats, device, warmup=2)["mm"]
    return 2 * n ** 3 / seconds


def batch(dataset: str, batch_size: int, device: str = "cpu", seed: int = 0):
    """A synthetic batch (images uniform in [0, 1], random labels) of ``dataset``'s shape:
    speed and memory do not depend on pixel values."""
    gen = torch.Generator().manual_seed(seed)
    shape, _ = DATASETS[dataset]
    images = torch.rand(batch_size, *shape, generator=gen)
    labels = torch.randint(0, 10, (batch_size,), generator=gen)
    return images.to(device), labels.to(device)


def build(method: str, model: str, in_channels: int, device: str = "cpu",
          channels_last: bool = False, compile: bool = False) -> torch.nn.Module:
    """A freshly initialised (seed 0) model of ``method`` in train mode."""
    torch.manual_seed(0)
    spec = {"method": method, "model": model, "num_classes": 10, "in_channels": in_channels,
            "model_kwargs": {}}
    net = build_run_model(spec).to(device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile:
        net.compile()  # in place: keeps the class (DRRDN isinstance checks) and attributes
    return net


@contextlib.contextmanager
def _unfrozen(model):
    """Stand-in for ``attacks.frozen_parameters`` that leaves requires_grad alone (how
    the attacks ran before it was added)."""
    yield model


@contextlib.contextmanager
def attacks_unfrozen(enabled: bool = True):
    """Run attacks without freezing the parameters (to measure what freezing saves)."""
    from drrdn_lib import attacks, methods

    saved = attacks.frozen_parameters, methods.frozen_parameters
    if enabled:
        attacks.frozen_parameters = methods.frozen_parameters = _unfrozen
    try:
        yield
    finally:
        attacks.frozen_parameters, methods.frozen_parameters = saved


class Step:
    """One training step of a variant as the training loop takes it: the method's update
    (``methods.make_update``: its inner attack, backward passes and SGD steps; DRRDN's
    Algorithm 1 takes five), on a fixed model, batch and attack budget; with ``bf16`` under
    bfloat16 autocast as ``TrainConfig.bf16`` runs it (weights and optimiser float32)."""

    def __init__(self, variant: str, model: str, images, labels, budget, device: str = "cpu",
                 channels_last: bool = False, compile: bool = False, unfrozen: bool = False,
                 bf16: bool = False):
        self.method, self.hyper = VARIANTS[variant]
        self.unfrozen, self.bf16 = unfrozen, bf16
        self.device_type = torch.device(device).type
        self.model = build(self.method, model, images.shape[1], device, channels_last, compile)
        self.update = make_update(self.method, self.model, lambda groups: torch.optim.SGD(
            groups, lr=0.01, momentum=0.9), self.hyper)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.labels, self.budget = images, labels, budget

    def __call__(self) -> float:
        autocast = torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)
        with attacks_unfrozen(self.unfrozen), autocast:
            return self.update(self.images, self.labels, self.budget)["loss"]


class GlobalFlopCounter(FlopCounterMode):
    """``FlopCounterMode`` without its per-module tracker, whose backward hooks fail on
    ``torch.autograd.grad`` with respect to a leaf (what every attack calls); totals only."""

    def __enter__(self):
        self.flop_counts.clear()
        self.mode = _FlopCounterMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args):
        out, self.mode = self.mode.__exit__(*args), None
        return out


def count_flops(fn: Callable[[], object]) -> int:
    """Matmul and convolution FLOPs of one call of ``fn`` (a training step: the SGD update
    itself is not counted; an attack: its forward and input-gradient passes)."""
    with GlobalFlopCounter(display=False) as counter:
        fn()
    return counter.get_total_flops()


def add_zoo_arguments(p, model_name: str, examples: int, repeats: int) -> None:
    """The arguments of a benchmark on a zoo model and real digits: ``--model-name``,
    ``--examples``, ``--eps`` (MNIST's 0.3), ``--repeats``, ``--threads``."""
    p.add_argument("--model-name", default=model_name, help="a zoo model")
    p.add_argument("--examples", type=int, default=examples)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=1)


def zoo_model_and_digits(name: str, examples: int):
    """Zoo model ``name`` (eval mode, float32) and ``examples`` stratified official MNIST
    test digits (images, labels)."""
    images, labels, _ = official_eval.official_test_subset(examples)
    return zoo.load_pretrained(name), images, labels

