"""The worklist: a folder of images (DICOM/PNG/JPEG) or of session files, walked case by case.

:class:`Worklist` holds no Qt (psygnal signals); :class:`WorklistWidget` is its list view. An image file is
one item; a session file contributes one item per recorded case. :func:`load_item` reads an item into a
:class:`LoadedCase` (pixels, default window, and the recorded :class:`CaseRecord` for session items).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from psygnal import Signal
from PySide6 import QtCore, QtWidgets

from radgaze.capture.base.errors import ImageLoadError, RadgazeError, SessionFormatError
from radgaze.capture.base.records import CaseRecord

IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")
SESSION_SUFFIXES = (".h5",)

# Case status, in the order a case goes through them.
NEW, VIEWED, RECORDED, FAILED = "new", "viewed", "recorded", "failed"
STATUSES = (NEW, VIEWED, RECORDED, FAILED)


@dataclass
class WorklistItem:
    path: Path  # the image file, or the session file
    case_id: str  # the image's stem, or the case id inside the session
    kind: str  # "image" | "session"
    status: str = NEW
    error: str = ""

    @property
    def label(self) -> str:
        where = self.path.name if self.kind == "image" else f"{self.path.name} / {self.case_id}"
        return f"[{self.status}] {where}"


@dataclass
class LoadedCase:
    case_id: str
    pixels: np.ndarray  # 2-D uint16 or float32, higher = brighter (MONOCHROME1 already inverted)
    window: tuple[float, float]  # default (center, width)
    meta: object | None  # radgaze.capture.io.images.ImageMeta
    record: CaseRecord | None = None  # the recorded case, for session items
    image_path: Path | None = None


def scan_folder(folder: str | os.PathLike) -> list[WorklistItem]:
    """Items of a folder (recursive) or of one file: images by suffix, sessions one item per case.

    A damaged session file becomes one FAILED item carrying its error, so the list still opens."""
    root = Path(folder)
    if not root.exists():
        raise ImageLoadError(
            f"expected a folder or file of images/sessions, got {str(root)!r} (does not exist)"
        )
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    items: list[WorklistItem] = []
    for path in files:
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        if suffix in IMAGE_SUFFIXES:
            items.append(WorklistItem(path, path.stem, "image"))
        elif suffix in SESSION_SUFFIXES:
            items.extend(_session_items(path))
    return items


def _session_items(path: Path) -> list[WorklistItem]:
    from radgaze.capture.store.reader import SessionReader

    try:
        with SessionReader(path) as reader:
            return [WorklistItem(path, cid, "session", status=RECORDED) for cid in reader.case_ids]
    except SessionFormatError as exc:
        return [WorklistItem(path, path.stem, "session", status=FAILED, error=str(exc))]


def resolve_image_path(image_path: str, session_path: Path) -> Path:
    """A session's image reference: absolute as stored, else relative to the session file's folder."""
    from radgaze.capture.base.records import ImageRef
    from radgaze.capture.store.case_image import resolve_case_image

    return resolve_case_image(ImageRef(image_path, "", 0, 0), session_path)


def load_item(item: WorklistItem) -> LoadedCase:
    """Read an item's image (and recorded case). Raises ImageLoadError / SessionFormatError."""
    from radgaze.capture.io.images import default_window, load_image

    if item.kind == "image":
        img = load_image(item.path)
        return LoadedCase(item.case_id, img.pixels, default_window(img), img.meta, None, item.path)
    if item.error:
        raise SessionFormatError(item.error)
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(item.path) as reader:
        record = reader.case(item.case_id)
    from radgaze.capture.store.case_image import load_case_image

    image_path = resolve_image_path(record.image.path, item.path)
    img = load_case_image(record.image, item.path)  # verified: sha256, width, height
    return LoadedCase(item.case_id, img.pixels, default_window(img), img.meta, record, image_path)


class Worklist:
    """An ordered list of items with a current index. Qt-free."""

    current_changed = Signal(int)  # index (-1 = none)
    status_changed = Signal(int, str)  # index, status
    items_changed = Signal()

    def __init__(self, items: list[WorklistItem] | None = None) -> None:
        self.items: list[WorklistItem] = list(items or [])
        self.index = -1

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> Worklist:
        return cls(scan_folder(folder))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def current(self) -> WorklistItem | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def set_items(self, items: list[WorklistItem]) -> None:
        self.items = list(items)
        self.index = -1
        self.items_changed.emit()
        self.current_changed.emit(-1)

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.items):
            raise IndexError(f"worklist index must be in [0, {len(self.items)}), got {index}")
        if index != self.index:
            self.index = index
            self.current_changed.emit(index)

    def next(self) -> bool:
        """Move to the next item; False at the end (nothing changes)."""
        if self.index + 1 >= len(self.items):
            return False
        self.select(self.index + 1)
        return True

    def previous(self) -> bool:
        if self.index <= 0:
            return False
        self.select(self.index - 1)
        return True

    def set_status(self, index: int, status: str, error: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(
                f"Invalid value for the 'status' parameter: allowed are {STATUSES}, got {status!r}"
            )
        item = self.items[index]
        if (item.status, item.error) != (status, error):
            item.status, item.error = status, error
            self.status_changed.emit(index, status)

    def load_current(self) -> LoadedCase | None:
        """Load the current item, marking it VIEWED (or FAILED with the error, which is re-raised)."""
        item = self.current
        if item is None:
            return None
        try:
            case = load_item(item)
        except RadgazeError as exc:
            self.set_status(self.index, FAILED, str(exc))
            raise
        if item.status == NEW:
            self.set_status(self.index, VIEWED)
        return case


class WorklistWidget(QtWidgets.QListWidget):
    """The list view: items with their status; selecting a row selects the item (echo blocked)."""

    def __init__(self, worklist: Worklist, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.worklist = worklist
        self.setAlternatingRowColors(True)
        worklist.items_changed.connect(self._rebuild)
        worklist.status_changed.connect(self._on_status)
        worklist.current_changed.connect(self._on_current)
        self.currentRowChanged.connect(self._on_row)
        self._rebuild()

    def _rebuild(self) -> None:
        with QtCore.QSignalBlocker(self):
            self.clear()
            for item in self.worklist.items:
                row = QtWidgets.QListWidgetItem(item.label)
                row.setToolTip(item.error or str(item.path))
                self.addItem(row)
            self.setCurrentRow(self.worklist.index)

    def _on_status(self, index: int, _status: str) -> None:
        item, row = self.worklist.items[index], self.item(index)
        if row is not None:
            row.setText(item.label)
            row.setToolTip(item.error or str(item.path))

    def _on_current(self, index: int) -> None:
        with QtCore.QSignalBlocker(self):
            self.setCurrentRow(index)

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.worklist.select(row)
