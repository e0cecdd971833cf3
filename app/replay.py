"""``radgaze replay SESSION.h5``: play a recorded reading back.

The image (through the shared :class:`radgaze.app.state.ViewerState` and :class:`radgaze.app.image_view.ImageView`)
as the reader had it — the recorded zoom, pan, window/level and invert, their whole display fitted into the
canvas (:func:`radgaze.app.replay_export.reader_transform`; "Reader's view" off = the whole image fitted) —
with the trailing scanpath (fixations numbered in case order, discs whose area grows with the duration, trail
length adjustable), the current fixation and the raw gaze point; the transcript with the word being said
highlighted; the sentence list (heatmap thumbnails, the whole case's heatmap last; clicking a sentence goes to
its gaze window and overlays its heatmap, colormap and opacity in the view controls); the timeline (gaze x/y,
fixation bars, words, sentence spans) to scrub; the recorded audio in sync. Exports: REFLACX-style CSVs and
heatmap PNGs, an MP4 of the case (:mod:`radgaze.app.replay_export`). Keys: Space play/pause, Left/Right previous/next event (fixation or word start),
Shift+Left/Right -/+1 s, Home/End, +/- speed. Sessions without audio or raw gaze (REFLACX / EGD-CXR imports)
replay from their fixations.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app import replay_export as rx
from radgaze.app.annotation_overlay import AnnotationOverlay
from radgaze.app.audio_player import AudioPlayer
from radgaze.app.image_view import ImageView
from radgaze.app.panels import SentenceList, ViewControls
from radgaze.app.qtapp import restore_window_geometry, save_window_geometry
from radgaze.app.replay_frame import Frame, frame_at, view_row_at
from radgaze.app.second_look import ReplaySecondLook
from radgaze.app.shortcuts import Key, install_viewing_keys
from radgaze.app.state import ViewerState, ViewTransform
from radgaze.app.timeline import (
    SCANPATH_TRAIL_S,
    SPEEDS,
    Playback,
    TimelineWidget,
    event_times,
    sentence_at,
    step_time,
    word_at,
)
from radgaze.app.transcript import ReplayTranscript
from radgaze.capture.base.errors import ImageLoadError, SessionFormatError
from radgaze.capture.base.records import CaseRecord

FRAME_MS = 16  # playback timer: ~60 frames per second
AUDIO_RESYNC_S = 0.12  # restart the audio when it drifts further than this from the clock (~ 2 output blocks)
FIXATION_MIN_PX, FIXATION_PX_PER_S = 10.0, 40.0  # current-fixation disc: diameter grows with its duration
TRAIL_MAX_S = 600.0  # the trail spin box's top: 10 min covers any single reading ("whole case")
TRAIL_COLOUR = (0, 229, 255)


@dataclass
class ReplayCase:
    record: CaseRecord
    pixels: np.ndarray
    window: tuple[float, float] | None
    image_note: str  # '' when the image loaded, else why a blank stands in
    meta: object | None = None  # the file's ImageMeta (the corner says "uint8" for an 8-bit PNG, not uint16)


def load_replay_case(session_path: Path, case_id: str) -> ReplayCase:
    """A case and its image; a blank image of the recorded size stands in when the image is missing."""
    from radgaze.capture.io.images import default_window
    from radgaze.capture.store.case_image import load_case_image
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(session_path) as reader:
        record = reader.case(case_id)
    try:
        img = load_case_image(record.image, session_path)  # verified: sha256, width, height
        return ReplayCase(record, img.pixels, default_window(img), "", img.meta)
    except ImageLoadError as exc:
        w, h = max(record.image.width, 1), max(record.image.height, 1)
        return ReplayCase(record, np.zeros((h, w), np.uint16), (0.5, 1.0), f"image not shown: {exc}")


def case_ids_of(session_path: Path) -> list[str]:
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(session_path) as reader:
        return list(reader.case_ids)


PLAYBACK_KEYS_HELP = {
    "Space": "play / pause",
    "Right": "next event (fixation, word, view change)",
    "Left": "previous event",
    "Shift+Right": "1 s forward",
    "Shift+Left": "1 s back",
    "Home": "start of the case",
    "End": "end of the case",
    "+": "faster",
    "-": "slower",
}


class ReplayWindow(QtWidgets.QMainWindow):
    """The replay mode. ``audio=False`` keeps it silent (tests, no device)."""

    def __init__(
        self,
        session_path: str | Path,
        *,
        audio: bool = True,
        follow_sentences: bool = True,
        first_case: str | None = None,
    ) -> None:
        super().__init__()
        self.session_path = Path(session_path)
        self.setWindowTitle(f"radgaze replay — {self.session_path.name}")
        self.state = ViewerState(clock=time.monotonic)  # replay records no view events
        self.playback = Playback()
        self.audio = AudioPlayer(enabled=audio)
        self.case: ReplayCase | None = None
        self.events = np.zeros(0)
        self.current_word = -1
        self.current_sentence = -1
        self.follow_sentences = follow_sentences
        self._last_tick = time.perf_counter()
        self.trail_s = SCANPATH_TRAIL_S
        self.reader_view = True  # apply the recorded zoom/pan/W-L/invert (else a fitted default view)
        self.view_index = -1  # the recorded view row applied last
        self._applied_viewport: tuple[float, float] | None = None
        self._applying_view = False
        self.whole_case_heatmap: np.ndarray | None = None

        self.image_view = ImageView(self.state)
        self.annotation_overlay = AnnotationOverlay(self.image_view)
        self.second_look = ReplaySecondLook(self.image_view, self.session_path)  # what it showed, at its time
        self.controls = ViewControls(self.state)
        self._build_scanpath_items()
        self.timeline = TimelineWidget()
        self.transcript = ReplayTranscript()
        self.sentences = SentenceList()
        self._build_layout()
        self._build_toolbar()
        self._install_shortcuts()

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self._tick)
        self.playback.time_changed.connect(self._on_time)
        self.playback.playing_changed.connect(self._on_playing)
        self.playback.speed_changed.connect(self._on_speed)
        self.timeline.seek_requested.connect(self.seek)
        self.transcript.word_clicked.connect(self._on_word_clicked)
        self.sentences.sentence_selected.connect(self.select_sentence)
        self.sentences.itemClicked.connect(self._on_sentence_clicked)
        self.state.view_event.connect(self._on_own_view_event)

        self.case_ids = case_ids_of(self.session_path)
        if not self.case_ids:
            raise SessionFormatError(f"{self.session_path}: expected at least one case, got none")
        with QtCore.QSignalBlocker(self.case_box):
            self.case_box.addItems(self.case_ids)
        # --case 2 opens case 2 only: a damaged case 1 stops nothing (issue 24)
        self.open_case(first_case or self.case_ids[0])

    # -- construction ---------------------------------------------------------------------------------
    def _build_scanpath_items(self) -> None:
        self.trail = pg.PlotDataItem(pen=pg.mkPen((*TRAIL_COLOUR, 200), width=2))
        self.image_view.add_image_item(self.trail, z=15)
        # fixation discs (area ~ duration) and their numbers (order in the case, from 1): pooled items that
        # keep their screen size at any zoom
        self.trail_dots: list[QtWidgets.QGraphicsEllipseItem] = []
        self.trail_numbers: list[QtWidgets.QGraphicsSimpleTextItem] = []
        self.trail_shown = 0
        d = FIXATION_MIN_PX
        self.fixation_item = QtWidgets.QGraphicsEllipseItem(-d / 2, -d / 2, d, d)
        self.fixation_item.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.fixation_item.setPen(pg.mkPen((255, 255, 255), width=2))
        self.fixation_item.setBrush(pg.mkBrush(255, 64, 129, 170))
        self.fixation_item.setVisible(False)
        self.image_view.add_image_item(self.fixation_item, z=16)

    def _build_layout(self) -> None:
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addWidget(self.controls)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.image_view)
        split.addWidget(self.timeline)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([600, 300])  # the image gets two thirds of the height
        v.addWidget(split, 1)
        self.setCentralWidget(central)
        side = QtWidgets.QWidget()
        sv = QtWidgets.QVBoxLayout(side)
        sv.setContentsMargins(2, 2, 2, 2)
        sv.addWidget(QtWidgets.QLabel("Transcript"))
        sv.addWidget(self.transcript, 1)
        sv.addWidget(QtWidgets.QLabel("Sentences (click: overlay its heatmap and go to it)"))
        sv.addWidget(self.sentences, 1)
        dock = QtWidgets.QDockWidget("Transcript and sentences", self)
        dock.setObjectName("Transcript")
        dock.setWidget(side)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        side.setMinimumWidth(300)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Playback")
        bar.setObjectName("Playback")
        bar.setMovable(False)
        self.case_box = QtWidgets.QComboBox()
        self.case_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.case_box.currentTextChanged.connect(self.open_case)
        bar.addWidget(QtWidgets.QLabel(" Case "))
        bar.addWidget(self.case_box)
        bar.addSeparator()
        self.play_button = QtWidgets.QPushButton(self._play_icon(False), "Play")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.setCheckable(True)
        self.play_button.clicked.connect(lambda checked: self.playback.set_playing(checked))
        bar.addWidget(self.play_button)
        self.speed_box = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.currentIndexChanged.connect(lambda i: self.playback.set_speed(SPEEDS[i]))
        bar.addWidget(QtWidgets.QLabel(" Speed "))
        bar.addWidget(self.speed_box)
        self.follow_box = QtWidgets.QCheckBox("Follow sentences")
        self.follow_box.setChecked(self.follow_sentences)
        self.follow_box.toggled.connect(lambda on: setattr(self, "follow_sentences", on))
        bar.addWidget(self.follow_box)
        self.reader_view_box = QtWidgets.QCheckBox("Reader's view")
        self.reader_view_box.setChecked(True)
        self.reader_view_box.setToolTip(
            "Show the image as the reader had it (recorded zoom, pan, window/level, invert); "
            "off: the whole image fitted, default window"
        )
        self.reader_view_box.toggled.connect(self.set_reader_view)
        bar.addWidget(self.reader_view_box)
        self.trail_box = QtWidgets.QDoubleSpinBox()
        self.trail_box.setRange(0.5, TRAIL_MAX_S)
        self.trail_box.setDecimals(1)
        self.trail_box.setSingleStep(1.0)
        self.trail_box.setSuffix(" s")
        self.trail_box.setValue(self.trail_s)
        self.trail_box.setToolTip("Seconds of scanpath drawn behind the current time (fixations numbered)")
        self.trail_box.valueChanged.connect(self.set_trail)
        bar.addWidget(QtWidgets.QLabel(" Trail "))
        bar.addWidget(self.trail_box)
        bar.addSeparator()
        self.export_tables_action = bar.addAction("Export CSV + heatmaps…", self._ask_export_tables)
        self.export_tables_action.setToolTip(
            "fixations.csv, timestamps_transcription.csv, sentences.csv (REFLACX columns) and a PNG per "
            "sentence heatmap, into a folder"
        )
        self.export_video_action = bar.addAction("Export video…", self._ask_export_video)
        self.export_video_action.setToolTip("MP4 of the case: gaze over the image with the transcript")
        bar.addSeparator()
        self.time_label = QtWidgets.QLabel()
        self.time_label.setStyleSheet("QLabel { font-family: monospace; padding: 0 8px }")
        bar.addWidget(self.time_label)
        self.audio_label = QtWidgets.QLabel()
        bar.addWidget(self.audio_label)

    def _install_shortcuts(self) -> None:
        pb = self.playback
        keys = {
            "Space": pb.toggle,
            "Right": lambda: self.step(+1),
            "Left": lambda: self.step(-1),
            "Shift+Right": lambda: self.seek(pb.t + 1.0),
            "Shift+Left": lambda: self.seek(pb.t - 1.0),
            "Home": lambda: self.seek(pb.t_start),
            "End": lambda: self.seek(pb.t_end),
            "+": lambda: self.change_speed(+1),
            "-": lambda: self.change_speed(-1),
        }
        self.shortcuts: dict[str, QtGui.QShortcut] = {}
        for key, slot in keys.items():
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)
            self.shortcuts[key] = sc
        playback_keys = tuple(Key((k,), PLAYBACK_KEYS_HELP.get(k, "playback")) for k in keys)
        self.shortcuts.update(install_viewing_keys(self, self.state, playback_keys))  # the viewer's own keys

    # -- case -----------------------------------------------------------------------------------------
    def open_case(self, case_id: str) -> None:
        if not case_id:
            return
        self.playback.set_playing(False)
        case = load_replay_case(self.session_path, case_id)
        self.case = case
        rec = case.record
        self.state.set_case(case_id, case.pixels, window=case.window, meta=case.meta)
        self.annotation_overlay.show(rec.annotation)
        self.view_index = -1
        self.whole_case_heatmap = rx.case_heatmap(rec)
        self.events = event_times(rec)
        self.timeline.set_record(rec)
        self.transcript.set_words(rec.words)
        self._fill_sentences(rec)
        self.audio.set_audio(rec.audio)
        self.current_word = self.current_sentence = -1
        with QtCore.QSignalBlocker(self.case_box):
            self.case_box.setCurrentText(case_id)
        notes = [case.image_note] if case.image_note else []
        if rec.gaze.size == 0:
            notes.append("no raw gaze in this session: fixations only")
        if rec.annotation is not None:
            notes.append(f"annotated: {', '.join(c.label for c in rec.annotation.labels) or 'no labels'}")
        self.statusBar().showMessage(
            f"{case_id}: {rec.duration_s:.1f} s, {rec.gaze.size} gaze samples, {rec.fixations.size} fixations, "
            f"{len(rec.words)} words, {len(rec.sentences)} sentences"
            + ("; " + "; ".join(notes) if notes else "")
        )
        self.audio_label.setText(self._audio_text())
        self.playback.set_range(rec.t_start, rec.t_end)

    def _fill_sentences(self, rec: CaseRecord) -> None:
        self.sentences.clear_sentences()
        px = self.state.pixels
        step = max(1, int(np.ceil(max(px.shape) / 256)))
        small = px[::step, ::step].astype(np.float32)
        c, w = self.state.default_window
        thumb = (np.clip((small - c) / w + 0.5, 0.0, 1.0) * 255).astype(np.uint8)
        for i in range(len(rec.sentences)):
            self.sentences.add_sentence(f"{i + 1}. {rec.sentences.text[i]}", rec.sentence_heatmap(i), thumb)
        # beside the sentences: the whole reading (every fixation), the last row
        self.sentences.add_sentence(
            "Whole case: every fixation of the reading", self.whole_case_heatmap, thumb
        )
        with QtCore.QSignalBlocker(self.sentences):
            self.sentences.setCurrentRow(-1)  # nothing selected until the user or the playback selects one
        self.sentences.scrollToTop()

    def _audio_text(self) -> str:
        if self.case is None or self.case.record.audio is None:
            return "  no audio recorded"
        if not self.audio.enabled:
            return "  audio muted"
        return f"  {self.audio.error}" if self.audio.error else "  audio ♪"

    # -- transport ------------------------------------------------------------------------------------
    def seek(self, t_lsl: float) -> None:
        """A user seek: move the clock and re-cue the audio."""
        self.playback.seek(t_lsl)
        if self.playback.playing:
            self.audio.play(self.playback.t, self.playback.speed)

    def step(self, direction: int) -> None:
        self.seek(step_time(self.events, self.playback.t, direction))

    def change_speed(self, direction: int) -> None:
        i = min(max(SPEEDS.index(self.playback.speed) + direction, 0), len(SPEEDS) - 1)
        self.speed_box.setCurrentIndex(i)

    def _tick(self) -> None:
        now = time.perf_counter()
        dt, self._last_tick = now - self._last_tick, now
        self.playback.advance(dt)
        if self.playback.playing and self.audio.playing:
            drift = self.audio.position_t_lsl() - self.playback.t
            if abs(drift) > AUDIO_RESYNC_S:
                self.audio.play(self.playback.t, self.playback.speed)

    def _on_playing(self, playing: bool) -> None:
        with QtCore.QSignalBlocker(self.play_button):
            self.play_button.setChecked(playing)
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setIcon(self._play_icon(playing))
        if playing:
            self._last_tick = time.perf_counter()
            self.timer.start()
            self.audio.play(self.playback.t, self.playback.speed)
        else:
            self.timer.stop()
            self.audio.stop()
        self.audio_label.setText(self._audio_text())

    def _on_speed(self, speed: float) -> None:
        with QtCore.QSignalBlocker(self.speed_box):
            self.speed_box.setCurrentIndex(SPEEDS.index(speed))
        if self.playback.playing:
            self.audio.play(self.playback.t, speed)

    def _play_icon(self, playing: bool) -> QtGui.QIcon:
        """The platform's media icon (drawn, so no font needs a ⏸ glyph)."""
        sp = QtWidgets.QStyle.StandardPixmap
        return self.style().standardIcon(sp.SP_MediaPause if playing else sp.SP_MediaPlay)

    def _on_sentence_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        """A click on a sentence goes to it (the start of its gaze window) and shows its heatmap."""
        row = self.sentences.row(item)
        if self.case is None:
            return
        s = self.case.record.sentences
        if 0 <= row < len(s):
            self.seek(float(s.window_start[row]))
        self.select_sentence(row)

    def set_trail(self, seconds: float) -> None:
        """Seconds of scanpath drawn behind the current time."""
        self.trail_s = float(min(max(seconds, 0.0), TRAIL_MAX_S))
        with QtCore.QSignalBlocker(self.trail_box):
            self.trail_box.setValue(self.trail_s)
        if self.case is not None:
            self._draw_gaze(self.case.record, self.playback.t)

    # -- the reader's view ----------------------------------------------------------------------------
    def set_reader_view(self, on: bool) -> None:
        """On: the recorded zoom, pan, window/level and invert as the reader had them at the current time.
        Off: the whole image fitted, at the default window, not inverted."""
        self.reader_view = bool(on)
        with QtCore.QSignalBlocker(self.reader_view_box):
            self.reader_view_box.setChecked(self.reader_view)
        self.view_index = -1
        if self.reader_view:
            self._apply_reader_view(self.playback.t)
        else:
            self._applying_view = True
            try:
                self.state.fit()
                self.state.set_window(*self.state.default_window)
                self.state.set_invert(False)
            finally:
                self._applying_view = False

    def _apply_reader_view(self, t_lsl: float, *, force: bool = False) -> None:
        if self.case is None or not self.reader_view:
            return
        rec = self.case.record
        k = view_row_at(rec.view_events, t_lsl)
        vp = self.state.viewport_px
        if k < 0 or min(vp) <= 0 or (k == self.view_index and vp == self._applied_viewport and not force):
            return
        d = rec.display
        v = rx.reader_transform(rec.view_events[k], (d.screen_w_px, d.screen_h_px), vp)
        self._applying_view = True
        try:
            self.state.set_transform(ViewTransform(v.scale, v.offset_x, v.offset_y))
            self.state.set_window(*v.window)
            self.state.set_invert(v.invert)
        finally:
            self._applying_view = False
        self.view_index, self._applied_viewport = k, vp

    def _on_own_view_event(self, _row) -> None:
        """The canvas was resized (or the window moved): the reader's view is fitted to the new size."""
        if not self._applying_view and self.reader_view and self.state.viewport_px != self._applied_viewport:
            self._apply_reader_view(self.playback.t, force=True)

    # -- exports --------------------------------------------------------------------------------------
    def export_tables(self, folder: str | Path) -> dict[str, Path]:
        """The case's fixations, words and sentences as REFLACX-style CSVs and each sentence heatmap (and the
        whole case's) as PNG, into ``folder`` (see :mod:`radgaze.app.replay_export`)."""
        if self.case is None:
            raise SessionFormatError("no case open: nothing to export")
        folder = Path(folder)
        out = rx.export_case_tables(self.case.record, folder)
        window = self.case.window or self.state.default_window
        overlay = self.state.overlay
        pngs = rx.export_heatmap_pngs(
            self.case.record,
            self.case.pixels,
            window,
            folder,
            colormap=overlay.colormap if overlay is not None else "inferno",
        )
        self.statusBar().showMessage(f"{len(out)} tables and {len(pngs)} heatmaps written to {folder}")
        return {**out, **{p.stem: p for p in pngs}}

    def export_video(self, path: str | Path, *, show_progress: bool = True) -> Path:
        """The replay video of the case (MP4), with a progress dialog that can cancel."""
        if self.case is None:
            raise SessionFormatError("no case open: nothing to export")
        self.playback.set_playing(False)
        settings = rx.VideoSettings(trail_s=self.trail_s, speed=self.playback.speed)
        n_frames = rx.frame_times(self.case.record, settings).size
        dialog = QtWidgets.QProgressDialog("Writing the replay video …", "Cancel", 0, n_frames, self)
        dialog.setWindowTitle("radgaze — export video")
        dialog.setMinimumDuration(0 if show_progress else 10**9)
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        self.video_progress: list[int] = []

        def progress(done: int, total: int) -> bool:
            dialog.setValue(done)
            self.video_progress.append(done)
            QtWidgets.QApplication.processEvents()
            return not dialog.wasCanceled()

        try:
            out = rx.export_video(
                self.case.record,
                self.case.pixels,
                self.case.window or self.state.default_window,
                path,
                settings,
                progress,
            )
        finally:
            dialog.close()
        self.statusBar().showMessage(f"video written to {out} ({n_frames} frames)")
        return out

    def _ask_export_tables(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export CSV and heatmaps into")
        if folder:
            self.export_tables(folder)

    def _ask_export_video(self) -> None:
        name = f"{self.case.record.case_id if self.case else 'replay'}.mp4"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export video", name, "MP4 (*.mp4)")
        if path:
            try:
                self.export_video(path)
            except InterruptedError as exc:
                self.statusBar().showMessage(str(exc))

    def _on_word_clicked(self, index: int) -> None:
        if self.case is not None:
            self.seek(float(self.case.record.words.t_start[index]))

    # -- time -> view ---------------------------------------------------------------------------------
    def _on_time(self, t: float) -> None:
        if self.case is None:
            return
        rec = self.case.record
        self.state.set_time(t)
        self._apply_reader_view(t)
        self.timeline.set_time(t)
        w = word_at(rec.words, t)
        if w != self.current_word:
            self.current_word = w
            self.transcript.set_current(w)
            self.timeline.set_current_word(rec.words, w)
        self._draw_gaze(rec, t)
        self.second_look.show_at(rec.case_id, t)
        if self.follow_sentences:
            s = sentence_at(rec.sentences, t)
            if s >= 0 and s != self.current_sentence:
                self.sentences.setCurrentRow(s)  # -> select_sentence
        self.time_label.setText(f"{t - rec.t_start:7.2f} / {rec.duration_s:.2f} s")

    def _draw_gaze(self, rec: CaseRecord, t: float) -> None:
        f = frame_at(rec, t, self.trail_s)  # what the video renderer draws at this time too
        fx = rec.fixations
        self.trail.setData(
            fx["x_img_px"][f.trail].astype(np.float64), fx["y_img_px"][f.trail].astype(np.float64)
        )
        self._draw_trail_fixations(fx, f)
        k = f.fixation
        if k >= 0:
            d = FIXATION_MIN_PX + FIXATION_PX_PER_S * float(t - fx["t_start"][k])
            self.fixation_item.setRect(-d / 2, -d / 2, d, d)
            self.fixation_item.setPos(float(fx["x_img_px"][k]), float(fx["y_img_px"][k]))
        self.fixation_item.setVisible(k >= 0)
        if f.gaze_xy_img_px is not None:
            self.state.set_gaze(*f.gaze_xy_img_px)
            self.state.set_gaze_cursor_visible(True)
            return
        self.state.set_gaze(float("nan"), float("nan"))

    def _trail_item(self, j: int) -> tuple[QtWidgets.QGraphicsEllipseItem, QtWidgets.QGraphicsSimpleTextItem]:
        while len(self.trail_dots) <= j:
            dot = QtWidgets.QGraphicsEllipseItem(0, 0, 1, 1)
            dot.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            dot.setPen(pg.mkPen((255, 255, 255, 220), width=1))
            dot.setBrush(pg.mkBrush(*TRAIL_COLOUR, 110))
            self.image_view.add_image_item(dot, z=15.5)
            label = QtWidgets.QGraphicsSimpleTextItem("")
            label.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setBrush(pg.mkBrush(255, 255, 255))
            label.setPen(pg.mkPen((0, 0, 0), width=0.8))  # a dark outline: readable on any grey
            font = label.font()
            font.setPointSizeF(8.5)
            font.setBold(True)
            label.setFont(font)
            self.image_view.add_image_item(label, z=15.6)
            self.trail_dots.append(dot)
            self.trail_numbers.append(label)
        return self.trail_dots[j], self.trail_numbers[j]

    def _draw_trail_fixations(self, fx: np.ndarray, f: Frame) -> None:
        """The trail's fixations as discs whose area grows with the duration (so far, for the current one),
        numbered in the order of the case (from 1)."""
        idx = range(f.trail.start, f.trail.stop)
        for j, (i, d) in enumerate(zip(idx, rx.fixation_diameters_px(f.trail_dur_s), strict=True)):
            dot, label = self._trail_item(j)
            r = float(d) / 2
            x, y = float(fx["x_img_px"][i]), float(fx["y_img_px"][i])
            dot.setRect(-r, -r, 2 * r, 2 * r)
            dot.setPos(x, y)
            label.setText(str(i + 1))
            label.setPos(x, y)
            label.setTransform(QtGui.QTransform.fromTranslate(r * 0.7, -r * 0.7 - 12))
            dot.setVisible(True)
            label.setVisible(True)
        for j in range(len(idx), self.trail_shown):
            self.trail_dots[j].setVisible(False)
            self.trail_numbers[j].setVisible(False)
        self.trail_shown = len(idx)

    def trail_fixation_numbers(self) -> list[int]:
        """The numbers shown on the trail now (tests, screenshots)."""
        return [int(self.trail_numbers[j].text()) for j in range(self.trail_shown)]

    def select_sentence(self, index: int) -> None:
        """Overlay sentence ``index``'s heatmap (or clear the overlay for the empty marker); ``index`` = the
        number of sentences is the whole-case heatmap."""
        if self.case is None:
            return
        rec = self.case.record
        if index == len(rec.sentences):
            self.current_sentence = index
            with QtCore.QSignalBlocker(self.sentences):
                self.sentences.setCurrentRow(index)
            self.state.set_heatmap(self.whole_case_heatmap, rec.heatmap_scale, label="whole case")
            return
        if not 0 <= index < len(rec.sentences):
            return
        self.current_sentence = index
        with QtCore.QSignalBlocker(self.sentences):
            self.sentences.setCurrentRow(index)
        hm = rec.sentence_heatmap(index)
        self.state.set_heatmap(hm, rec.heatmap_scale, label=rec.sentences.text[index])
        if hm is None:
            self.statusBar().showMessage(f"sentence {index + 1}: no fixations in its window (no heatmap)")

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        save_window_geometry(self, "replay")
        self.timer.stop()
        self.audio.close()
        super().closeEvent(ev)


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze replay",
        description="Replay a recorded session: image with scanpath and current fixation, transcript with "
        "the word being said, sentence heatmaps, timeline (gaze x/y, fixations, words, sentences), audio. "
        "Space play/pause, arrows step, Shift+arrows 1 s, +/- speed.",
        epilog="example: radgaze replay sessions/reading.h5 --case synth1-0000 --seconds 5 --screenshot r.png; "
        "radgaze replay sessions/reading.h5 --export out/ --export-video out/case.mp4",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("session", type=Path, help="session file (.h5)")
    p.add_argument("--case", default=None, help="case id to open (default: the first)")
    p.add_argument("--speed", type=float, default=1.0, choices=SPEEDS, help="playback speed")
    p.add_argument("--start", type=float, default=0.0, help="start at this many seconds into the case")
    p.add_argument(
        "--seconds", type=float, default=None, help="play this many seconds, then (screenshot and) quit"
    )
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the window before quitting")
    p.add_argument("--no-audio", action="store_true", help="do not play the recorded audio")
    p.add_argument(
        "--fitted", action="store_true", help="start with the whole image fitted, not the reader's view"
    )
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="DIR",
        help="write every case's (or --case's) fixations/words/sentences CSVs (REFLACX columns) and heatmap "
        "PNGs, then quit: into DIR for one case, DIR/<case> each when there are several",
    )
    p.add_argument(
        "--export-video",
        type=Path,
        default=None,
        metavar="MP4",
        help="write the replay video of every case (or --case's), then quit: MP4 for one case, "
        "<name>_<case>.mp4 each when there are several",
    )
    return p


def export_paths(args: argparse.Namespace, case_id: str, several: bool) -> tuple[Path | None, Path | None]:
    """Where ``--export DIR`` and ``--export-video MP4`` put one case: DIR and MP4 themselves for a single case,
    DIR/<case> and MP4's name + _<case> when several are written."""
    folder, video = args.export, args.export_video
    if several and folder is not None:
        folder = folder / case_id
    if several and video is not None:
        video = video.with_name(f"{video.stem}_{case_id}{video.suffix}")
    return folder, video


def export_cases(win: ReplayWindow, args: argparse.Namespace, case_ids: list[str]) -> None:
    """``--export`` / ``--export-video`` for every case of ``case_ids``: each file written is printed, and one
    line on stderr says how many cases went where."""
    written = 0
    for case_id in case_ids:
        if win.case is None or win.case.record.case_id != case_id:
            win.open_case(case_id)
        folder, video = export_paths(args, case_id, len(case_ids) > 1)
        if folder is not None:
            paths = list(win.export_tables(folder).values())
            written += len(paths)
            print(*paths, sep="\n")
        if video is not None:
            print(win.export_video(video, show_progress=False))
            written += 1
    where = " and ".join(str(p) for p in (args.export, args.export_video) if p is not None)
    print(
        f"radgaze replay: {len(case_ids)} case(s) exported ({', '.join(case_ids)}), {written} files, to {where}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.session.is_file():
        raise SessionFormatError(f"expected a session file, got {str(args.session)!r} (not a file)")
    case_ids = case_ids_of(args.session)
    if args.case is not None and args.case not in case_ids:
        raise SessionFormatError(f"case {args.case!r} not in {args.session}; cases: {', '.join(case_ids)}")
    from radgaze.app.qtapp import ensure_qapp, raise_failure, run_until_closed, save_png, unattended

    app = ensure_qapp("radgaze replay")
    exports = args.export is not None or args.export_video is not None
    unattended_end = args.seconds is not None or args.screenshot is not None or exports
    win = ReplayWindow(args.session, audio=not (args.no_audio or unattended_end), first_case=args.case)
    if args.fitted:
        win.set_reader_view(False)
    restore_window_geometry(win, "replay", (1500, 950))  # fits a 1366 x 768 screen, remembered
    win.show()
    win.playback.set_speed(args.speed)
    win.seek(win.playback.t_start + args.start)
    failures: list = []
    if unattended_end:
        seconds = args.seconds or 0.0
        if seconds > 0:
            win.playback.set_playing(True)

        def finish() -> None:
            win.playback.set_playing(False)
            if exports:
                export_cases(win, args, [args.case] if args.case is not None else case_ids)
            if args.screenshot is not None:
                app.processEvents()
                save_png(win.grab(), args.screenshot)

        # the last window closes either way: run_until_closed returns
        QtCore.QTimer.singleShot(int(seconds * 1000) + 200, unattended(finish, win.close, failures))
    run_until_closed(app, [win])  # File ▸ Quit, Ctrl-Q, closing the window, Ctrl-C and SIGTERM end it
    raise_failure(failures)
    return 0
