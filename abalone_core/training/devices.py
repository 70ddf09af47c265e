"""Where and how a run computes: seeding, deterministic kernels, devices, processes and mixed
precision. Used by :mod:`abalone_core.training.train` and the chapters that run a model (0, 3).
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.distributed as dist

from .config import Config


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (deterministic kernels: :func:`deterministic_mode`)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic_mode(flag: bool = True):
    """Deterministic torch algorithms (warning where an operation has none) inside the block
    when ``flag``; on leaving it, even by an exception, torch's previous setting and cuDNN's
    ``deterministic`` and ``benchmark`` flags are back, so a notebook kernel keeps its own."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if flag:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def init_distributed() -> tuple[int, int]:
    """(rank, world size). Starts the process group when launched by torchrun/accelerate
    (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


def check_device(name: str) -> torch.device:
    """:func:`resolve_device`, refusing a device this machine does not have (before any work)."""
    device = resolve_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                             "use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise ValueError(f"device={name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                             "choose one of them or device=auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r}: Apple's MPS is not available here; use device=cpu or device=auto")
    return device


def cpu_bf16_paths() -> list[str]:
    """Which native bfloat16 paths torch reports on this CPU: a sublist of ``["amx", "avx512_bf16"]``."""
    cpu = getattr(torch, "cpu", None)
    found = []
    for name, check in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        fn = getattr(cpu, check, None)
        try:
            if fn is not None and fn():
                found.append(name)
        except RuntimeError:  # a build without the check
            pass
    return found


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (AMX tiles or AVX512-BF16),
    as torch's own CPU checks report it; never guessed from the model name. Without either,
    bfloat16 autocast on a CPU is emulated and slower than float32."""
    return bool(cpu_bf16_paths())


def resolve_precision(mode: str, device: torch.device) -> str:
    """What ``mixed_precision=mode`` (``Config.mixed_precision``) means on ``device``: ``bf16``,
    ``fp16`` or ``no``.

    ``auto`` is bfloat16 on a GPU that supports it and on a CPU with AMX or AVX512-BF16
    (:func:`cpu_supports_bf16`), float16 with a gradient scaler on older GPUs, and float32
    everywhere else. The losses compute in float32 whatever the autocast
    (:mod:`abalone_core.method.losses`)."""
    if mode != "auto":
        return mode
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "no"


def autocast_for(config: Config, device: torch.device):
    """(context factory, needs GradScaler) for :func:`resolve_precision`'s choice."""
    mode = resolve_precision(config.mixed_precision, device)
    if mode == "no":
        return nullcontext, False
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), mode == "fp16"


__all__ = ["seed_everything", "deterministic_mode", "init_distributed", "resolve_device", "check_device",
           "autocast_for", "cpu_bf16_paths", "cpu_supports_bf16", "resolve_precision"]
