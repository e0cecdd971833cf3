"""A tracker whose clock steps (issue 24, item 1), against a REAL LSL outlet in another process
(tests/capture/lsl_outlet_proc.py "clock_steps"): no sample is dropped, the step is one clock event, the
timeline stays continuous. Before: a sample stamped ahead made every later one "late" (77 % dropped) and a
step back dropped everything until the clock caught up."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_gaze_inlet import DISPLAY, start_outlets, stop_process

from radgaze.capture.gazemath.clock import CLOCK_STEP_TOLERANCE_S
from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
from radgaze.capture.live.gaze.inlet import GazeInlet, concat_chunks, concat_clock_events
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS

RATE = 200.0
N_ROWS = 1000  # x = i / N_ROWS: every sample says which one it is (mod N_ROWS)


def _stepping_outlet(name: str, steps: list[list[float]]) -> dict:
    lay = BUILTIN_LAYOUTS["tobii"]
    rows = [[i / N_ROWS, 0.5, 3, i / N_ROWS, 0.5, 3] for i in range(N_ROWS)]
    return {"name": name, "type": lay.stream_type, "format": lay.channel_format, "rate": RATE,
            "labels": list(lay.labels), "rows": rows, "clock_steps": steps}  # fmt: skip


def _record(tmp_path, name: str, steps: list[list[float]], seconds: float):
    proc = start_outlets({"lifetime_s": 120, "outlets": [_stepping_outlet(name, steps)]}, tmp_path)
    chunks = []
    try:
        info = resolve_gaze_stream(name, timeout_s=10.0)
        with GazeInlet(info, DISPLAY) as inlet:
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                chunk = inlet.get(timeout_s=0.05)
                chunks += [chunk] if chunk is not None else []
    finally:
        stop_process(proc)
    chunks += inlet.drain()
    samples, gaps = concat_chunks(chunks)
    return samples, gaps, concat_clock_events(chunks), inlet.stats


def _assert_nothing_lost(samples: np.ndarray, gaps: np.ndarray, stats, held_ok: bool = False) -> None:
    assert stats.n_late_dropped == 0 and gaps.size == 0
    index = np.round(samples["x_screen_px"] / DISPLAY.screen_w_px * N_ROWS).astype(int)
    assert np.all(np.diff(index) % N_ROWS == 1)  # every sample the outlet pushed, in order
    dt = np.diff(samples["t_lsl"])
    # one continuous timeline: no step, no gap (a sample held at the time before it: dt 0)
    assert np.all(dt >= 0 if held_ok else dt > 0) and np.all(dt < 0.1)


@pytest.mark.parametrize("step_s", [10.0, -5.0])
def test_a_clock_step_loses_no_sample_and_is_one_clock_event(tmp_path, step_s):
    samples, gaps, events, stats = _record(tmp_path, f"T-step{step_s:+g}", [[1.0, step_s]], seconds=3.0)
    assert samples.size > 300
    _assert_nothing_lost(samples, gaps, stats)
    assert events.size == 1 and abs(events["step_s"][0] - step_s) < 0.1
    assert stats.n_clock_steps == 1 and abs(stats.last_clock_step_s - step_s) < 0.1
    assert samples["t_lsl"][0] <= events["t_lsl"][0] <= samples["t_lsl"][-1]


def test_one_sample_stamped_1e6_s_ahead_drops_nothing_after_it(tmp_path):
    steps = [[1.0, 1e6], [1.0 + 1.0 / RATE, -1e6]]  # exactly one sample stamped 1e6 s ahead
    samples, gaps, events, stats = _record(tmp_path, "T-spike", steps, seconds=3.0)
    _assert_nothing_lost(samples, gaps, stats)
    np.testing.assert_allclose(events["step_s"], [1e6, -1e6], rtol=1e-6)
    assert samples["t_lsl"][-1] - samples["t_lsl"][0] < 10.0  # the recording lasts seconds, not 1e6 s


@pytest.mark.parametrize("step_s", [0.3, -0.5])
def test_a_clock_step_under_a_second_loses_no_sample_and_is_one_clock_event(tmp_path, step_s):
    """Before, only steps over 1 s were steps: 0.5 s back dropped every sample until the clock caught up
    (~100 here), 0.3 s ahead stayed in the timeline as a jump."""
    samples, gaps, events, stats = _record(tmp_path, f"T-small{step_s:+g}", [[1.0, step_s]], seconds=3.0)
    assert samples.size > 300
    _assert_nothing_lost(samples, gaps, stats)
    assert events.size == 1 and abs(events["step_s"][0] - step_s) < CLOCK_STEP_TOLERANCE_S
    assert stats.n_clock_steps == 1


def test_a_burst_of_stamps_jittering_by_hundreds_of_ms_loses_no_sample(tmp_path):
    """Four samples in a row stamped +0.25, -0.15, +0.2, +0.05 s off, then right again."""
    burst = [[1.0, 0.25], [1.0 + 1 / RATE, -0.4], [1.0 + 2 / RATE, 0.35], [1.0 + 3 / RATE, -0.15],
             [1.0 + 4 / RATE, -0.05]]  # fmt: skip
    samples, gaps, events, stats = _record(tmp_path, "T-burst", burst, seconds=3.0)
    assert samples.size > 300
    _assert_nothing_lost(samples, gaps, stats, held_ok=True)
    assert events.size >= 2 and abs(events["step_s"].sum()) < CLOCK_STEP_TOLERANCE_S + 0.05
