"""Geometry shared by images and heatmaps (pure torch/numpy, no Qt).

The model sees a square S x S image: the radiograph scaled so its longer side is S, centred, padded with 0.
:func:`letterbox_square` returns that image and the :class:`LetterboxTransform` that moves heatmaps (and
points) the same way, and maps model maps back onto the original pixels, so heatmaps move with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from radgaze.capture.base.errors import ImageLoadError


@dataclass(frozen=True)
class LetterboxTransform:
    """Original (src_h, src_w) pixels -> square ``size``: scale, then offset by (top_px, left_px)."""

    src_h: int
    src_w: int
    size: int
    scale: float  # square px per original px
    new_h: int
    new_w: int
    top_px: int
    left_px: int

    def apply_to_heatmap(self, heatmap: np.ndarray | Tensor) -> Tensor:
        """Heatmap (..., src_h, src_w) -> (..., size, size) on the square, total mass preserved."""
        hm = torch.as_tensor(np.asarray(heatmap) if not isinstance(heatmap, Tensor) else heatmap).float()
        lead = hm.shape[:-2]
        flat = hm.reshape(-1, 1, self.src_h, self.src_w)
        resized = F.interpolate(flat, size=(self.new_h, self.new_w), mode="area")
        out = torch.zeros(flat.shape[0], 1, self.size, self.size)
        out[:, :, self.top_px : self.top_px + self.new_h, self.left_px : self.left_px + self.new_w] = resized
        mass = flat.sum((-1, -2), keepdim=True)
        out = out * (mass / out.sum((-1, -2), keepdim=True).clamp_min(1e-30))
        return out.reshape(*lead, self.size, self.size)

    def invert_map(self, square_map: np.ndarray | Tensor) -> np.ndarray:
        """Map (..., size, size) on the square -> (..., src_h, src_w) on the original pixels (padding
        dropped, bilinear resize; values, not mass, are interpolated)."""
        sq = torch.as_tensor(np.asarray(square_map) if not isinstance(square_map, Tensor) else square_map)
        sq = sq.float()
        lead = sq.shape[:-2]
        crop = sq.reshape(-1, 1, self.size, self.size)[
            :, :, self.top_px : self.top_px + self.new_h, self.left_px : self.left_px + self.new_w
        ]
        out = F.interpolate(crop, size=(self.src_h, self.src_w), mode="bilinear", align_corners=False)
        return out.reshape(*lead, self.src_h, self.src_w).numpy()

    def to_square_xy(self, x_img_px: np.ndarray, y_img_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Original pixel coordinates -> square pixels."""
        return np.asarray(x_img_px) * self.scale + self.left_px, np.asarray(
            y_img_px
        ) * self.scale + self.top_px

    def to_image_xy(self, x_sq_px: np.ndarray, y_sq_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Square pixel coordinates -> original pixel coordinates (inverse of :meth:`to_square_xy`)."""
        return (np.asarray(x_sq_px) - self.left_px) / self.scale, (
            np.asarray(y_sq_px) - self.top_px
        ) / self.scale


def letterbox_transform(src_h: int, src_w: int, size: int) -> LetterboxTransform:
    """The transform for an image of (src_h, src_w) pixels into a square of ``size``."""
    if src_h < 1 or src_w < 1 or size < 1:
        raise ImageLoadError(f"letterbox: expected positive sizes, got image {src_h}x{src_w}, square {size}")
    scale = size / max(src_h, src_w)
    new_h = min(size, max(1, round(src_h * scale)))
    new_w = min(size, max(1, round(src_w * scale)))
    return LetterboxTransform(
        src_h, src_w, size, scale, new_h, new_w, (size - new_h) // 2, (size - new_w) // 2
    )


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """Grey pixels -> float32 in [0, 1]: uint8 / 255; values already in [0, 1] kept; else min-max scaled."""
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        return a
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def letterbox_square(pixels: np.ndarray, size: int) -> tuple[Tensor, LetterboxTransform]:
    """Grey image (H, W) -> (square image (1, size, size) float in [0, 1], transform).

    Antialiased bilinear resize of the longer side to ``size``, centred, zero padding.
    """
    a = np.asarray(pixels)
    if a.ndim != 2:
        raise ImageLoadError(f"letterbox: expected a 2-D grey image (H, W), got shape {a.shape}")
    tf = letterbox_transform(a.shape[0], a.shape[1], size)
    img = torch.from_numpy(to_unit_float(a))[None, None]
    resized = F.interpolate(
        img, size=(tf.new_h, tf.new_w), mode="bilinear", antialias=True, align_corners=False
    )
    out = torch.zeros(1, size, size)
    out[:, tf.top_px : tf.top_px + tf.new_h, tf.left_px : tf.left_px + tf.new_w] = resized[0].clamp(0.0, 1.0)
    return out, tf


def to_model_input(square: Tensor, mean: float, std: float) -> Tensor:
    """Square grey image (..., 1, S, S) in [0, 1] -> normalised, repeated to 3 channels (..., 3, S, S)."""
    x = (square - mean) / std
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()


def heatmap_to_patch_grid(heatmap: Tensor, grid: int) -> Tensor:
    """Heatmaps (..., S, S) on the square -> (..., grid * grid) patch masses, each row summing to 1
    (rows without any mass stay all-zero: "no gaze"). Area pooling, row-major patch order as the encoders'.
    """
    lead = heatmap.shape[:-2]
    pooled = F.adaptive_avg_pool2d(heatmap.reshape(-1, 1, *heatmap.shape[-2:]).float(), grid)
    flat = pooled.reshape(*lead, grid * grid).clamp_min(0.0)
    total = flat.sum(-1, keepdim=True)
    return torch.where(total > 0, flat / total.clamp_min(1e-30), torch.zeros_like(flat))
