"""Record mode's controller: binds the main window (UI thread) to a :class:`radgaze.capture.live.live_session.LiveSession` (worker).

The UI thread only does cheap things: it forwards view events and case changes to the pipeline's inbox and
polls the pipeline's event queue from a timer (~30 Hz) to move the gaze cursor, update the tracker status,
the transcript and the sentence list. Nothing here blocks on capture, ASR or the session file.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from radgaze.app.calibration import DRIFT_WARN_DEG, CalibrationCheck, CalibrationResult
from radgaze.app.main_window import MainWindow
from radgaze.app.panels import TrackerStatus
from radgaze.app.worklist import RECORDED, LoadedCase
from radgaze.capture.base.records import GAZE_DTYPE, VIEW_CASE, DisplayGeometry, ImageRef, Words
from radgaze.capture.live.live_session import LiveSentence, LiveSession, TrackerStats
from radgaze.capture.store.case_image import stored_image_path
from radgaze.capture.store.privacy import opaque_case_id

LOST_AFTER_S = (
    0.5  # no sample for this long: "lost" (every tracker streams >= 30 Hz; blinks still send samples)
)
SHOW_RECOVERY_S = 5.0  # "back after ... s lost" stays this long after an outage ends
POLL_MS = 33  # UI refresh of the live panels (~30 Hz): smooth cursor, negligible load
# After Stop the capture loop keeps the case open a moment for the audio blocks still on their way, then the
# ASR decodes the case's pending speech at once before it closes, so no word is lost or carried into the next
# case (radgaze.capture.live.capture_loop: END_GRACE_S, CaptureLoop.end_case).
# the capture side's events about closed cases, passed on as ``capture_event`` (record mode's annotation)
FORWARDED_EVENTS = (
    "case_ended", "case_words", "annotation_saved", "annotation_refused", "corrected", "second_look",
    "second_look_saved", "case_pass",
)  # fmt: skip


def image_ref_of(case: LoadedCase, session: Path, *, keep_path: bool = False) -> ImageRef:
    """The case's image as ``session`` stores it: its path by the headless recorder's rule
    (:func:`radgaze.capture.store.case_image.stored_image_path`: relative to the session's folder, not to the
    working folder the window was started in; absolute with ``keep_path``), its sha256, size and photometry."""
    meta = case.meta
    h, w = case.pixels.shape
    path = (
        case.case_id
        if case.image_path is None
        else stored_image_path(Path(case.image_path), session, keep=keep_path)
    )
    return ImageRef(
        path=path,
        sha256=getattr(meta, "sha256", "") or "",
        width=int(w),
        height=int(h),
        bits_stored=int(getattr(meta, "bits_stored", 16) or 16),
        photometric=str(getattr(meta, "photometric", "MONOCHROME2") or "MONOCHROME2"),
    )


class RecordController(QtCore.QObject):
    """Start/stop (Space or the button), one session case per worklist case while recording."""

    recording_changed = QtCore.Signal(bool)
    sentence_added = QtCore.Signal(object)  # LiveSentence
    error = QtCore.Signal(str)
    capture_event = QtCore.Signal(str, object)  # (kind, payload) of FORWARDED_EVENTS

    def __init__(
        self,
        window: MainWindow,
        pipeline: LiveSession,
        display: DisplayGeometry,
        *,
        tracker_name: str = "",
        warn_deg: float = DRIFT_WARN_DEG,
        case_extras: Callable[[LoadedCase], dict] | None = None,
        keep_names: bool = False,
        keep_paths: bool = False,
    ) -> None:
        super().__init__(window)
        # docs/privacy.md: a case is named from its image's content unless keep_names (the file's stem), its image
        # stored relative to the session unless keep_paths (absolute)
        self.keep_names, self.keep_paths = keep_names, keep_paths
        self.window, self.pipeline, self.display = window, pipeline, display
        self.tracker_name, self.warn_deg = tracker_name, warn_deg
        self.case_extras = case_extras  # extra begin_case kwargs (labels, attrs) for a case
        self.hold: Callable[[], str] | None = None  # why recording cannot start now ("" = it can)
        # at Space while recording: True when it keeps the case recording for now (record mode's second look)
        self.sign_off: Callable[[], bool] | None = None
        self.recording = False
        self.words = Words.empty()
        self.preview_text = ""
        self._case_t0 = -np.inf  # LSL time the shown case began: the transcript shows its words only
        self.sentences: list[LiveSentence] = []  # of the case shown
        self.n_sentences_total = 0
        self.recorded_ids: list[str] = []  # session case ids begun, in order
        self.preview_source = (
            pipeline.asr
        )  # anything with ``latest_preview`` (radgaze.capture.live.asr.Preview | None)
        self.stats: TrackerStats | None = None
        self._lost_since: float | None = None  # LSL time of the last sample before the current outage
        self._back: tuple[float, float] | None = None  # (t recovered, outage s) of the last outage
        self.last_drift_deg = float("nan")
        self.calibration: CalibrationCheck | None = None
        self._screen_gaze: list[np.ndarray] = []
        self._errors: list[BaseException] = []
        window.record_toggled.connect(self.toggle)
        window.case_loaded.connect(self._on_case_loaded)
        window.state.view_event.connect(self._on_view_event)
        window.reading.tracker.calibrate_button.clicked.connect(self.start_calibration_check)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self._show_status()

    # -- recording --------------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.recording and self.sign_off is not None and self.sign_off():
            return
        self.stop() if self.recording else self.start()

    def start(self) -> None:
        if self.recording or self.window.loaded is None:
            return
        reason = self.hold() if self.hold is not None else ""
        if reason:
            self.window.statusBar().showMessage(reason)
            return
        self.recording = True
        self._begin_case(self.window.loaded)
        self.window.reading.set_recording(True, f"recording {self.window.loaded.case_id}")
        self.recording_changed.emit(True)

    def stop(self) -> None:
        if not self.recording:
            return
        self.recording = False
        self.pipeline.end_case(self.pipeline.clock())  # nothing later enters it; closed after its last audio
        self._mark_recorded()
        self.window.reading.set_recording(False)
        self.recording_changed.emit(False)

    def _begin_case(self, case: LoadedCase) -> None:
        state = self.window.state
        extras = self.case_extras(case) if self.case_extras else {}
        image = image_ref_of(case, Path(self.pipeline.writer.path), keep_path=self.keep_paths)
        name = case.case_id if self.keep_names or not image.sha256 else opaque_case_id(image.sha256)
        # a case read again in the same session is stored as a new case (a session case is written once)
        n = sum(1 for cid in self.recorded_ids if cid == name or cid.startswith(f"{name}~"))
        case_id = name if n == 0 else f"{name}~{n + 1}"
        self.recorded_ids.append(case_id)
        # the view in force from the case's first instant (later changes come through view_event)
        self.pipeline.begin_case(case_id, image, state.current_view_row(VIEW_CASE), **extras)
        self.window.reading.sentences.clear_sentences()
        self.sentences = []
        self.words, self.preview_text = Words.empty(), ""
        self._case_t0 = float(self.pipeline.clock())
        self._show_transcript()

    def _mark_recorded(self) -> None:
        wl = self.window.worklist
        if wl.current is not None:
            wl.set_status(wl.index, RECORDED)

    def _on_case_loaded(self, case: LoadedCase) -> None:
        if self.recording:  # next/previous while recording: close the case, open the new one
            self.pipeline.end_case(self.pipeline.clock())
            self._begin_case(case)
            self.window.reading.set_recording(True, f"recording {case.case_id}")

    def _on_view_event(self, row: np.ndarray) -> None:
        if self.recording and int(row["kind"]) != VIEW_CASE:  # the case row is sent by _begin_case
            self.pipeline.add_view_event(row)

    # -- polling ----------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Apply what the pipeline produced since the last tick (UI thread, cheap)."""
        gaze = None
        while True:
            try:
                kind, payload = self.pipeline.events.get_nowait()
            except queue.Empty:
                break
            if kind == "gaze":
                gaze = payload  # only the newest position is drawn
            elif kind == "status":
                self.stats = payload
                self._show_status()
            elif kind == "words":
                self._add_words(payload)
            elif kind == "sentence":
                self._add_sentence(payload)
            elif kind == "screen_gaze":
                self._screen_gaze.append(payload)
            elif kind == "level":
                self.window.reading.level.set_level(payload)
            elif kind in FORWARDED_EVENTS:
                self.capture_event.emit(kind, payload)
            elif kind == "error":
                self._errors.append(payload)
                self.window.statusBar().showMessage(f"capture error: {payload}")
                self.error.emit(str(payload))
        if gaze is not None:
            self.window.state.set_gaze(*gaze)
        src = self.preview_source
        preview = getattr(src, "latest_preview", None) if src is not None else None
        if preview is not None and preview.tentative_text != self.preview_text:
            self.preview_text = preview.tentative_text
            self._show_transcript()

    def raise_errors(self) -> None:
        """Re-raise the first error the pipeline reported (tests, headless runs)."""
        if self._errors:
            raise self._errors[0]

    def _add_words(self, words: Words) -> None:
        from radgaze.capture.live.asr import concat_words

        keep = np.flatnonzero(np.asarray(words.t_end) >= self._case_t0)  # the last words of the case before
        words = Words(
            words.t_start[keep], words.t_end[keep], [words.text[i] for i in keep], words.probability[keep]
        )
        self.words = concat_words([self.words, words])
        self._show_transcript()

    def _show_transcript(self) -> None:
        from radgaze.capture.gazemath.punctuation import join_tokens

        self.window.reading.transcript.set_text(join_tokens(self.words.text), self.preview_text)

    def _add_sentence(self, s: LiveSentence) -> None:
        if not self.recorded_ids or s.case_id != self.recorded_ids[-1]:
            return  # a late sentence of a case no longer shown
        self.sentences.append(s)
        self.n_sentences_total += 1
        self.window.add_sentence(s.text, s.heatmap, s.heatmap_scale)
        self.sentence_added.emit(s)

    def _show_status(self) -> None:
        """Tracker state from the clock: "lost" (red, time since the newest sample) once no sample came for
        LOST_AFTER_S, "back after ..." for a while after it recovers; rate and validity of the last seconds."""
        st = self.stats
        now = self.pipeline.clock()
        seen = st is not None and st.t_last == st.t_last
        since = now - st.t_last if seen else float("nan")
        lost = seen and since > LOST_AFTER_S
        if lost and self._lost_since is None:
            self._lost_since = st.t_last
        elif seen and not lost and self._lost_since is not None:
            self._back = (st.t_last, self._lost_outage_s(st))
            self._lost_since = None
        back = self._back[1] if self._back and now - self._back[0] < SHOW_RECOVERY_S else float("nan")
        status = TrackerStatus(
            name=self.tracker_name,
            rate_hz=st.rate_hz if st else float("nan"),
            valid_pct=st.valid_pct if st else float("nan"),
            last_drift_deg=self.last_drift_deg,
            connected=seen,
            since_last_s=since,
            lost=lost,
            back_after_s=back,
            clock_steps=st.clock_steps if st else 0,
            last_clock_step_s=st.last_clock_step_s if st else float("nan"),
        )
        self.window.reading.tracker.show_status(status, self.warn_deg)

    def _lost_outage_s(self, st: TrackerStats) -> float:
        """How long the outage that just ended lasted (from the last sample before it to now's newest)."""
        return max(0.0, st.t_last - self._lost_since) if self._lost_since is not None else float("nan")

    # -- calibration check --------------------------------------------------------------------------------
    def start_calibration_check(self) -> CalibrationCheck:
        """Show the targets full-screen; the result updates "last drift" and warns above ``warn_deg``."""
        self.pipeline.forward_screen_gaze = True
        self._screen_gaze = []
        check = CalibrationCheck(
            self.display, self._pull_screen_gaze, self.pipeline.clock, warn_deg=self.warn_deg
        )
        check.finished.connect(self._on_calibration)
        check.setWindowTitle("radgaze calibration check")
        check.showFullScreen()
        check.start()
        self.calibration = check
        return check

    def _pull_screen_gaze(self) -> np.ndarray:
        self.poll()
        got = np.concatenate(self._screen_gaze) if self._screen_gaze else np.zeros(0, GAZE_DTYPE)
        self._screen_gaze = []
        return got

    def _on_calibration(self, result: CalibrationResult) -> None:
        self.pipeline.forward_screen_gaze = False
        self.last_drift_deg = result.mean_deg
        self._show_status()
        self.window.statusBar().showMessage(result.summary())
        QtCore.QTimer.singleShot(1500, self.calibration.close)
