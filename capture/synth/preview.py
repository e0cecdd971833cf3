"""A picture of a synthetic case for a person to judge: the phantom with its findings outlined, and the same
image with the fixations (circles sized by duration, coloured by the sentence whose window holds them) and
the scanpath, the report's sentences written underneath."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from radgaze.capture.base.records import CaseRecord

_COLOURS = [
    (230, 60, 60),
    (60, 200, 80),
    (70, 130, 255),
    (250, 190, 40),
    (200, 80, 220),
    (40, 210, 210),
    (255, 130, 60),
]
_GREY = (170, 170, 170)


def _windowed_rgb(pixels: np.ndarray, side_px: int) -> Image.Image:
    lo, hi = np.percentile(pixels[::4, ::4], (0.5, 99.5))
    u8 = (np.clip((pixels.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(u8).convert("RGB").resize((side_px, side_px), Image.Resampling.BILINEAR)


def _outline(img: Image.Image, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw the boundary of a heatmap-grid mask onto img (resized nearest)."""
    m = np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.NEAREST)) > 0
    edge = m & ~ndimage.binary_erosion(m, iterations=2)
    arr = np.array(img)
    arr[edge] = colour
    img.paste(Image.fromarray(arr))


def render_preview(record: CaseRecord, pixels: np.ndarray, *, side_px: int = 768) -> Image.Image:
    """Two panels (findings | gaze) above the report text, as a PIL RGB image."""
    k = side_px / pixels.shape[1]
    left = _windowed_rgb(pixels, side_px)
    d = ImageDraw.Draw(left)
    for f in record.findings or []:
        colour = _COLOURS[f.sentence_index % len(_COLOURS)] if f.sentence_index >= 0 else _GREY
        if f.mask is not None:
            _outline(left, f.mask, colour)
        x0, y0 = f.box[0] * k, f.box[1] * k
        d.text((x0 + 3, max(0, y0 - 12)), f"{f.label} ({f.location})", fill=colour)
    right = _windowed_rgb(pixels, side_px)
    d = ImageDraw.Draw(right)
    s = record.sentences
    fx = record.fixations
    mid = (fx["t_start"] + fx["t_end"]) / 2
    owner = np.full(len(fx), -1)
    for i in range(len(s)):
        owner[(mid >= s.window_start[i]) & (mid <= s.window_end[i])] = i
    pts = np.stack([fx["x_img_px"] * k, fx["y_img_px"] * k], axis=1)
    if len(pts) > 1:
        d.line([tuple(p) for p in pts], fill=(255, 255, 0), width=1)
    for p, dur, o in zip(pts, fx["t_end"] - fx["t_start"], owner):
        r = 3 + 12 * float(dur)
        colour = _COLOURS[o % len(_COLOURS)] if o >= 0 else _GREY
        d.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], outline=colour, width=2)
    n_lines = len(s) + 2
    canvas = Image.new("RGB", (2 * side_px, side_px + 14 * n_lines + 8), (0, 0, 0))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (side_px, 0))
    d = ImageDraw.Draw(canvas)
    head = (
        f"{record.case_id}  labels: {', '.join(record.labels)}  {record.duration_s:.1f} s, "
        f"{len(record.gaze)} samples, {len(fx)} fixations (grey = outside every sentence window)"
    )
    d.text((6, side_px + 4), head, fill=(255, 255, 255))
    for i in range(len(s)):
        colour = _COLOURS[i % len(_COLOURS)]
        d.text(
            (6, side_px + 18 + 14 * i),
            f"{i}: [{s.t_start[i] - record.t_start:5.1f} s] {s.text[i]}",
            fill=colour,
        )
    return canvas


def write_preview(path: str | Path, record: CaseRecord, pixels: np.ndarray, *, side_px: int = 768) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_preview(record, pixels, side_px=side_px).save(path)
    return path
