"""The main window: worklist on the left, the image in the middle, the reading panel on the right.

It wires widgets to one :class:`ViewerState` and one :class:`Worklist`; it holds no capture logic (record
mode's controller, :mod:`radgaze.app.recording`, drives the reading panel). Keys: Space start/stop recording, PgDown/N
next case, PgUp/P previous, F fit, 1 one-to-one, I invert, G gaze cursor, L/M/B presets, 0 default window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.image_view import ImageView
from radgaze.app.panels import SentenceList, TrackerPanel, TranscriptView, ViewControls
from radgaze.app.state import ViewerState
from radgaze.app.worklist import LoadedCase, Worklist, WorklistWidget, scan_folder
from radgaze.capture.errors import RadgazeError

THUMB_SOURCE_PX = 256  # long side of the windowed image kept for sentence thumbnails


class ReadingPanel(QtWidgets.QWidget):
    """Record controls, tracker status, live transcript and the sentence list."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.record_button = QtWidgets.QPushButton("Start recording (Space)")
        self.record_button.setCheckable(True)
        self.record_label = QtWidgets.QLabel("not recording")
        self.tracker = TrackerPanel()
        self.transcript = TranscriptView()
        self.transcript.setMaximumHeight(140)
        self.sentences = SentenceList()
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.record_button)
        layout.addWidget(self.record_label)
        layout.addWidget(self.tracker)
        layout.addWidget(QtWidgets.QLabel("Transcript"))
        layout.addWidget(self.transcript)
        layout.addWidget(QtWidgets.QLabel("Sentences"))
        layout.addWidget(self.sentences, 1)

    def set_recording(self, recording: bool, text: str = "") -> None:
        with QtCore.QSignalBlocker(self.record_button):
            self.record_button.setChecked(recording)
        self.record_button.setText("Stop recording (Space)" if recording else "Start recording (Space)")
        self.record_label.setText(text or ("recording" if recording else "not recording"))


class MainWindow(QtWidgets.QMainWindow):
    case_loaded = QtCore.Signal(object)  # LoadedCase
    record_toggled = QtCore.Signal()  # Space or the record button

    def __init__(
        self,
        state: ViewerState | None = None,
        worklist: Worklist | None = None,
        *,
        reading_panel: bool = True,
        title: str = "radgaze",
    ) -> None:
        super().__init__()
        self.setWindowTitle(title)
        self.state = state or ViewerState()
        self.worklist = worklist or Worklist()
        self.loaded: LoadedCase | None = None
        self._thumb_source: np.ndarray | None = None

        self.image_view = ImageView(self.state)
        self.controls = ViewControls(self.state)
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addWidget(self.controls)
        v.addWidget(self.image_view, 1)
        self.setCentralWidget(central)

        self.worklist_widget = WorklistWidget(self.worklist)
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(2, 2, 2, 2)
        nav = QtWidgets.QHBoxLayout()
        self.prev_button = QtWidgets.QPushButton("◀ Previous")
        self.next_button = QtWidgets.QPushButton("Next ▶")
        self.prev_button.clicked.connect(self.worklist.previous)
        self.next_button.clicked.connect(self.worklist.next)
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        lv.addLayout(nav)
        lv.addWidget(self.worklist_widget, 1)
        self.worklist_dock = self._dock("Worklist", left, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)

        self.reading = ReadingPanel()
        self.reading.setMinimumWidth(300)
        self.reading.record_button.clicked.connect(lambda _=False: self.record_toggled.emit())
        self.reading.sentences.sentence_selected.connect(self.show_sentence)
        self.reading_dock = self._dock("Reading", self.reading, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.reading_dock.setVisible(reading_panel)
        self.sentence_heatmap_scale = 1.0

        self.worklist.current_changed.connect(self._on_current)
        self._install_shortcuts()
        self.statusBar().showMessage("open a folder of images or sessions (File ▸ Open folder…)")
        open_action = self.menuBar().addMenu("&File").addAction("Open folder…")
        open_action.triggered.connect(self._ask_folder)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(area, dock)
        return dock

    def _install_shortcuts(self) -> None:
        s = self.state
        keys = {
            "Space": self.record_toggled.emit,
            "PgDown": self.worklist.next,
            "N": self.worklist.next,
            "PgUp": self.worklist.previous,
            "P": self.worklist.previous,
            "F": s.fit,
            "1": s.one_to_one,
            "I": lambda: s.set_invert(not s.invert),
            "G": lambda: s.set_gaze_cursor_visible(not s.gaze_cursor_visible),
            "L": lambda: s.apply_preset("lung"),
            "M": lambda: s.apply_preset("mediastinum"),
            "B": lambda: s.apply_preset("bone"),
            "0": lambda: s.apply_preset("default"),
        }
        self.shortcuts = {}
        for key, slot in keys.items():
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)
            self.shortcuts[key] = sc

    # -- worklist -------------------------------------------------------------------------------------
    def _ask_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of images or sessions")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> None:
        try:
            items = scan_folder(folder)
        except RadgazeError as exc:
            self.statusBar().showMessage(str(exc))
            return
        self.worklist.set_items(items)
        self.statusBar().showMessage(f"{len(items)} case(s) in {folder}")
        if items:
            self.worklist.select(0)

    def _on_current(self, index: int) -> None:
        if index < 0:
            return
        try:
            case = self.worklist.load_current()
        except RadgazeError as exc:
            self.statusBar().showMessage(f"cannot open case: {exc}")
            return
        if case is not None:
            self.show_case(case)

    def show_case(self, case: LoadedCase) -> None:
        self.loaded = case
        self.state.set_case(case.case_id, case.pixels, window=case.window, meta=case.meta)
        self._thumb_source = None
        self.reading.sentences.clear_sentences()
        self.statusBar().showMessage(
            f"{case.case_id}: {case.pixels.shape[1]}×{case.pixels.shape[0]} {case.pixels.dtype}"
        )
        self.case_loaded.emit(case)

    # -- sentences ------------------------------------------------------------------------------------
    def thumbnail_source(self) -> np.ndarray | None:
        """The current image at the default window, uint8, long side <= THUMB_SOURCE_PX (cached per case)."""
        px = self.state.pixels
        if px is None:
            return None
        if self._thumb_source is None:
            step = max(1, int(np.ceil(max(px.shape) / THUMB_SOURCE_PX)))
            small = px[::step, ::step].astype(np.float32)
            c, w = self.state.default_window
            self._thumb_source = (np.clip((small - c) / w + 0.5, 0.0, 1.0) * 255).astype(np.uint8)
        return self._thumb_source

    def add_sentence(self, text: str, heatmap: np.ndarray | None, heatmap_scale: float) -> int:
        """Append a closed sentence to the list and show its heatmap."""
        self.sentence_heatmap_scale = heatmap_scale
        row = self.reading.sentences.add_sentence(text, heatmap, self.thumbnail_source())
        if heatmap is not None:
            self.state.set_heatmap(heatmap, heatmap_scale, label=text)
        return row

    def show_sentence(self, row: int) -> None:
        heatmaps = self.reading.sentences.heatmaps
        if 0 <= row < len(heatmaps):
            item = self.reading.sentences.item(row)
            self.state.set_heatmap(
                heatmaps[row], self.sentence_heatmap_scale, label=item.text() if item else ""
            )
