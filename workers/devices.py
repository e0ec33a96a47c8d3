"""Where a task trains, and with how many CPU threads."""

from __future__ import annotations

import os

import torch


def select_device() -> torch.device:
    """CUDA when this worker process sees a GPU (pin it with CUDA_VISIBLE_DEVICES), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def configure_determinism(device: torch.device) -> None:
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def set_threads(threads: int) -> None:
    """The job's recorded thread count: the same count on every try keeps the bits the same."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def default_threads(shards: int) -> int:
    """Cores per concurrent shard on this machine, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, shards))
