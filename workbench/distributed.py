"""Data-parallel helpers for `torchrun`: which process this is, the process group, and agreement checks.

Launched by `torchrun --nproc_per_node=N -m workbench train ...` (WORLD_SIZE > 1), training runs one process per
rank: NCCL on CUDA, gloo on CPU. Rank 0 writes the run folder; every rank trains its share of each epoch. Outside
torchrun every helper here is a no-op, so the engine calls them unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.utils import get_device, unwrap_model


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a data-parallel job (the defaults: a single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder, validates and tests."""
        return self.rank == 0


def init_distributed(device_pref: str) -> tuple[DistInfo, torch.device]:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), get_device(device_pref)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = get_device(device_pref)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank), device


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module the training step calls: `model` in DistributedDataParallel when data-parallel, else `model`."""
    if not info.enabled:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank (e.g. the run folder it chose); `obj` itself when not data-parallel."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    holder = [obj if info.main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when not data-parallel)."""
    if info.enabled:
        torch.distributed.barrier()


def shutdown(info: DistInfo) -> None:
    """Wait for every rank, then end the process group (no-op when not data-parallel)."""
    if info.enabled:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def replica_checksums(model: nn.Module) -> list[float]:
    """Sum of all parameters on every rank (gathered): equal values mean the replicas agree."""
    import torch.distributed as dist

    local = torch.tensor([sum(float(p.detach().double().sum()) for p in unwrap_model(model).parameters())])
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [float(g) for g in gathered]
