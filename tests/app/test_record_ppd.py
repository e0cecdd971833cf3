"""The record window's display: --screen-mm / --distance-mm, else the monitor's own size as Qt reports it (its
EDID), else stated defaults; the px/deg record says which."""

from __future__ import annotations

import argparse

import pytest

from radgaze.app.qtapp import settings
from radgaze.app.record_cmd import DISTANCE_KEY, build_parser, window_display
from radgaze.capture.io.display import DISTANCE_REMEMBERED, SCREEN_MM_ASSUMED, SCREEN_MM_FROM_QT, ppd_screen


@pytest.fixture(autouse=True)
def no_remembered_distance(qapp):
    """Each test starts on a workstation that remembers no viewing distance, and leaves none behind."""
    settings().remove(DISTANCE_KEY)
    yield
    settings().remove(DISTANCE_KEY)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["s.h5", "--images", ".", *argv])


def test_window_display_from_the_options(qapp):
    display, ppd = window_display(
        _args("--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "600"), qapp
    )
    assert (display.screen_w_px, display.screen_w_mm, display.viewing_distance_mm) == (1920, 531.0, 600.0)
    assert ppd["source"] == "screen size: --screen-mm; viewing distance: --distance-mm"
    assert ppd["x"] == pytest.approx(ppd_screen(display)[0], abs=1e-3)


def test_window_display_of_this_screen_says_whether_its_size_is_the_monitors(qapp):
    screen = qapp.primaryScreen()
    display, ppd = window_display(_args("--distance-mm", "700"), qapp)
    dpr = screen.devicePixelRatio()
    assert (
        display.screen_w_px == round(screen.geometry().width() * dpr) and display.viewing_distance_mm == 700
    )
    w_mm = screen.physicalSize().width()
    if 0.1 < w_mm / display.screen_w_px < 1.0:  # a plausible size reported: the monitor's own
        assert SCREEN_MM_FROM_QT in ppd["source"] and display.screen_w_mm == pytest.approx(w_mm)
    else:  # offscreen platforms report none: the default pitch, said to be assumed
        assert SCREEN_MM_ASSUMED in ppd["source"]
    assert "viewing distance: --distance-mm" in ppd["source"]
    _, other = window_display(_args("--display", "2560x1440"), qapp)  # another screen: Qt's size says nothing
    assert SCREEN_MM_ASSUMED in other["source"] and DISTANCE_REMEMBERED in other["source"]  # 700 mm, above


def test_a_viewing_distance_given_once_is_remembered_for_the_workstation(qapp):
    _, first = window_display(_args("--display", "1920x1080", "--screen-mm", "531x299"), qapp)
    assert "assumed: the default 650 mm" in first["source"]
    window_display(_args("--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "720"), qapp)
    display, later = window_display(_args("--display", "1920x1080", "--screen-mm", "531x299"), qapp)
    assert display.viewing_distance_mm == 720 and DISTANCE_REMEMBERED in later["source"]
    assert later["x"] == pytest.approx(ppd_screen(display)[0], abs=1e-3)
