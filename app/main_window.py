"""The main window: worklist on the left, the image in the middle, the reading panel on the right.

It wires widgets to one :class:`ViewerState` and one :class:`Worklist`; it holds no capture logic (record
mode's controller, :mod:`radgaze.app.recording`, drives the reading panel). Keys (Help ▸ Keyboard shortcuts,
one table in :mod:`radgaze.app.shortcuts`): Space start/stop recording, PgDown/N next case, PgUp/P previous,
F fit, 1 one-to-one, I invert, G gaze cursor, L/M/B presets, 0 the file's window, Ctrl+Q quit. The window fits
a 1366 x 768 screen and remembers its geometry (QSettings, per ``settings_key``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.image_view import ImageView
from radgaze.app.panels import LevelMeter, SentenceList, TrackerPanel, TranscriptView, ViewControls
from radgaze.app.qtapp import close_confirmed, install_quit_action, settings, viewer_style_sheet
from radgaze.app.shortcuts import Key, install_drag_mode_menu, install_help_menu, install_keys, viewing_keys
from radgaze.app.state import ViewerState
from radgaze.app.worklist import LoadedCase, Worklist, WorklistWidget, scan_folder
from radgaze.capture.base.errors import RadgazeError

THUMB_SOURCE_PX = 256  # long side of the windowed image kept for sentence thumbnails
# The smallest common laptop screen (1366 x 768) less a title bar and a panel: the window must fit it.
SMALL_SCREEN_PX = (1366, 768)
DEFAULT_SIZE_PX = (1366, 740)


class ReadingPanel(QtWidgets.QWidget):
    """Record controls, tracker status, live transcript and the sentence list."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.record_button = QtWidgets.QPushButton("Start recording (Space)")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Start/stop recording gaze, dictation and view changes for this case")
        self.record_label = QtWidgets.QLabel("not recording")
        self.elapsed = QtWidgets.QLabel("")
        self.elapsed.setToolTip("Time recorded on this case (mm:ss)")
        self.elapsed.setObjectName("elapsed")
        self.setStyleSheet(viewer_style_sheet())  # assets/radgaze.qss
        self.level = LevelMeter()
        self.tracker = TrackerPanel()
        self.transcript = TranscriptView()
        self.transcript.setMaximumHeight(110)
        self.transcript.setToolTip("Live transcript: final words, then the ASR's unconfirmed words in grey")
        self.sentences = SentenceList()
        self.sentences.setToolTip("Dictated sentences with their gaze heatmaps; click one to show it")
        self._t_started: float | None = None
        self._clock = QtCore.QElapsedTimer()
        self._tick = QtCore.QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._show_elapsed)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.record_button)
        status = QtWidgets.QHBoxLayout()
        status.addWidget(self.record_label, 1)
        status.addWidget(self.elapsed)
        layout.addLayout(status)
        layout.addWidget(self.level)
        layout.addWidget(self.tracker)
        layout.addWidget(QtWidgets.QLabel("Transcript"))
        layout.addWidget(self.transcript)
        layout.addWidget(QtWidgets.QLabel("Sentences"))
        layout.addWidget(self.sentences, 1)

    def set_recording(self, recording: bool, text: str = "") -> None:
        """Button, label and the elapsed-time counter (restarted per recorded case)."""
        with QtCore.QSignalBlocker(self.record_button):
            self.record_button.setChecked(recording)
        self.record_button.setText("Stop recording (Space)" if recording else "Start recording (Space)")
        self.record_label.setText(text or ("recording" if recording else "not recording"))
        if recording:
            self._clock.start()
            self._tick.start()
        else:
            self._tick.stop()
        self._show_elapsed()

    def elapsed_s(self) -> float:
        return self._clock.elapsed() / 1000.0 if self._tick.isActive() else 0.0

    def _show_elapsed(self) -> None:
        if not self._tick.isActive():
            self.elapsed.setText("")
            return
        s = int(self.elapsed_s())
        self.elapsed.setText(f"● {s // 60:02d}:{s % 60:02d}")


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
        settings_key: str = "main",
    ) -> None:
        super().__init__()
        self.setWindowTitle(title)
        self.settings_key = settings_key
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
        left = self._build_worklist_dock()
        self._build_reading_dock(reading_panel)
        left.setMinimumWidth(170)
        left.setMaximumWidth(260)
        self.sentence_heatmap_scale = 1.0

        self.worklist.current_changed.connect(self._on_current)
        self._install_shortcuts()
        self.statusBar().showMessage("open a folder of images or sessions (File ▸ Open folder…)")
        self._install_menus()
        self.restore_geometry()

    def _build_worklist_dock(self) -> QtWidgets.QWidget:
        """The worklist with Previous / Next, docked left; returns its panel."""
        self.worklist_widget = WorklistWidget(self.worklist)
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(2, 2, 2, 2)
        nav = QtWidgets.QHBoxLayout()
        self.prev_button = QtWidgets.QPushButton("◀ Previous")
        self.next_button = QtWidgets.QPushButton("Next ▶")
        self.prev_button.setToolTip("Previous case (PgUp or P)")
        self.next_button.setToolTip("Next case (PgDown or N)")
        self.worklist_widget.setToolTip("Cases: [status] file; click one to open it")
        self.prev_button.clicked.connect(self.worklist.previous)
        self.next_button.clicked.connect(self.worklist.next)
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        lv.addLayout(nav)
        lv.addWidget(self.worklist_widget, 1)
        self.worklist_dock = self._dock("Worklist", left, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        return left

    def _build_reading_dock(self, visible: bool) -> None:
        """Recording, tracker, transcript and sentences, docked right (hidden in ``view``)."""
        self.reading = ReadingPanel()
        self.reading.setMinimumWidth(260)
        self.reading.record_button.clicked.connect(lambda _=False: self.record_toggled.emit())
        self.reading.sentences.sentence_selected.connect(self.show_sentence)
        self.reading_dock = self._dock("Reading", self.reading, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.reading_dock.setVisible(visible)
        self._records = visible

    # -- menus, geometry ---------------------------------------------------------------------------------
    def _install_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = file_menu.addAction("Open folder…")
        open_action.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Open))
        open_action.triggered.connect(self._ask_folder)
        files_action = file_menu.addAction("Open files…")
        files_action.triggered.connect(self._ask_files)
        self.file_menu = file_menu
        install_quit_action(self, file_menu)
        self.drag_mode_actions = install_drag_mode_menu(self, self.state)
        install_help_menu(self, self.key_table)

    def key_table(self) -> list[Key]:
        """Every key of this window, for Help ▸ Keyboard shortcuts."""
        return [k for k, _ in self._bindings]

    def restore_geometry(self) -> None:
        """The saved geometry of this kind of window, else a size that fits a 1366 x 768 screen."""
        saved = settings().value(f"geometry/{self.settings_key}")
        if saved is not None and self.restoreGeometry(saved):
            return
        screen = QtGui.QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else QtCore.QRect(0, 0, *DEFAULT_SIZE_PX)
        self.resize(min(DEFAULT_SIZE_PX[0], avail.width()), min(DEFAULT_SIZE_PX[1], avail.height()))

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        # the window system's close button, in record mode with an annotation step's work unconfirmed, asks
        # first (Ctrl-Q asks in quit_all); a close by the program (tests, quit_all) never waits on a person
        if ev.spontaneous() and not close_confirmed(self):
            ev.ignore()
            return
        settings().setValue(f"geometry/{self.settings_key}", self.saveGeometry())
        super().closeEvent(ev)

    def add_reading_tab(self, title: str, widget: QtWidgets.QWidget) -> QtWidgets.QDockWidget:
        """A dock tabbed with the reading panel's (record mode's annotation); the reading tab stays in front."""
        dock = self._dock(title, widget, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.reading_dock, dock)
        self.reading_dock.raise_()
        return dock

    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(area, dock)
        return dock

    def _install_shortcuts(self) -> None:
        self._bindings = [
            (Key(("PgDown", "N"), "next case"), self.worklist.next),
            (Key(("PgUp", "P"), "previous case"), self.worklist.previous),
            *viewing_keys(self.state),
        ]
        if self._records:
            self._bindings.insert(
                0, (Key(("Space",), "start/stop recording this case"), self.record_toggled.emit)
            )
        self.shortcuts = install_keys(self, self._bindings)

    # -- worklist -------------------------------------------------------------------------------------
    def _ask_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of images or sessions")
        if folder:
            self.open_folder(folder)

    def _ask_files(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open images or sessions", "", "Images and sessions (*.dcm *.dicom *.png *.jpg *.jpeg *.h5)"
        )
        if files:
            self.open_paths(files)

    def open_folder(self, folder: str | Path) -> None:
        self.open_paths([folder])

    def open_paths(self, paths: list[str | Path]) -> None:
        """Files and folders (images, sessions) as one worklist, in the order given; the first case opens."""
        items = []
        for path in paths:
            try:
                items += scan_folder(path)
            except RadgazeError as exc:
                self.statusBar().showMessage(str(exc))
                return
        self.worklist.set_items(items)
        where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} paths"
        self.statusBar().showMessage(f"{len(items)} case(s) in {where}")
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
        from radgaze.capture.io.images import pixel_type_label

        where = case.image_path.name if case.image_path is not None else case.case_id
        self.statusBar().showMessage(
            f"{where}: {case.pixels.shape[1]} × {case.pixels.shape[0]} {pixel_type_label(case.pixels, case.meta)}"
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
