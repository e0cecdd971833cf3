"""Display geometry: from command-line strings ("1920x1080", "527x296" mm, a viewing distance in mm), and its
pixels per degree of visual angle (:func:`ppd_screen`; :func:`display_for_ppd` for a tracker that reports px/deg).

Every command that takes ``--display`` / ``--screen-mm`` / ``--distance-mm`` parses them here, so a screen
given only in pixels keeps the default screen's pixel pitch everywhere.
"""

from __future__ import annotations

import re

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import DisplayGeometry

MAX_SIDE_PX = 16384  # larger than any diagnostic display; catches "19201080"-style typos


def parse_size(text: str, what: str) -> tuple[float, float]:
    """ "1920x1080" -> (1920.0, 1080.0); raise ConfigError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*[xX×]\s*([0-9]+(?:\.[0-9]*)?)\s*", text or "")
    if not m or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ConfigError(f"{what}: expected WIDTHxHEIGHT (e.g. 1920x1080), got {text!r}")
    return float(m.group(1)), float(m.group(2))


def display_from_options(
    display_px: str | None,
    screen_mm: str | None = None,
    distance_mm: float | None = None,
    default: DisplayGeometry | None = None,
) -> DisplayGeometry:
    """A DisplayGeometry from CLI strings, falling back to ``default`` field by field; a new resolution
    without ``screen_mm`` keeps the default's pixel pitch."""
    default = default or DisplayGeometry()
    w_px, h_px = default.screen_w_px, default.screen_h_px
    if display_px:
        w, h = parse_size(display_px, "--display")
        if w > MAX_SIDE_PX or h > MAX_SIDE_PX:
            raise ConfigError(f"--display: expected at most {MAX_SIDE_PX} px per side, got {display_px!r}")
        w_px, h_px = int(w), int(h)
    if screen_mm:
        w_mm, h_mm = parse_size(screen_mm, "--screen-mm")
    else:
        w_mm = default.screen_w_mm / default.screen_w_px * w_px
        h_mm = default.screen_h_mm / default.screen_h_px * h_px
    distance = default.viewing_distance_mm if distance_mm is None else float(distance_mm)
    if distance <= 0:
        raise ConfigError(f"--distance-mm: expected a positive distance, got {distance_mm}")
    return DisplayGeometry(w_px, h_px, w_mm, h_mm, distance)


def parse_display(text: str) -> DisplayGeometry:
    """'WxH' (pixels) -> DisplayGeometry keeping the default pixel pitch and viewing distance."""
    return display_from_options(text)


def ppd_screen(display: DisplayGeometry) -> tuple[float, float]:
    """Screen pixels per degree of visual angle at the screen centre, ``(ppd_x, ppd_y)``.

    One degree spans ``2 * d * tan(0.5 deg)`` mm at viewing distance ``d``; divided by the pixel pitch in mm.
    """
    mm_per_deg = 2.0 * display.viewing_distance_mm * np.tan(np.deg2rad(0.5))
    pitch_x = display.screen_w_mm / display.screen_w_px
    pitch_y = display.screen_h_mm / display.screen_h_px
    return float(mm_per_deg / pitch_x), float(mm_per_deg / pitch_y)


def display_for_ppd(
    screen_w_px: int, screen_h_px: int, ppd_x: float, ppd_y: float, viewing_distance_mm: float
) -> DisplayGeometry:
    """The DisplayGeometry whose :func:`ppd_screen` is ``(ppd_x, ppd_y)`` at that distance: the pixel pitch is
    what one degree spans there divided by px/deg (for a tracker that reports px/deg, not the screen's size)."""
    if not (ppd_x > 0 and ppd_y > 0 and viewing_distance_mm > 0):
        raise ValueError(
            f"expected positive px/deg and distance, got {ppd_x}, {ppd_y}, {viewing_distance_mm}"
        )
    mm_per_deg = 2.0 * viewing_distance_mm * np.tan(np.deg2rad(0.5))
    return DisplayGeometry(
        int(screen_w_px),
        int(screen_h_px),
        float(screen_w_px * mm_per_deg / ppd_x),
        float(screen_h_px * mm_per_deg / ppd_y),
        float(viewing_distance_mm),
    )


# Where a session's pixels per degree came from (recorded as ``{"x", "y", "source"}``: :func:`ppd_record`)
SCREEN_MM_FROM_OPTION = "--screen-mm"
SCREEN_MM_FROM_QT = "the monitor's own size (Qt QScreen.physicalSize, from its EDID)"
SCREEN_MM_ASSUMED = "assumed: the default pixel pitch (0.2115 mm, a 21.3-inch 3 MP diagnostic monitor)"
DISTANCE_FROM_OPTION = "--distance-mm"
DISTANCE_ASSUMED = "assumed: the default 650 mm"
DISTANCE_REMEMBERED = "this workstation's, given once with --distance-mm and remembered"


def options_ppd_source(
    screen_mm: str | None,
    distance_mm: float | None,
    *,
    screen_mm_otherwise: str = SCREEN_MM_ASSUMED,
    distance_otherwise: str = DISTANCE_ASSUMED,
) -> str:
    """Where px/deg came from when the display was given on the command line (an assumption is said so)."""
    screen = SCREEN_MM_FROM_OPTION if screen_mm else screen_mm_otherwise
    distance = DISTANCE_FROM_OPTION if distance_mm is not None else distance_otherwise
    return f"screen size: {screen}; viewing distance: {distance}"


def ppd_record(display: DisplayGeometry, source: str) -> dict:
    """The px/deg at the screen centre and where it came from, as sessions record it (case attrs ``ppd``, file
    provenance ``ppd``)."""
    ppd_x, ppd_y = ppd_screen(display)
    return {"x": round(ppd_x, 3), "y": round(ppd_y, 3), "source": source}
