"""eCLIP option (Kumar & Marttinen, "Improving Medical Multi-modal Contrastive Learning with Expert
Annotations", arXiv 2403.10153; reference repository ykumards/eCLIP, facts in REFERENCE-NOTES.md).

* :class:`HeatmapProcessor`: patchify (Conv2d k = s = 16 -> 256) the image (keys, values) and the
  heatmap-weighted image (queries), multi-head attention (256, 8 heads), an output projection, and a
  ConvTranspose2d back to an image of the input size. The heatmaps are divided by the expert batch's
  maximum (reference) or by each sample's (option).
* :func:`mixup`: mixed = lambda x + (1 - lambda) processed, one lambda ~ Beta(alpha, alpha) per expert batch.
* :func:`expert_probability`: the curriculum on how often an expert batch is injected, with the
  reference's phase boundaries; :func:`draw_expert_step` the per-step draws from the training RNG.
* :func:`priming_loss`: MSE so that processor(x, ones) ~ x, used in the cold start.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radgaze.model import distributed as dist_utils
from radgaze.model.config import LossConfig


class HeatmapProcessor(nn.Module):
    """(image (B, 3, S, S), heatmap (B, 1, S, S)) -> processed image (B, 3, S, S)."""

    def __init__(
        self,
        dim: int = 256,
        heads: int = 8,
        patch_px: int = 16,
        channels: int = 3,
        heatmap_norm: str = "batch",
    ) -> None:
        super().__init__()
        self.heatmap_norm = heatmap_norm
        self.patchify = nn.Conv2d(channels, dim, kernel_size=patch_px, stride=patch_px)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out_proj = nn.Linear(dim, dim)
        self.unpatchify = nn.ConvTranspose2d(dim, channels, kernel_size=patch_px, stride=patch_px)

    def forward(self, image: Tensor, heatmap: Tensor) -> Tensor:
        if self.heatmap_norm == "batch":  # reference: expert_heatmap / expert_heatmap.max()
            peak = heatmap.amax().clamp_min(1e-12)
        else:
            peak = heatmap.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        weighted = image * (heatmap / peak)
        kv = self.patchify(image)  # (B, dim, h, w)
        b, d, h, w = kv.shape
        kv = kv.flatten(2).transpose(1, 2)  # (B, h*w, dim)
        q = self.patchify(weighted).flatten(2).transpose(1, 2)
        y, _ = self.attn(q, kv, kv, need_weights=False)
        y = self.out_proj(y).transpose(1, 2).reshape(b, d, h, w)
        return self.unpatchify(y)


def mixup(image: Tensor, processed: Tensor, lam: Tensor | float) -> Tensor:
    """lam: one value (reference: one per expert batch) or (B,) in [0, 1] -> lam * image + (1 - lam) *
    processed."""
    lam = torch.as_tensor(lam, dtype=image.dtype, device=image.device)
    if lam.ndim == 1:
        lam = lam[:, None, None, None]
    return lam * image + (1.0 - lam) * processed


def phase_steps(total_steps: int, cfg: LossConfig) -> tuple[int, int, int]:
    """(cold, warm-up, cool-down) lengths in steps: int(total_steps * frac) each, as the reference."""
    return (
        int(total_steps * cfg.eclip_cold_frac),
        int(total_steps * cfg.eclip_warmup_frac),
        int(total_steps * cfg.eclip_cooldown_frac),
    )


def expert_probability(step: int, total_steps: int, cfg: LossConfig) -> float:
    """Probability of injecting an expert batch at ``step`` (optimiser steps taken) of ``total_steps``.

    Reference boundaries (eclip_module.py, _get_current_prob): p = 0 while step <= cold; p_min -> p_max
    linearly while step <= cold + warm-up; p_max -> p_min while step <= cold + warm-up + cool-down; then
    p_min. Reference: 10 %, 30 %, 40 %, 0.05 / 0.5.
    """
    c, w, d = phase_steps(total_steps, cfg)
    lo, hi = cfg.eclip_p_min, cfg.eclip_p_max
    if step <= c:
        return 0.0
    if step <= c + w:
        return lo + (hi - lo) * (step - c) / w
    if step <= c + w + d:
        return hi - (hi - lo) * (step - c - w) / d
    return lo


def in_cold_start(step: int, total_steps: int, cfg: LossConfig) -> bool:
    """True while the processor is primed: step < cold steps (reference: global_step < cold start steps)."""
    return step < phase_steps(total_steps, cfg)[0]


def draw_expert_step(p: float, alpha: float, rng: np.random.Generator | None = None) -> tuple[bool, float]:
    """(inject an expert batch?, its lambda) as the reference draws them: u ~ U(0, 1) every step, expert
    batch when u < p, then one lambda ~ Beta(alpha, alpha) for the whole expert batch. From the training
    RNG (numpy's global state, as the reference; the trainer seeds and saves it for an exact resume) or
    ``rng``. Rank 0's draws are broadcast, so every rank takes the same branch with the same lambda."""
    legacy = np.random  # noqa: NPY002 - the reference's np.random draws; seeded/saved by the trainer
    u = float(rng.random() if rng is not None else legacy.rand())
    lam = 1.0
    if u < p:
        lam = float(rng.beta(alpha, alpha) if rng is not None else legacy.beta(alpha, alpha))
    drawn = dist_utils.broadcast_from_rank0(torch.tensor([u, lam], dtype=torch.float64))
    return bool(drawn[0] < p), float(drawn[1])


def expert_indices(has_heatmap: Tensor, frac: float, generator: torch.Generator | None = None) -> Tensor:
    """Indices of the expert batch: round(frac * B) (at least 1) of the samples with heatmaps, chosen at
    random without replacement (all of them when fewer). Empty when no sample has a heatmap."""
    pool = has_heatmap.nonzero().squeeze(1)
    size = min(len(pool), max(1, int(frac * has_heatmap.shape[0])))
    order = torch.randperm(len(pool), generator=generator)[:size].to(pool.device)
    return pool[order].sort().values


def copy_mask(n_main: int, idx: Tensor) -> Tensor:
    """(n_main + E, n_main + E) bool: True where one item is the expert copy of the other (off the
    diagonal): expert e (row n_main + e) and main sample idx[e]."""
    n = n_main + len(idx)
    owner = torch.cat([torch.arange(n_main, device=idx.device), idx])
    same = owner[:, None] == owner[None, :]
    return same & ~torch.eye(n, dtype=torch.bool, device=idx.device)


def priming_loss(processor: HeatmapProcessor, image: Tensor) -> Tensor:
    """MSE(processor(x, ones), x): the processor starts as an identity on an uninformative heatmap."""
    ones = torch.ones_like(image[:, :1])
    return F.mse_loss(processor(image, ones), image)
