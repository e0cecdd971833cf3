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
    from radgaze.capture.io.images import apply_window

    s = view.state
    c0, w0 = s.window
    span = float(s.pixels.max() - s.pixels.min())
    # PACS convention (RadiAnt, OHIF, Weasis): right = wider window
    _drag(view.canvas.viewport(), (100, 100), (140, 100), QtCore.Qt.MouseButton.RightButton)
    c1, w1 = s.window
    assert c1 == c0 and w1 == pytest.approx(w0 + 40 * span / 512, abs=1.0)  # two moves, each rounded
    # up = lower level (a brighter picture)
    _drag(view.canvas.viewport(), (100, 100), (100, 80), QtCore.Qt.MouseButton.RightButton)
    c2, w2 = s.window
    assert w2 == w1 and c2 == pytest.approx(c1 - 20 * span / 512, abs=1.0)
    assert c2 == int(c2) and w2 == int(w2)  # integer data: integer W/L
    # what is drawn follows the state: pyqtgraph's levels on the pixels...
    assert not view.uses_window_lut() and view.drawn_bin == 1
    assert view.image_item.getLevels() == pytest.approx((c2 - w2 / 2, c2 + w2 / 2))
    # ...or, on the alternative path, the uint16 pixels through the 65536-entry window LUT
    view.set_wl_path("lut")
    np.testing.assert_array_equal(view.image_item.image, apply_window(s.pixels, c2, w2))
    with pytest.raises(ValueError, match="path"):
        view.set_wl_path("gpu")
    assert f"W {int(w2)}  L {int(c2)}" in view.readout.text()


def test_corner_text_like_a_pacs(view):
    s = view.state
    lines = view.readout.text().splitlines()
    assert lines[0] == "300 × 200  uint16"  # no ImageMeta here: the array's type
    assert lines[1] == "Zoom 200%"
    assert lines[2] == "W 4000  L 2000"
    s.set_invert(True)
    assert view.readout.text().splitlines()[2] == "W 4000  L 2000  inverted"
    s.pixels, s.case_id = None, ""
    s.case_changed.emit("")
    assert view.readout.text() == "" or not view.readout.isVisible()  # an empty canvas says nothing


def test_empty_canvas_has_no_placeholder_window(qtbot):
    v = ImageView(ViewerState())
    qtbot.addWidget(v)
    v.show()
    assert not v.readout.isVisible() and "C 0.5" not in v.readout.text()


def test_zoomed_out_draws_a_binned_copy_and_reads_full_resolution(qtbot):
    from radgaze.app.image_view import bin2, display_bin

    assert [display_bin(s) for s in (2.0, 1.0, 0.6, 0.5, 0.3, 0.25, 0.01)] == [1, 1, 1, 2, 2, 4, 8]
    px = np.arange(15, dtype=np.uint16).reshape(3, 5) * 10
    b = bin2(px)
    assert b.shape == (2, 3) and b.dtype == np.uint16
    assert b[0, 0] == round((0 + 10 + 50 + 60) / 4) and b[1, 2] == 140  # odd edges repeated
    state = ViewerState()
    v = ImageView(state)
    qtbot.addWidget(v)
    v.resize(400, 400)
    v.show()
    qtbot.waitExposed(v)
    big = np.tile(np.arange(1600, dtype=np.uint16), (1600, 1))
    state.set_case("big", big, window=(800.0, 1600.0))
    assert v.drawn_bin == 4 and v.image_item.image.shape == (400, 400)
    assert v.image_item.transform().m11() == 4  # drawn px cover 4 image px: geometry unchanged
    assert v.pixel_value(1234.0, 10.0) == 1234.0  # the readout reads full resolution
    state.one_to_one()
    assert v.drawn_bin == 1 and v.image_item.image.shape == (1600, 1600)


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


def test_monochrome1_values_in_the_files_terms(qtbot, shared_data):
    """RG1_J2KI is MONOCHROME1 with WC/WW 15000/30000: drawn inverted, but the corner shows the tags' window
    and the stored value under the cursor."""
    import pydicom

    from radgaze.capture.io.images import default_window, load_image

    path = shared_data / "dicom" / "RG1_J2KI.dcm"
    img = load_image(path)
    stored = pydicom.dcmread(path).pixel_array
    state = ViewerState()
    v = ImageView(state)
    qtbot.addWidget(v)
    v.resize(500, 500)
    v.show()
    qtbot.waitExposed(v)
    state.set_case("RG1", img.pixels, window=default_window(img), meta=img.meta)
    assert v.readout.text().splitlines()[0] == "1841 × 1955  15-bit"
    assert "W 30000  L 15000" in v.readout.text()  # the tags, not the mirrored centre 17767
    x_img, y_img = 900, 1000
    x_view, y_view = state.transform.image_to_view(x_img + 0.5, y_img + 0.5)
    _mouse(
        v.canvas.viewport(),
        QtCore.QEvent.Type.MouseMove,
        (x_view, y_view),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.MouseButton.NoButton,
    )
    assert f"x {x_img}  y {y_img}  = {int(stored[y_img, x_img])}" in v.readout.text()


def test_invert_flips_the_drawn_grey_levels(view):
    before = view.image_item.lut.copy()
    view.state.set_invert(True)
    assert np.array_equal(view.image_item.lut, before[::-1])
    view.set_wl_path("lut")
    inverted = view.image_item.image.copy()
    view.state.set_invert(False)
    assert np.array_equal(view.image_item.image, 255 - inverted)


def test_float_images_use_the_level_path_and_invert_flips_its_lut(qtbot):
    state = ViewerState()
    v = ImageView(state)
    qtbot.addWidget(v)
    v.resize(300, 200)
    v.show()
    state.set_case("f", np.tile(np.linspace(0, 1, 300, dtype=np.float32), (200, 1)), window=(0.5, 1.0))
    assert not v.uses_window_lut()
    before = v.image_item.lut.copy()
    state.set_invert(True)
    assert np.array_equal(v.image_item.lut, before[::-1])
