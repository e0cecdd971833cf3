"""The live pipeline of record and demo modes, off the UI thread.

One worker thread owns the session writer (one writer per file) and does everything between the sources and
the screen: it takes gaze chunks from the LSL inlet thread, maps them onto the image through the view
timeline the UI stamped (:class:`app.state.ViewerState` view events), detects fixations, feeds them and the
final ASR words to :class:`capture.align.LiveAligner`, and writes gaze, fixations, view events, gaps, audio,
words and sentences into the session. The UI never waits on it: it puts commands on an inbox (non-blocking)
and polls :attr:`LivePipeline.events` from a timer. Errors travel on the same queue.

Events (``(kind, payload)``) for the UI:
``("gaze", (x_img_px, y_img_px))`` latest valid gaze on the image (NaN when off or invalid),
``("status", TrackerStats)``, ``("words", Words)`` final words, ``("sentence", LiveSentence)``,
``("case_ended", case_id)``, ``("error", exception)``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from capture.records import (
    FIXATION_DTYPE,
    GAP_DTYPE,
    GAZE_DTYPE,
    GAZE_ON_IMAGE,
    GAZE_VALID,
    VIEW_DTYPE,
    DisplayGeometry,
    Finding,
    ImageRef,
    Words,
)

STATUS_WINDOW_S = 2.0  # tracker rate / validity are measured over the last 2 s (long enough at 60 Hz)
STATUS_EVERY_S = 0.5
# A fixation is final once the gaze stream has moved this far past its end: an I-VT fixation can only grow
# while samples below the velocity threshold keep arriving, and 0.25 s exceeds the longest gap I-VT merges
# (Tobii I-VT gap fill 75 ms, ../shared/REFERENCE-NOTES.md) with margin.
FIXATION_SETTLE_S = 0.25
GAZE_BUFFER_MAX_S = 10.0  # the undecided gaze tail is never longer than this (a 10 s fixation does not exist)
LOOP_PERIOD_S = 0.02


@dataclass(frozen=True)
class TrackerStats:
    rate_hz: float
    valid_pct: float
    n_samples: int  # in the current case
    t_last: float  # LSL time of the newest sample


@dataclass(frozen=True)
class LiveSentence:
    case_id: str
    index: int
    text: str
    heatmap: np.ndarray | None  # (h_hm, w_hm) summing to 1, or None = no fixation in its window
    heatmap_scale: float  # image px per heatmap px
    t_start: float
    t_end: float
    n_fixations: int


def tracker_stats(t_lsl: np.ndarray, flags: np.ndarray, t_now: float, window_s: float = STATUS_WINDOW_S):
    """(rate_hz, valid_pct) of the samples in (t_now - window_s, t_now]; NaN without samples."""
    recent = t_lsl > t_now - window_s
    n = int(np.count_nonzero(recent))
    if n == 0:
        return float("nan"), float("nan")
    span = max(float(t_lsl[recent][-1] - t_lsl[recent][0]), 1e-9)
    rate = (n - 1) / span if n > 1 else float("nan")
    return rate, 100.0 * float(np.count_nonzero(flags[recent] & GAZE_VALID)) / n


def map_gaze_to_image(gaze: np.ndarray, view_events: np.ndarray, image_w: int, image_h: int) -> np.ndarray:
    """Fill x_img_px / y_img_px and the GAZE_ON_IMAGE flag of GAZE_DTYPE rows through the view timeline."""
    from capture.geometry import screen_to_image

    out = gaze.copy()
    if out.size == 0 or view_events.size == 0:
        out["x_img_px"], out["y_img_px"] = np.nan, np.nan
        out["flags"] &= ~np.uint8(GAZE_ON_IMAGE)
        return out
    x, y, _scale = screen_to_image(out["x_screen_px"], out["y_screen_px"], out["t_lsl"], view_events)
    out["x_img_px"], out["y_img_px"] = x, y
    inside = (x >= 0) & (x < image_w) & (y >= 0) & (y < image_h) & ((out["flags"] & GAZE_VALID) != 0)
    out["flags"] = np.where(inside, out["flags"] | GAZE_ON_IMAGE, out["flags"] & ~np.uint8(GAZE_ON_IMAGE))
    return out


class LivePipeline:
    """Sources in, session + UI events out. ``writer`` may be None (nothing is stored; the demo's default)."""

    def __init__(
        self,
        display: DisplayGeometry,
        *,
        writer=None,
        gaze_inlet=None,
        audio_queue: queue.Queue | None = None,
        asr=None,
        clock: Callable[[], float] | None = None,
        fixation_method: str = "ivt",
    ) -> None:
        import pylsl

        self.display = display
        self.writer = writer
        self.gaze_inlet = gaze_inlet
        self.audio_queue = audio_queue  # AudioBlock | exception | None (end), from capture.audio's sources
        self.asr = asr  # capture.asr.StreamingTranscriber: audio is fed to it, its final words come back
        self.forward_screen_gaze = False  # calibration check: also emit ("screen_gaze", GAZE rows)
        self.clock = clock or pylsl.local_clock
        self.fixation_method = fixation_method
        self.inbox: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_case()

    # -- commands (any thread, never block) -------------------------------------------------------------
    def begin_case(
        self,
        case_id: str,
        image: ImageRef,
        t_start: float,
        *,
        labels: tuple[str, ...] = (),
        findings: list[Finding] | None = None,
        attrs: dict | None = None,
    ) -> None:
        self.inbox.put_nowait(("begin_case", (case_id, image, t_start, labels, findings, attrs)))

    def end_case(self, t_end: float) -> None:
        self.inbox.put_nowait(("end_case", t_end))

    def add_view_event(self, row: np.ndarray) -> None:
        self.inbox.put_nowait(("view", np.asarray(row, VIEW_DTYPE).reshape(-1)))

    def add_words(self, words: Words) -> None:
        self.inbox.put_nowait(("words", words))

    def add_audio(self, t_lsl_first_sample: float, samples_int16: np.ndarray) -> None:
        self.inbox.put_nowait(("audio", (t_lsl_first_sample, samples_int16)))

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> LivePipeline:
        self._thread = threading.Thread(target=self._run, name="radgaze-live", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the open case (closing its last sentence) and stop; the writer stays open (caller's)."""
        self.inbox.put_nowait(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- worker ---------------------------------------------------------------------------------------
    def _reset_case(self) -> None:
        self.case_id: str | None = None
        self.image: ImageRef | None = None
        self.view_events = np.zeros(0, VIEW_DTYPE)
        self._tail = np.zeros(0, GAZE_DTYPE)  # mapped gaze not yet settled into fixations
        self._recent = np.zeros(0, GAZE_DTYPE)  # last seconds, for the status
        self.aligner = None
        self.n_sentences = 0
        self.n_gaze = 0
        self._last_status = 0.0

    def _run(self) -> None:
        try:
            while True:
                stop = self._drain_inbox()
                self._pull_audio()
                if stop and self.asr is not None:
                    self.asr.stop()  # decodes what is left and emits the last words (worker thread, not UI)
                self._pull_words()
                self._pull_gaze()
                self._settle_fixations(final=stop)
                self._collect_sentences()
                if stop:
                    if self.case_id is not None:
                        self._end_case(self.clock())
                    break
                if self.writer is not None and hasattr(self.writer, "tick"):
                    self.writer.tick()
                time.sleep(LOOP_PERIOD_S)
        except BaseException as exc:  # noqa: BLE001 - travels to the UI, which shows and re-raises it
            self.events.put_nowait(("error", exc))

    def _drain_inbox(self) -> bool:
        while True:
            try:
                kind, payload = self.inbox.get_nowait()
            except queue.Empty:
                return False
            if kind == "stop":
                return True
            getattr(self, f"_on_{kind}")(payload)

    def _on_begin_case(self, payload) -> None:
        case_id, image, t_start, labels, findings, attrs = payload
        if self.case_id is not None:
            self._end_case(t_start)
        self._reset_case()
        self.case_id, self.image = case_id, image
        if self.writer is not None:
            self.writer.begin_case(
                case_id, image, self.display, t_start=t_start, labels=labels, findings=findings, attrs=attrs
            )
        from capture.align import LiveAligner

        self.aligner = LiveAligner(self.writer, image=image, display=self.display)

    def _on_end_case(self, t_end: float) -> None:
        if self.case_id is not None:
            self._end_case(t_end)

    def _end_case(self, t_end: float) -> None:
        self._settle_fixations(final=True)
        if self.aligner is not None:
            self.aligner.finish()
            self._collect_sentences()
        if self.writer is not None:
            self.writer.end_case(t_end)
        self.events.put_nowait(("case_ended", self.case_id))
        self._reset_case()

    def _on_view(self, rows: np.ndarray) -> None:
        if self.case_id is None:
            return
        self.view_events = np.concatenate([self.view_events, rows])
        if self.writer is not None:
            self.writer.append_view_events(rows)
        if self.aligner is not None:
            self.aligner.add_view_events(rows)

    def _on_words(self, words: Words) -> None:
        self.events.put_nowait(("words", words))
        if self.case_id is None or len(words) == 0:
            return
        if self.writer is not None:
            self.writer.append_words(words)
        self.aligner.add_words(words)

    def _on_audio(self, payload) -> None:
        if self.case_id is not None and self.writer is not None:
            self.writer.append_audio(payload[1], payload[0])

    def _pull_audio(self) -> None:
        while self.audio_queue is not None:
            try:
                block = self.audio_queue.get_nowait()
            except queue.Empty:
                return
            if block is None:
                self.audio_queue = None  # the source ended
                return
            if isinstance(block, BaseException):
                raise block
            if self.asr is not None:
                self.asr.feed(block.t_lsl_first_sample, block.samples)
            self._on_audio((block.t_lsl_first_sample, block.samples))

    def _pull_words(self) -> None:
        while self.asr is not None:
            try:
                words = self.asr.words.get_nowait()
            except queue.Empty:
                return
            if words is None:
                return
            if isinstance(words, BaseException):
                raise words
            self._on_words(words)

    def _pull_gaze(self) -> None:
        if self.gaze_inlet is None:
            return
        from capture.gaze.inlet import concat_chunks

        chunks = self.gaze_inlet.drain()
        if not chunks:
            return
        samples, gaps = concat_chunks(chunks)
        if self.forward_screen_gaze and samples.size:
            self.events.put_nowait(("screen_gaze", samples))
        if self.case_id is None or samples.size == 0:
            return
        samples = (
            samples[samples["t_lsl"] >= self.view_events["t_lsl"][0]]
            if self.view_events.size
            else samples[:0]
        )
        if samples.size == 0:
            return
        w, h = self.image.width, self.image.height
        mapped = map_gaze_to_image(samples, self.view_events, w, h)
        if self.writer is not None:
            self.writer.append_gaze(mapped)
            if gaps.size:
                self.writer.append_gaps(np.asarray(gaps, GAP_DTYPE))
        self.n_gaze += mapped.size
        self._tail = np.concatenate([self._tail, mapped])
        cut = self._tail["t_lsl"][-1] - GAZE_BUFFER_MAX_S
        self._tail = self._tail[self._tail["t_lsl"] >= cut]
        self._recent = np.concatenate([self._recent, mapped])
        self._recent = self._recent[self._recent["t_lsl"] > mapped["t_lsl"][-1] - STATUS_WINDOW_S]
        last = mapped[-1]
        on = bool(last["flags"] & GAZE_ON_IMAGE)
        self.events.put_nowait(
            ("gaze", (float(last["x_img_px"]), float(last["y_img_px"])) if on else (np.nan,) * 2)
        )
        now = float(last["t_lsl"])
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            rate, valid = tracker_stats(self._recent["t_lsl"], self._recent["flags"], now)
            self.events.put_nowait(("status", TrackerStats(rate, valid, self.n_gaze, now)))

    def _settle_fixations(self, final: bool) -> None:
        """Detect fixations in the undecided tail; keep those that ended FIXATION_SETTLE_S before its end."""
        if self.case_id is None or self._tail.size < 2 or self.view_events.size == 0:
            return
        from capture.fixations import fixations_from_gaze

        fix = fixations_from_gaze(self._tail, self.view_events, self.display, method=self.fixation_method)
        if not final:
            fix = fix[fix["t_end"] <= self._tail["t_lsl"][-1] - FIXATION_SETTLE_S]
        if fix.size == 0:
            if final:
                self._tail = self._tail[:0]
            return
        fix = np.asarray(fix, FIXATION_DTYPE)
        if self.writer is not None:
            self.writer.append_fixations(fix)
        self.aligner.add_fixations(fix)
        t_settled = float(fix["t_end"][-1])
        self._tail = self._tail[self._tail["t_lsl"] > t_settled]

    def _collect_sentences(self) -> None:
        if self.aligner is None:
            return
        for s in self.aligner.pop_closed():
            self.events.put_nowait(
                (
                    "sentence",
                    LiveSentence(
                        self.case_id,
                        self.n_sentences,
                        s.text,
                        s.heatmap,
                        s.heatmap_scale,
                        s.t_start,
                        s.t_end,
                        s.n_fixations,
                    ),
                )
            )
            self.n_sentences += 1
