"""Attention heatmaps from fixations (REFLACX's convention, see DESIGN.md "Sentence heatmaps").

One 2-D Gaussian per fixation, sigma = 1 degree of visual angle in image pixels (from that fixation's pixels per
degree, so zoom is included), weighted by fixation duration, clipped to the part of the image shown at that
time (fixations off it add nothing), normalised to sum 1. A Gaussian with a diagonal covariance clipped to an axis-aligned rectangle is
separable, so the whole map is one matrix product: ``H = Gy^T @ diag(w) @ Gx`` with ``Gy`` (k, h) and ``Gx``
(k, w) — O(k·(h + w) + k·h·w) with BLAS doing the last term, in float32.
"""

from __future__ import annotations

import numpy as np

SIGMA_DEG = 1.0  # REFLACX heatmaps: sigma = 1 degree of visual angle (Bigolin Lanfredi et al. 2022)
HEATMAP_MAX_SIDE = (
    512  # stored heatmap resolution (long side); 512 px keeps a 1-deg sigma >= ~5 px at 2k images
)


def heatmap_grid(width_px: int, height_px: int) -> tuple[int, int, float]:
    """Stored heatmap shape for an image: ``(h_hm, w_hm, scale)``, long side :data:`HEATMAP_MAX_SIDE` (never
    upsampled), ``scale`` = image px per heatmap px."""
    if width_px <= 0 or height_px <= 0:
        raise ValueError(f"image size must be positive, got {width_px}x{height_px}")
    scale = max(1.0, max(width_px, height_px) / HEATMAP_MAX_SIDE)
    return max(1, round(height_px / scale)), max(1, round(width_px / scale)), float(scale)


def _axis_weights(
    center_px: np.ndarray, sigma_px: np.ndarray, lo_px: np.ndarray, hi_px: np.ndarray, n: int, scale: float
) -> np.ndarray:
    """(k, n) float32 1-D Gaussian (unit mass on the line) sampled at heatmap-pixel centres, zero outside
    ``[lo, hi)`` (all in image px)."""
    coords = (np.arange(n, dtype=np.float32) + 0.5) * np.float32(scale)  # heatmap pixel centres in image px
    d = (coords[None, :] - center_px[:, None].astype(np.float32)) / sigma_px[:, None].astype(np.float32)
    g = np.exp(np.float32(-0.5) * d * d)
    g /= (np.sqrt(2 * np.pi) * sigma_px[:, None]).astype(np.float32)
    g *= (coords[None, :] >= lo_px[:, None]) & (coords[None, :] < hi_px[:, None])
    return g


def render_heatmap(
    x_img_px: np.ndarray,
    y_img_px: np.ndarray,
    weight_s: np.ndarray,
    sigma_img_px: np.ndarray | float,
    *,
    grid: tuple[int, int, float],
    shown: np.ndarray | tuple[float, float, float, float] | None = None,
) -> np.ndarray | None:
    """Render fixations into a ``(h_hm, w_hm)`` float32 map summing to 1, or None when nothing lands.

    Args:
        x_img_px, y_img_px: (k,) fixation centres in image pixels.
        weight_s: (k,) weights, normally fixation durations in seconds (non-positive ones are ignored).
        sigma_img_px: scalar or (k,) Gaussian sigma in image pixels.
        grid: ``(h_hm, w_hm, scale)`` from :func:`radgaze.capture.gazemath.heatmap.heatmap_grid`; scale = image px per map px.
        shown: the visible image rectangle ``(x0, y0, x1, y1)`` in image px, one for all or (k, 4) per fixation;
            None = the whole image.

    The map's total is known before it is drawn (each clipped Gaussian's mass is the product of its two
    1-D sums), so the weights are normalised on the (k, h) factor and the single float32 matrix product writes
    the final map — one pass over h·w pixels.
    """
    h_hm, w_hm, scale = grid
    x = np.asarray(x_img_px, np.float64).reshape(-1)
    y = np.asarray(y_img_px, np.float64).reshape(-1)
    w = np.asarray(weight_s, np.float64).reshape(-1)
    sigma = np.broadcast_to(np.asarray(sigma_img_px, np.float64), x.shape)
    if shown is None:
        rect = np.broadcast_to(np.array([0.0, 0.0, w_hm * scale, h_hm * scale]), (x.size, 4))
    else:
        rect = np.broadcast_to(np.asarray(shown, np.float64), (x.size, 4))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & (w > 0) & np.isfinite(sigma) & (sigma > 0)
    # a fixation off the shown part of the image (the tracker saw the reader look elsewhere) adds nothing
    ok &= (x >= rect[:, 0]) & (x < rect[:, 2]) & (y >= rect[:, 1]) & (y < rect[:, 3])
    if not np.any(ok):
        return None
    x, y, w, sigma, rect = x[ok], y[ok], w[ok], sigma[ok], rect[ok]
    gx = _axis_weights(x, sigma, rect[:, 0], rect[:, 2], w_hm, scale)
    gy = _axis_weights(y, sigma, rect[:, 1], rect[:, 3], h_hm, scale)
    mass = w * gx.sum(axis=1, dtype=np.float64) * gy.sum(axis=1, dtype=np.float64)  # each fixation's share
    total = mass.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    gy *= (w / total).astype(np.float32)[:, None]
    return np.ascontiguousarray(gy.T @ gx)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: the fraction of input pixel j covered by output cell i (exact area resampling)."""
    edges_out = np.linspace(0.0, n_in, n_out + 1)
    lo = np.maximum(edges_out[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges_out[1:, None], np.arange(n_in)[None, :] + 1.0)
    return np.clip(hi - lo, 0.0, None)


def reduce_to_patch_grid(heatmap: np.ndarray, n_side: int) -> np.ndarray:
    """Area-sum a heatmap onto an ``n_side x n_side`` patch grid (7 for Swin-T at 224 px); sums to 1 unless the
    input has no mass. The input should already be letterboxed to a square the way the image was."""
    hm = np.asarray(heatmap, np.float64)
    if hm.ndim != 2:
        raise ValueError(f"heatmap: expected a 2-D map, got shape {hm.shape}")
    out = _area_matrix(hm.shape[0], n_side) @ hm @ _area_matrix(hm.shape[1], n_side).T
    total = out.sum()
    return (out / total if total > 0 else out).astype(np.float32)


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of a heatmap's mass inside a boolean mask of the same shape."""
    total = float(heatmap.sum())
    return float(heatmap[mask].sum() / total) if total > 0 else 0.0
