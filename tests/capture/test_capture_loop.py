"""The one capture loop both recorders drive (radgaze.capture.live.capture_loop): what a case holds is what was
stamped between its start and its end (docs/session-format.md, "What a case holds"), written by the real live
pipeline into a real session file. The gaze source hands out scripted chunks (stepped feeding: the bounds are
exact here; tests/app/test_record_same_input.py drives both recorders on a real LSL outlet)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from radgaze.capture.base.records import (
    CLOCK_EVENT_DTYPE,
    GAP_DTYPE,
    GAZE_DTYPE,
    GAZE_VALID,
    DisplayGeometry,
    ImageRef,
    Words,
)
from radgaze.capture.live.capture_loop import END_GRACE_S, CaptureLoop
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter

T0 = 1000.0  # the case begins (LSL s)
T1 = 1004.0  # and ends


class ScriptedGaze:
    """Hands out the chunks given to :meth:`send` at the next drain (as GazeInlet.drain does)."""

    def __init__(self) -> None:
        self.pending: list = []

    def send(self, t: np.ndarray, *, gaps=(), clock_steps=()) -> None:
        g = np.zeros(len(t), GAZE_DTYPE)
        g["t_lsl"], g["x_screen_px"], g["y_screen_px"], g["flags"] = t, 700.0, 900.0, GAZE_VALID
        self.pending.append(
            SimpleNamespace(
                samples=g,
                gaps=np.array(list(gaps), GAP_DTYPE),
                clock_events=np.array([(t, s, 1) for t, s in clock_steps], CLOCK_EVENT_DTYPE),
            )
        )

    def drain(self) -> list:
        out, self.pending = self.pending, []
        return out


def _words(*spans: tuple[float, float, str]) -> Words:
    return Words(
        np.array([s[0] for s in spans]),
        np.array([s[1] for s in spans]),
        [s[2] for s in spans],
        np.ones(len(spans)),
    )


@pytest.fixture
def loop(tmp_path):
    from radgaze.capture.gazemath.geometry import fit_view

    display = DisplayGeometry()
    writer = SessionWriter(tmp_path / "s.h5", live=True)
    gaze = ScriptedGaze()
    now = [T0]
    loop = CaptureLoop(writer, display, gaze=gaze, clock=lambda: now[0])
    image = ImageRef("img.png", "ab" * 32, 500, 600)
    view = fit_view(500, 600, display, t_lsl=T0)
    loop.test = SimpleNamespace(gaze=gaze, now=now, image=image, view=view, path=tmp_path / "s.h5")
    yield loop
    writer.close()


def _case(loop, case_id: str = "c"):
    loop.writer.close()
    with SessionReader(loop.test.path) as r:
        return r.case(case_id)


def test_a_case_holds_the_gaze_gaps_and_clock_steps_stamped_between_its_start_and_end(loop):
    t = np.arange(T0 - 2.0, T1 + 1.0, 0.01)
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.test.gaze.send(
        t,
        gaps=[(T0 - 1.5, T0 - 1.2), (T0 - 0.3, T0 + 0.2), (T1 + 0.3, T1 + 0.5)],
        clock_steps=[(T0 - 1.0, 5.0), (T0 + 1.0, -2.0), (T1 + 0.5, 3.0)],
    )
    loop.end_case(T1)
    loop.step()
    loop.close_case()
    case = _case(loop)
    inside = t[(t >= T0) & (t <= T1)]
    assert np.array_equal(case.gaze["t_lsl"], inside)
    assert loop.stats.gaze_pre_roll == np.count_nonzero(t < T0) and loop.stats.gaze_samples == inside.size
    assert case.gaps.tolist() == [(T0 - 0.3, T0 + 0.2)]  # the tracker was lost when the case began
    assert case.clock_events["t_lsl"].tolist() == [T0 + 1.0]
    assert case.t_start == T0 and case.t_end == T1 and case.complete


def test_a_case_holds_the_words_that_overlap_it(loop):
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.add_words(
        _words(
            (T0 - 3.0, T0 - 2.6, "previous."), (T0 - 0.2, T0 + 0.1, "Heart"), (T0 + 0.3, T0 + 0.6, "normal.")
        )
    )
    loop.end_case(T1)
    loop.add_words(_words((T1 - 0.4, T1 - 0.1, "Clear."), (T1 + 0.2, T1 + 0.5, "Next")))
    loop.close_case()
    assert _case(loop).words.text == ["Heart", "normal.", "Clear."]


def test_an_ended_case_closes_after_the_grace_or_when_the_next_begins(loop):
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.end_case(T0 + 1.0)
    t_ended = time.monotonic()
    loop.step()
    assert loop.case_id == "c"  # still open: its last audio may be on its way
    while loop.case_id is not None and time.monotonic() - t_ended < 10 * END_GRACE_S:
        loop.step()
        time.sleep(0.02)
    assert loop.case_id is None and time.monotonic() - t_ended >= END_GRACE_S
    view = loop.test.view.copy()
    view["t_lsl"] = T0 + 2.0
    loop.begin_case("d", loop.test.image, view)
    loop.end_case(T0 + 3.0)
    view["t_lsl"] = T0 + 3.5
    loop.begin_case("e", loop.test.image, view)  # at once: d is closed first, at its own end
    assert loop.case_id == "e"
    loop.close_case(T0 + 4.0)
    loop.writer.close()
    with SessionReader(loop.test.path) as r:
        assert [r.case(c).t_end for c in ("c", "d", "e")] == [T0 + 1.0, T0 + 3.0, T0 + 4.0]


def test_audio_blocks_outside_the_case_are_not_stored(loop):
    import queue

    audio: queue.Queue = queue.Queue()
    loop.audio_queue, loop.audio_ended = audio, False
    block = np.full(1600, 100, np.int16)  # 0.1 s
    for t in (T0 - 0.5, T0 - 0.05, T0 + 1.0, T1 + 0.2):
        audio.put(SimpleNamespace(t_lsl_first_sample=t, samples=block))
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.end_case(T1)
    loop.close_case()
    case = _case(loop)
    assert case.audio.block_t_lsl.tolist() == [T0 - 0.05, T0 + 1.0]  # whole blocks that overlap the case


def test_gaze_drained_while_a_case_closes_goes_to_the_next_case_not_to_it(loop):
    t = np.arange(T0, T0 + 3.0, 0.01)
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.end_case(T0 + 1.0)
    loop.test.gaze.send(t)  # drained by the close: samples of the next case among them
    loop.close_case()
    view = loop.test.view.copy()
    view["t_lsl"] = T0 + 2.0
    loop.begin_case("d", loop.test.image, view)
    loop.step()
    loop.close_case(T0 + 3.0)
    loop.writer.close()
    with SessionReader(loop.test.path) as r:
        c, d = r.case("c"), r.case("d")
    assert np.array_equal(c.gaze["t_lsl"], t[t <= T0 + 1.0])
    assert np.array_equal(d.gaze["t_lsl"], t[t >= T0 + 2.0])
    assert loop.stats.gaze_pre_roll == np.count_nonzero((t > T0 + 1.0) & (t < T0 + 2.0))  # between the cases


def test_a_case_ending_while_the_tracker_is_lost_holds_an_open_gap_to_its_end(loop, monkeypatch):
    """The tracker went away 1 s before the reader stopped, and is still away when the case closes: the case
    says it was lost from its last sample to its end (the inlet's own gap comes only once it returns, too late
    for a closed case: a restarted tracker whose first samples arrived after the close left no gap)."""
    import radgaze.capture.live.capture_loop as capture_loop

    monkeypatch.setattr(capture_loop, "GAZE_WAIT_S", 0.05)
    t = np.arange(T0, T1 - 1.0, 0.01)
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.test.gaze.send(t)
    loop.test.gaze.stalled = True  # as GazeInlet.stalled says once a regular stream went silent
    loop.end_case(T1)
    loop.close_case()
    case = _case(loop)
    assert case.gaps.tolist() == [(t[-1], T1)] and loop.stats.gaps == 1


def test_a_case_ending_with_the_tracker_streaming_has_no_gap(loop, monkeypatch):
    import radgaze.capture.live.capture_loop as capture_loop

    monkeypatch.setattr(capture_loop, "GAZE_WAIT_S", 0.05)
    loop.begin_case("c", loop.test.image, loop.test.view)
    loop.test.gaze.send(np.arange(T0, T1 - 1.0, 0.01))
    loop.test.gaze.stalled = False  # the samples up to the end are merely late
    loop.end_case(T1)
    loop.close_case()
    assert _case(loop).gaps.size == 0
