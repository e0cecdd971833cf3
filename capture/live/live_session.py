"""Record and demo modes' capture side, off the UI thread.

One worker thread (:class:`LiveSession`) drives the capture loop both recorders share
(:class:`radgaze.capture.live.capture_loop.CaptureLoop`: the session writer's only user, one open case's live
pipeline, what a case holds and how it ends) and adds what only the window needs: the UI's inbox (case begun /
ended, view events stamped by :class:`radgaze.app.state.ViewerState`, scripted words, annotation commands, the
second look) and events for the UI. The UI never waits on it: commands are non-blocking puts, and the UI polls
:attr:`LiveSession.events` from a timer. Errors travel on that queue.

Events (``(kind, payload)``) for the UI:
``("gaze", (x_img_px, y_img_px))`` newest gaze on the image (NaN when off it or invalid),
``("screen_gaze", GAZE rows)`` only while ``forward_screen_gaze`` (calibration check),
``("status", TrackerStats)``, ``("words", Words)`` final words, ``("sentence", LiveSentence)``,
``("case_ended", case_id)``, ``("case_pass", (case_id, correction number or None))`` once the case's whole audio,
decoded again, is stored (capture/live/asr.py policy point 7), then (``report_case_words``) ``("case_words",
(case_id, [word, ...]))`` (after the case pass where one was asked for: the words the file keeps),
``("annotation_saved", (case_id, step, revision))``, ``("annotation_refused", (case_id, step, message))``,
``("corrected", (case_id, n_edits, [sentence recomputed, ...]))``, ``("error", exception)``,
``("second_look", (case_id, SecondLook, version))`` computed at sign-off (and again as late words come in),
``("second_look_saved", case_id)``.

The annotation of a dictated case (``annotate``, ``correct``) goes through this thread too: the writer has
one user. A step confirmed while its case is still open (it closes a moment after it ended, once its last
audio came) is stored when it closes.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, VIEW_DTYPE, DisplayGeometry, ImageRef, Words
from radgaze.capture.live.capture_loop import LOOP_PERIOD_S, CaptureHooks, CaptureLoop

STATUS_WINDOW_S = 2.0  # tracker rate / validity over the last 2 s (120 samples even at a 60 Hz tracker)
STATUS_EVERY_S = 0.25  # on the clock, samples or not: an outage shows within a fraction of a second


@dataclass(frozen=True)
class TrackerStats:
    rate_hz: float
    valid_pct: float
    n_samples: int  # received since the session started
    t_last: float  # LSL time of the newest sample (NaN: none yet)
    clock_steps: int = 0  # steps of the tracker's clock found (its samples kept, corrected; issue 24)
    last_clock_step_s: float = float("nan")  # the newest one (+: its stamps jumped forward)


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


def gaze_point_on_image(sample: np.void, view_events: np.ndarray, image_w: int, image_h: int):
    """(x_img_px, y_img_px) of one gaze sample through the view timeline, NaNs when invalid or off the image."""
    from radgaze.capture.gazemath.geometry import screen_to_image

    if view_events.size == 0 or not (int(sample["flags"]) & GAZE_VALID):
        return float("nan"), float("nan")
    x, y, _ = screen_to_image(
        np.array([sample["x_screen_px"]]),
        np.array([sample["y_screen_px"]]),
        np.array([sample["t_lsl"]]),
        view_events,
    )
    x, y = float(x[0]), float(y[0])
    if not (0.0 <= x < image_w and 0.0 <= y < image_h):
        return float("nan"), float("nan")
    return x, y


SILENCE_DBFS = -90.0  # the level meter's floor (below any microphone's self-noise)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of a block of samples in dBFS (full scale: 32768 for int16, as the audio sources deliver,
    1.0 for float), floored at SILENCE_DBFS; what the record window's microphone meter shows."""
    samples = np.asarray(samples)
    full_scale = float(np.iinfo(samples.dtype).max + 1) if samples.dtype.kind == "i" else 1.0
    x = samples.astype(np.float64).reshape(-1) / full_scale
    if x.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(x * x)))
    return max(20.0 * np.log10(rms), SILENCE_DBFS) if rms > 0 else SILENCE_DBFS


class LiveSession:
    """Sources in, session file + UI events out, in one worker thread: the shared
    :class:`~radgaze.capture.live.capture_loop.CaptureLoop` (what a case holds, how it ends) plus the window's
    events, its annotation commands and the second look."""

    def __init__(
        self,
        display: DisplayGeometry,
        writer,
        *,
        gaze_inlet=None,
        audio_queue: queue.Queue | None = None,
        asr=None,
        clock: Callable[[], float] | None = None,
        method: str = "ivt",
        fixation_params: dict | None = None,
    ) -> None:
        hooks = CaptureHooks(
            audio=self._heard,
            gaze=self._gaze_seen,
            words=lambda words: self.events.put_nowait(("words", words)),
            case_words=self._case_words,
            case_gaze=self._case_gaze,
            sentences=self._emit_sentences,
            case_closed=self._case_closed,
            case_pass=self._case_pass_stored,
        )
        self.loop = CaptureLoop(
            writer, display, gaze=gaze_inlet, audio_queue=audio_queue, asr=asr, clock=clock, method=method,
            hooks=hooks, fixation_params=fixation_params,
        )  # fmt: skip
        self.display, self.writer, self.gaze_inlet, self.asr = display, writer, gaze_inlet, asr
        self.clock = self.loop.clock
        self.forward_screen_gaze = False
        self.report_case_words = False  # record mode's annotation sets it
        self.inbox: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.heatmap_scale = 1.0
        self.n_gaze = 0
        self.clock_steps, self.last_clock_step_s = 0, float("nan")
        self._recent = np.zeros(0, GAZE_DTYPE)
        self._last_status = -np.inf
        self._t_newest = float("nan")
        self._deferred: list[tuple[str, tuple]] = []  # annotation commands for the case still open
        self._second_look = None  # radgaze.capture.gazemath.second_look.SecondLookLog of the open case
        self._second_look_inputs: dict = {}  # pixels / attention / params of that case

    @property
    def case_id(self) -> str | None:
        """The open case (None between cases)."""
        return self.loop.case_id

    @property
    def pipeline(self):
        return self.loop.pipeline

    @property
    def image(self) -> ImageRef | None:
        return self.loop.image

    @property
    def views(self) -> np.ndarray:
        return self.loop.views

    # -- commands (any thread, never block) -------------------------------------------------------------
    def begin_case(
        self, case_id: str, image: ImageRef, initial_view: np.ndarray, *, labels=(), attrs: dict | None = None
    ) -> None:
        """Open a session case; ``initial_view`` is the VIEW_DTYPE row in force from its first instant."""
        self.inbox.put_nowait(
            ("begin_case", (case_id, image, np.asarray(initial_view, VIEW_DTYPE), labels, attrs))
        )

    def end_case(self, t_end: float) -> None:
        self.inbox.put_nowait(("end_case", t_end))

    def add_view_event(self, row: np.ndarray) -> None:
        self.inbox.put_nowait(("view", np.asarray(row, VIEW_DTYPE).reshape(-1)))

    def annotate(self, case_id: str, annotation, step: str) -> None:
        """Store the reader's annotation of a dictated case as it stands after ``step`` (one revision)."""
        self.inbox.put_nowait(("annotate", (case_id, copy.deepcopy(annotation), step)))

    def correct(self, case_id: str, text: str) -> None:
        """Store ``text`` as the case's corrected transcript when it differs from the stored words."""
        self.inbox.put_nowait(("correct", (case_id, str(text))))

    def add_words(self, words: Words) -> None:
        """Final words from a source other than ``asr`` (the demo's scripted dictation)."""
        self.inbox.put_nowait(("words", words))

    def begin_second_look(self, log, *, pixels=None, attention=None, params=None, chest_box=None) -> None:
        """Compute the open case's second look now (``log``: a SecondLookLog with the arm and ``t_space_lsl``);
        its versions are emitted as ``second_look`` events and stored when the case closes. ``attention``: a
        model's map over the image, or a callable returning it (run on this worker thread). ``chest_box``: the
        reader's (image px), when the case has one; else the lung fields are estimated on ``pixels``."""
        self.inbox.put_nowait(("second_look", (log, pixels, attention, params, chest_box)))

    def second_look_event(self, case_id: str, t_lsl: float, kind: str) -> None:
        """What the reader did with the overlay (shown, hidden, signed_off) at ``t_lsl``."""
        self.inbox.put_nowait(("second_look_event", (case_id, float(t_lsl), kind)))

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> LiveSession:
        self._thread = threading.Thread(target=self._run, name="radgaze-live", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let the ASR finish its last words, close the open case, stop. The writer stays open (caller's)."""
        self.inbox.put_nowait(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- worker ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._drain_inbox():
                self.loop.step()
                time.sleep(LOOP_PERIOD_S)
            self.loop.finish()  # the open case closed (its last words decoded), then the ASR stopped
        except BaseException as exc:  # noqa: BLE001 - travels to the UI, which shows it and re-raises it
            traceback.print_exc()  # the UI shows one line; where it came from goes to the terminal
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
        from radgaze.capture.gazemath.heatmap import heatmap_grid

        case_id, image, view, labels, attrs = payload
        self.loop.begin_case(case_id, image, view, labels=labels, attrs=attrs)  # an open case closes first
        self.heatmap_scale = heatmap_grid(image.width, image.height)[2]

    def _on_end_case(self, t_end: float) -> None:
        self.loop.end_case(t_end)  # nothing after t_end enters it; it closes once its last audio came

    def _case_closed(self, case_id: str) -> None:
        """After the loop closed a case: its second look, the events, the commands that waited for it."""
        self._store_second_look(case_id)
        self.events.put_nowait(("case_ended", case_id))
        if not self.loop.case_pass_pending(case_id):  # else once the case pass is stored (seconds)
            self._report_case_words(case_id)
        deferred, self._deferred = self._deferred, []
        for kind, payload in deferred:
            getattr(self, f"_on_{kind}")(payload)

    def _case_pass_stored(self, case_id: str, correction: int | None) -> None:
        """The case pass of a closed case is in the file (``correction`` None: its words were the streamed
        ones): its words go to the annotation panel now, so the reader checks the transcript the file keeps."""
        self.events.put_nowait(("case_pass", (case_id, correction)))
        self._report_case_words(case_id)

    def _report_case_words(self, case_id: str) -> None:
        if self.report_case_words:  # the annotation panel shows them (read back: what the file holds)
            self.events.put_nowait(("case_words", (case_id, self.writer.read_case(case_id).words.text)))

    # -- the second look (radgaze.capture.gazemath.second_look) --------------------------------------------
    def _on_second_look(self, payload) -> None:
        log, pixels, attention, params, chest_box = payload
        if log.case_id != self.case_id or self.pipeline is None:
            return  # the case closed meanwhile: nothing to look at again
        self._second_look = log
        if callable(attention):  # a model's attention: computed here, never on the UI thread
            attention = attention()
        self._second_look_inputs = {"pixels": pixels, "attention": attention, "params": params}
        self._second_look_inputs["chest_box"] = chest_box
        self._compute_second_look(log.t_space_lsl)

    def _compute_second_look(self, t_lsl: float) -> None:
        from radgaze.capture.gazemath.second_look import compute_second_look

        log, inputs = self._second_look, self._second_look_inputs
        self.loop.pull_gaze()  # every fixation up to now
        aligner = self.pipeline.aligner
        try:
            result = compute_second_look(
                aligner.fixations,
                aligner.gaze_windows(),
                (self.image.width, self.image.height),
                t_lsl=t_lsl,
                **inputs,
            )
        except ValueError as exc:  # told to the reader; the recording goes on
            self.events.put_nowait(("second_look", (log.case_id, f"second look not computed: {exc}", -1)))
            return
        log.versions.append(result)
        log.add_event(t_lsl, "computed" if len(log.versions) == 1 else "updated")
        self.events.put_nowait(("second_look", (log.case_id, result, len(log.versions) - 1)))

    def _on_second_look_event(self, payload) -> None:
        case_id, t_lsl, kind = payload
        if self._second_look is not None and self._second_look.case_id == case_id:
            self._second_look.add_event(t_lsl, kind)

    def _store_second_look(self, case_id: str) -> None:
        log, self._second_look = self._second_look, None
        if log is None or log.case_id != case_id or not log.versions:
            return
        self.writer.write_second_look(case_id, *log.payload())
        self.events.put_nowait(("second_look_saved", case_id))

    def _on_annotate(self, payload) -> None:
        case_id, annotation, step = payload
        if case_id == self.case_id:
            self._deferred.append(("annotate", payload))
            return
        try:
            revision = self.writer.write_annotation(case_id, annotation, step=step)
        except (ValueError, RuntimeError) as exc:  # refused, nothing written: the reader is told
            self.events.put_nowait(("annotation_refused", (case_id, step, str(exc))))
            return
        self.events.put_nowait(("annotation_saved", (case_id, step, revision)))

    def _on_correct(self, payload) -> None:
        from radgaze.capture.gazemath.correction import correct_case, edits_from_text

        case_id, text = payload
        if case_id == self.case_id:
            self._deferred.append(("correct", payload))
            return
        try:
            record = self.writer.read_case(case_id)
            edits = edits_from_text(record.words.text, text)
            recomputed: list[int] = []
            if edits:
                corrected = correct_case(record, edits)
                self.writer.write_correction(corrected)
                recomputed = list(corrected.correction.recomputed)
        except (ValueError, RuntimeError) as exc:
            self.events.put_nowait(("annotation_refused", (case_id, "transcript", str(exc))))
            return
        self.events.put_nowait(("corrected", (case_id, len(edits), recomputed)))

    def write_counters(self) -> None:
        """The inlet's counters as they are now into the file's provenance (when a case ends, at close)."""
        self.loop.write_counters()

    def _on_view(self, rows: np.ndarray) -> None:
        self.loop.push_view(rows)

    def _on_words(self, words: Words) -> None:
        self.loop.add_words(words)

    def _heard(self, block) -> None:
        self.events.put_nowait(("level", level_dbfs(block.samples)))

    def _case_words(self, words: Words) -> None:
        if self._second_look is not None and self._second_look.shown:  # late words may cover a dwell
            self._compute_second_look(self.clock())

    def _gaze_seen(self, samples: np.ndarray, clock_events: np.ndarray) -> None:
        """Every gaze chunk, in a case or not: the tracker panel, the calibration check."""
        self._take_clock_events(clock_events)
        self._status(samples)
        if samples.size == 0:
            return
        if self.forward_screen_gaze:
            self.events.put_nowait(("screen_gaze", samples))
        self.n_gaze += samples.size

    def _case_gaze(self, samples: np.ndarray) -> None:
        image = self.loop.image
        xy = gaze_point_on_image(samples[-1], self.loop.views, image.width, image.height)
        self.events.put_nowait(("gaze", xy))

    def _take_clock_events(self, events: np.ndarray) -> None:
        """Clock steps of the tracker, counted for the panel (the loop stores those inside a case; the samples
        after them already come on the corrected timeline)."""
        if events.size == 0:
            return
        self.clock_steps += events.size
        self.last_clock_step_s = float(events["step_s"][-1])

    def _status(self, samples: np.ndarray) -> None:
        """Rate and validity over the last STATUS_WINDOW_S of the clock (gaze times are on the same LSL
        clock), every STATUS_EVERY_S whether samples came or not, so an outage empties the window."""
        if samples.size:
            self._recent = np.concatenate([self._recent, samples])
            self._t_newest = float(np.fmax(self._t_newest, samples["t_lsl"][-1]))
        now = self.clock()
        self._recent = self._recent[self._recent["t_lsl"] > now - STATUS_WINDOW_S]
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            rate, valid = tracker_stats(self._recent["t_lsl"], self._recent["flags"], now)
            self.events.put_nowait(
                (
                    "status",
                    TrackerStats(
                        rate,
                        valid,
                        self.n_gaze + samples.size,
                        self._t_newest,
                        self.clock_steps,
                        self.last_clock_step_s,
                    ),
                )
            )

    def _emit_sentences(self, case_id: str, closed) -> None:
        for s in closed:
            self.events.put_nowait(
                (
                    "sentence",
                    LiveSentence(
                        case_id,
                        s.index,
                        s.text,
                        s.heatmap,
                        self.heatmap_scale,
                        s.t_start,
                        s.t_end,
                        s.n_fixations,
                    ),
                )
            )
