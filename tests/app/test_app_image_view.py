"""The image canvas driven by real Qt events (offscreen): W/L drag, wheel zoom, pan, overlay, cursor."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.image_view import ImageView, heatmap_lut
from radgaze.app.state import ZOOM_PER_NOTCH, ViewerState


@pytest.fixture
def view(qtbot):
    state = ViewerState()
    v = ImageView(state)
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    px = np.tile(np.linspace(0, 4000, 300, dtype=np.float32).astype(np.uint16), (200, 1))
    state.set_case("grad", px, window=(2000.0, 4000.0))
    return v


def _mouse(widget, kind, pos, button, buttons):
    ev = QtGui.QMouseEvent(
        kind,
        QtCore.QPointF(*pos),
        widget.mapToGlobal(QtCore.QPointF(*pos)),
        button,
        buttons,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(widget, ev)


def _drag(widget, start, end, button):
    none = QtCore.Qt.MouseButton.NoButton
    _mouse(widget, QtCore.QEvent.Type.MouseButtonPress, start, button, button)
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    _mouse(widget, QtCore.QEvent.Type.MouseMove, mid, none, button)
    _mouse(widget, QtCore.QEvent.Type.MouseMove, end, none, button)
    _mouse(widget, QtCore.QEvent.Type.MouseButtonRelease, end, button, none)


def test_fit_on_show(view):
    s = view.state
    assert s.viewport_px == (600.0, 400.0)
    assert s.transform.scale == pytest.approx(2.0)  # 300x200 image in 600x400
    assert view.image_item.image.shape == (200, 300)
    assert view.image_item.image.flags["C_CONTIGUOUS"]


def test_right_drag_changes_window_level(view):
    s = view.state
    c0, w0 = s.window
    span = float(s.pixels.max() - s.pixels.min())
    _drag(view.canvas.viewport(), (100, 100), (140, 100), QtCore.Qt.MouseButton.RightButton)  # right: level
    c1, w1 = s.window
    assert w1 == w0 and c1 == pytest.approx(c0 + 40 * span / 512)
    _drag(view.canvas.viewport(), (100, 100), (100, 80), QtCore.Qt.MouseButton.RightButton)  # up: narrower
    c2, w2 = s.window
    assert c2 == c1 and w2 == pytest.approx(w1 - 20 * span / 512)
    lo, hi = view.image_item.getLevels()
    assert (lo, hi) == pytest.approx((c2 - w2 / 2, c2 + w2 / 2))  # what is drawn follows the state
    assert "C 2" in view.readout.text()


def test_wheel_zooms_around_the_cursor(view):
    s = view.state
    cursor = (150.0, 120.0)
    under = s.transform.view_to_image(*cursor)
    ev = QtGui.QWheelEvent(
        QtCore.QPointF(*cursor),
        view.canvas.viewport().mapToGlobal(QtCore.QPointF(*cursor)),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 240),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(view.canvas.viewport(), ev)
    assert s.transform.scale == pytest.approx(2.0 * ZOOM_PER_NOTCH**2)
    assert s.transform.view_to_image(*cursor) == pytest.approx(under)
    # the image item is drawn through the same transform
    mapped = view.image_space.mapToScene(QtCore.QPointF(*under))
    assert (mapped.x(), mapped.y()) == pytest.approx(cursor, abs=1e-6)


def test_middle_drag_pans_and_double_click_fits(view):
    s = view.state
    off0 = (s.transform.offset_x, s.transform.offset_y)
    _drag(view.canvas.viewport(), (200, 200), (230, 190), QtCore.Qt.MouseButton.MiddleButton)
    assert (s.transform.offset_x, s.transform.offset_y) == pytest.approx((off0[0] + 30, off0[1] - 10))
    assert not s.fitted
    s.fit()
    assert (s.transform.offset_x, s.transform.offset_y) == pytest.approx(off0)


def test_heatmap_overlay_shape_scale_and_opacity(view):
    s = view.state
    hm = np.zeros((50, 75), np.float32)
    hm[10, 20] = 1.0
    s.set_heatmap(hm, scale=4.0, label="effusion")
    item = view.heatmap_item
    assert item.isVisible() and item.image.shape == (50, 75)
    assert item.opacity() == pytest.approx(0.5)
    # heatmap px (20, 10) lands on image px (80, 40), i.e. where the state draws image px (80, 40)
    p = item.mapToScene(QtCore.QPointF(20, 10))
    assert (p.x(), p.y()) == pytest.approx(s.transform.image_to_view(80.0, 40.0))
    s.set_overlay_style(opacity=0.8)
    assert item.opacity() == pytest.approx(0.8)
    s.set_overlay_style(visible=False)
    assert not item.isVisible()
    lut = heatmap_lut("inferno")
    assert lut.shape == (256, 4) and lut.dtype == np.uint8 and lut[0, 3] == 0 and lut[-1, 3] == 255


def test_gaze_cursor_hidden_by_default(view):
    s = view.state
    s.set_gaze(100.0, 50.0)
    assert not view.gaze_item.isVisible()
    s.set_gaze_cursor_visible(True)
    assert view.gaze_item.isVisible()
    assert (view.gaze_item.pos().x(), view.gaze_item.pos().y()) == (100.0, 50.0)
    s.set_gaze(float("nan"), float("nan"))  # gaze lost (blink)
    assert not view.gaze_item.isVisible()


def test_pixel_readout_shows_the_value_under_the_cursor(view):
    s = view.state
    x_view, y_view = s.transform.image_to_view(150.5, 100.5)
    _mouse(
        view.canvas.viewport(),
        QtCore.QEvent.Type.MouseMove,
        (x_view, y_view),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.MouseButton.NoButton,
    )
    expected = int(s.pixels[100, 150])
    assert f"x 150  y 100  = {expected}" in view.readout.text()


def test_invert_flips_the_lut(view):
    before = view.image_item.lut.copy()
    view.state.set_invert(True)
    assert np.array_equal(view.image_item.lut, before[::-1])
