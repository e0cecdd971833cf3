"""Clock steps of a gaze stream: found, recorded, and undone, so that no sample is ever dropped as "late".

A tracker's clock (or its bridge's, or the clock-sync offset LSL applies) can step: a sample stamped 10 s ahead,
an NTP correction 0.5 s back, a burst of samples stamped a few hundred ms off. Taken at face value, a step
forward makes every later sample older than the newest one (the inlet dropped them as late: 77 % of a
recording), and a step back drops everything until the clock catches up. Here a step is a jump of the stream's
stamps between two consecutive samples (in arrival order) that the stream itself cannot explain:

* live (:func:`correct_clock_steps`), judged on the corrected timeline, sample by sample:
  - **back**: a regular stream's stamps never go back (LSL keeps one outlet's samples in order; device and
    host-read stamps are monotonic), so a stamp earlier than the one before it by more than
    :func:`back_tolerance_s` (one nominal period, at least :data:`STAMP_JITTER_S`) is a step back, however
    small. A smaller move back (jitter of the clock-sync offset) is held at the time before it (counted), never
    dropped. An irregular stream has no period: a move back of more than :data:`CLOCK_STEP_MIN_S` is a step, a
    smaller one a reordering (sorted; older than what was already queued: dropped and counted); so is a
    forward step (below) only beyond :data:`CLOCK_STEP_MIN_S`.
  - **forward**: a sample cannot arrive before it was taken. Its latency (local arrival time minus its stamp,
    both on this machine's LSL clock after clock sync) is never below the lowest latency the stream has shown,
    so a stamp that jumps forward (beyond the period, or the arrivals' own pause) *and* lands more than
    :data:`CLOCK_STEP_TOLERANCE_S` ahead of that lowest latency is a step forward. A real outage moves the stamps
    and their arrivals alike, so it stays a gap. (A pull thread starved of the CPU only ever makes latencies
    larger, which can hide a step forward, never make one.)
* recorded (:func:`steps_beyond_span`): an XDF file has no arrival times, but the recording computer's clock
  span (LabRecorder measures every stream's clock offset every 5 s, on its own clock). Stamps going back are
  steps by the live rule; a jump forward within :data:`BURST_S` of a step back, or of its size, is a step (a
  burst stamped ahead or behind, which the stamps undo); other forward jumps are steps only while the stream
  overshoots that span (a real outage fits inside).

The samples after a step are moved by minus the step onto a corrected timeline that continues at the stream's
period (or after the pause, when the stream itself paused for over :data:`PAUSE_AT_STEP_MIN_S`, as its arrivals
show: :func:`taken_by_s`; then a gap is found there as for any other outage). Each step becomes a CLOCK_EVENT_DTYPE row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import CLOCK_EVENT_DTYPE, CLOCK_STEP_STAMPS

CLOCK_STEP_MIN_S = 1.0  # an irregular stream's stamps going back further than this are a step (no period)
# A stamp this far ahead of the lowest latency the stream has shown is a step forward: above LSL's clock-sync
# error on a quiet machine (sub-ms on one machine, ~1 ms on a LAN; an estimate that jumps more under load moves
# the stamps as a small step would, and is undone as one) and below any step worth undoing (a tenth of a 200 ms
# fixation).
CLOCK_STEP_TOLERANCE_S = 0.02
BURST_S = 1.0  # recorded stamps: jumps forward this close (in samples at the period) to a step back are steps
STAMP_JITTER_S = 0.002
# A pause of the arrivals shorter than this at a step is not kept as a gap: a pull thread and the outlet both
# starved of the CPU look the same (seen at load 4 on 2 cores: 0.17 s), and a tracker whose clock restarts with
# a reconnect is away for seconds. (A shorter real outage at a step is closed up: no sample lost, times early.)
PAUSE_AT_STEP_MIN_S = 1.0  # moves back smaller than this (and than a period) are jitter, held, not steps


def back_tolerance_s(period_s: float) -> float:
    """How far a stamp may lie before the one before it without being a step back (see the module doc)."""
    return max(period_s, STAMP_JITTER_S) if period_s > 0 else CLOCK_STEP_MIN_S


@dataclass
class ClockState:
    """What :func:`correct_clock_steps` carries from one chunk to the next."""

    last_corrected_s: float = float(
        "nan"
    )  # the last sample's stamp on the corrected timeline, in arrival order
    last_arrival_s: float = float("nan")  # its local arrival time
    correction_s: float = 0.0  # added to every stamp now (minus the sum of the steps so far)
    min_latency_s: float = float("inf")  # lowest (arrival - corrected stamp) seen
    n_held: int = 0  # samples stamped a little before the one before them, held at its time (regular streams)


def correct_clock_steps(
    t_stamp_s: np.ndarray,
    t_arrival_s: np.ndarray,
    state: ClockState,
    *,
    period_s: float,
    gap_s: float,
    tolerance_s: float = CLOCK_STEP_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (n,) in arrival order with their arrival times (n,) -> (corrected stamps (n,), clock events).

    ``period_s``: the stream's nominal sample period (0 for an irregular stream); ``gap_s``: the silence that
    counts as an outage. ``state`` is updated in place. The first sample ever is a step only when it lies more
    than ``tolerance_s`` ahead of its own arrival (it lands on its arrival).
    """
    t = np.asarray(t_stamp_s, np.float64)
    arrival = np.array(np.broadcast_to(np.asarray(t_arrival_s, np.float64), t.shape))
    if t.size == 0:
        return t.copy(), np.zeros(0, CLOCK_EVENT_DTYPE)
    if period_s <= 0:  # no period to judge by: only what the stream's own pace cannot explain (module doc)
        tolerance_s = max(tolerance_s, CLOCK_STEP_MIN_S)
    corrected = t + state.correction_s
    steps: list[tuple[int, float]] = []  # (index, shift)
    k0 = 0
    while k0 < t.size:
        found = _first_step(corrected, arrival, state, k0, period_s, gap_s, tolerance_s)
        if found is None:
            break
        k, shift = found
        corrected[k:] += shift
        steps.append((k, shift))
        k0 = k + 1
    if period_s > 0:
        corrected = _hold_jitter(corrected, state)
    events = np.zeros(len(steps), CLOCK_EVENT_DTYPE)
    if steps:
        idx, shifts = np.array([k for k, _ in steps]), np.array([s for _, s in steps])
        events["t_lsl"], events["step_s"], events["source"] = corrected[idx], -shifts, CLOCK_STEP_STAMPS
        state.correction_s += float(shifts.sum())
    state.min_latency_s = min(state.min_latency_s, float(np.min(arrival - corrected)))
    state.last_corrected_s, state.last_arrival_s = float(corrected[-1]), float(arrival[-1])
    return corrected, events


def _first_step(
    c: np.ndarray,
    arrival: np.ndarray,
    state: ClockState,
    k0: int,
    period_s: float,
    gap_s: float,
    tolerance_s: float,
) -> tuple[int, float] | None:
    """The first step at or after ``k0`` on the (partly) corrected stamps ``c``: (index, shift), or None."""
    first = k0 == 0 and not np.isfinite(state.last_corrected_s)
    if first and arrival[0] - c[0] < -tolerance_s:
        return 0, float(arrival[0] - c[0])  # a first sample from the future lands on its arrival
    prev_c = np.concatenate(
        [[c[0] if first else (state.last_corrected_s if k0 == 0 else c[k0 - 1])], c[k0:-1]]
    )
    d_stamp = c[k0:] - prev_c
    # the interval the corrected timeline keeps: the period, or the pause before the sample was taken, when the
    # stream itself paused (an outage: then a gap is found there as for any other)
    paused = taken_by_s(arrival, period_s, state.min_latency_s)[k0:] - prev_c
    expected = np.where(paused > max(gap_s, PAUSE_AT_STEP_MIN_S), paused, period_s)
    latency = arrival[k0:] - c[k0:]
    lowest_before = np.minimum.accumulate(np.concatenate([[state.min_latency_s], latency[:-1]]))
    back = d_stamp < -back_tolerance_s(period_s)
    ahead = (latency < lowest_before - tolerance_s) & (d_stamp > expected + tolerance_s)
    hit = np.flatnonzero(back | ahead)
    if hit.size == 0:
        return None
    i = int(hit[0])
    return k0 + i, float(expected[i] - d_stamp[i])


def taken_by_s(arrival_s: np.ndarray, period_s: float, min_latency_s: float) -> np.ndarray:
    """The latest time each sample can have been taken: its arrival less the lowest latency seen, less a
    period for every sample that arrived with it after it (a pull thread that falls behind gets the samples it
    missed in one chunk: their one arrival time is not a pause of the stream)."""
    n = arrival_s.size
    last_of_run = np.flatnonzero(arrival_s[1:] != arrival_s[:-1])
    run_last = np.append(last_of_run, n - 1)[np.searchsorted(last_of_run, np.arange(n))]
    latency = min_latency_s if np.isfinite(min_latency_s) else 0.0
    return arrival_s - (run_last - np.arange(n)) * period_s - latency


def _hold_jitter(corrected: np.ndarray, state: ClockState) -> np.ndarray:
    """A regular stream's stamps made non-decreasing: one a little before the one before it is held at its time."""
    before = state.last_corrected_s if np.isfinite(state.last_corrected_s) else -np.inf
    held = np.maximum.accumulate(np.concatenate([[before], corrected]))[1:]
    state.n_held += int(np.count_nonzero(held > corrected))
    return held


def steps_beyond_span(
    t_stamp_s: np.ndarray,
    span_s: tuple[float, float] | None,
    *,
    period_s: float,
    min_step_s: float = CLOCK_STEP_MIN_S,
    tolerance_s: float = CLOCK_STEP_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Recorded stamps (n,) in file order -> (corrected stamps (n,), clock events), as the module doc says.

    ``span_s``: (first, last) time of the recording computer's clock while it recorded (None: unknown). Steps
    back follow the live rule (:func:`back_tolerance_s`); a jump forward is a step within :data:`BURST_S` of a
    step back or of its size (a burst), or, largest first and larger than ``min_step_s`` (the
    span is only known to LabRecorder's 5 s between offset measurements), as long as the stamps run past the
    span's end by more than ``min_step_s``. A regular stream's smaller moves back are held (never reordered).
    """
    t = np.asarray(t_stamp_s, np.float64)
    if t.size < 2:
        return t.copy(), np.zeros(0, CLOCK_EVENT_DTYPE)
    d = np.concatenate([[period_s], np.diff(t)])  # d[i] = t[i] - t[i - 1]
    step = d < -back_tolerance_s(period_s)
    _pair_bursts(step, d, period_s, tolerance_s)
    if span_s is not None:
        overshoot = float(np.max(t + np.cumsum(np.where(step, period_s - d, 0.0)))) - span_s[1]
        for i in np.argsort(-d):
            if overshoot <= min_step_s or d[i] <= min_step_s:
                break
            if not step[i]:
                step[i] = True
                overshoot -= d[i] - period_s
    corrected = t + np.cumsum(np.where(step, period_s - d, 0.0))
    if period_s > 0:
        corrected = np.maximum.accumulate(corrected)
    events = np.zeros(int(step.sum()), CLOCK_EVENT_DTYPE)
    events["t_lsl"], events["step_s"], events["source"] = (
        corrected[step],
        (d - period_s)[step],
        CLOCK_STEP_STAMPS,
    )
    return corrected, events


def _pair_bursts(step: np.ndarray, d: np.ndarray, period_s: float, tolerance_s: float) -> None:
    """Mark (in ``step``) the jumps forward that steps back undo: those within :data:`BURST_S` of a step back (a
    burst stamped ahead or behind), and for each step back the nearest jump forward of its size (within
    ``tolerance_s``; the latest before it, else the first after it). A real outage of the same size, or beside
    a step back within a second, is not told apart."""
    if period_s <= 0:
        return
    window = max(1, round(BURST_S / period_s))
    forward = d - period_s > tolerance_s
    for k in np.flatnonzero(step):
        near = np.flatnonzero(forward)
        step[near[np.abs(near - k) <= window]] = True
        same = np.flatnonzero((np.abs(d - period_s - (period_s - d[k])) < tolerance_s) & ~step)
        if same.size:
            before = same[same < k]
            step[before[-1] if before.size else same[0]] = True
