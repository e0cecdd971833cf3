"""AprilTag markers at the viewer's corners, for head-mounted eye trackers (``radgaze record --scene-markers``).

Four tag36h11 markers (ids 0-3: top-left, top-right, bottom-right, bottom-left) drawn on top of a widget, as
Pupil Labs' tools expect markers at the screen's corners; :meth:`MarkerOverlay.screen_markers` says where each
marker's black square is on the screen (physical px), which is what capture/gazemath/surface.py maps scene-camera
gaze onto. The markers are drawn from the AprilTag library's own tag36h11 table (capture/live/scene_markers.py).
With ``publish=True`` (the record window) that layout goes out on LSL (capture/live/marker_layout.py), checked every
:data:`PUBLISH_EVERY_MS` (a moved or resized window is sent at once, an unchanged one again every second), so the
head-mounted bridges map onto where the markers really are.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.capture.gazemath.surface import ScreenMarker, square_corners
from radgaze.capture.live.scene_markers import OVERLAY_CELL_PX as CELL_PX
from radgaze.capture.live.scene_markers import OVERLAY_MARGIN_PX as MARGIN_PX
from radgaze.capture.live.scene_markers import MarkerDetector

PUBLISH_EVERY_MS = 200


def _pixmap(tag: np.ndarray) -> QtGui.QPixmap:
    tag = np.ascontiguousarray(tag, np.uint8)
    image = QtGui.QImage(
        tag.data, tag.shape[1], tag.shape[0], tag.strides[0], QtGui.QImage.Format.Format_Grayscale8
    )
    return QtGui.QPixmap.fromImage(image.copy())


class MarkerOverlay(QtCore.QObject):
    """The four markers as child labels of ``widget``, kept at its corners when it is resized."""

    def __init__(
        self,
        widget: QtWidgets.QWidget,
        *,
        cell_px: int = CELL_PX,
        margin_px: int = MARGIN_PX,
        publish: bool = False,
    ) -> None:
        super().__init__(widget)
        self.widget, self.margin_px = widget, margin_px
        detector = MarkerDetector()
        self.offset_px, self.side_px = detector.black_square_px(cell_px)  # black square inside a drawn marker
        self.labels = []
        for tag_id in range(4):
            label = QtWidgets.QLabel(widget)
            label.setPixmap(_pixmap(detector.render(tag_id, cell_px)))
            label.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.adjustSize()
            self.labels.append(label)
        widget.installEventFilter(self)
        self.place()
        self.outlet = None
        if publish:
            from radgaze.capture.live.marker_layout import MarkerLayoutOutlet

            self.outlet = MarkerLayoutOutlet()
            self._timer = QtCore.QTimer(self)
            self._timer.timeout.connect(self.publish)
            self._timer.start(PUBLISH_EVERY_MS)

    def publish(self) -> None:
        """Send the markers' screen positions (when shown; the outlet sends changes and a repeat a second)."""
        if self.outlet is not None and self.widget.isVisible():
            self.outlet.publish(self.screen_markers())

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self.widget and event.type() == QtCore.QEvent.Type.Resize:
            self.place()
        return False

    def place(self) -> None:
        w, h, m = self.widget.width(), self.widget.height(), self.margin_px
        size = self.labels[0].width()
        corners = [(m, m), (w - m - size, m), (w - m - size, h - m - size), (m, h - m - size)]
        for label, (x, y) in zip(self.labels, corners):
            label.move(x, y)
            label.raise_()
            label.show()

    def screen_markers(self) -> list[ScreenMarker]:
        """Each marker's black square on the screen, in physical px (its detector-ordered corners)."""
        dpr = self.widget.devicePixelRatioF()
        out = []
        for tag_id, label in enumerate(self.labels):
            top_left = label.mapToGlobal(QtCore.QPoint(0, 0))
            x0, y0 = (top_left.x() + self.offset_px) * dpr, (top_left.y() + self.offset_px) * dpr
            out.append(ScreenMarker(tag_id, square_corners(x0, y0, self.side_px * dpr)))
        return out
