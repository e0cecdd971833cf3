"""Gathering features across ranks for the batch-wide contrastive losses (CLIP, FILIP).

In one process (or without an initialised process group) everything here is the identity. Under
``torchrun`` each rank gathers every rank's features; only the local shard keeps its gradient (the other
shards are detached copies), as open_clip does with ``gather_with_grad=False``. Each rank then computes the
full-batch loss, and its backward reaches exactly the local features' share of the gradient. DDP averages
parameter gradients over ranks, which divides that share by the world size, so
:func:`scale_grad_for_ddp` multiplies the gradient (not the value) of a gathered loss by the world size:
the result equals the gradient of the full-batch loss on one process.
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
    parts[rank()] = x
    return torch.cat(parts, dim=0)


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


def scale_grad_for_ddp(loss: Tensor) -> Tensor:
    """Same value as ``loss``; gradient multiplied by the world size (see the module docstring)."""
    w = world_size()
    if w == 1:
        return loss
    return loss * w - loss.detach() * (w - 1)
