"""The image canvas: a radiograph through a window/level LUT, a heatmap overlay and a gaze cursor.

A thin view over :class:`radgaze.app.state.ViewerState`: mouse input calls state setters, state signals redraw.
pyqtgraph is used as its performance notes advise: ``imageAxisOrder='row-major'``, C-contiguous arrays,
``setImage(autoLevels=False)`` once per drawn level, then ``setLevels`` on W/L changes: pyqtgraph folds the
levels and a 256-entry grey LUT into one uint16 -> uint8 lookup per frame (LINEAR_EXACT: ``clip((x - c) / w +
0.5, 0, 1)``). The alternative, ``wl_path = "lut"``, windows here through a 65536-entry uint8 LUT
(:func:`radgaze.capture.io.images.window_lut`) and hands pyqtgraph 8-bit grey; ``radgaze bench viewer``
measures both, and the level path cost less main-thread CPU (2.4 vs 3.1 ms median per drag step at 2048²).
Zoomed out (a 2k film fitted into a 1k canvas), the image drawn is a 2x2 (4x4, 8x8) mean-binned copy, as
PACS viewers draw from a resolution pyramid: a quarter of the pixels to window and to draw per frame, and
less aliasing than Qt's nearest-neighbour minification. The readout always reads the full-resolution pixels.

Mouse: right-drag = window/level (horizontal = width, vertical = level, as RadiAnt, OHIF and Weasis; REFLACX's
swap selectable, :data:`radgaze.app.state.WL_DRAG_MODES`), wheel = zoom around the cursor, middle-drag (or
shift + left-drag) = pan, double-click = fit.

The corner text is what a PACS shows: image size and pixel type, zoom, W/L and invert, and the value under
the cursor — values in the file's own terms (a MONOCHROME1 DICOM's stored values and window tags, though it is
drawn inverted; :func:`radgaze.capture.io.images.file_value`). Nothing is shown on an empty canvas. The canvas's scene
coordinates are its pixels (pyqtgraph GraphicsView's auto pixel range); every image-space item is a child of
one group whose transform is the state's image -> view transform.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.qtapp import viewer_style_sheet
from radgaze.app.state import HeatmapOverlay, ViewerState, ViewTransform
from radgaze.capture.io.images import file_value, file_window, pixel_type_label, window_lut

pg.setConfigOptions(imageAxisOrder="row-major")

MAX_BIN = 8  # coarsest pyramid level drawn (8 x 8 image px per drawn px)
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


def bin2(pixels: np.ndarray) -> np.ndarray:
    """2 x 2 mean binning (odd edges repeated), same dtype (integers rounded): (h, w) -> (ceil(h/2), ceil(w/2))."""
    h, w = pixels.shape
    padded = np.pad(pixels, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.float32)
    out = 0.25 * (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2])
    if pixels.dtype.kind in "ui":
        out = np.rint(out)
    return np.ascontiguousarray(out.astype(pixels.dtype))


def display_bin(screen_px_per_image_px: float, max_bin: int = MAX_BIN) -> int:
    """Pyramid factor (1, 2, 4, 8) to draw at: the largest power of two with one drawn px per screen px or
    more (never coarser than the screen)."""
    k = 1
    while k * 2 <= max_bin and k * 2 * screen_px_per_image_px <= 1.0:
        k *= 2
    return k


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
        self._pyramid: dict[int, np.ndarray] = {}
        self.drawn_bin = 1
        self.wl_path = "levels"
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
        self.readout.setObjectName("cornerText")
        self.setStyleSheet(viewer_style_sheet())  # assets/radgaze.qss
        self.readout.move(6, 6)
        self.readout.setVisible(False)
        # the text lies over the image: every mouse press, drag and wheel under it goes to the canvas (a chest
        # box drawn from the top-left corner, a pan started there), so it takes no mouse and has no tooltip
        self.readout.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
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
        """The value under an image point in the file's own terms (MONOCHROME1: the stored value)."""
        px = self.state.pixels
        if px is None or not (0 <= x_img_px < px.shape[1] and 0 <= y_img_px < px.shape[0]):
            return None
        return file_value(self.state.meta, float(px[int(y_img_px), int(x_img_px)]))

    # -- state -> view ----------------------------------------------------------------------------------
    def _on_case(self, _case_id: str) -> None:
        px = self.state.pixels
        self._pyramid = {} if px is None else {1: px}
        if px is None:
            self.image_item.clear()
            self._update_readout()
            return
        self._draw_pixels()
        self._update_readout()

    def uses_window_lut(self) -> bool:
        """True when the image is windowed here through a 65536-entry uint8 LUT (``wl_path`` "lut", integer
        pixels); False on pyqtgraph's level path (the default, faster in ``radgaze bench viewer``)."""
        px = self.state.pixels
        return self.wl_path == "lut" and px is not None and px.dtype in (np.uint8, np.uint16)

    def set_wl_path(self, path: str) -> None:
        """ "levels" (default) or "lut"; redraws."""
        if path not in ("lut", "levels"):
            raise ValueError(
                f"Invalid value for the 'path' parameter: allowed are 'lut', 'levels', got {path!r}"
            )
        self.wl_path = path
        self._draw_pixels()

    def drawn_pixels(self, k: int) -> np.ndarray:
        """The pyramid level drawn at bin factor ``k`` (computed once per case)."""
        if k not in self._pyramid:
            self._pyramid[k] = bin2(self.drawn_pixels(k // 2))
        return self._pyramid[k]

    def _draw_pixels(self) -> None:
        """(Re)draw the image at the state's window and invert, from the pyramid level the zoom needs."""
        state = self.state
        if state.pixels is None:
            return
        k = display_bin(state.transform.scale * state.device_pixel_ratio)
        px = self.drawn_pixels(k)
        if k != self.drawn_bin or self.image_item.transform().m11() != k:
            self.drawn_bin = k
            self.image_item.setTransform(QtGui.QTransform.fromScale(k, k))
        if self.uses_window_lut():
            n = 256 if px.dtype == np.uint8 else 65536
            lut = window_lut(*state.window, invert=state.invert, n_levels=n)
            self.image_item.setImage(np.take(lut, px), autoLevels=False, levels=(0, 255), lut=None)
        else:
            self.image_item.setImage(px, autoLevels=False, levels=self._levels(), lut=grey_lut(state.invert))

    def _levels(self) -> tuple[float, float]:
        c, w = self.state.window
        return c - w / 2.0, c + w / 2.0  # LINEAR_EXACT windowing: clip((x - c) / w + 0.5, 0, 1)

    def _on_window(self, _c: float, _w: float) -> None:
        if self.uses_window_lut():
            self._draw_pixels()
        else:
            self.image_item.setLevels(self._levels())
        self._update_readout()

    def _on_invert(self, invert: bool) -> None:
        if self.uses_window_lut():
            self._draw_pixels()
        else:
            self.image_item.setLookupTable(grey_lut(invert))
        self._update_readout()

    def _on_transform(self, t: ViewTransform) -> None:
        self.image_space.setTransform(qtransform(t))
        if (
            self.state.pixels is not None
            and display_bin(t.scale * self.state.device_pixel_ratio) != self.drawn_bin
        ):
            self._draw_pixels()
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

    def corner_text(self) -> str:
        """The corner lines: size and type, zoom, W/L (+ inverted), the value under the cursor; "" without
        an image."""
        px, state = self.state.pixels, self.state
        if px is None:
            return ""
        integer = px.dtype.kind in "ui"
        c, w = file_window(state.meta, *state.window)
        zoom_pct = state.transform.scale * state.device_pixel_ratio * 100.0
        lines = [
            f"{px.shape[1]} × {px.shape[0]}  {pixel_type_label(px, state.meta)}",
            f"Zoom {zoom_pct:.0f}%",
            f"W {_number(w, integer)}  L {_number(c, integer)}" + ("  inverted" if state.invert else ""),
        ]
        if self._hover_view_px is not None:
            x, y = state.transform.view_to_image(*self._hover_view_px)
            value = self.pixel_value(x, y)
            if value is not None:
                lines.append(f"x {int(x)}  y {int(y)}  = {_number(value, integer)}")
        return "\n".join(lines)

    def _update_readout(self) -> None:
        text = self.corner_text()
        self.readout.setVisible(bool(text))
        if text != self.readout.text():
            self.readout.setText(text)
            self.readout.adjustSize()
            self.readout_changed.emit(text)


def _number(value: float, integer: bool) -> str:
    """An integer for integer data (W/L and values as the tags say them), else 6 significant digits."""
    return f"{round(value):d}" if integer and math.isfinite(value) else f"{value:.6g}"
