"""The image canvas: a radiograph through a window/level LUT, a heatmap overlay and a gaze cursor.

A thin view over :class:`radgaze.app.state.ViewerState`: mouse input calls state setters, state signals redraw.
pyqtgraph is used as its performance notes advise: ``imageAxisOrder='row-major'``, C-contiguous arrays,
``setImage(autoLevels=False)`` once per case and ``setLevels`` on window changes. A 16-bit image goes through
pyqtgraph's level-based path: levels + a 256-entry uint8 grey LUT, which pyqtgraph folds into one 65536-entry
lookup for uint16 data (``radgaze bench viewer`` measures it against a precomputed 65536-entry window LUT).

Mouse: right-drag = window/level (horizontal = level, vertical = width, as REFLACX's viewer), wheel = zoom
around the cursor, middle-drag (or shift + left-drag) = pan, double-click = fit. The canvas's scene
coordinates are its pixels (pyqtgraph GraphicsView's auto pixel range); every image-space item is a child of
one group whose transform is the state's image -> view transform.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.state import HeatmapOverlay, ViewerState, ViewTransform

pg.setConfigOptions(imageAxisOrder="row-major")

GAZE_CURSOR_DIAMETER_PX = 24.0  # screen px; about 0.5 deg at 650 mm on a 0.21 mm-pitch display


def grey_lut(invert: bool = False) -> np.ndarray:
    """(256,) uint8 grey ramp (reversed when inverted)."""
    ramp = np.arange(256, dtype=np.uint8)
    return ramp[::-1].copy() if invert else ramp


def heatmap_lut(colormap: str, n: int = 256) -> np.ndarray:
    """(n, 4) uint8 RGBA LUT of a pyqtgraph colormap whose alpha rises with the value (0 fully transparent,
    reaching opaque at 40 % of the range) so low attention does not veil the image."""
    rgba = pg.colormap.get(colormap).getLookupTable(0.0, 1.0, n, alpha=True).astype(np.uint8)
    rgba[:, 3] = np.clip(np.linspace(0.0, 1.0 / 0.4, n), 0.0, 1.0) * 255
    return rgba


def qtransform(t: ViewTransform) -> QtGui.QTransform:
    return QtGui.QTransform(t.scale, 0.0, 0.0, t.scale, t.offset_x, t.offset_y)


class SmoothImageItem(pg.ImageItem):
    """An ImageItem drawn with bilinear filtering: a 512-px heatmap stretched over a 2k image must look like
    the smooth density it is, not like blocks."""

    def paint(self, painter: QtGui.QPainter, *args) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, True)
        super().paint(painter, *args)


class _Canvas(pg.GraphicsView):
    """GraphicsView whose mouse/wheel gestures drive the state."""

    hovered = QtCore.Signal(float, float)  # view px

    def __init__(self, state: ViewerState, parent: QtWidgets.QWidget | None = None) -> None:
        self.state = state  # before super().__init__, which already calls resizeEvent
        super().__init__(parent, background="k")
        self.setMouseTracking(True)
        self._drag_button: QtCore.Qt.MouseButton | None = None
        self._drag_last: QtCore.QPointF | None = None
        self._filtered_window: QtWidgets.QWidget | None = None

    # -- geometry -----------------------------------------------------------------------------------
    def sync_viewport(self) -> None:
        origin = self.mapToGlobal(QtCore.QPoint(0, 0))
        self.state.set_viewport(
            self.width(), self.height(), (float(origin.x()), float(origin.y())), self.devicePixelRatioF()
        )

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(ev)
        self.sync_viewport()

    def showEvent(self, ev: QtGui.QShowEvent) -> None:  # noqa: N802
        super().showEvent(ev)
        top = self.window()
        if top is not self._filtered_window:
            top.installEventFilter(self)
            self._filtered_window = top
        self.sync_viewport()

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:  # noqa: N802
        if ev.type() == QtCore.QEvent.Type.Move:
            self.sync_viewport()  # the window moved on the screen: the image -> screen mapping changed
        return False

    # -- gestures -----------------------------------------------------------------------------------
    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:  # noqa: N802
        notches = ev.angleDelta().y() / 120.0  # Qt: 120 units per notch
        if notches:
            pos = ev.position()
            self.state.wheel(notches, pos.x(), pos.y())
        ev.accept()

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        button = ev.button()
        shift_left = button == QtCore.Qt.MouseButton.LeftButton and (
            ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier
        )
        if button in (QtCore.Qt.MouseButton.RightButton, QtCore.Qt.MouseButton.MiddleButton) or shift_left:
            self._drag_button = QtCore.Qt.MouseButton.MiddleButton if shift_left else button
            self._drag_last = ev.position()
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        pos = ev.position()
        if self._drag_button is not None and self._drag_last is not None:
            dx, dy = pos.x() - self._drag_last.x(), pos.y() - self._drag_last.y()
            self._drag_last = pos
            if self._drag_button == QtCore.Qt.MouseButton.RightButton:
                self.state.drag_window(dx, dy)
            else:
                self.state.pan_by(dx, dy)
            ev.accept()
        self.hovered.emit(pos.x(), pos.y())

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        if (
            self._drag_button is not None
            and ev.button() == self._drag_button
            or (
                self._drag_button == QtCore.Qt.MouseButton.MiddleButton
                and ev.button() == QtCore.Qt.MouseButton.LeftButton
            )
        ):
            self._drag_button, self._drag_last = None, None
            ev.accept()
            return
        super().mouseReleaseEvent(ev)

    def mouseDoubleClickEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        self.state.fit()
        ev.accept()

    def contextMenuEvent(self, ev: QtGui.QContextMenuEvent) -> None:  # noqa: N802
        ev.accept()  # the right button is window/level, never a menu


class ImageView(QtWidgets.QWidget):
    """Canvas + pixel readout bound to a ViewerState.

    Image-space items (the image, the heatmap, the gaze cursor, anything added with :meth:`add_image_item`)
    share one parent whose transform follows the state, so replay/review can add scanpaths in image px.
    """

    readout_changed = QtCore.Signal(str)

    def __init__(self, state: ViewerState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.canvas = _Canvas(state, self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

        self.image_space = pg.ItemGroup()
        self.canvas.addItem(self.image_space)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setParentItem(self.image_space)
        self.heatmap_item = SmoothImageItem(axisOrder="row-major")
        self.heatmap_item.setParentItem(self.image_space)
        self.heatmap_item.setZValue(10)
        self.heatmap_item.setVisible(False)
        self._heatmap_colormap = ""
        self.gaze_item = QtWidgets.QGraphicsEllipseItem(
            -GAZE_CURSOR_DIAMETER_PX / 2,
            -GAZE_CURSOR_DIAMETER_PX / 2,
            GAZE_CURSOR_DIAMETER_PX,
            GAZE_CURSOR_DIAMETER_PX,
        )
        self.gaze_item.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.gaze_item.setPen(pg.mkPen((0, 255, 120), width=2))
        self.gaze_item.setParentItem(self.image_space)
        self.gaze_item.setZValue(20)
        self.gaze_item.setVisible(False)

        self.readout = QtWidgets.QLabel(self.canvas)
        self.readout.setStyleSheet(
            "QLabel { color: #e0e0e0; background: rgba(0,0,0,150); padding: 2px 6px; font-family: monospace }"
        )
        self.readout.move(6, 6)
        self._hover_view_px: tuple[float, float] | None = None

        state.case_changed.connect(self._on_case)
        state.window_changed.connect(self._on_window)
        state.invert_changed.connect(self._on_invert)
        state.transform_changed.connect(self._on_transform)
        state.overlay_changed.connect(self._on_overlay)
        state.gaze_changed.connect(self._on_gaze)
        state.gaze_cursor_visible_changed.connect(self._on_gaze_visible)
        self.canvas.hovered.connect(self._on_hover)
        if state.pixels is not None:
            self._on_case(state.case_id)
        self._on_transform(state.transform)

    # -- public ---------------------------------------------------------------------------------------
    def add_image_item(self, item: QtWidgets.QGraphicsItem, z: float = 15.0) -> None:
        """Add an item drawn in image px (it follows zoom and pan)."""
        item.setParentItem(self.image_space)
        item.setZValue(z)

    def pixel_value(self, x_img_px: float, y_img_px: float) -> float | None:
        px = self.state.pixels
        if px is None or not (0 <= x_img_px < px.shape[1] and 0 <= y_img_px < px.shape[0]):
            return None
        return float(px[int(y_img_px), int(x_img_px)])

    # -- state -> view ----------------------------------------------------------------------------------
    def _on_case(self, _case_id: str) -> None:
        px = self.state.pixels
        if px is None:
            self.image_item.clear()
            return
        self.image_item.setImage(px, autoLevels=False, levels=self._levels(), lut=grey_lut(self.state.invert))
        self._update_readout()

    def _levels(self) -> tuple[float, float]:
        c, w = self.state.window
        return c - w / 2.0, c + w / 2.0  # REFLACX windowing: clip((x - level) / width + 0.5, 0, 1)

    def _on_window(self, _c: float, _w: float) -> None:
        self.image_item.setLevels(self._levels())
        self._update_readout()

    def _on_invert(self, invert: bool) -> None:
        self.image_item.setLookupTable(grey_lut(invert))

    def _on_transform(self, t: ViewTransform) -> None:
        self.image_space.setTransform(qtransform(t))
        self._update_readout()

    def _on_overlay(self, overlay: HeatmapOverlay | None) -> None:
        if overlay is None:
            self.heatmap_item.setVisible(False)
            return
        hm = overlay.heatmap
        top = float(hm.max()) if hm.size else 0.0
        if overlay.colormap != self._heatmap_colormap:
            self._heatmap_colormap = overlay.colormap
            self.heatmap_item.setLookupTable(heatmap_lut(overlay.colormap))
        self.heatmap_item.setImage(hm, autoLevels=False, levels=(0.0, top if top > 0 else 1.0))
        self.heatmap_item.setTransform(QtGui.QTransform.fromScale(overlay.scale, overlay.scale))
        self.heatmap_item.setOpacity(overlay.opacity)
        self.heatmap_item.setVisible(overlay.visible)

    def _on_gaze(self, x_img_px: float, y_img_px: float) -> None:
        if math.isfinite(x_img_px) and math.isfinite(y_img_px):
            self.gaze_item.setPos(x_img_px, y_img_px)
            self.gaze_item.setVisible(self.state.gaze_cursor_visible)
        else:
            self.gaze_item.setVisible(False)

    def _on_gaze_visible(self, visible: bool) -> None:
        self.gaze_item.setVisible(visible and all(math.isfinite(v) for v in self.state.gaze_img_px))

    def _on_hover(self, x_view_px: float, y_view_px: float) -> None:
        self._hover_view_px = (x_view_px, y_view_px)
        self._update_readout()

    def _update_readout(self) -> None:
        c, w = self.state.window
        zoom_pct = self.state.transform.scale * self.state.device_pixel_ratio * 100.0
        text = f"C {c:.6g}  W {w:.6g}  {zoom_pct:.0f}%"
        if self._hover_view_px is not None and self.state.pixels is not None:
            x, y = self.state.transform.view_to_image(*self._hover_view_px)
            value = self.pixel_value(x, y)
            if value is not None:
                text = f"x {int(x)}  y {int(y)}  = {value:.6g}   " + text
        if text != self.readout.text():
            self.readout.setText(text)
            self.readout.adjustSize()
            self.readout_changed.emit(text)
