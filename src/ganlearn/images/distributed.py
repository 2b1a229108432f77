"""Data-parallel image training (``torchrun``): the process group, each rank's device, the
DDP wrapper, and the end-of-run check that every rank holds the same weights."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = ["world_rank", "init_distributed", "rank_device", "ddp_wrap", "replica_divergence"]


def world_rank() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (WORLD_SIZE > 1); a no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return world_rank()


def rank_device(device: str) -> str:
    """For entry points (the CLI, ``main_ddp``): under ``torchrun`` with ``device="cuda"``, this
    process's GPU ``cuda:$LOCAL_RANK``; otherwise ``device`` unchanged. Library code takes the
    device it is given and never reads the environment."""
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def ddp_wrap(module: torch.nn.Module, device: str) -> DistributedDataParallel:
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def replica_divergence(*modules: torch.nn.Module) -> float:
    """Max |parameter difference| between this rank and rank 0 over all ranks (0 = replicas in sync)."""
    flat = torch.cat([p.detach().flatten().float().cpu() for m in modules for p in m.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)
