"""eCLIP option (Kumar & Marttinen, "Improving Medical Multi-modal Contrastive Learning with Expert
Annotations", arXiv 2403.10153; reference repository ykumards/eCLIP, facts in REFERENCE-NOTES.md).

* :class:`HeatmapProcessor`: patchify (Conv2d k = s = 16 -> 256) the image (keys, values) and the
  heatmap-weighted image (queries), multi-head attention (256, 8 heads), an output projection, and a
  ConvTranspose2d back to an image of the input size.
* :func:`mixup`: mixed = lambda x + (1 - lambda) processed, lambda ~ Beta(alpha, alpha).
* :func:`expert_probability`: the curriculum on how often expert heatmaps are used.
* :func:`priming_loss`: MSE so that processor(x, ones) ~ x, used in the cold start.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radgaze.model.config import LossConfig


class HeatmapProcessor(nn.Module):
    """(image (B, 3, S, S), heatmap (B, 1, S, S)) -> processed image (B, 3, S, S)."""

    def __init__(self, dim: int = 256, heads: int = 8, patch_px: int = 16, channels: int = 3) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(channels, dim, kernel_size=patch_px, stride=patch_px)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out_proj = nn.Linear(dim, dim)
        self.unpatchify = nn.ConvTranspose2d(dim, channels, kernel_size=patch_px, stride=patch_px)

    def forward(self, image: Tensor, heatmap: Tensor) -> Tensor:
        peak = heatmap.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        weighted = image * (heatmap / peak)  # reference: heatmap divided by its max
        kv = self.patchify(image)  # (B, dim, h, w)
        b, d, h, w = kv.shape
        kv = kv.flatten(2).transpose(1, 2)  # (B, h*w, dim)
        q = self.patchify(weighted).flatten(2).transpose(1, 2)
        y, _ = self.attn(q, kv, kv, need_weights=False)
        y = self.out_proj(y).transpose(1, 2).reshape(b, d, h, w)
        return self.unpatchify(y)


def mixup(image: Tensor, processed: Tensor, lam: Tensor) -> Tensor:
    """lam (B,) in [0, 1]: lam * image + (1 - lam) * processed."""
    lam = lam.to(image.dtype)[:, None, None, None]
    return lam * image + (1.0 - lam) * processed


def sample_lambda(n: int, alpha: float, seed: int) -> Tensor:
    """n draws of Beta(alpha, alpha) (eCLIP's mixup), reproducible from ``seed`` (same on every rank)."""
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=n))


def expert_probability(step: int, total_steps: int, cfg: LossConfig) -> float:
    """Probability of an expert (heatmap) batch at ``step`` of ``total_steps`` (eCLIP curriculum).

    Cold start (first eclip_cold_frac): 0. Warm-up (next eclip_warmup_frac): p_min -> p_max linearly.
    Cool-down (next eclip_cooldown_frac): p_max -> p_min linearly. Then p_min. Reference: 10 %, 30 %,
    40 %, 0.05 / 0.5.
    """
    f = step / max(total_steps, 1)
    c, w, d = cfg.eclip_cold_frac, cfg.eclip_warmup_frac, cfg.eclip_cooldown_frac
    if f < c:
        return 0.0
    if f < c + w:
        return cfg.eclip_p_min + (cfg.eclip_p_max - cfg.eclip_p_min) * (f - c) / w
    if f < c + w + d:
        return cfg.eclip_p_max - (cfg.eclip_p_max - cfg.eclip_p_min) * (f - c - w) / d
    return cfg.eclip_p_min


def in_cold_start(step: int, total_steps: int, cfg: LossConfig) -> bool:
    """True during the curriculum's cold start (the priming phase)."""
    return step / max(total_steps, 1) < cfg.eclip_cold_frac


def use_expert_batch(step: int, total_steps: int, cfg: LossConfig, seed: int = 0) -> bool:
    """Bernoulli(expert_probability) drawn from (seed, step), so every rank decides the same."""
    p = expert_probability(step, total_steps, cfg)
    return random.Random(seed * 1_000_003 + step).random() < p


def priming_loss(processor: HeatmapProcessor, image: Tensor) -> Tensor:
    """MSE(processor(x, ones), x): the processor starts as an identity on an uninformative heatmap."""
    ones = torch.ones_like(image[:, :1])
    return F.mse_loss(processor(image, ones), image)
