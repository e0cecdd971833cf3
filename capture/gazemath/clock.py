"""Clock steps of a gaze stream: found, recorded, and undone, so that no sample is ever dropped as "late".

A tracker's clock (or its bridge's, or the clock-sync offset LSL applies) can step: a sample stamped 10 s ahead,
an NTP correction 5 s back. Taken at face value, a step forward makes every later sample older than the newest
one (the inlet dropped them as late: 77 % of a recording), and a step back opens a gap before the case. Here a
step is a jump of the stream's stamps between two consecutive samples (in arrival order) that the time which
really passed cannot explain:

* live (:func:`correct_clock_steps`): against the local arrival times. Between two samples the stamps may advance
  at most the arrival time that passed plus the variation of the delivery latency; :data:`CLOCK_STEP_MIN_S` (1 s)
  is far above that (LSL delivers within milliseconds; a starved pull thread catches up in chunks whose first
  samples are old, which only ever makes the stamps advance *less* than the arrivals). Stamps going back by more
  than it are a step back (LSL keeps one outlet's samples in order; a device's own reordering is milliseconds).
* recorded (:func:`steps_beyond_span`): an XDF file has no arrival times, but the recording computer's clock
  span (LabRecorder measures every stream's clock offset every 5 s, on its own clock). Stamps going back are
  steps; forward jumps are steps only while the stream overshoots that span (a real outage fits inside it).

The samples after a step are moved by minus the step onto a corrected timeline that continues at the stream's
period (or at the arrival gap, when the arrivals themselves paused: then a gap is found there as for any
outage). Each step becomes a CLOCK_EVENT_DTYPE row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radgaze.capture.records import CLOCK_EVENT_DTYPE, CLOCK_STEP_STAMPS

CLOCK_STEP_MIN_S = 1.0  # a jump of the stamps beyond the time that passed larger than this is a clock step


@dataclass
class ClockState:
    """What :func:`correct_clock_steps` carries from one chunk to the next."""

    last_stamp_s: float = float("nan")  # the stream's own stamp of the last sample, in arrival order
    last_arrival_s: float = float("nan")  # its local arrival time
    correction_s: float = 0.0  # added to every stamp now (minus the sum of the steps so far)


def correct_clock_steps(
    t_stamp_s: np.ndarray,
    t_arrival_s: np.ndarray,
    state: ClockState,
    *,
    period_s: float,
    gap_s: float,
    min_step_s: float = CLOCK_STEP_MIN_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (n,) in arrival order with their arrival times (n,) -> (corrected stamps (n,), clock events).

    ``period_s``: the stream's sample period (0 for an irregular stream); ``gap_s``: the silence that counts
    as an outage. ``state`` is updated in place. The first sample ever is a step only when it lies more than
    ``min_step_s`` ahead of its own arrival (a sample cannot arrive before it was taken).
    """
    t = np.asarray(t_stamp_s, np.float64)
    arrival = np.broadcast_to(np.asarray(t_arrival_s, np.float64), t.shape)
    if t.size == 0:
        return t.copy(), np.zeros(0, CLOCK_EVENT_DTYPE)
    first = not np.isfinite(state.last_stamp_s)
    prev_t = np.concatenate([[arrival[0] if first else state.last_stamp_s], t[:-1]])
    prev_arrival = np.concatenate([[arrival[0] if first else state.last_arrival_s], arrival[:-1]])
    d_stamp, d_arrival = t - prev_t, arrival - prev_arrival
    back = d_stamp < -min_step_s
    back[0] &= not first
    step = (d_stamp > d_arrival + min_step_s) | back
    expected = np.where(d_arrival > gap_s, d_arrival, period_s)  # the interval the corrected timeline keeps
    if first:
        expected[0] = 0.0  # a first sample ahead of its arrival lands on its arrival
    shift = np.where(step, expected - d_stamp, 0.0)
    corrected = t + state.correction_s + np.cumsum(shift)
    events = np.zeros(int(step.sum()), CLOCK_EVENT_DTYPE)
    events["t_lsl"], events["step_s"], events["source"] = corrected[step], -shift[step], CLOCK_STEP_STAMPS
    state.last_stamp_s, state.last_arrival_s = float(t[-1]), float(arrival[-1])
    state.correction_s += float(shift.sum())
    return corrected, events


def steps_beyond_span(
    t_stamp_s: np.ndarray,
    span_s: tuple[float, float] | None,
    *,
    period_s: float,
    min_step_s: float = CLOCK_STEP_MIN_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Recorded stamps (n,) in file order -> (corrected stamps (n,), clock events), as the module doc says.

    ``span_s``: (first, last) time of the recording computer's clock while it recorded (None: unknown, only
    steps back are found). A forward jump larger than ``min_step_s`` is a step, largest first, as long as the
    stamps run past the span's end by more than ``min_step_s``.
    """
    t = np.asarray(t_stamp_s, np.float64)
    if t.size < 2:
        return t.copy(), np.zeros(0, CLOCK_EVENT_DTYPE)
    d = np.diff(t)
    step = np.concatenate([[False], d < -min_step_s])
    if span_s is not None:
        overshoot = float(np.max(t - np.cumsum(np.concatenate([[0.0], np.where(step[1:], d, 0.0)]))))
        overshoot -= span_s[1]
        for i in np.argsort(-d):
            if overshoot <= min_step_s or d[i] <= min_step_s:
                break
            step[i + 1] = True
            overshoot -= d[i] - period_s
    shift = np.where(step, period_s - np.concatenate([[0.0], d]), 0.0)
    corrected = t + np.cumsum(shift)
    events = np.zeros(int(step.sum()), CLOCK_EVENT_DTYPE)
    events["t_lsl"], events["step_s"], events["source"] = corrected[step], -shift[step], CLOCK_STEP_STAMPS
    return corrected, events
