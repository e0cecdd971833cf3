"""Mouse editing of the reader's shapes on an image view: draw with a left-drag, drag a shape to move it, drag
a corner of the selected one to resize it. Everything is in image px, through the view's current zoom and pan
(``ViewTransform.view_to_image``), so a shape drawn zoomed in lands where the reader saw it."""

from __future__ import annotations

from PySide6 import QtCore, QtGui

from radgaze.capture.base.records import SHAPE_BOX, STEP_CHEST_BOX, STEP_SHAPES

CORNER_GRAB_PX = 10.0  # screen px around a corner of the selected shape that start a resize
CHEST = -1  # the index ShapeEditor uses for the chest box


def shape_contains(kind: str, box: tuple[float, float, float, float], pt: tuple[float, float]) -> bool:
    """Whether image point ``pt`` lies in the shape: a box's rectangle, or the ellipse inscribed in ``box``
    ((x - cx)² / rx² + (y - cy)² / ry² <= 1), so a drag starting just outside an ellipse, in its bounding
    box's corner, draws a new shape instead of moving this one."""
    x0, y0, x1, y1 = box
    if not (x0 <= pt[0] <= x1 and y0 <= pt[1] <= y1):
        return False
    if kind == SHAPE_BOX:
        return True
    rx, ry = max((x1 - x0) / 2, 1e-9), max((y1 - y0) / 2, 1e-9)
    return ((pt[0] - (x0 + x1) / 2) / rx) ** 2 + ((pt[1] - (y0 + y1) / 2) / ry) ** 2 <= 1.0


class ShapeEditor(QtCore.QObject):
    """Event filter on the image view's canvas; the window owns the annotator and redraws on ``changed``."""

    def __init__(self, image_view, window) -> None:
        super().__init__(window)
        self.image_view, self.window = image_view, window
        self._mode: str | None = None  # "draw" | "move" | "resize"
        self._start: tuple[float, float] = (0.0, 0.0)  # image px where the drag began
        self._target = 0  # shape index being moved/resized (CHEST: the chest box)
        self._box0: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self._corner = (0, 0)  # which corner is dragged: (x index 0/2, y index 1/3) into the box
        image_view.canvas.viewport().installEventFilter(self)

    def _image_point(self, ev: QtGui.QMouseEvent) -> tuple[float, float]:
        p = ev.position()
        x, y = self.image_view.state.transform.view_to_image(p.x(), p.y())
        return float(x), float(y)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt override)
        a = self.window.annotator
        kind = ev.type()
        if a is None or a.step not in (STEP_SHAPES, STEP_CHEST_BOX):
            return False
        if kind == QtCore.QEvent.Type.MouseButtonPress and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            if ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
                return False  # shift + left-drag pans, as everywhere
            self._press(a, self._image_point(ev))
            return True
        if kind == QtCore.QEvent.Type.MouseMove and self._mode is not None:
            self._drag(a, self._image_point(ev))
            return True
        if kind == QtCore.QEvent.Type.MouseButtonRelease and self._mode is not None:
            self._release(a, self._image_point(ev))
            return True
        return False

    def _boxes(self, a) -> list[tuple[int, str, tuple[float, float, float, float]]]:
        """(index, kind, box) of the shapes the mouse acts on in this step."""
        if a.step == STEP_CHEST_BOX:
            return [(CHEST, SHAPE_BOX, a.annotation.chest_box)] if a.annotation.chest_box else []
        return [(k, s.kind, s.box) for k, s in enumerate(a.annotation.shapes)]

    def _press(self, a, pt: tuple[float, float]) -> None:
        self._start = pt
        grab = CORNER_GRAB_PX / max(self.image_view.state.transform.scale, 1e-9)  # in image px
        boxes = self._boxes(a)
        current = CHEST if a.step == STEP_CHEST_BOX else a.selected
        for k, _kind, box in boxes:  # a corner of the selected shape: resize
            if k != current:
                continue
            for ix in (0, 2):
                for iy in (1, 3):
                    if abs(pt[0] - box[ix]) <= grab and abs(pt[1] - box[iy]) <= grab:
                        self._mode, self._target, self._box0, self._corner = "resize", k, box, (ix, iy)
                        return
        for k, kind, box in reversed(boxes):  # inside a shape (not just its bounding box): select, move
            if shape_contains(kind, box, pt):
                if k != CHEST:
                    a.select(k)
                self._mode, self._target, self._box0 = "move", k, box
                self.window.refresh()
                return
        self._mode = "draw"

    def _drag(self, a, pt: tuple[float, float]) -> None:
        dx, dy = pt[0] - self._start[0], pt[1] - self._start[1]
        if self._mode == "move":
            x0, y0, x1, y1 = self._box0
            a.set_shape_box(self._target, (x0 + dx, y0 + dy, x1 + dx, y1 + dy))
        elif self._mode == "resize":
            box = list(self._box0)
            box[self._corner[0]], box[self._corner[1]] = pt
            a.set_shape_box(self._target, tuple(box))
        else:
            self.window.overlay.preview(a.drawing_kind(), (*self._start, *pt))
            return
        self.window.refresh()

    def _release(self, a, pt: tuple[float, float]) -> None:
        mode, self._mode = self._mode, None
        if mode == "draw":
            w, h = abs(pt[0] - self._start[0]), abs(pt[1] - self._start[1])
            if w >= 2 and h >= 2:  # a click is not a shape
                a.add_shape((*self._start, *pt))
        self.window.refresh()
