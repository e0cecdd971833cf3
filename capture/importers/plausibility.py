"""The importers' plausibility checks (issue 24): one line naming the file, the column and the value, and
nothing stored. The judgements themselves live in :mod:`radgaze.capture.gazemath.plausible`."""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.errors import ImportFormatError, RadgazeError, StoreWriteError
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.plausible import (
    MAX_DUPLICATE_FRACTION,
    MAX_IMAGE_SIDE_PX,
    MAX_READING_S,
    SCREEN_MARGIN_FRAC,
    duplicate_fraction,
    first_outside,
    implausible_value,
    on_screen,
    sample_interval_problem,
    time_unit_problem,
)


def refuse_off_screen(
    where: str,
    columns: tuple[str, str],
    x_px: np.ndarray,
    y_px: np.ndarray,
    display: DisplayGeometry,
    cells: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """ImportFormatError unless every finite position, in screen pixels after any scaling, is on the screen
    plus the margin (gazemath.plausible.on_screen), axis by axis (the row named is the table's row).
    ``cells``: the values as the file holds them (default: the screen positions), for the message."""
    x_px, y_px = np.asarray(x_px, float), np.asarray(y_px, float)
    cells = cells if cells is not None else (x_px, y_px)
    mid_x, mid_y = np.full_like(x_px, display.screen_w_px / 2), np.full_like(y_px, display.screen_h_px / 2)
    for column, values, ok, raw in (
        (columns[0], x_px, on_screen(x_px, mid_y, display), cells[0]),
        (columns[1], y_px, on_screen(mid_x, y_px, display), cells[1]),
    ):
        bad = first_outside(ok, values)
        if bad is not None:
            expected = (
                f"a position on the {display.screen_w_px} x {display.screen_h_px} px screen "
                f"(+/- {SCREEN_MARGIN_FRAC:g} of it) in px after scaling"
            )
            raise ImportFormatError(implausible_value(where, column, bad[0], float(raw[bad[0]]), expected))


def refuse_ms_fixations(where: str, column: str, t_start_s: np.ndarray, t_end_s: np.ndarray) -> None:
    problem = time_unit_problem(t_start_s, t_end_s)
    if problem is not None:
        raise ImportFormatError(f"{where} column {column}: expected {problem}")


def refuse_ms_samples(where: str, column: str, t_s: np.ndarray) -> None:
    problem = sample_interval_problem(t_s)
    if problem is not None:
        raise ImportFormatError(f"{where} column {column}: expected {problem}")


def refuse_duplicates(where: str, what: str, table: np.ndarray) -> None:
    """ImportFormatError when more than MAX_DUPLICATE_FRACTION of the rows repeat the row before them."""
    share = duplicate_fraction(table)
    if share > MAX_DUPLICATE_FRACTION:
        raise ImportFormatError(
            f"{where}: expected one row per {what}, got {share:.0%} of the rows repeating the row before "
            f"them (a duplicated export?)"
        )


def refuse_long_reading(where: str, t_start_s: float, t_end_s: float) -> None:
    if t_end_s - t_start_s > MAX_READING_S:
        raise ImportFormatError(
            f"{where}: expected a reading of at most {MAX_READING_S / 3600:g} h, got one lasting "
            f"{t_end_s - t_start_s:g} s (times in milliseconds?)"
        )


def refuse_image_size(where: str, columns: tuple[str, str], width_px: float, height_px: float) -> None:
    for column, side in zip(columns, (width_px, height_px)):
        if not 0 < side <= MAX_IMAGE_SIDE_PX:
            raise ImportFormatError(
                implausible_value(where, column, None, side, f"an image side of 1..{MAX_IMAGE_SIDE_PX} px")
            )


def reading_error(what: str, exc: Exception) -> RadgazeError:
    """The one-line error of a reading that failed, whatever raised it (``--skip-broken`` lists it and goes
    on); a file that cannot be written stops the whole import (re-raised as it is)."""
    if isinstance(exc, StoreWriteError):
        raise exc
    if isinstance(exc, RadgazeError):
        return exc
    first = (str(exc).splitlines() or [""])[0]
    return ImportFormatError(f"{what}: expected a readable reading, got {type(exc).__name__}: {first}")
