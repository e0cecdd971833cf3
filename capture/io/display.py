"""Display geometry from command-line strings ("1920x1080", "527x296" mm, a viewing distance in mm).

Every command that takes ``--display`` / ``--screen-mm`` / ``--distance-mm`` parses them here, so a screen
given only in pixels keeps the default screen's pixel pitch everywhere.
"""

from __future__ import annotations

import re

from radgaze.capture.errors import ConfigError
from radgaze.capture.records import DisplayGeometry

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
