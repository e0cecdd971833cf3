"""The AprilTag markers radgaze draws at the viewer's corners are found where radgaze says they are: the real
widget, grabbed, searched by the AprilTag detector."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

pytest.importorskip(
    "pupil_apriltags", reason="pupil-apriltags is not installed (pip install 'radgaze[headmounted]')"
)
from radgaze.app.scene_markers import MarkerOverlay  # noqa: E402
from radgaze.capture.live.scene_markers import MarkerDetector  # noqa: E402


def _grey(widget: QtWidgets.QWidget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_Grayscale8)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return arr[:, : image.width()].copy()


def test_markers_at_the_viewer_corners_are_detected_where_the_overlay_says(qtbot):
    widget = QtWidgets.QWidget()
    widget.setStyleSheet("background: #606060")
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    overlay = MarkerOverlay(widget)
    widget.show()
    qtbot.waitExposed(widget)
    for size in ((900, 600), (700, 500)):  # markers follow a resize
        widget.resize(*size)
        qtbot.wait(50)
        seen = MarkerDetector().detect(_grey(widget))
        assert set(seen) == {0, 1, 2, 3}
        dpr = widget.devicePixelRatioF()
        origin = widget.mapToGlobal(QtCore.QPoint(0, 0))
        for m in overlay.screen_markers():
            expected = m.corners_px - np.array([origin.x(), origin.y()]) * dpr
            np.testing.assert_allclose(seen[m.tag_id], expected, atol=1.0)
        assert seen[2][1][0] > size[0] * dpr * 0.9  # the bottom-right marker is at the right edge


def test_record_scene_markers_option_draws_them_on_the_record_windows_viewer(qtbot):
    from radgaze.app.main_window import MainWindow
    from radgaze.app.record_cmd import build_parser, install_scene_markers

    window = MainWindow(title="markers", settings_key="test-scene-markers")
    qtbot.addWidget(window)
    args = build_parser().parse_args(["s.h5", "--images", ".", "--sim", "--scene-markers"])
    overlay = install_scene_markers(window, args)
    assert (
        install_scene_markers(window, build_parser().parse_args(["s.h5", "--images", ".", "--sim"])) is None
    )
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    assert set(MarkerDetector().detect(_grey(window.image_view))) == {0, 1, 2, 3}
    assert [m.tag_id for m in overlay.screen_markers()] == [0, 1, 2, 3]


def test_the_record_window_publishes_where_its_markers_are_and_follows_a_move(qtbot):
    """A bridge reads the window's marker layout off LSL: the screen positions the overlay says, again after the
    window is resized (the image view's corners move), within a second."""
    from radgaze.app.main_window import MainWindow
    from radgaze.app.record_cmd import build_parser, install_scene_markers
    from radgaze.capture.live.marker_layout import ScreenMarkerSource

    window = MainWindow(title="markers", settings_key="test-scene-markers-published")
    qtbot.addWidget(window)
    overlay = install_scene_markers(
        window, build_parser().parse_args(["s.h5", "--images", ".", "--sim", "--scene-markers"])
    )
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    inlet = ScreenMarkerSource(None)  # what the bridges read the layout with

    def layout_is(expected) -> None:
        inlet.update()
        assert inlet.markers is not None
        assert [m.tag_id for m in inlet.markers] == [m.tag_id for m in expected]
        for got, want in zip(inlet.markers, expected):
            np.testing.assert_allclose(got.corners_px, want.corners_px, atol=1e-3)

    qtbot.waitUntil(lambda: layout_is(overlay.screen_markers()), timeout=5000)
    before = overlay.screen_markers()
    window.resize(800, 560)
    qtbot.wait(50)
    after = overlay.screen_markers()
    assert not np.allclose(after[2].corners_px, before[2].corners_px)  # the bottom-right marker moved
    qtbot.waitUntil(lambda: layout_is(after), timeout=5000)
    assert inlet.n_layouts >= 2
    inlet.close()
    overlay.outlet.close()
