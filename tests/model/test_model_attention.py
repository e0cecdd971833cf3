"""Letterbox geometry, heatmaps on the patch grid, and model attention maps on real radiographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radgaze.model.attention import attention_on_image, patch_attention, report_attention, sentence_attention
from radgaze.model.image_transforms import (
    heatmap_to_patch_grid,
    letterbox_square,
    letterbox_transform,
    to_model_input,
)
from radgaze.model.metrics import cc, kld, nss, sim

TEXTS = ["There is a small left pleural effusion.", "Heart size is normal.", "No pneumothorax."]


def real_pixels(shared_data, name: str = "hannover_006f3a8a.png") -> np.ndarray:
    from PIL import Image

    path = shared_data / "cxr" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return np.asarray(Image.open(path).convert("L"))


def test_letterbox_geometry_known_answer():
    tf = letterbox_transform(100, 50, 20)  # tall image: scale .2 -> 20 x 10, centred with 5 px each side
    assert (tf.new_h, tf.new_w, tf.top_px, tf.left_px) == (20, 10, 0, 5)
    x, y = tf.to_square_xy(np.array([25.0]), np.array([50.0]))
    assert (float(x[0]), float(y[0])) == (10.0, 10.0)
    bx, by = tf.to_image_xy(x, y)
    assert (float(bx[0]), float(by[0])) == (25.0, 50.0)
    square, tf2 = letterbox_square(np.full((100, 50), 255, dtype=np.uint8), 20)
    assert square.shape == (1, 20, 20) and tf2 == tf
    assert square[0, :, :5].max() == 0 and square[0, :, 5:15].min() == pytest.approx(1.0)


def test_heatmap_moves_with_the_image():
    tf = letterbox_transform(120, 80, 60)
    hm = np.zeros((120, 80))
    hm[90:94, 20:24] = 1.0  # a blob centred at x = 22, y = 92 (pixel-edge coordinates)
    sq = tf.apply_to_heatmap(hm).numpy()
    assert sq.sum() == pytest.approx(hm.sum(), rel=1e-5)
    ys, xs = np.nonzero(sq > 0)
    cx, cy = tf.to_square_xy(np.array([22.0]), np.array([92.0]))
    assert abs(xs.mean() + 0.5 - cx[0]) < 1.0 and abs(ys.mean() + 0.5 - cy[0]) < 1.0
    back = tf.invert_map(sq)
    assert back.shape == (120, 80)
    by, bx = np.unravel_index(np.argmax(back), back.shape)
    assert abs(bx - 21.5) <= 2 and abs(by - 91.5) <= 2


def test_heatmap_to_patch_grid_rows_sum_to_one_and_empty_stays_empty():
    hm = torch.zeros(2, 14, 14)
    hm[0, :2, :2] = 3.0  # top-left patch of a 7 x 7 grid
    grid = heatmap_to_patch_grid(hm, 7)
    assert grid.shape == (2, 49)
    assert float(grid[0, 0]) == pytest.approx(1.0) and float(grid[0].sum()) == pytest.approx(1.0)
    assert grid[1].abs().sum() == 0


def test_to_model_input_normalises_and_repeats():
    x = to_model_input(torch.full((1, 4, 4), 0.5), mean=0.25, std=0.5)
    assert x.shape == (3, 4, 4) and torch.allclose(x, torch.full((3, 4, 4), 0.5))


def test_sentence_maps_are_distributions_from_the_patch_softmax(tiny_model):
    s = tiny_model.config.image_size
    image = torch.randn(3, s, s)
    grid = patch_attention(tiny_model, image, TEXTS)
    assert grid.shape == (3, 7, 7)
    torch.testing.assert_close(grid.sum((1, 2)), torch.ones(3))
    maps = sentence_attention(tiny_model, image, TEXTS)
    assert maps.shape == (3, s, s) and (maps >= 0).all()
    np.testing.assert_allclose(maps.sum((1, 2)), 1.0, rtol=1e-5)
    # the upsampled map peaks inside its grid's top patch
    r, c = np.unravel_index(int(grid[0].argmax()), (7, 7))
    py, px = np.unravel_index(int(maps[0].argmax()), (s, s))
    patch_px = s // 7
    assert abs(py // patch_px - r) <= 1 and abs(px // patch_px - c) <= 1
    whole = report_attention(tiny_model, image, TEXTS)
    np.testing.assert_allclose(whole, maps.mean(0), rtol=1e-6)
    assert sentence_attention(tiny_model, image, []).shape == (0, s, s)


def test_attention_on_real_radiographs(tiny_model, shared_data):
    for name in ("hannover_006f3a8a.png", "00000001_000.png"):
        pixels = real_pixels(shared_data, name)
        maps = attention_on_image(tiny_model, pixels, TEXTS)
        assert maps.shape == (len(TEXTS), *pixels.shape)
        assert np.isfinite(maps).all() and (maps >= 0).all()
        np.testing.assert_allclose(maps.sum((1, 2)), 1.0, rtol=1e-4)
        # agreement metrics run on real-size maps against a radiologist-like blob
        h, w = pixels.shape
        yy, xx = np.mgrid[:h, :w]
        gaze = np.exp(-(((xx - w * 0.7) ** 2 + (yy - h * 0.6) ** 2) / (2 * (0.05 * w) ** 2)))
        fix = gaze > 0.5
        for value in (cc(maps[0], gaze), nss(maps[0], fix), kld(gaze, maps[0]), sim(maps[0], gaze)):
            assert np.isfinite(value)


def test_attention_geometry_on_a_non_square_real_image(tiny_model, shared_data):
    """The top patch of the grid lands at the matching place of the original (letterboxed) image."""
    pixels = real_pixels(shared_data)[:, :400]  # make it clearly non-square
    s = tiny_model.config.image_size
    square, tf = letterbox_square(pixels, s)
    x = to_model_input(square, tiny_model.config.image_mean, tiny_model.config.image_std)
    grid = patch_attention(tiny_model, x, TEXTS[:1])[0].numpy()
    maps = attention_on_image(tiny_model, pixels, TEXTS[:1])[0]
    g = grid.shape[0]
    patch_px = s / g
    centres = (np.arange(g) + 0.5) * patch_px
    cx_all, cy_all = tf.to_image_xy(centres[None, :].repeat(g, 0), centres[:, None].repeat(g, 1))
    inside = (cx_all >= 0) & (cx_all < pixels.shape[1]) & (cy_all >= 0) & (cy_all < pixels.shape[0])
    assert 0 < inside.sum() < g * g  # some patch columns are padding
    r, c = np.unravel_index(int(np.where(inside, grid, -1).argmax()), grid.shape)
    py, px = np.unravel_index(int(maps.argmax()), maps.shape)
    tol = patch_px / tf.scale  # one patch, in original pixels
    assert abs(px - cx_all[r, c]) <= tol and abs(py - cy_all[r, c]) <= tol
