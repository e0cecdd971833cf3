"""The one capture loop both recorders drive: ``radgaze record --headless`` (:mod:`radgaze.capture.live.record`) and
the record window (``radgaze.capture.live.live_session.LiveSession``, which adds only the window's events and its annotation).

The loop runs on one thread, the only user of the session writer. Each :meth:`CaptureLoop.step` drains the
sources' queues — audio blocks (fed to the ASR worker and stored), the ASR's final words, gaze chunks from the
LSL inlet thread — into the :class:`~radgaze.capture.live.pipeline.LivePipeline` of the open case, which maps
gaze to the image, finds fixations and closes sentence heatmaps. Nothing here blocks on a device or draws.

What a case holds (docs/session-format.md, "What a case holds: its start and its end") — one rule for both
recorders: what was stamped between the case's ``t_start`` (the moment its image was shown for recording) and its
``t_end`` (the moment recording of it stopped):

- gaze samples with ``t_start <= t_lsl <= t_end``; gaps and clock steps of the tracker that overlap the case;
  audio blocks that overlap it (whole blocks);
- words that overlap it (a word still being said when the case began is its first word; a word ending before it
  belongs to no case); every word said before ``t_end`` is decoded into the case before it closes
  (:meth:`StreamingTranscriber.flush`);
- nothing said or looked at before the case began or after it ended (between cases nothing is recorded).

A case ends in two steps: :meth:`end_case` fixes ``t_end`` at once (nothing stamped later enters the case), and
the case closes :data:`END_GRACE_S` later (the audio blocks of its last moments are still on their way from the
sound server) or at once when the next case begins or the loop finishes.

Once a case has closed, its stored audio goes back to the ASR worker for the case pass (capture/live/asr.py,
policy point 7: the whole case decoded at once); when its words come back they are stored as the case's
retranscription (:func:`~radgaze.capture.live.retranscribe.store_case_words`), seconds later, while the next case
may already be recording. :meth:`finish` waits for the last one.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radgaze.capture.base.records import GAP_DTYPE, VIEW_DTYPE, DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, ClosedSentence
from radgaze.capture.live.asr import CaseWords, Flushed
from radgaze.capture.live.gaze.inlet import concat_chunks, concat_clock_events
from radgaze.capture.live.queues import drain

LOOP_PERIOD_S = 0.02  # 50 Hz keeps heatmap latency far below the 50 ms goal's budget
END_GRACE_S = 0.6  # a stopped case stays open this long for the audio on its way (the sound server's latency)
GAZE_WAIT_S = 1.0  # and up to this long for the tracker's samples up to its end (more on a loaded machine)
FLUSH_TIMEOUT_S = 60.0  # a liveness bound on the ASR's last decode of a case (a few seconds on a CPU)
AUDIO_RATE_HZ = 16000


@dataclass
class CaptureStats:
    gaze_samples: int = 0  # stored (inside a case)
    gaze_pre_roll: int = 0  # stamped before their case began: not stored
    gaze_outside: int = 0  # stamped after a case ended or between cases: not stored
    gaps: int = 0
    clock_steps: int = 0  # steps of the tracker's clock stored (its samples corrected, none dropped)
    audio_s: float = 0.0  # audio stored
    words: int = 0  # words stored
    sentences: int = 0
    sentence_latency_s: list[float] = field(default_factory=list)  # closed time - last word end
    case_passes: int = 0  # cases whose transcript the case pass replaced
    case_pass_s: list[float] = field(
        default_factory=list
    )  # case closed -> its case pass stored (or declined)


@dataclass
class CaptureHooks:
    """What a recorder shows of the loop's input as it comes (the window: levels, status, cursor, transcript).
    Each is called on the loop's thread and must not block."""

    audio: Callable[[object], None] | None = None  # every audio block (AudioBlock)
    gaze: Callable[[np.ndarray, np.ndarray], None] | None = (
        None  # every gaze chunk: (GAZE rows, clock events)
    )
    words: Callable[[Words], None] | None = None  # every batch of final words, in a case or not
    case_words: Callable[[Words], None] | None = None  # the words just stored into the open case
    case_gaze: Callable[[np.ndarray], None] | None = None  # the gaze just stored into the open case
    sentences: Callable[[str, list[ClosedSentence]], None] | None = None  # (case id, sentences closed)
    case_closed: Callable[[str], None] | None = None  # (case id) after the case was closed in the file
    # (case id, correction number or None when nothing changed) once a requested case pass is stored
    case_pass: Callable[[str, int | None], None] | None = None


def in_case(t: np.ndarray, t_start: float, t_end: float) -> np.ndarray:
    """The mask of times inside a case (``t_start <= t <= t_end``)."""
    t = np.asarray(t, float)
    return (t >= t_start) & (t <= t_end)


def overlapping(t_first: np.ndarray, t_last: np.ndarray, t_start: float, t_end: float) -> np.ndarray:
    """The mask of intervals ``[t_first, t_last]`` that overlap a case ``[t_start, t_end]``."""
    return (np.asarray(t_last, float) >= t_start) & (np.asarray(t_first, float) <= t_end)


def words_in_case(words: Words, t_start: float, t_end: float) -> Words:
    """The words that overlap ``[t_start, t_end]``."""
    idx = np.flatnonzero(overlapping(words.t_start, words.t_end, t_start, t_end))
    if idx.size == len(words):
        return words
    return Words(words.t_start[idx], words.t_end[idx], [words.text[i] for i in idx], words.probability[idx])


class CaptureLoop:
    """Sources in, one session file out: one case open at a time (see the module docstring for what it holds).

    ``gaze``: a started :class:`radgaze.capture.live.gaze.inlet.GazeInlet` (anything with ``drain()``);
    ``audio_queue``: an audio source's queue (AudioBlock, an exception, ``None`` at its end); ``asr``: a started
    :class:`radgaze.capture.live.asr.StreamingTranscriber` or None (no dictation)."""

    def __init__(
        self,
        writer,
        display: DisplayGeometry,
        *,
        gaze=None,
        audio_queue: queue.Queue | None = None,
        asr=None,
        clock: Callable[[], float] | None = None,
        method: str = "ivt",
        lead_s: float = EYE_VOICE_LEAD_S,
        hooks: CaptureHooks | None = None,
        fixation_params: dict | None = None,
    ) -> None:
        import pylsl

        # radgaze.capture.store.writer.SessionWriter (live=True): this loop is its only user
        self.writer = writer
        self.display, self.gaze, self.audio_queue, self.asr = display, gaze, audio_queue, asr
        self.clock = clock or pylsl.local_clock
        self.method, self.lead_s = method, lead_s
        self.fixation_params = fixation_params or {}  # e.g. --ivt-window-ms (fixations.fixation_params)
        self.hooks = hooks or CaptureHooks()
        self.stats = CaptureStats()
        self.audio_ended = audio_queue is None
        self.pipeline = None  # radgaze.capture.live.pipeline.LivePipeline of the open case
        self.case_id: str | None = None
        self.image: ImageRef | None = None
        self.views = np.zeros(0, VIEW_DTYPE)  # the open case's view timeline
        self.t_end: float | None = None  # the open case's end once end_case fixed it
        self._close_at = np.inf  # time.monotonic() when an ended case closes
        self._t_gaze_newest = -np.inf  # LSL time of the newest gaze sample drained
        self._after_end: tuple | None = None  # (samples, gaps, clock events) stamped after an ended case
        self._case_pass_asked: dict[str, float] = {}  # case id -> time.monotonic() its case pass was asked

    # -- cases -----------------------------------------------------------------------------------------
    def begin_case(
        self, case_id: str, image: ImageRef, initial_view: np.ndarray, *, labels=(), attrs: dict | None = None
    ) -> list[ClosedSentence]:
        """Open a case from ``initial_view``'s time (the view in force from its first instant); a case still
        open is closed first (at its end, or at this one's start). Returns the sentences that closed."""
        from radgaze.capture.live.pipeline import LivePipeline

        view = np.asarray(initial_view, VIEW_DTYPE).reshape(-1)
        closed = self.close_case(float(view["t_lsl"][0])) if self.pipeline is not None else []
        self.pipeline = LivePipeline(
            self.writer,
            case_id=case_id,
            image=image,
            display=self.display,
            initial_view=view,
            method=self.method,
            fixation_params=self.fixation_params,
            lead_s=self.lead_s,
            clock=self.clock,
            labels=tuple(labels),
            attrs=attrs,
        )
        self.case_id, self.image, self.views = case_id, image, view
        self.t_end, self._close_at = None, np.inf
        return closed

    def end_case(self, t_end: float) -> None:
        """Nothing stamped after ``t_end`` enters the open case; it closes END_GRACE_S from now (:meth:`step`)."""
        if self.pipeline is not None and self.t_end is None:
            self.t_end = max(float(t_end), self.pipeline.t_start_lsl)
            self._close_at = time.monotonic() + END_GRACE_S

    def close_case(self, t_end: float | None = None) -> list[ClosedSentence]:
        """Close the open case now: every word said before its end decoded into it, its last gaze, fixations
        and sentences written. ``t_end``: used when :meth:`end_case` has not fixed one."""
        if self.pipeline is None:
            return []
        if self.t_end is None:
            self.t_end = max(float(self.clock() if t_end is None else t_end), self.pipeline.t_start_lsl)
        self._pull_audio()  # the case's last audio blocks (stored, and heard by the ASR before it flushes)
        closed = self._flush_words(self.t_end)
        closed += self._gaze_up_to(self.t_end)
        closed += self._closed(self.pipeline.finish(self.t_end))
        self.write_counters()
        case_id = self.case_id
        self.pipeline, self.case_id, self.image, self.t_end, self._close_at = None, None, None, None, np.inf
        self._ask_case_pass(case_id)
        if self.hooks.case_closed is not None:
            self.hooks.case_closed(case_id)
        return closed

    def case_pass_pending(self, case_id: str) -> bool:
        """Whether the case pass of closed case ``case_id`` has been asked for and not stored yet."""
        return case_id in self._case_pass_asked

    def push_view(self, rows: np.ndarray) -> None:
        """View changes of the open case (before its end)."""
        rows = np.asarray(rows, VIEW_DTYPE).reshape(-1)
        if self.pipeline is not None and self.t_end is None:
            self.views = np.concatenate([self.views, rows])
            self.pipeline.push_view(rows)

    def add_words(self, words: Words) -> list[ClosedSentence]:
        """Final words from a source other than ``asr`` (a scripted dictation)."""
        return self._take_words(words)

    # -- running -----------------------------------------------------------------------------------------
    def step(self) -> list[ClosedSentence]:
        """One pass over every queue (and the close of an ended case whose grace has passed)."""
        self._pull_audio()
        closed = self._pull_words()
        closed += self.pull_gaze()
        if self.pipeline is not None and time.monotonic() >= self._close_at:
            closed += self.close_case()
        self.writer.tick()
        return closed

    def finish(self) -> list[ClosedSentence]:
        """Close the open case (at the end fixed by :meth:`end_case`, else now), then stop the ASR (it decodes
        what is left; words after the case belong to none). The writer stays open (its owner closes it)."""
        self._pull_audio()
        closed = self.close_case() if self.pipeline is not None else []
        if self.asr is not None:
            self.asr.stop()  # the worker decodes the case passes asked for before it ends
            closed += self._pull_words()
        for case_id in list(self._case_pass_asked):  # a worker that died first: the case keeps its words
            self._case_pass_done(case_id, None)
        self.pull_gaze()  # what came after the last case: counted, not stored
        return closed

    def write_counters(self) -> None:
        """The inlet's counters as they are now into the file's provenance (when a case ends, at close)."""
        provenance = getattr(self.gaze, "provenance", None)
        if provenance is not None:
            self.writer.update_provenance(tracker=provenance())

    # -- audio ---------------------------------------------------------------------------------------------
    def _pull_audio(self) -> None:
        if not self.audio_ended:
            self.audio_ended = drain(self.audio_queue, self._take_audio)

    def _take_audio(self, block) -> None:
        if self.hooks.audio is not None:
            self.hooks.audio(block)
        if self.asr is not None:
            self.asr.feed(block.t_lsl_first_sample, block.samples)
        if self.pipeline is None:
            return
        t0 = block.t_lsl_first_sample
        t1 = t0 + block.samples.size / AUDIO_RATE_HZ
        if bool(overlapping(t0, t1, self.pipeline.t_start_lsl, self._case_end())):
            self.pipeline.push_audio(t0, block.samples)
            self.stats.audio_s += block.samples.size / AUDIO_RATE_HZ

    # -- words ---------------------------------------------------------------------------------------------
    def _pull_words(self) -> list[ClosedSentence]:
        closed: list[ClosedSentence] = []
        if self.asr is not None:
            drain(self.asr.words, lambda words: closed.extend(self._take_words(words)))
        return closed

    def _take_words(self, words) -> list[ClosedSentence]:
        if isinstance(words, CaseWords):
            self._store_case_pass(words)
            return []
        if not isinstance(words, Words):
            return []  # a Flushed marker of a flush this loop no longer waits for
        if self.hooks.words is not None:
            self.hooks.words(words)
        if self.pipeline is None or len(words) == 0:
            return []
        words = words_in_case(words, self.pipeline.t_start_lsl, self._case_end())
        if len(words) == 0:
            return []
        self.stats.words += len(words)
        closed = self._closed(self.pipeline.push_words(words))
        if self.hooks.case_words is not None:
            self.hooks.case_words(words)
        return closed

    def _flush_words(self, t_end: float) -> list[ClosedSentence]:
        """Every word spoken before ``t_end`` into the open case before it closes: the audio captured so far
        goes to the ASR, which decodes its pending speech to ``t_end`` at once; this thread waits for that
        decode (seconds at most), gaze stays buffered in the inlet."""
        if self.asr is None or not getattr(self.asr, "running", False):
            return []  # no ASR, or it has stopped (its stop() already decoded everything)
        self._pull_audio()
        self.asr.flush(t_end)
        closed: list[ClosedSentence] = []
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                item = self.asr.words.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None or isinstance(item, BaseException):
                self.asr.words.put_nowait(item)  # the end / an error: the loop's drain meets it
                break
            if isinstance(item, Flushed):
                break
            closed += self._take_words(item)
        return closed

    # -- the case pass -------------------------------------------------------------------------------------
    def _ask_case_pass(self, case_id: str) -> None:
        """A closed case's stored audio to the ASR worker for the case pass (when the ASR does case passes,
        the case has audio and no correction of the reader's)."""
        if self.asr is None or not getattr(self.asr, "case_pass", False):
            return
        if not getattr(self.asr, "running", False):
            return  # the worker has stopped (an error): the case keeps its streamed words
        from radgaze.capture.live.retranscribe import case_pass_audio

        audio = case_pass_audio(self.writer, case_id)
        if audio is not None:
            self._case_pass_asked[case_id] = time.monotonic()
            self.asr.decode_case(case_id, audio)

    def _store_case_pass(self, item: CaseWords) -> None:
        from radgaze.capture.live.retranscribe import store_case_words

        describe = getattr(self.asr.transcriber, "case_pass_info", None)
        info = describe() if describe is not None else {}
        n = store_case_words(
            self.writer, item.case_id, item.words, {**info, "decode_s": round(item.decode_s, 3)}
        )
        self.stats.case_passes += n is not None
        self._case_pass_done(item.case_id, n)

    def _case_pass_done(self, case_id: str, n: int | None) -> None:
        asked = self._case_pass_asked.pop(case_id, None)
        if asked is None:
            return
        self.stats.case_pass_s.append(time.monotonic() - asked)
        if self.hooks.case_pass is not None:
            self.hooks.case_pass(case_id, n)

    # -- gaze ----------------------------------------------------------------------------------------------
    def pull_gaze(self) -> list[ClosedSentence]:
        """The gaze the inlet has now, into the open case (what lies inside it)."""
        if self.gaze is None:
            return []
        chunks = self.gaze.drain()
        samples, gaps = concat_chunks(chunks)
        events = concat_clock_events(chunks)
        if self.hooks.gaze is not None:
            self.hooks.gaze(samples, events)
        if samples.size:
            self._t_gaze_newest = max(self._t_gaze_newest, float(samples["t_lsl"].max()))
        if self._after_end is not None:  # drained while the case before closed: older than these
            before, self._after_end = self._after_end, None
            samples, gaps, events = (np.concatenate([a, b]) for a, b in zip(before, (samples, gaps, events)))
        if self.pipeline is None:
            self.stats.gaze_outside += samples.size
            return []
        return self._take_gaze(samples, gaps, events)

    def _gaze_up_to(self, t_end: float) -> list[ClosedSentence]:
        """The open case's gaze up to ``t_end``: drained until the tracker's samples have passed it (they are
        on their way a few ms; longer on a loaded machine), at most GAZE_WAIT_S (a lost tracker sends none).
        A tracker still lost then leaves the case an open gap from its last sample to ``t_end``."""
        closed = self.pull_gaze()
        deadline = time.monotonic() + GAZE_WAIT_S
        while self.gaze is not None and self._t_gaze_newest < t_end and time.monotonic() < deadline:
            time.sleep(0.01)
            closed += self.pull_gaze()
        if (
            getattr(self.gaze, "stalled", False)
            and np.isfinite(self._t_gaze_newest)
            and (self._t_gaze_newest < t_end)
        ):  # the tracker is lost as the case ends: the case says so (the gap is known once it returns)
            self.pipeline.push_gaps(np.array([(self._t_gaze_newest, t_end)], GAP_DTYPE))
            self.stats.gaps += 1
        return closed

    def _take_gaze(self, samples: np.ndarray, gaps: np.ndarray, events: np.ndarray) -> list[ClosedSentence]:
        t0, t1 = self.pipeline.t_start_lsl, self._case_end()
        if self.t_end is not None:  # what came after the end may be the next case's: held until it begins
            later = samples["t_lsl"] > t1
            self._after_end = (samples[later], gaps[gaps["t_back"] > t1], events[events["t_lsl"] > t1])
        if events.size:  # steps of the tracker's clock: the samples after them already come corrected
            events = events[in_case(events["t_lsl"], t0, t1)]
            self.pipeline.push_clock_events(events)
            self.stats.clock_steps += events.size
        gaps = gaps[overlapping(gaps["t_lost"], gaps["t_back"], t0, t1)]
        if gaps.size:
            self.pipeline.push_gaps(gaps)
            self.stats.gaps += gaps.size
        keep = in_case(samples["t_lsl"], t0, t1)
        self.stats.gaze_pre_roll += int(np.count_nonzero(samples["t_lsl"] < t0))
        samples = samples[keep]
        if samples.size == 0:
            return []
        self.stats.gaze_samples += samples.size
        closed = self._closed(self.pipeline.push_gaze(samples))
        if self.hooks.case_gaze is not None:
            self.hooks.case_gaze(samples)
        return closed

    # -- sentences -----------------------------------------------------------------------------------------
    def _case_end(self) -> float:
        return np.inf if self.t_end is None else self.t_end

    def _closed(self, closed: list[ClosedSentence]) -> list[ClosedSentence]:
        if closed:
            now = self.clock()
            self.stats.sentences += len(closed)
            self.stats.sentence_latency_s.extend(now - s.t_end for s in closed)
            if self.hooks.sentences is not None:
                self.hooks.sentences(self.case_id, closed)
        return closed
