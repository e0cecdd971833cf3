"""The review's exported figure, drawn with matplotlib (Qt-free): reader | model | metrics.

Not a screen grab: the same image region on both panels (the region the review panes show), each map
scaled from its median as on screen (:func:`radgaze.model.agreement.display_map`) and drawn through the same
colormap with the same alpha ramp (0 transparent, opaque from 40 % of the range, as the live overlay), a
colourbar under each, titles, and the metrics of the sentence as a table. The format follows the file's
suffix: ``.png`` (raster, ``dpi``), ``.svg`` and ``.pdf`` (vector text and axes; the radiograph stays a
raster inside them). Text stays text in SVG (``svg.fonttype = none``) so a journal's editor can fix a label.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.model.agreement import METRIC_TITLES, METRICS, display_map

FORMATS = ("png", "svg", "pdf")
ALPHA_FULL_AT = 0.4  # the overlay is opaque from 40 % of the map's range (radgaze.app.image_view.heatmap_lut)


@dataclass(frozen=True)
class FigurePanels:
    """What the figure shows. ``image_u8`` is the windowed radiograph (H, W) as on screen (uint8);
    ``crop`` (x0, y0, x1, y1) image px is the region shown; maps are (h_hm, w_hm) with ``scale`` image px
    per heatmap px."""

    image_u8: np.ndarray
    image_wh: tuple[int, int]  # the full-resolution image size (image_u8 may be subsampled)
    crop: tuple[float, float, float, float]
    reader_map: np.ndarray | None
    model_map: np.ndarray | None
    scale: float
    title: str
    reader_title: str
    model_title: str
    metrics: dict[str, float] | None
    colormap: str = "inferno"
    opacity: float = 0.5


def overlay_rgba(heatmap: np.ndarray, colormap: str, opacity: float) -> np.ndarray:
    """(h, w, 4) float RGBA of a map as the live overlay draws it: colormap of the map scaled from its median,
    alpha rising from 0 to ``opacity`` over the lowest 40 % of the range."""
    from matplotlib import colormaps

    v = display_map(heatmap)
    rgba = colormaps[colormap](v)
    rgba[..., 3] = np.clip(v / ALPHA_FULL_AT, 0.0, 1.0) * opacity
    return rgba


def _draw_pane(fig, ax, p: FigurePanels, heatmap: np.ndarray | None, title: str) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    w, h = p.image_wh
    ax.imshow(p.image_u8, cmap="gray", vmin=0, vmax=255, extent=(0, w, h, 0), interpolation="bilinear")
    if heatmap is not None:
        hh, hw = heatmap.shape
        extent = (0, hw * p.scale, hh * p.scale, 0)
        ax.imshow(overlay_rgba(heatmap, p.colormap, p.opacity), extent=extent, interpolation="bilinear")
    else:
        ax.text(w / 2, h / 2, "no map", color="white", ha="center", va="center", fontsize=12)
    x0, y0, x1, y1 = p.crop
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10, wrap=True)
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps[p.colormap]),
        ax=ax,
        orientation="horizontal",
        fraction=0.05,
        pad=0.03,
    )
    bar.set_label("attention, fraction of this map's range (min–max)", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _draw_metrics(ax, metrics: dict[str, float] | None) -> None:
    ax.axis("off")
    ax.set_title("Agreement (model vs reader)", fontsize=10)
    if not metrics:
        ax.text(0.5, 0.5, "no metrics\n(no reader heatmap)", ha="center", va="center", fontsize=10)
        return
    rows = [[METRIC_TITLES[k], "–" if math.isnan(metrics[k]) else f"{metrics[k]:.3f}"] for k in METRICS]
    cc = metrics.get("cc", math.nan)
    rows.append(["1 − CC", "–" if math.isnan(cc) else f"{1.0 - cc:.3f}"])
    table = ax.table(cellText=rows, colLabels=["metric", "value"], loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1.0, 1.6)
    ax.text(
        0.5,
        0.02,
        "Bylinskii et al. 2018 definitions;\nKLD = KL(reader ‖ model), lower is closer",
        ha="center",
        va="bottom",
        fontsize=7,
        transform=ax.transAxes,
    )


def render_figure(p: FigurePanels, path: str | os.PathLike, *, dpi: int = 200) -> Path:
    """Write the figure to ``path`` (.png, .svg or .pdf); returns the path."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"expected a figure file ending in {', '.join('.' + f for f in FORMATS)}, got {path.name!r}"
        )
    with rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        fig = Figure(figsize=(12.0, 5.2), layout="constrained")
        axes = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 0.55])
        _draw_pane(fig, axes[0], p, p.reader_map, p.reader_title)
        _draw_pane(fig, axes[1], p, p.model_map, p.model_title)
        _draw_metrics(axes[2], p.metrics)
        fig.suptitle(p.title, fontsize=11)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=dpi)
    return path
