"""One thread per gaze stream: pull chunks from an LSL inlet, decode them, queue timestamped records.

The inlet runs with ``proc_clocksync`` only (times arrive on this machine's LSL clock: the clock-sync offset is
the only change) and ``recover=True`` (a tracker that disappears and comes back under the same source id is
picked up again). No ``proc_dejitter``: it re-times samples on a line at the stream's *declared* rate, and the
bridges declare rates their devices do not deliver (the EyeLink app declares 500 Hz and pushes ~400 Hz with
exact stamps; the Tobii app declares 600 Hz for every device). Every built-in layout's stamps are device times
or exact host-read times (``GazeLayout.stamps``), so they are kept; the measured inter-sample intervals go into
provenance so a jittery stream shows itself (see ../shared/DESIGN.md, "One clock").
The thread only pulls, decodes and queues; it never draws, writes files or blocks on anything else. Every
error it meets travels on the queue and is raised again by :meth:`GazeInlet.get`.

What arrives on the queue is a :class:`GazeChunk`: GAZE_DTYPE rows sorted by time (invalid samples kept,
``GAZE_VALID`` unset), the gaps (GAP_DTYPE) found before them, and the local LSL time of receipt.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pylsl

from radgaze.capture.base.errors import DeviceError
from radgaze.capture.base.records import (
    CLOCK_EVENT_DTYPE,
    CLOCK_STEP_OFFSET,
    GAP_DTYPE,
    GAZE_DTYPE,
    GAZE_GAP_BEFORE,
    GAZE_VALID,
    DisplayGeometry,
)
from radgaze.capture.gazemath.binocular import BinocularCombiner, disagreement_warning
from radgaze.capture.gazemath.clock import ClockState, correct_clock_steps
from radgaze.capture.io.display import ppd_screen
from radgaze.capture.live.gaze.discovery import describe_info
from radgaze.capture.live.gaze.layouts import (
    GazeLayout,
    StreamDescription,
    resolve_layout,
    to_gaze_records,
    tracker_ppd,
)

# A gap is a silence longer than both of these: 20 nominal sample periods and 100 ms. Tracker jitter and
# dropped USB frames stay far below it; a lost bridge or unplugged tracker is far above it. (Blinks do not
# stop a stream: they arrive as invalid samples.) Irregular-rate streams use 1 s.
GAP_MIN_PERIODS = 20
GAP_MIN_S = 0.1
GAP_IRREGULAR_S = 1.0
TIME_CORRECTION_EVERY_S = 5.0
# After a silence a fresh inlet connects while the old connection is still pulled. When it reaches a restarted
# outlet (a new uid) the inlet switches to it at once. When it reaches the same outlet (alive, merely starved),
# the old connection delivers the backlog; should it stay silent this long after the fresh one delivered, the
# inlet switches (the fresh inlet's samples are kept meanwhile: waiting loses nothing). Connecting is tried for
# CANDIDATE_CONNECT_S at a time.
SWITCH_AFTER_S = 0.5
CANDIDATE_CONNECT_S = 0.05
# A jump of the inlet's clock offset larger than this is recorded as a clock event (the samples were already
# moved by LSL's clock sync; the stamps' own rule finds steps down to 20 ms). One offset measurement is off by up
# to half its round trip, tens of ms on a busy machine, so a smaller jump is noise.
OFFSET_STEP_MIN_S = 0.1
INTERVALS_KEPT = 2000  # sample intervals the jitter measure keeps (a few seconds at any tracker rate)  # how often the clock offset is recorded for provenance


def default_gap_threshold_s(nominal_rate_hz: float) -> float:
    """Silence (s) between consecutive samples that counts as a stream outage."""
    if nominal_rate_hz <= 0:
        return GAP_IRREGULAR_S
    return max(GAP_MIN_S, GAP_MIN_PERIODS / nominal_rate_hz)


@dataclass
class GazeChunk:
    samples: np.ndarray  # GAZE_DTYPE (n,), sorted by t_lsl
    gaps: np.ndarray  # GAP_DTYPE (k,): outages that ended at one of these samples (flagged GAZE_GAP_BEFORE)
    t_received: float  # local_clock() right after the pull (LSL s)
    # clock steps found before or in these samples (CLOCK_EVENT_DTYPE); the samples are on the corrected timeline
    clock_events: np.ndarray = field(default_factory=lambda: np.zeros(0, CLOCK_EVENT_DTYPE))


@dataclass
class InletStats:
    n_samples: int = 0  # rows queued
    n_invalid: int = 0  # of which flagged invalid (blink, loss of track, NaN)
    # samples that arrived with a time earlier than their predecessor by less than a clock step: a regular
    # stream's are held at their predecessor's time (gazemath.clock), an irregular stream's sorted
    n_out_of_order: int = 0
    n_late_dropped: int = 0  # of an irregular stream's, those older than rows already queued (dropped)
    n_clock_steps: int = 0  # steps of the stream's clock (stamps moved back onto the corrected timeline)
    last_clock_step_s: float = float("nan")  # the newest step (+: the stamps jumped forward)
    n_gaps: int = 0
    n_chunks: int = 0
    time_correction_failures: int = 0
    n_reconnects: int = 0  # fresh inlets opened after a regular stream went silent (and not dropped again)
    # silences after which the old connection delivered again (a starved source's backlog): fresh inlet dropped
    n_stalls_kept: int = 0
    interval_median_s: float = float("nan")  # measured sample interval (over the last chunks)
    interval_p95_dev_s: float = float("nan")  # p95 |interval - median|: near 0 for exact stamps
    tracker_ppd_x: float = float(
        "nan"
    )  # px/deg the stream sends in its own channels (EyeLink app), latest chunk
    tracker_ppd_y: float = float("nan")
    time_corrections: list[tuple[float, float]] = field(default_factory=list)  # (t_local, offset_s)


def sort_chunk(t_lsl: np.ndarray, t_last: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Order of a chunk's samples by time, the number of out-of-order arrivals, and the keep mask.

    An arrival is out of order when its time is below the running maximum before it (including ``t_last``,
    the newest time already queued). Samples older than ``t_last`` cannot be placed any more: keep = False.
    Returns (order (n,) int, n_out_of_order, keep (n,) bool over the sorted samples).
    """
    running_max = np.maximum.accumulate(np.concatenate([[t_last], t_lsl]))[:-1]
    n_out_of_order = int(np.count_nonzero(t_lsl < running_max))
    order = np.argsort(t_lsl, kind="stable")
    keep = t_lsl[order] >= t_last
    return order, n_out_of_order, keep


def concat_clock_events(chunks: list[GazeChunk]) -> np.ndarray:
    """The clock events of a list of chunks (CLOCK_EVENT_DTYPE (k,))."""
    events = [c.clock_events for c in chunks if c.clock_events.size]
    return np.concatenate(events) if events else np.zeros(0, CLOCK_EVENT_DTYPE)


def find_gaps(t_lsl: np.ndarray, t_last: float, threshold_s: float) -> np.ndarray:
    """Outages before sorted samples: GAP_DTYPE rows (t_lost = last time before, t_back = first after).

    ``t_last`` is the newest time already seen (-inf at the start: no gap before the first sample).
    """
    times = np.concatenate([[t_last], t_lsl])
    idx = np.flatnonzero(np.diff(times) > threshold_s)
    idx = idx[np.isfinite(times[idx])]
    gaps = np.empty(idx.size, GAP_DTYPE)
    gaps["t_lost"], gaps["t_back"] = times[idx], times[idx + 1]
    return gaps


class GazeInlet:
    """Read one gaze stream in a background thread.

    ``start()`` opens the inlet and chooses the layout in the caller's thread (so StreamLayoutError and
    DeviceError raise there), then starts pulling. ``get()`` returns the next GazeChunk (re-raising any error
    the thread met); ``stop()`` joins the thread and closes the inlet. Usable as a context manager.
    """

    def __init__(
        self,
        info: pylsl.StreamInfo,
        display: DisplayGeometry,
        *,
        layout: str | GazeLayout | None = None,
        config_path: str | Path | None = None,
        max_buflen_s: int = 360,
        max_chunk: int = 1024,
        pull_timeout_s: float = 0.02,
        gap_threshold_s: float | None = None,
        open_timeout_s: float = 5.0,
        out_queue: queue.Queue | None = None,
    ) -> None:
        self._info = info
        self.display = display
        self._forced = layout
        self._config_path = config_path
        self._max_buflen_s = int(max_buflen_s)
        self._max_chunk = int(max_chunk)
        self._pull_timeout_s = float(pull_timeout_s)
        self._gap_threshold_s = gap_threshold_s
        self._open_timeout_s = float(open_timeout_s)
        self.queue: queue.Queue = out_queue if out_queue is not None else queue.Queue()
        self.stats = InletStats()
        self._eyes = BinocularCombiner()  # carries the eyes' offset from chunk to chunk
        self.meta: StreamDescription | None = None
        self.layout: GazeLayout | None = None
        self._inlet: pylsl.StreamInlet | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t_last = -np.inf
        self._clock = ClockState()
        # (t_local, jump_s) of the clock offset, not queued yet
        self._offset_events: list[tuple[float, float]] = []
        self._stalled = False
        # after a silence: a fresh inlet opened while the old connection is still pulled, and what it delivered
        self._candidate: pylsl.StreamInlet | None = None
        self._candidate_uid: str | None = None  # the fresh inlet's outlet once it answered
        self._uid = ""  # the outlet the stream's samples come from (a restarted one has a new uid)
        self._pending: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._intervals = np.zeros(0)
        self.t_last_data_local = float("nan")  # local_clock() when the last samples arrived

    def _new_inlet(self) -> pylsl.StreamInlet:
        return pylsl.StreamInlet(
            self._info,
            max_buflen=self._max_buflen_s,
            max_chunklen=0,
            recover=True,
            processing_flags=pylsl.proc_clocksync,
        )

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> GazeInlet:
        if self._thread is not None:
            raise RuntimeError("GazeInlet.start() called twice")
        inlet = self._new_inlet()
        try:
            full = inlet.info(timeout=self._open_timeout_s)
            self.meta = describe_info(full)
            self.layout = resolve_layout(self.meta, self._forced, self._config_path)
            inlet.open_stream(timeout=self._open_timeout_s)
        except pylsl.util.TimeoutError as exc:
            inlet.close_stream()
            raise DeviceError(
                f"gaze stream {self._info.name()!r}: expected it to answer within "
                f"{self._open_timeout_s:g} s, it did not"
            ) from exc
        except BaseException:
            inlet.close_stream()
            raise
        if self._gap_threshold_s is None:
            self._gap_threshold_s = default_gap_threshold_s(self.meta.nominal_rate_hz)
        self._inlet, self._uid = inlet, full.uid()
        self._thread = threading.Thread(target=self._run, name=f"gaze-inlet-{self.meta.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop pulling, join the thread and close the inlet (before any outlet goes away).

        When the stream is away at that moment, a last chunk (no samples) carries the open gap
        (t_lost = last sample, t_back = now), so the recording says the tracker was lost until the end.
        """
        if self._stop.is_set() and self._inlet is None:
            return  # already stopped
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise DeviceError(f"gaze inlet thread did not stop within {timeout_s:g} s")
            if self._stalled and np.isfinite(self._t_last):
                t_now = pylsl.local_clock()
                gap = np.array([(self._t_last, t_now)], GAP_DTYPE)
                self.stats.n_gaps += 1
                self.queue.put(GazeChunk(np.zeros(0, GAZE_DTYPE), gap, t_now))
        if self._candidate is not None:
            self._candidate.close_stream()
            self._candidate = None
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None

    def __enter__(self) -> GazeInlet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stalled(self) -> bool:
        """True while a regular-rate stream has been silent longer than the gap threshold (tracker lost)."""
        return self._stalled

    # -- consumer side -------------------------------------------------------------------------------------
    def get(self, timeout_s: float | None = None) -> GazeChunk | None:
        """The next chunk, None after ``timeout_s`` without one; re-raises an error from the thread."""
        try:
            item = self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def drain(self) -> list[GazeChunk]:
        """Every chunk queued now (re-raising a queued error)."""
        out = []
        while True:
            chunk = self.get(timeout_s=0.0) if not self.queue.empty() else None
            if chunk is None:
                return out
            out.append(chunk)

    def provenance(self) -> dict:
        """Stream metadata, layout, clock offsets and counters, for the session file."""
        meta = asdict(self.meta) if self.meta is not None else {}
        offsets = self.stats.time_corrections
        lay = self.layout
        return {
            "stream": {**meta, "layout": lay.name if lay else None},
            "processing": "clocksync, recover (no dejitter: the stream's own stamps are kept)",
            "dejitter": False,
            "stamps": lay.stamps if lay else None,
            "layout_source": lay.bridge if lay else None,
            "gap_threshold_s": self._gap_threshold_s,
            "time_correction_s": offsets[-1][1] if offsets else None,
            "time_corrections": [list(tc) for tc in offsets],
            "stats": {k: v for k, v in asdict(self.stats).items() if k != "time_corrections"},
            **self._eye_agreement(),
        }

    def _eye_agreement(self) -> dict:
        """How far apart a binocular stream's eyes are (median, deg) and the warning when they disagree."""
        deg = self._eyes.disagreement_deg(ppd_screen(self.display))
        if not np.isfinite(deg):
            return {}
        warning = disagreement_warning(deg)
        return {"eyes_disagree_deg": round(deg, 3), "warnings": [warning] if warning else []}

    # -- thread --------------------------------------------------------------------------------------------
    def _record_time_correction(self, timeout_s: float) -> None:
        try:
            offset = self._inlet.time_correction(timeout=timeout_s)
        except (pylsl.util.TimeoutError, pylsl.util.LostError):
            self.stats.time_correction_failures += 1  # recorded in provenance; the stream may be away
            return
        now, previous = pylsl.local_clock(), self.stats.time_corrections
        if previous and abs(float(offset) - previous[-1][1]) > OFFSET_STEP_MIN_S:
            self._offset_events.append((now, float(offset) - previous[-1][1]))
        previous.append((now, float(offset)))

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - every error travels to the consumer
            self.queue.put(exc)

    def _loop(self) -> None:
        dtype = np.float32 if self.meta.channel_format == "float32" else np.float64
        buf = np.empty((self._max_chunk, self.meta.n_channels), dtype)
        self._record_time_correction(timeout_s=2.0)
        t_next_tc = pylsl.local_clock() + TIME_CORRECTION_EVERY_S
        while not self._stop.is_set():
            if self._candidate is not None:
                self._pull_candidate(buf)
            data, t_lsl = self._pull(self._inlet, buf, self._pull_timeout_s)
            t_received = pylsl.local_clock()
            if len(t_lsl):
                self._on_data(data, np.asarray(t_lsl, np.float64), t_received)
            elif self._candidate is not None:
                self._switch_when_candidate_delivers(t_received)
            elif self._silent_since_s(t_received) > self._gap_threshold_s:
                self._open_candidate()
            if t_received >= t_next_tc and not self._stalled:
                self._record_time_correction(timeout_s=0.2)
                t_next_tc = t_received + TIME_CORRECTION_EVERY_S

    def _pull(self, inlet: pylsl.StreamInlet, buf: np.ndarray, timeout_s: float) -> tuple[np.ndarray, list]:
        return inlet.pull_chunk(
            timeout=timeout_s, max_samples=self._max_chunk, dest_obj=buf, min_samples=1, as_numpy=True
        )

    def _silent_since_s(self, t_now: float) -> float:
        """How long a regular stream that has flowed has been silent (0 for others, or while stalled)."""
        if self.meta.nominal_rate_hz <= 0 or self._stalled or not np.isfinite(self._t_last):
            return 0.0
        return t_now - self.t_last_data_local

    def _on_data(self, data: np.ndarray, t_lsl: np.ndarray, t_received: float) -> None:
        """Samples from the current connection; after a silence they decide which connection stays."""
        if self._candidate is not None:  # the same outlet (it has not restarted): the old connection has all
            self._drop_candidate()
        self._handle(data, t_lsl, t_received)
        self.t_last_data_local, self._stalled = t_received, False

    def _open_candidate(self) -> None:
        """A regular stream went silent: open a fresh inlet, keeping the old connection meanwhile.

        The source may be gone (a tracker app restarted under the same source id: the fresh inlet picks it up,
        with fresh clock-sync state) or merely starved by a busy machine (it then sends its backlog over the
        old connection, whose samples a fresh one would never see: 46-99 of them per stall at 200 Hz were lost
        while the old one was closed at once). The old connection delivering again keeps it (``_on_data``);
        the fresh inlet reaching a restarted outlet replaces it (``_pull_candidate``).
        """
        self._stalled = True
        self._candidate, self._candidate_uid, self._pending = self._new_inlet(), None, []
        self.stats.n_reconnects += 1

    def _pull_candidate(self, buf: np.ndarray) -> None:
        """Connect the fresh inlet when its source answers; keep what it delivers (copied) in ``_pending``."""
        if self._candidate_uid is None:  # pulling before its source answers would block in liblsl
            self._candidate_uid = self._try_connect(self._candidate, timeout_s=CANDIDATE_CONNECT_S)
            if self._candidate_uid not in (None, self._uid):
                self._switch_to_candidate()  # a restarted outlet (a new uid): the old one is gone
            return
        data, t_lsl = self._pull(self._candidate, buf, 0.0)
        if len(t_lsl):
            self._pending.append(
                (data[: len(t_lsl)].copy(), np.asarray(t_lsl, np.float64), pylsl.local_clock())
            )

    def _switch_when_candidate_delivers(self, t_now: float) -> None:
        """The old connection is still silent while the fresh inlet reached the same outlet and delivers: the
        old one should deliver these samples too; after SWITCH_AFTER_S without them, the fresh inlet takes over."""
        if self._pending and t_now - self._pending[0][2] > SWITCH_AFTER_S:
            self._switch_to_candidate()

    def _switch_to_candidate(self) -> None:
        """The fresh inlet becomes the stream's and the old one is closed; what the fresh one delivered is queued
        (the stream counts as back with its first samples)."""
        self._inlet.close_stream()
        self._inlet, self._candidate, self._uid = self._candidate, None, self._candidate_uid
        pending, self._pending = self._pending, []
        for data, t_lsl, t_received in pending:
            self._handle(data, t_lsl, t_received)
        if pending:
            self.t_last_data_local, self._stalled = pending[-1][2], False

    def _drop_candidate(self) -> None:
        """The old connection delivered again: the fresh inlet (and what it holds: the old has it) goes."""
        self._candidate.close_stream()
        self._candidate, self._pending = None, []
        self.stats.n_reconnects -= 1
        self.stats.n_stalls_kept += 1

    def _measure_intervals(self, t_sorted: np.ndarray) -> None:
        times = np.concatenate([[self._t_last], t_sorted]) if np.isfinite(self._t_last) else t_sorted
        d = np.diff(times)
        d = d[d <= self._gap_threshold_s]
        self._intervals = np.concatenate([self._intervals, d])[-INTERVALS_KEPT:]
        self.stats.interval_median_s, self.stats.interval_p95_dev_s = interval_stats(self._intervals)

    @staticmethod
    def _try_connect(inlet: pylsl.StreamInlet, timeout_s: float) -> str | None:
        """Open the (fresh) inlet if its source answers within ``timeout_s``: its outlet's uid; None while away."""
        try:
            uid = inlet.info(timeout=timeout_s).uid()
            inlet.open_stream(timeout=timeout_s)
        except pylsl.util.TimeoutError:
            return None
        return uid

    def _handle(self, data: np.ndarray, t_lsl: np.ndarray, t_received: float) -> None:
        t_lsl, events = self._correct_clock(t_lsl, t_received)
        order, n_ooo, keep = sort_chunk(t_lsl, self._t_last)
        self.stats.n_out_of_order += n_ooo
        self.stats.n_late_dropped += int(np.count_nonzero(~keep))
        order = order[keep]
        if order.size == 0:
            if events.size:
                self.queue.put(GazeChunk(np.zeros(0, GAZE_DTYPE), np.zeros(0, GAP_DTYPE), t_received, events))
            return
        t_sorted = t_lsl[order]
        rows = to_gaze_records(self.layout, data[order], t_sorted, self.display, self._eyes)
        ppd = tracker_ppd(self.layout, data)
        if ppd is not None:
            self.stats.tracker_ppd_x, self.stats.tracker_ppd_y = ppd
        gaps = find_gaps(t_sorted, self._t_last, self._gap_threshold_s)
        self._measure_intervals(t_sorted)
        if gaps.size:
            rows["flags"][np.searchsorted(t_sorted, gaps["t_back"])] |= GAZE_GAP_BEFORE
        self._t_last = float(t_sorted[-1])
        self.stats.n_samples += rows.size
        self.stats.n_invalid += int(np.count_nonzero((rows["flags"] & GAZE_VALID) == 0))
        self.stats.n_gaps += gaps.size
        self.stats.n_chunks += 1
        self.queue.put(GazeChunk(rows, gaps, t_received, events))

    def _correct_clock(self, t_lsl: np.ndarray, t_received: float) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's stamps on the corrected timeline and the clock events found (gazemath.clock)."""
        rate, n_held = self.meta.nominal_rate_hz, self._clock.n_held
        t_lsl, events = correct_clock_steps(
            t_lsl,
            t_received,
            self._clock,
            period_s=1.0 / rate if rate > 0 else 0.0,
            gap_s=self._gap_threshold_s,
        )
        self.stats.n_out_of_order += self._clock.n_held - n_held
        if self._offset_events:
            offset = np.zeros(len(self._offset_events), CLOCK_EVENT_DTYPE)
            offset["t_lsl"], offset["step_s"] = np.array(self._offset_events).T
            offset["source"] = CLOCK_STEP_OFFSET
            events, self._offset_events = np.sort(np.concatenate([events, offset]), order="t_lsl"), []
        if events.size:
            self.stats.n_clock_steps += events.size
            self.stats.last_clock_step_s = float(events["step_s"][-1])
        return t_lsl, events


def interval_stats(intervals_s: np.ndarray) -> tuple[float, float]:
    """(median, p95 of |interval - median|) of sample intervals (s); NaN without any."""
    if intervals_s.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(intervals_s))
    return med, float(np.percentile(np.abs(intervals_s - med), 95))


def concat_chunks(chunks: list[GazeChunk]) -> tuple[np.ndarray, np.ndarray]:
    """All samples and gaps of a list of chunks: (GAZE_DTYPE (n,), GAP_DTYPE (k,))."""
    samples = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, GAZE_DTYPE)
    gaps = np.concatenate([c.gaps for c in chunks]) if chunks else np.zeros(0, GAP_DTYPE)
    return samples, gaps
