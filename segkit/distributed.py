"""torchrun support: process-group setup from the environment, DDP wrapping, and agreed decisions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "all_gather_objects",
    "any_across_ranks",
    "average_across_ranks",
    "broadcast_bool",
    "init_distributed",
    "process_device",
    "process_info",
    "shutdown_distributed",
    "unwrap",
    "wrap_model",
]


_OWNED_GROUP = False  # True while the process group is one init_distributed created (and so may destroy)


@dataclass
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, GPU ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group described by torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

    Uses NCCL when training on CUDA (each process on ``cuda:LOCAL_RANK``), gloo otherwise. Without
    those variables (or with ``WORLD_SIZE=1``) nothing is initialised. A group initialised by the
    caller is reused.

    Args:
        device: the device the Trainer resolved ("cuda" is pinned to the local rank).

    Returns:
        ``(info, device)``.
    """
    info = process_info()
    if not info.enabled:
        return info, device
    if not (dist.is_available() and dist.is_initialized()):
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
        global _OWNED_GROUP
        _OWNED_GROUP = True
    device = process_device(device, info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return info, device


def process_info() -> DistInfo:
    """This process's place, from an existing process group or torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
    without joining anything (``init_distributed`` joins)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def process_device(device: torch.device, info: DistInfo) -> torch.device:
    """``device`` pinned to this process's GPU under torchrun ("cuda" becomes ``cuda:LOCAL_RANK``)."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def shutdown_distributed() -> None:
    """Destroy the process group if ``init_distributed`` created it; a group the caller created is left alone.

    Called by ``segkit train`` when the run ends (also after an error): a gloo group still alive at interpreter
    exit can abort in its teardown (SIGABRT after the results are written), which torchrun reports as a failed
    job. Safe to call more than once and without a group.
    """
    global _OWNED_GROUP
    if _OWNED_GROUP and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED_GROUP = False


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """Wrap ``model`` in DDP when distributed (converting BatchNorm to SyncBatchNorm if ``sync_bn``)."""
    if not info.enabled:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def any_across_ranks(flag: torch.Tensor) -> torch.Tensor:
    """Logical OR of a boolean tensor over all ranks (a device op; no host sync)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = flag.to(torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value.bool()


def average_across_ranks(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over all ranks, in place (gradients whose DDP backward never ran)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for t in tensors:
        dist.all_reduce(t)
        t.div_(world)


def broadcast_bool(flag: bool, device: torch.device) -> bool:
    """Rank 0's value of ``flag`` on every rank (early stopping must stop every process together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (just ``[obj]`` when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
