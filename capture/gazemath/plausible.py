"""Plausibility of gaze at every boundary (issue 24): positions judged in pixels, after any scaling, and units
judged against the data.

A tracker or a file can carry values no eye produced: a normalised coordinate of 5e6 (7.7e9 px once scaled),
1e30 px, a time column in milliseconds where seconds were declared. Each check here is a small pure function;
the live layouts mark such samples invalid (kept, no position), the importers refuse the reading in one line
naming the file, the column and the value (:func:`implausible_value`).
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.records import DisplayGeometry

# Gaze off the screen is real (a tracker's edge, a glance at the keyboard, a poor calibration: a real EyeLink
# recording of eyelinkio's test data reaches 1.7 screen widths); more than a whole screen beyond its edge is not.
SCREEN_MARGIN_FRAC = 1.0  # of the screen's width / height, on every side
IMAGE_MARGIN_FRAC = 0.5  # the same around an image, for positions given in image pixels
MAX_IMAGE_SIDE_PX = (
    20000  # a radiograph's side (the largest detectors are ~4300 px; a stitched long leg ~10k)
)
# A fixation lasts 50 ms to a few seconds (Salvucci & Goldberg 2000; REFLACX's median is ~0.25 s): a median
# above this is a time column in milliseconds.
MAX_MEDIAN_FIXATION_S = 5.0
# Eye trackers sample at 30-2000 Hz: a median interval above this between samples is milliseconds.
MAX_MEDIAN_SAMPLE_INTERVAL_S = 0.5
MAX_READING_S = 4 * 3600.0  # one reading of one radiograph
MAX_DUPLICATE_FRACTION = 0.05  # rows repeating the row before them (a tracker never does; a bad export does)


def on_screen(x_px: np.ndarray, y_px: np.ndarray, display: DisplayGeometry) -> np.ndarray:
    """(n,) bool: the screen position is within the display plus :data:`SCREEN_MARGIN_FRAC` on each side
    (NaN: False)."""
    mx, my = SCREEN_MARGIN_FRAC * display.screen_w_px, SCREEN_MARGIN_FRAC * display.screen_h_px
    with np.errstate(invalid="ignore"):
        return (
            (x_px >= -mx)
            & (x_px <= display.screen_w_px + mx)
            & (y_px >= -my)
            & (y_px <= display.screen_h_px + my)
        )


def on_image(x_px: np.ndarray, y_px: np.ndarray, width_px: float, height_px: float) -> np.ndarray:
    """(n,) bool: an image position within the image plus :data:`IMAGE_MARGIN_FRAC` on each side."""
    mx, my = IMAGE_MARGIN_FRAC * width_px, IMAGE_MARGIN_FRAC * height_px
    with np.errstate(invalid="ignore"):
        return (x_px >= -mx) & (x_px <= width_px + mx) & (y_px >= -my) & (y_px <= height_px + my)


def first_outside(ok: np.ndarray, values: np.ndarray) -> tuple[int, float] | None:
    """(row, value) of the first finite value where ``ok`` is False (NaN cells are missing, not wrong)."""
    bad = np.flatnonzero(~ok & np.isfinite(values))
    return None if bad.size == 0 else (int(bad[0]), float(values[bad[0]]))


def implausible_value(where: str, column: str, row: int | None, value: float, expected: str) -> str:
    """The one line an importer raises: file, column, row, value and what was expected."""
    at = f" row {row + 2}" if row is not None else ""  # +2: the header line and 1-based rows of a CSV
    return f"{where}{at} column {column}: expected {expected}, got {value:g}"


def time_unit_problem(t_start_s: np.ndarray, t_end_s: np.ndarray) -> str | None:
    """A sentence when fixation times look like milliseconds (median duration above MAX_MEDIAN_FIXATION_S)."""
    dur = np.asarray(t_end_s, float) - np.asarray(t_start_s, float)
    dur = dur[np.isfinite(dur)]
    if dur.size and float(np.median(dur)) > MAX_MEDIAN_FIXATION_S:
        return (
            f"seconds (a median fixation of {MAX_MEDIAN_FIXATION_S:g} s at most), got a median fixation of "
            f"{float(np.median(dur)):g} (milliseconds?)"
        )
    return None


def sample_interval_problem(t_s: np.ndarray) -> str | None:
    """A sentence when sample times look like milliseconds (median interval above the slowest tracker's)."""
    d = np.diff(np.asarray(t_s, float))
    d = d[np.isfinite(d) & (d > 0)]
    if d.size and float(np.median(d)) > MAX_MEDIAN_SAMPLE_INTERVAL_S:
        return (
            f"seconds (samples at 2 Hz or faster), got a median interval of {float(np.median(d)):g} between "
            "samples (milliseconds?)"
        )
    return None


def duplicate_fraction(rows: np.ndarray) -> float:
    """Share of rows (n, k) equal to the row before them (a float table; NaNs compare equal)."""
    rows = np.asarray(rows, float)
    if rows.shape[0] < 2:
        return 0.0
    a, b = rows[1:], rows[:-1]
    same = np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    return float(np.mean(same))
