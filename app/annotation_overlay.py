"""The reader's annotation drawn on an image view: each ellipse or box with its labels and certainty, the chest
box dashed. Drawn in image px (it follows zoom and pan); pens are cosmetic, so lines stay 2 px at any zoom."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.capture.base.records import SHAPE_BOX, CaseAnnotation

SHAPE_COLOUR = QtGui.QColor(0, 230, 118)  # green: reads on both the grey film and the inferno heatmap
CHEST_COLOUR = QtGui.QColor(64, 196, 255)
SELECTED_COLOUR = QtGui.QColor(255, 214, 0)  # the shape the label keys and Delete act on
LABEL_PT = 10


def _pen(colour: QtGui.QColor, style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine) -> QtGui.QPen:
    pen = QtGui.QPen(colour, 2, style)
    pen.setCosmetic(True)
    return pen


def _shape_item(
    kind: str, box, colour: QtGui.QColor, style=QtCore.Qt.PenStyle.SolidLine
) -> QtWidgets.QGraphicsItem:
    """An ellipse (inscribed in ``box``) or a box, in image px, with a cosmetic pen."""
    x0, y0, x1, y1 = box
    rect = QtCore.QRectF(x0, y0, x1 - x0, y1 - y0)
    item = QtWidgets.QGraphicsRectItem(rect) if kind == SHAPE_BOX else QtWidgets.QGraphicsEllipseItem(rect)
    item.setPen(_pen(colour, style))
    return item


def shape_caption(labels: tuple[str, ...], certainty: int) -> str:
    """ "Consolidation 4/5" — what the reader said the shape is, on REFLACX's scale (certainty 0: not given)."""
    names = ", ".join(labels) or "unlabelled"
    return f"{names} {certainty}/5" if certainty else names


class AnnotationOverlay:
    """Owns the graphics items of one annotation on one :class:`~radgaze.app.image_view.ImageView`."""

    def __init__(self, image_view) -> None:
        self.image_view = image_view
        self.items: list[QtWidgets.QGraphicsItem] = []
        self.captions: list[str] = []
        self._preview: QtWidgets.QGraphicsItem | None = None

    def show(self, annotation: CaseAnnotation | None, selected: int | None = None) -> None:
        """Replace what is drawn by ``annotation`` (None: draw nothing); shape ``selected`` highlighted."""
        self.clear()
        if annotation is None:
            return
        for k, shape in enumerate(annotation.shapes):
            colour = SELECTED_COLOUR if k == selected else SHAPE_COLOUR
            self._add(_shape_item(shape.kind, shape.box, colour), z=17)
            self._caption(shape_caption(shape.labels, shape.certainty), shape.x0, shape.y0, colour)
        if annotation.chest_box is not None:
            x0, y0, x1, y1 = annotation.chest_box
            self._add(
                _shape_item(SHAPE_BOX, annotation.chest_box, CHEST_COLOUR, QtCore.Qt.PenStyle.DashLine),
                z=16.5,
            )
            # inside the box, on its bottom edge: at the top-left corner the tag sat under the viewer's corner
            # text whenever the box was drawn from the image's top-left corner
            self._caption("chest", x0, y1, CHEST_COLOUR)

    def preview(self, kind: str, box: tuple[float, float, float, float]) -> None:
        """The shape being drawn, dashed, until the mouse is released (replaced at each call)."""
        if self._preview is not None and self._preview.scene() is not None:
            self._preview.scene().removeItem(self._preview)
        x0, y0, x1, y1 = box
        ordered = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self._preview = _shape_item(kind, ordered, SELECTED_COLOUR, QtCore.Qt.PenStyle.DashLine)
        self._add(self._preview, z=19)

    def clear(self) -> None:
        for item in self.items:
            scene = item.scene()
            if scene is not None:
                scene.removeItem(item)
        self.items, self.captions = [], []
        self._preview = None

    def _add(self, item: QtWidgets.QGraphicsItem, z: float) -> None:
        self.image_view.add_image_item(item, z=z)
        self.items.append(item)

    def _caption(self, text: str, x: float, y: float, colour: QtGui.QColor) -> None:
        """A tag just above image point (x, y), at a fixed screen size whatever the zoom: the text in ``colour``
        on a dark plate (a green word on bright bone is unreadable without one)."""
        label = QtWidgets.QGraphicsSimpleTextItem(text)
        font = label.font()
        font.setPointSize(LABEL_PT)
        font.setBold(True)
        label.setFont(font)
        label.setBrush(colour)
        plate = QtWidgets.QGraphicsRectItem(label.boundingRect().adjusted(-3, -1, 3, 1))
        plate.setBrush(QtGui.QColor(0, 0, 0, 215))
        plate.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        label.setParentItem(plate)
        plate.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        plate.setPos(x, y)
        height_px = plate.rect().height()
        plate.setTransform(QtGui.QTransform.fromTranslate(3, -height_px - 2))
        self._add(plate, z=18)
        self.captions.append(text)
