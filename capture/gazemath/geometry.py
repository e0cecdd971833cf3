"""Screen <-> image geometry through the view-transform timeline, and pixels per degree of visual angle.

The viewer records its image->screen transform whenever it changes (VIEW_DTYPE rows, sorted by ``t_lsl``):
``x_screen = x_img * scale + offset_x``, ``y_screen = y_img * scale + offset_y``. A gaze sample is mapped through
the transform in force at its timestamp (the last row with ``t_lsl <= t``; samples before the first row use it).
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.records import GAZE_ON_IMAGE, GAZE_VALID, VIEW_DTYPE, VIEW_FIT, DisplayGeometry
from radgaze.capture.io.display import display_for_ppd, ppd_screen  # noqa: F401  (their home: the display)


def screen_px_to_deg(x_screen_px, y_screen_px, display: DisplayGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Gaze angle in degrees from the screen centre (exact, not small-angle): ``atan(offset_mm / distance)``."""
    pitch_x = display.screen_w_mm / display.screen_w_px
    pitch_y = display.screen_h_mm / display.screen_h_px
    dx_mm = (np.asarray(x_screen_px, np.float64) - display.screen_w_px / 2) * pitch_x
    dy_mm = (np.asarray(y_screen_px, np.float64) - display.screen_h_px / 2) * pitch_y
    return (
        np.rad2deg(np.arctan2(dx_mm, display.viewing_distance_mm)),
        np.rad2deg(np.arctan2(dy_mm, display.viewing_distance_mm)),
    )


def view_index(t_lsl: np.ndarray, view_events: np.ndarray) -> np.ndarray:
    """Row of ``view_events`` in force at each time (the first row for times before it)."""
    if view_events.size == 0:
        raise ValueError("view_events: expected at least one view-transform row, got none")
    idx = np.searchsorted(view_events["t_lsl"], np.asarray(t_lsl, np.float64), side="right") - 1
    return np.clip(idx, 0, view_events.size - 1)


def screen_to_image(
    x_screen_px, y_screen_px, t_lsl, view_events: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map screen px to image px through the view in force at each ``t_lsl``; also returns that view's scale."""
    v = view_events[view_index(t_lsl, view_events)]
    x_img = (np.asarray(x_screen_px, np.float64) - v["offset_x"]) / v["scale"]
    y_img = (np.asarray(y_screen_px, np.float64) - v["offset_y"]) / v["scale"]
    return x_img, y_img, v["scale"]


def image_to_screen(x_img_px, y_img_px, view: np.void | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.asarray(x_img_px, np.float64) * view["scale"] + view["offset_x"],
        np.asarray(y_img_px, np.float64) * view["scale"] + view["offset_y"],
    )


def shown_rect(view: np.ndarray, display: DisplayGeometry, image_w: int, image_h: int) -> np.ndarray:
    """The part of the image on screen for each view row: ``(..., 4)`` as x0, y0, x1, y1 in image px."""
    x0 = (0.0 - view["offset_x"]) / view["scale"]
    y0 = (0.0 - view["offset_y"]) / view["scale"]
    x1 = (display.screen_w_px - view["offset_x"]) / view["scale"]
    y1 = (display.screen_h_px - view["offset_y"]) / view["scale"]
    rect = np.stack([x0, y0, x1, y1], axis=-1)
    return np.clip(rect, 0.0, [image_w, image_h, image_w, image_h])


def fit_view(
    image_w: int,
    image_h: int,
    display: DisplayGeometry,
    *,
    t_lsl: float,
    window: tuple[float, float] = (32768.0, 65536.0),
    kind: int = VIEW_FIT,
    invert: bool = False,
) -> np.ndarray:
    """One VIEW_DTYPE row: the whole image fitted to the screen, centred (what a viewer shows on 'fit')."""
    scale = min(display.screen_w_px / image_w, display.screen_h_px / image_h)
    row = np.zeros(1, VIEW_DTYPE)
    row["t_lsl"], row["kind"], row["scale"] = t_lsl, kind, scale
    row["offset_x"] = (display.screen_w_px - image_w * scale) / 2
    row["offset_y"] = (display.screen_h_px - image_h * scale) / 2
    row["window_center"], row["window_width"], row["invert"] = window[0], window[1], invert
    return row


def map_gaze_to_image(
    gaze: np.ndarray, view_events: np.ndarray, display: DisplayGeometry, image_w: int, image_h: int
) -> np.ndarray:
    """A copy of ``gaze`` with ``x_img_px``/``y_img_px`` filled and the ON_IMAGE flag set where the sample falls
    inside the part of the image shown at its time (invalid samples are kept, never on-image)."""
    out = gaze.copy()
    if out.size == 0:
        return out
    x, y, _ = screen_to_image(out["x_screen_px"], out["y_screen_px"], out["t_lsl"], view_events)
    rect = shown_rect(view_events[view_index(out["t_lsl"], view_events)], display, image_w, image_h)
    inside = (x >= rect[:, 0]) & (x < rect[:, 2]) & (y >= rect[:, 1]) & (y < rect[:, 3])
    valid = (out["flags"] & GAZE_VALID).astype(bool) & np.isfinite(x) & np.isfinite(y)
    out["x_img_px"], out["y_img_px"] = x, y
    out["flags"] = (out["flags"] & ~np.uint8(GAZE_ON_IMAGE)) | np.where(
        valid & inside, GAZE_ON_IMAGE, 0
    ).astype(np.uint8)
    return out
