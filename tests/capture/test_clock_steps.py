"""Clock steps (issue 24, item 1): found against the arrival times (live) or the recording's span (XDF), recorded
as clock events, and undone so that no sample is dropped. Hand-built stamps here; the live inlet against a real
LSL outlet whose stamps step is in tests/capture/test_faults.py."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.gazemath.clock import (
    CLOCK_STEP_TOLERANCE_S,
    ClockState,
    correct_clock_steps,
    steps_beyond_span,
)
from radgaze.capture.live.gaze.inlet import sort_chunk

RATE = 100.0
P = 1.0 / RATE


def _arrivals(n: int, chunk: int = 5, t0: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """Stamps of a 100 Hz stream from t0 and their arrival times (chunks of ``chunk`` samples, 5 ms latency)."""
    t = t0 + np.arange(n) * P
    arrival = t[np.minimum((np.arange(n) // chunk + 1) * chunk - 1, n - 1)] + 0.005
    return t, arrival


def _run(t: np.ndarray, arrival: np.ndarray, chunk: int = 5):
    state, out, events = ClockState(), [], []
    for lo in range(0, t.size, chunk):
        c, e = correct_clock_steps(t[lo : lo + chunk], arrival[lo : lo + chunk], state, period_s=P, gap_s=0.2)
        out.append(c)
        events.append(e)
    return np.concatenate(out), np.concatenate(events)


def test_a_forward_step_of_10_s_is_one_event_and_every_sample_stays_on_time():
    t, arrival = _arrivals(400)
    stamped = t + np.where(np.arange(400) >= 150, 10.0, 0.0)
    corrected, events = _run(stamped, arrival)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    assert events.size == 1 and abs(events["step_s"][0] - 10.0) < 1e-9
    assert abs(events["t_lsl"][0] - t[150]) < 1e-9


def test_a_backward_step_of_5_s_is_undone_and_nothing_would_be_dropped_as_late():
    t, arrival = _arrivals(400)
    stamped = t + np.where(np.arange(400) >= 201, -5.0, 0.0)
    corrected, events = _run(stamped, arrival)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    assert events["step_s"].tolist() == [-5.0] or np.allclose(events["step_s"], [-5.0])
    _, _, keep = sort_chunk(corrected[201:], float(corrected[200]))
    assert keep.all()


def test_one_sample_stamped_1e6_s_ahead_is_two_events_and_the_stream_continues():
    t, arrival = _arrivals(300)
    stamped = t.copy()
    stamped[100] += 1e6
    corrected, events = _run(stamped, arrival)
    np.testing.assert_allclose(corrected, t, atol=1e-6)
    np.testing.assert_allclose(events["step_s"], [1e6, -1e6])
    assert corrected.max() - corrected.min() < 3.0  # the case lasts 3 s, not 1,000,002 s


def test_a_real_outage_is_not_a_step_and_stays_a_gap():
    t, arrival = _arrivals(300)
    t[150:] += 3.0  # the tracker was away for 3 s: its stamps and their arrivals both moved
    arrival[150:] += 3.0
    corrected, events = _run(t, arrival)
    assert events.size == 0
    np.testing.assert_array_equal(corrected, t)


def test_a_step_while_samples_were_missing_keeps_the_gap_the_arrivals_show():
    t, arrival = _arrivals(300)
    t[150:] += 2.0  # 2 s without samples...
    arrival[150:] += 2.0
    t[150:] += 30.0  # ...and the clock stepped 30 s meanwhile
    corrected, events = _run(t, arrival)
    assert events.size == 1 and 29.0 < events["step_s"][0] < 30.1
    gap = corrected[150] - corrected[149]
    assert 1.9 < gap < 2.1  # the 2 s outage is still there, on the corrected timeline


def test_the_first_sample_ahead_of_its_arrival_is_a_step():
    t, arrival = _arrivals(50)
    corrected, events = _run(t + 100.0, arrival)
    assert events.size == 1 and abs(events["step_s"][0] - 100.0) < 0.1
    assert np.all(np.abs(corrected - arrival) < 0.1)  # on the arrival clock, within a chunk's span


def test_recorded_stamps_step_back_and_forward_beyond_the_recording_span():
    t = 50.0 + np.arange(1000) * P  # 10 s recorded, recorder clock from 49 to 61
    stamped = t + np.where(np.arange(1000) >= 300, 10.0, 0.0) + np.where(np.arange(1000) >= 700, -15.0, 0.0)
    corrected, events = steps_beyond_span(stamped, (49.0, 61.0), period_s=P)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    np.testing.assert_allclose(events["step_s"], [10.0, -15.0])


def test_a_recorded_outage_inside_the_span_is_kept():
    t = 50.0 + np.arange(1000) * P
    t[500:] += 4.0  # 4 s away, still inside the 16 s the recorder ran
    corrected, events = steps_beyond_span(t, (49.0, 66.0), period_s=P)
    assert events.size == 0
    np.testing.assert_array_equal(corrected, t)


# ----------------------------------------------------------------------------------------- steps under 1 s
@pytest.mark.parametrize("step_s", [0.3, -0.5, 0.05, -0.05, -0.025])
def test_a_step_under_a_second_is_one_event_and_every_sample_stays_on_time(step_s):
    """Before, steps under 1 s were not steps: a step back dropped every sample until the clock caught up, a step
    forward stayed in the timeline."""
    t, arrival = _arrivals(400, chunk=1)  # delivered as taken (latency 5 ms): what a prompt pull thread sees
    stamped = t + np.where(np.arange(400) >= 150, step_s, 0.0)
    corrected, events = _run(stamped, arrival, chunk=1)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    assert events.size == 1 and abs(events["step_s"][0] - step_s) < 1e-9
    assert np.all(np.diff(corrected) > 0)  # nothing older than what was queued: nothing dropped as late


@pytest.mark.parametrize("chunk", [1, 5])
def test_a_burst_of_stamps_jittering_by_hundreds_of_ms_loses_nothing_and_the_timeline_comes_back(chunk):
    t, arrival = _arrivals(400, chunk=chunk)
    rng = np.random.default_rng(7)
    stamped = t.copy()
    stamped[150:170] += rng.uniform(-0.3, 0.3, 20)  # 20 samples stamped anywhere within +-0.3 s
    corrected, events = _run(stamped, arrival, chunk=chunk)
    assert np.all(np.diff(corrected) >= 0)  # in order, none late
    # the steps undo each other, and after the burst the true times are back, within what a step must exceed to
    # be seen (the tolerance, plus a chunk's span: every sample of a chunk has the one arrival time)
    within_s = CLOCK_STEP_TOLERANCE_S + chunk * P
    assert events.size >= 2 and abs(events["step_s"].sum()) < within_s
    assert np.max(np.abs(corrected[170:] - t[170:])) < within_s
    assert np.max(np.abs(corrected - t)) < 0.3  # nothing ran away inside it


def test_a_stamp_a_little_before_the_one_before_it_is_held_not_dropped_nor_a_step():
    t, arrival = _arrivals(100)
    stamped = t.copy()
    stamped[50] = t[49] - 0.004  # at a chunk's start: 4 ms before the last queued sample (< one 10 ms period)
    state, out, events = ClockState(), [], []
    for lo in range(0, 100, 5):
        c, e = correct_clock_steps(stamped[lo : lo + 5], arrival[lo : lo + 5], state, period_s=P, gap_s=0.2)
        out.append(c)
        events.append(e)
    corrected = np.concatenate(out)
    assert np.concatenate(events).size == 0 and state.n_held == 1
    assert corrected[50] == corrected[49] and np.all(np.diff(corrected) >= 0)
    _, _, keep = sort_chunk(corrected[50:55], float(corrected[49]))
    assert keep.all()


@pytest.mark.parametrize("step_s", [0.3, -0.5])
def test_recorded_stamps_stepping_under_a_second_are_undone(step_s):
    t = 50.0 + np.arange(1000) * P  # 10 s recorded, recorder clock from 49 to 61
    stamped = (
        t + np.where(np.arange(1000) >= 300, step_s, 0.0) - np.where(np.arange(1000) >= 700, step_s, 0.0)
    )
    corrected, events = steps_beyond_span(stamped, (49.0, 61.0), period_s=P)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    np.testing.assert_allclose(events["step_s"], [step_s, -step_s])


def test_a_recorded_burst_stamped_ahead_is_undone_and_a_small_step_back_is_not_reordered():
    t = 50.0 + np.arange(1000) * P
    stamped = t.copy()
    stamped[400:420] += 0.3  # 20 samples stamped 0.3 s ahead, then the clock is right again
    stamped[600:] -= 0.5  # and a 0.5 s step back for good
    corrected, events = steps_beyond_span(stamped, (49.0, 61.0), period_s=P)
    np.testing.assert_allclose(corrected, t, atol=1e-9)
    np.testing.assert_allclose(events["step_s"], [0.3, -0.3, -0.5])


def test_a_step_in_the_backlog_of_a_pull_thread_that_fell_behind_opens_no_gap():
    """A pull thread starved for 0.5 s gets the samples it missed in one chunk: their one arrival time is not a
    pause of the stream (before, the step's interval was taken from the arrivals: a 0.5 s gap that was not)."""
    t = 1000.0 + np.arange(300) * P
    arrival = np.where(np.arange(300) < 100, t + 0.005, t[149] + 0.005)  # 100..149 arrive together, late
    arrival[150:] = t[150:] + 0.005
    stamped = t + np.where(np.arange(300) >= 100, 10.0, 0.0)  # the step: the first sample of the late chunk
    state, out, events = ClockState(), [], []
    for lo, hi in [(0, 100), (100, 150), *[(k, k + 1) for k in range(150, 300)]]:
        c, e = correct_clock_steps(stamped[lo:hi], arrival[lo:hi], state, period_s=P, gap_s=0.2)
        out.append(c)
        events.append(e)
    np.testing.assert_allclose(np.concatenate(out), t, atol=1e-9)
    assert np.concatenate(events)["step_s"].tolist() == pytest.approx([10.0])
