"""Process-group set-up for ``torchrun`` (DDP): NCCL on GPUs, gloo on CPUs; a single process otherwise.

``torchrun --nproc_per_node 2 -m radgaze.training.cli SESSIONS --out RUN`` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT (a plain ``radgaze train`` sets none: one process); :func:`init_distributed` reads
them. Multi-node works the same way (torchrun's rendezvous); nothing here is home-made beyond reading the
environment.
The losses' cross-rank all-gather lives with the losses in :mod:`radgaze.model.distributed`.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from radgaze.capture.base.errors import DeviceError

# A stuck peer should fail a run, not hang it forever (30 min is torch's own default for NCCL).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None when not distributed

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:LOCAL_RANK if CUDA is available else cpu; ``cuda`` without CUDA raises DeviceError."""
    if preference not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"invalid device {preference!r}: expected auto, cpu or cuda")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was requested but CUDA is not available on this machine")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def init_distributed(preference: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (or run alone when it does not)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, device, None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
    return DistContext(tdist.get_rank(), tdist.get_world_size(), local_rank, device, backend)


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        tdist.barrier()


def all_reduce_mean(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of ``x`` over ranks (a copy; ``x`` itself is untouched)."""
    y = x.detach().clone()
    if ctx.distributed:
        tdist.all_reduce(y, op=tdist.ReduceOp.SUM)
        y /= ctx.world_size
    return y


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]
