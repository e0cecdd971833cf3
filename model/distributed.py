"""Gathering features across ranks for the batch-wide contrastive losses (CLIP, FILIP).

In one process (or without an initialised process group) everything here is the identity. Under
``torchrun`` each rank gathers every rank's features; only the local shard keeps its gradient (the other
shards are detached copies), as open_clip does with ``gather_with_grad=False``. Each rank then computes the
full-batch loss, and its backward reaches exactly the local features' share of the gradient. DDP averages
parameter gradients over ranks, which would divide that share by the world size, so the local shard's
gradient (not its value) is multiplied by the world size inside the gather. Parameters used directly by the
full-batch loss (the learnable temperature) get the full-batch gradient on every rank, which DDP's average
leaves as it is. Both then equal the gradients of the full-batch loss on one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of ranks (1 without an initialised process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_with_local_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) from every rank along dim 0, in rank order -> (world * B, ...).

    Every rank must pass the same shape (pad first: :func:`pad_dim`). The local shard is ``x`` itself
    (gradients flow); other shards carry none. Identity in one process.
    """
    w = world_size()
    if w == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(w)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank()] = _times_in_grad(x, float(w)) if x.requires_grad else x
    return torch.cat(parts, dim=0)


def _times_in_grad(x: Tensor, factor: float) -> Tensor:
    """Same value as ``x``; the gradient flowing back through it is multiplied by ``factor``."""
    return x * factor - x.detach() * (factor - 1.0)


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` over all ranks (e.g. the number of sentence slots). Identity in one process."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], device=device, dtype=torch.long)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def pad_dim(x: Tensor, dim: int, size: int, value: float | bool = 0) -> Tensor:
    """Pad ``x`` with ``value`` along ``dim`` up to ``size`` (no-op when already that long)."""
    extra = size - x.shape[dim]
    if extra <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype, device=x.device)], dim=dim)


def broadcast_from_rank0(x: Tensor) -> Tensor:
    """Rank 0's value of ``x`` (a small CPU tensor) on every rank; identity in one process. Used for the
    random decisions that must agree across ranks (eCLIP's expert-batch draw)."""
    if world_size() == 1:
        return x
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = x.to(device).contiguous()
    dist.broadcast(t, src=0)
    return t.cpu()
