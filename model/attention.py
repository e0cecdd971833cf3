"""Model attention for the viewer: where on the image a sentence (or any text) points.

For a sentence embedding S and patch embeddings P (radgaze.model.egma), the map is the softmax over patches of
(1/tau) cos(S, P_i), laid out on the patch grid, upsampled bilinearly to the image and normalised to sum 1.
A whole-report map is the mean of its sentence maps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from radgaze.model.image_transforms import letterbox_square, to_model_input


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def patch_attention(model, image: Tensor, texts: list[str]) -> Tensor:
    """image (3, S, S) or (1, 3, S, S) normalised -> (len(texts), g, g) patch weights, each summing to 1."""
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image: expected (3, S, S) or (1, 3, S, S), got {tuple(image.shape)}")
    was_training = model.training
    model.eval()
    try:
        dev = _device(model)
        patches, _ = model.encode_image(image.to(dev))
        tok = model.tokenize([[t] for t in texts])
        sentences, _ = model.encode_text(
            *(tok[k].to(dev) for k in ("input_ids", "attention_mask", "sentence_mask"))
        )
        sim = sentences[:, 0] @ patches[0].T  # (T, n) cosines
        weights = torch.softmax(model.scale() * sim, dim=-1)
    finally:
        model.train(was_training)
    g = model.patch_grid
    return weights.reshape(len(texts), g, g).float().cpu()


def upsample_map(grid_map: Tensor, size: int) -> np.ndarray:
    """(T, g, g) -> (T, size, size) bilinear, non-negative, each normalised to sum 1."""
    up = F.interpolate(grid_map[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    up = up.clamp_min(0.0)
    return (up / up.sum((-1, -2), keepdim=True).clamp_min(1e-30)).numpy()


def sentence_attention(model, image: Tensor, texts: list[str]) -> np.ndarray:
    """image (3, S, S) or (1, 3, S, S) normalised -> (len(texts), S, S) maps, each summing to 1."""
    if not texts:
        size = image.shape[-1]
        return np.zeros((0, size, size), dtype=np.float32)
    return upsample_map(patch_attention(model, image, texts), image.shape[-1])


def report_attention(model, image: Tensor, sentences: list[str]) -> np.ndarray:
    """Whole-report map (S, S): the mean of the sentence maps (sums to 1)."""
    maps = sentence_attention(model, image, sentences)
    return maps.mean(0) if len(maps) else np.zeros(maps.shape[1:], dtype=np.float32)


def attention_on_image(model, pixels: np.ndarray, texts: list[str]) -> np.ndarray:
    """Grey image (H, W) -> (len(texts), H, W) maps on its own pixels, each summing to 1.

    The image is letterboxed to the model's square (radgaze.model.image_transforms), normalised with the model's
    mean/std and repeated to 3 channels; the maps are mapped back through the same transform.
    """
    cfg = model.config
    square, tf = letterbox_square(pixels, cfg.image_size)
    x = to_model_input(square, cfg.image_mean, cfg.image_std)
    maps = tf.invert_map(sentence_attention(model, x, texts)).clip(0.0, None)
    total = maps.reshape(len(texts), -1).sum(1)[:, None, None] if len(texts) else 1.0
    return (maps / np.maximum(total, 1e-30)).astype(np.float32)
