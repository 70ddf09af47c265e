"""Where and with what a run was made: machine, device, package versions, source revision.

One implementation for every record (``metrics.json`` of a run, the rows of a sweep):

* :func:`hardware` (platform, Python, torch, CPU, host, the GPUs and the run's own device),
* :func:`versions` (the packages a run depends on),
* :func:`git_state` (revision of the source tree and whether it has uncommitted changes).
"""
from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of the packages a run depends on (None where not installed)."""
    from .. import __version__

    return {"abalone_core": __version__, "torch": _version("torch"), "transformers": _version("transformers"),
            "papermill": _version("papermill"), "python": platform.python_version()}


@functools.lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs from ``nvidia-smi`` (empty without one); no CUDA context made."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def _visible(gpus: tuple[str, ...]) -> list[str]:
    """The GPUs torch numbers cuda:0, cuda:1, ... (``CUDA_VISIBLE_DEVICES`` as integer ids)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(gpus)
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):  # UUIDs or MIG names: keep nvidia-smi's order
        return list(gpus)
    return [gpus[int(p)] for p in parts if int(p) < len(gpus)]


def _device_gpu(device: str) -> str | None:
    """Name of the GPU that ``device`` (``cuda`` or ``cuda:i``) names, or None."""
    index = int(device.split(":")[1]) if ":" in device else 0
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized() and index < torch.cuda.device_count():
            return torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001 - provenance must never stop a run
        pass
    visible = _visible(gpu_names())
    return visible[index] if index < len(visible) else None


def hardware(device: str | None = None) -> dict:
    """The machine of a run and the device it ran on.

    Args:
        device: the run's device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); None or ``auto``
            stands for what ``auto`` picks: the local rank's GPU if there is one, else the CPU.
    Returns:
        ``platform``, ``python``, ``torch``, ``abalone_core``, ``cpu_count``, ``cpu_threads``,
        ``cpu_capability`` (the vector instruction set of torch's CPU kernels, e.g. ``AVX512``),
        ``host``, ``gpus`` (every GPU of the machine), ``device`` (the run's, resolved) and
        ``gpu`` (the name of the run's GPU; None for a CPU run, even on a GPU machine).
    """
    from .. import __version__

    gpus = gpu_names()
    try:
        import torch

        threads = torch.get_num_threads()
        cuda = torch.cuda.is_available()
        # CPUs of different vector widths round differently, so a run repeated on another
        # machine can drift from its record over many steps; this says which kernels ran.
        capability = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        threads, cuda, capability = None, False, None
    if device in (None, "auto"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if (cuda or gpus) else "cpu"
    device = str(device)
    gpu = _device_gpu(device) if device.startswith("cuda") else None
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": _version("torch"),
            "abalone_core": __version__, "cpu_count": os.cpu_count(), "cpu_threads": threads,
            "cpu_capability": capability, "host": socket.gethostname(), "gpus": list(gpus), "device": device,
            "gpu": gpu}


def git_state(folder: str | Path) -> tuple[str | None, bool | None]:
    """(``git rev-parse HEAD``, whether tracked files differ from it) for the repository
    holding ``folder``; (None, None) outside a repository or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return revision, dirty


__all__ = ["hardware", "versions", "git_state", "gpu_names"]
