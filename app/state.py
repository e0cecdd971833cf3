"""Qt-free viewer state: what is shown and how, with psygnal signals (napari-style model/view split).

The state owns the current case (pixels + id), window/level, invert, the image -> view transform (scale,
offset), the heatmap overlay, the gaze cursor and the playback time. Widgets are thin: they subscribe to the
signals and call the setters, blocking their own echo.

This is the one place view changes are stamped: every change of what the reader sees (case, zoom, pan,
window/level, invert, fit, viewport moved or resized) becomes a :data:`radgaze.capture.base.records.VIEW_DTYPE` row stamped
with ``clock()`` (``pylsl.local_clock`` by default, the LSL clock every stream shares) and is emitted on
:attr:`ViewerState.view_event` and kept in :attr:`ViewerState.view_events`. Record mode forwards those rows
into the session, the live pipeline maps gaze through them.

Coordinates: image px (full resolution, origin top-left corner, y down); view px = logical pixels of the image
widget; screen px = physical pixels of the display the tracker reports in. view -> screen is
``screen = (view + origin_view_px) * device_pixel_ratio`` where ``origin_view_px`` is the widget's top-left on
the screen in logical px.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from psygnal import Signal

from radgaze.capture.base.records import (
    VIEW_CASE,
    VIEW_DTYPE,
    VIEW_FIT,
    VIEW_INVERT,
    VIEW_PAN,
    VIEW_WINDOW,
    VIEW_ZOOM,
)
from radgaze.capture.io.images import WINDOW_PERCENTILES, histogram_sample, window_presets

# Zoom limits (screen px per image px): 1/64 shows a 2k image in 32 px, 32x is far past any useful
# magnification on a 3 MP display; radgaze's own choice, not from a reference.
MIN_SCALE = 1.0 / 64.0
MAX_SCALE = 32.0
# One wheel notch (120 eighths of a degree, Qt's QWheelEvent convention) zooms by this factor; 1.25 per notch
# is the step most image viewers use (e.g. the pyqtgraph ViewBox default is 1.2 per 120 units, close).
ZOOM_PER_NOTCH = 1.25
# Right-drag window/level: dragging the full height of a 512 px area spans the image's whole intensity range.
# Directions as RadiAnt, OHIF (cornerstone's WindowLevelTool) and Weasis: horizontal = window width (right =
# wider), vertical = level (down = higher centre, a darker picture). REFLACX's viewer swaps them (horizontal =
# level, REFERENCE-NOTES.md); WL_DRAG_MODES names both, the View menu switches (kept in QSettings).
WL_DRAG_PX_FOR_FULL_RANGE = 512.0
WL_DRAG_PACS, WL_DRAG_REFLACX = "pacs", "reflacx"
WL_DRAG_MODES = {
    WL_DRAG_PACS: "horizontal = width, vertical = level (RadiAnt, OHIF, Weasis)",
    WL_DRAG_REFLACX: "horizontal = level, vertical = width (REFLACX)",
}

# Window presets for projection radiographs: percentiles (lo, hi) of the image's own histogram, from
# assets/wl_presets.toml (why these values: the comment there).
WINDOW_PRESETS = window_presets()
WINDOW_PRESETS_PCT: dict[str, tuple[float, float]] = {k: p.percentiles for k, p in WINDOW_PRESETS.items()}
DEFAULT_PERCENTILES = WINDOW_PERCENTILES


# ------------------------------------------------------------------------------------------ pure maths
@dataclass(frozen=True)
class ViewTransform:
    """image -> view: ``x_view_px = x_img_px * scale + offset_x`` (same for y)."""

    scale: float = 1.0  # view px per image px
    offset_x: float = 0.0  # view px
    offset_y: float = 0.0

    def image_to_view(self, x_img_px, y_img_px):
        return x_img_px * self.scale + self.offset_x, y_img_px * self.scale + self.offset_y

    def view_to_image(self, x_view_px, y_view_px):
        return (x_view_px - self.offset_x) / self.scale, (y_view_px - self.offset_y) / self.scale


def fit_transform(image_w_px: int, image_h_px: int, view_w_px: float, view_h_px: float) -> ViewTransform:
    """The whole image, aspect kept, as large as the view allows and centred."""
    if image_w_px <= 0 or image_h_px <= 0:
        raise ValueError(f"image size must be positive, got {image_w_px}x{image_h_px}")
    scale = max(min(view_w_px / image_w_px, view_h_px / image_h_px), MIN_SCALE)
    return ViewTransform(
        scale, (view_w_px - image_w_px * scale) / 2.0, (view_h_px - image_h_px * scale) / 2.0
    )


def zoom_about(t: ViewTransform, factor: float, x_view_px: float, y_view_px: float) -> ViewTransform:
    """Zoom by ``factor`` keeping the image point under (x_view_px, y_view_px) fixed; scale clamped to
    [MIN_SCALE, MAX_SCALE]."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"zoom factor must be a positive finite number, got {factor!r}")
    new_scale = min(max(t.scale * factor, MIN_SCALE), MAX_SCALE)
    f = new_scale / t.scale
    return ViewTransform(
        new_scale, x_view_px - (x_view_px - t.offset_x) * f, y_view_px - (y_view_px - t.offset_y) * f
    )


def drag_window(
    center: float,
    width: float,
    dx_px: float,
    dy_px: float,
    units_per_px: float,
    min_width: float,
    mode: str = WL_DRAG_PACS,
) -> tuple[float, float]:
    """Right-drag window/level. ``pacs`` (default): horizontal changes the width (right = wider), vertical the
    level (down = higher centre); ``reflacx``: the two swapped. Returns (center, width), width >=
    ``min_width``."""
    if mode not in WL_DRAG_MODES:
        raise ValueError(
            f"Invalid value for the 'mode' parameter: allowed are {sorted(WL_DRAG_MODES)}, got {mode!r}"
        )
    d_width_px, d_level_px = (dx_px, dy_px) if mode == WL_DRAG_PACS else (dy_px, dx_px)
    return center + d_level_px * units_per_px, max(width + d_width_px * units_per_px, min_width)


def preset_window(percentiles: dict[float, float], name: str) -> tuple[float, float]:
    """(center, width) of a named preset from the image's intensity percentiles ({pct: value})."""
    if name not in WINDOW_PRESETS_PCT:
        raise ValueError(
            f"Invalid value for the 'preset' parameter: allowed are {sorted(WINDOW_PRESETS_PCT)}, "
            f"got {name!r}"
        )
    lo_pct, hi_pct = WINDOW_PRESETS_PCT[name]
    lo, hi = percentiles[lo_pct], percentiles[hi_pct]
    return (lo + hi) / 2.0, max(hi - lo, 1.0)


def intensity_percentiles(pixels: np.ndarray, max_samples: int = 1 << 18) -> dict[float, float]:
    """Percentiles used by presets and the drag sensitivity, on a strided subsample without the pixels stuck
    at the image's extremes (radgaze.capture.io.images.histogram_sample); 0 and 100 are the true extremes."""
    pcts = sorted({*DEFAULT_PERCENTILES, *(p for pair in WINDOW_PRESETS_PCT.values() for p in pair)})
    values = np.percentile(histogram_sample(pixels, max_samples), pcts)
    out = dict(zip(pcts, (float(v) for v in values)))
    out[0.0], out[100.0] = float(pixels.min()), float(pixels.max())
    return out


def view_row(
    t_lsl: float,
    kind: int,
    t: ViewTransform,
    window: tuple[float, float],
    invert: bool,
    origin_view_px: tuple[float, float] = (0.0, 0.0),
    device_pixel_ratio: float = 1.0,
) -> np.ndarray:
    """One VIEW_DTYPE row (0-d structured array): the image -> screen transform in force from ``t_lsl``."""
    row = np.zeros((), dtype=VIEW_DTYPE)
    row["t_lsl"] = t_lsl
    row["kind"] = kind
    row["scale"] = t.scale * device_pixel_ratio
    row["offset_x"] = (t.offset_x + origin_view_px[0]) * device_pixel_ratio
    row["offset_y"] = (t.offset_y + origin_view_px[1]) * device_pixel_ratio
    row["window_center"], row["window_width"] = window
    row["invert"] = int(bool(invert))
    return row


# ------------------------------------------------------------------------------------------ overlay
@dataclass(frozen=True)
class HeatmapOverlay:
    """A heatmap drawn over the image. ``heatmap`` is (h_hm, w_hm), ``scale`` image px per heatmap px."""

    heatmap: np.ndarray
    scale: float
    label: str = ""
    colormap: str = "inferno"
    opacity: float = 0.5
    visible: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.heatmap.shape[0]), int(self.heatmap.shape[1])


# ------------------------------------------------------------------------------------------ state
class ViewerState:
    """What the viewer shows. All setters emit only when something changed."""

    case_changed = Signal(str)  # case id ("" = none)
    window_changed = Signal(float, float)  # center, width (image pixel units)
    invert_changed = Signal(bool)
    transform_changed = Signal(object)  # ViewTransform (image -> view px)
    overlay_changed = Signal(object)  # HeatmapOverlay | None
    gaze_changed = Signal(float, float)  # gaze point in image px (NaN, NaN = none)
    gaze_cursor_visible_changed = Signal(bool)
    time_changed = Signal(float)  # playback time (LSL s)
    view_event = Signal(object)  # one VIEW_DTYPE row, stamped on the LSL clock

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        if clock is None:
            import pylsl

            clock = pylsl.local_clock
        self.clock = clock
        self.case_id = ""
        self.pixels: np.ndarray | None = None
        self.meta: object | None = (
            None  # radgaze.capture.io.images.ImageMeta when loaded through radgaze.capture.io.images
        )
        self.window: tuple[float, float] = (0.5, 1.0)
        self.default_window: tuple[float, float] = (0.5, 1.0)
        self.invert = False
        self.transform = ViewTransform()
        self.viewport_px: tuple[float, float] = (0.0, 0.0)  # image widget size (logical px)
        self.origin_view_px: tuple[float, float] = (0.0, 0.0)  # its top-left on the screen (logical px)
        self.device_pixel_ratio = 1.0
        self.fitted = True  # follow the viewport size (fit mode) until the user zooms or pans
        self.overlay: HeatmapOverlay | None = None
        self.gaze_img_px: tuple[float, float] = (math.nan, math.nan)
        self.gaze_cursor_visible = False  # hidden while reading (it draws the eye); a toggle for set-up
        self.wl_drag_mode = WL_DRAG_PACS
        self.t_play = 0.0
        self.percentiles: dict[float, float] = {}
        self._events: list[np.ndarray] = []

    # -- case ---------------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in image px, (0, 0) without a case."""
        return (0, 0) if self.pixels is None else (int(self.pixels.shape[1]), int(self.pixels.shape[0]))

    def set_case(
        self,
        case_id: str,
        pixels: np.ndarray,
        *,
        window: tuple[float, float] | None = None,
        meta: object | None = None,
    ) -> None:
        """Show a new image (2-D, uint16 or float32), fitted, at ``window`` (else a percentile window).

        Clears the overlay and the view-event log, then stamps a VIEW_CASE row."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 2 or pixels.size == 0:
            raise ValueError(f"expected a non-empty 2-D image, got shape {pixels.shape}")
        self.pixels = np.ascontiguousarray(pixels)
        self.meta = meta
        self.case_id = case_id
        self.percentiles = intensity_percentiles(self.pixels)
        if window is None:
            lo, hi = (self.percentiles[p] for p in DEFAULT_PERCENTILES)
            window = ((lo + hi) / 2.0, max(hi - lo, self.min_window_width))
        self.default_window = (float(window[0]), float(window[1]))
        self.window = self.default_window
        self.overlay = None
        self._events = []
        self.fitted = True
        if self.viewport_px[0] > 0 and self.viewport_px[1] > 0:
            self.transform = fit_transform(*self.image_size, *self.viewport_px)
        self.case_changed.emit(case_id)
        self.window_changed.emit(*self.window)
        self.transform_changed.emit(self.transform)
        self.overlay_changed.emit(None)
        self._stamp(VIEW_CASE)

    @property
    def min_window_width(self) -> float:
        """Narrowest window: one grey level for integer images, 1e-6 of the range for float images."""
        if self.pixels is not None and self.pixels.dtype.kind == "f":
            span = self.percentiles.get(100.0, 1.0) - self.percentiles.get(0.0, 0.0)
            return max(span * 1e-6, 1e-12)
        return 1.0

    # -- window/level ---------------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        width = max(float(width), self.min_window_width)
        if not (math.isfinite(center) and math.isfinite(width)):
            raise ValueError(f"window must be finite, got center={center!r} width={width!r}")
        if (center, width) == self.window:
            return
        self.window = (float(center), width)
        self.window_changed.emit(*self.window)
        self._stamp(VIEW_WINDOW)

    def drag_window(self, dx_px: float, dy_px: float) -> None:
        """Right-drag by (dx, dy) view px: horizontal = width, vertical = level (``wl_drag_mode`` "pacs"), or
        swapped ("reflacx")."""
        span = self.percentiles.get(100.0, 1.0) - self.percentiles.get(0.0, 0.0)
        units_per_px = max(span, self.min_window_width) / WL_DRAG_PX_FOR_FULL_RANGE
        c, w = drag_window(*self.window, dx_px, dy_px, units_per_px, self.min_window_width, self.wl_drag_mode)
        if self.pixels is not None and self.pixels.dtype.kind in "ui":
            c, w = float(round(c)), float(max(round(w), 1))  # integer data: integer W/L, as the tags say
        self.set_window(c, w)

    def set_wl_drag_mode(self, mode: str) -> None:
        if mode not in WL_DRAG_MODES:
            raise ValueError(
                f"Invalid value for the 'mode' parameter: allowed are {sorted(WL_DRAG_MODES)}, got {mode!r}"
            )
        self.wl_drag_mode = mode

    def apply_preset(self, name: str) -> None:
        """``lung`` / ``mediastinum`` / ``bone`` (:data:`WINDOW_PRESETS_PCT`), or ``default``."""
        if name == "default":
            self.set_window(*self.default_window)
        elif self.pixels is not None:
            c, w = preset_window(self.percentiles, name)
            if self.pixels.dtype.kind in "ui":
                c, w = float(round(c)), float(max(round(w), 1))
            self.set_window(c, w)

    def set_invert(self, invert: bool) -> None:
        if bool(invert) == self.invert:
            return
        self.invert = bool(invert)
        self.invert_changed.emit(self.invert)
        self._stamp(VIEW_INVERT)

    # -- view transform -------------------------------------------------------------------------------
    def set_viewport(
        self,
        width_px: float,
        height_px: float,
        origin_view_px: tuple[float, float] | None = None,
        device_pixel_ratio: float | None = None,
    ) -> None:
        """The image widget was resized or moved. In fit mode the image is refitted. Stamped (VIEW_FIT in fit
        mode, else VIEW_PAN) because the image -> screen mapping changed."""
        size = (float(width_px), float(height_px))
        origin = (
            self.origin_view_px
            if origin_view_px is None
            else (float(origin_view_px[0]), float(origin_view_px[1]))
        )
        dpr = self.device_pixel_ratio if device_pixel_ratio is None else float(device_pixel_ratio)
        if (size, origin, dpr) == (self.viewport_px, self.origin_view_px, self.device_pixel_ratio):
            return
        self.viewport_px, self.origin_view_px, self.device_pixel_ratio = size, origin, dpr
        if self.pixels is None or min(size) <= 0:
            return
        if self.fitted:
            self._set_transform(fit_transform(*self.image_size, *size), VIEW_FIT)
        else:
            self._stamp(VIEW_PAN)

    def fit(self) -> None:
        if self.pixels is None or min(self.viewport_px) <= 0:
            return
        self.fitted = True
        self._set_transform(fit_transform(*self.image_size, *self.viewport_px), VIEW_FIT)

    def one_to_one(self) -> None:
        """1 screen px per image px, keeping the image point at the view centre where it is."""
        if self.pixels is None:
            return
        cx, cy = self.viewport_px[0] / 2.0, self.viewport_px[1] / 2.0
        self.zoom_at(1.0 / (self.transform.scale * self.device_pixel_ratio), cx, cy)

    def zoom_at(self, factor: float, x_view_px: float, y_view_px: float) -> None:
        """Zoom by ``factor`` around a view point (the cursor for the wheel)."""
        self.fitted = False
        self._set_transform(zoom_about(self.transform, factor, x_view_px, y_view_px), VIEW_ZOOM)

    def wheel(self, notches: float, x_view_px: float, y_view_px: float) -> None:
        """Wheel zoom: positive notches zoom in by :data:`ZOOM_PER_NOTCH` each, around the cursor."""
        self.zoom_at(ZOOM_PER_NOTCH**notches, x_view_px, y_view_px)

    def pan_by(self, dx_view_px: float, dy_view_px: float) -> None:
        if dx_view_px == 0 and dy_view_px == 0:
            return
        self.fitted = False
        t = self.transform
        self._set_transform(
            replace(t, offset_x=t.offset_x + dx_view_px, offset_y=t.offset_y + dy_view_px), VIEW_PAN
        )

    def set_transform(self, t: ViewTransform, kind: int = VIEW_ZOOM) -> None:
        self.fitted = False
        self._set_transform(t, kind)

    def _set_transform(self, t: ViewTransform, kind: int) -> None:
        if t == self.transform:
            return
        self.transform = t
        self.transform_changed.emit(t)
        self._stamp(kind)

    def shown_rect_img_px(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the part of the image visible in the viewport, image px."""
        w, h = self.image_size
        x0, y0 = self.transform.view_to_image(0.0, 0.0)
        x1, y1 = self.transform.view_to_image(*self.viewport_px)
        return max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))

    # -- overlays, gaze, time ---------------------------------------------------------------------------
    def set_heatmap(self, heatmap: np.ndarray | None, scale: float = 1.0, label: str = "") -> None:
        """Show a heatmap (h_hm, w_hm) over the image (``scale`` image px per heatmap px); None clears it.
        Colormap, opacity and visibility carry over from the current overlay."""
        if heatmap is None:
            self.overlay = None
        else:
            hm = np.ascontiguousarray(heatmap, dtype=np.float32)
            if hm.ndim != 2:
                raise ValueError(f"expected a 2-D heatmap, got shape {hm.shape}")
            keep = self.overlay or HeatmapOverlay(hm, scale)
            self.overlay = replace(keep, heatmap=hm, scale=float(scale), label=label)
        self.overlay_changed.emit(self.overlay)

    def set_overlay_style(
        self, *, opacity: float | None = None, colormap: str | None = None, visible: bool | None = None
    ) -> None:
        if self.overlay is None:
            return
        changes = {
            k: v
            for k, v in (("opacity", opacity), ("colormap", colormap), ("visible", visible))
            if v is not None
        }
        if "opacity" in changes and not 0.0 <= changes["opacity"] <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {opacity!r}")
        new = replace(self.overlay, **changes)
        if new != self.overlay:
            self.overlay = new
            self.overlay_changed.emit(new)

    def set_gaze(self, x_img_px: float, y_img_px: float) -> None:
        self.gaze_img_px = (float(x_img_px), float(y_img_px))
        self.gaze_changed.emit(*self.gaze_img_px)

    def set_gaze_cursor_visible(self, visible: bool) -> None:
        if bool(visible) != self.gaze_cursor_visible:
            self.gaze_cursor_visible = bool(visible)
            self.gaze_cursor_visible_changed.emit(self.gaze_cursor_visible)

    def set_time(self, t_lsl: float) -> None:
        if t_lsl != self.t_play:
            self.t_play = float(t_lsl)
            self.time_changed.emit(self.t_play)

    # -- view events ------------------------------------------------------------------------------------
    @property
    def view_events(self) -> np.ndarray:
        """All VIEW_DTYPE rows stamped since the current case was shown (sorted by t_lsl)."""
        if not self._events:
            return np.zeros(0, VIEW_DTYPE)
        return np.stack(self._events).astype(VIEW_DTYPE)

    def current_view_row(self, kind: int = VIEW_FIT) -> np.ndarray:
        """A row describing the view now (not logged, not emitted)."""
        return view_row(
            self.clock(),
            kind,
            self.transform,
            self.window,
            self.invert,
            self.origin_view_px,
            self.device_pixel_ratio,
        )

    def _stamp(self, kind: int) -> None:
        if self.pixels is None:
            return
        row = self.current_view_row(kind)
        self._events.append(row)
        self.view_event.emit(row)
