"""Distributed helpers for ``torchrun`` (single node or multi-node): init from env vars, rank queries, reductions.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything runs as a single process and these
functions are no-ops. The backend is NCCL on GPUs and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, local rank on its node, world size, and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_dist() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in single-process runs): the process that logs and writes files."""
    return get_rank() == 0


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Initialises ``torch.distributed`` from the variables ``torchrun`` sets (RANK, LOCAL_RANK, WORLD_SIZE, ...).

    Args:
        device: ``"cuda"`` or ``"cpu"``; default CUDA when available.
        backend: Process-group backend; default ``nccl`` for CUDA, ``gloo`` for CPU.

    Returns:
        This process's :class:`DistInfo`; a single-process one when not launched by ``torchrun``.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=f"{device}:0" if device == "cuda" else device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not is_dist():
        dist.init_process_group(backend or ("nccl" if device.startswith("cuda") else "gloo"))
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=device)


def cleanup() -> None:
    """Destroys the process group if one is initialised."""
    if is_dist():
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """Mean of a scalar over all processes (the value itself in single-process runs)."""
    if not is_dist():
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.as_tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / get_world_size()


def broadcast_object(obj: object, src: int = 0) -> object:
    """``obj`` of rank ``src`` on every process (identity in single-process runs)."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
