"""The live pipeline (worker thread) on a synthetic reading: gaze chunks + view events + final words in,
session case with sentence heatmaps out, matching the batch alignment of the same case."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, VIEW_DTYPE
from radgaze.capture.live.live_session import LiveSession, gaze_point_on_image, tracker_stats

pytest.importorskip(
    "radgaze.capture.gazemath.align", reason="radgaze.capture.gazemath.align (LiveAligner) not written yet"
)
pytest.importorskip(
    "radgaze.capture.gazemath.geometry", reason="radgaze.capture.gazemath.geometry not written yet"
)


class ChunkedInlet:
    """Stands in for radgaze.capture.live.gaze.inlet.GazeInlet: hands out a recording in 0.5 s chunks."""

    def __init__(self, gaze: np.ndarray, chunk_s: float = 0.5) -> None:
        from radgaze.capture.live.gaze.inlet import GazeChunk

        edges = np.arange(gaze["t_lsl"][0], gaze["t_lsl"][-1] + chunk_s, chunk_s)
        idx = np.searchsorted(gaze["t_lsl"], edges)
        self.chunks = [
            GazeChunk(
                gaze[a:b], np.zeros(0, [("t_lost", "f8"), ("t_back", "f8")]), float(gaze["t_lsl"][b - 1])
            )
            for a, b in zip(idx[:-1], idx[1:])
            if b > a
        ]

    def drain(self):
        out, self.chunks = self.chunks[:3], self.chunks[3:]
        return out


def test_tracker_stats_rate_and_validity():
    t = np.arange(0, 3, 0.01)
    flags = np.where(np.arange(t.size) % 4 == 0, 0, GAZE_VALID).astype(np.uint8)
    rate, valid = tracker_stats(t, flags, t_now=float(t[-1]), window_s=2.0)
    assert rate == pytest.approx(100.0, rel=1e-3) and valid == pytest.approx(75.0, abs=0.5)
    assert np.isnan(tracker_stats(t, flags, t_now=100.0)[0])


def test_gaze_point_on_image_through_the_view_timeline():
    view = np.zeros(2, VIEW_DTYPE)
    view["t_lsl"] = [0.0, 1.0]
    view["scale"] = [0.5, 1.0]
    view["offset_x"] = [10.0, 0.0]
    g = np.zeros(4, GAZE_DTYPE)
    g["t_lsl"] = [0.5, 1.5, 1.6, 1.7]
    g["x_screen_px"], g["y_screen_px"] = [60.0, 60.0, 5000.0, 60.0], [50.0, 50.0, 50.0, 50.0]
    g["flags"] = [GAZE_VALID, GAZE_VALID, GAZE_VALID, 0]
    assert gaze_point_on_image(g[0], view, 400, 300) == pytest.approx((100.0, 100.0))  # (60 - 10) / 0.5
    assert gaze_point_on_image(g[1], view, 400, 300) == pytest.approx((60.0, 50.0))  # the later view
    assert np.isnan(gaze_point_on_image(g[2], view, 400, 300)).all()  # off the image
    assert np.isnan(gaze_point_on_image(g[3], view, 400, 300)).all()  # invalid (blink)


@pytest.mark.slow
def test_live_pipeline_matches_the_batch_alignment(tmp_path):
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.writer import SessionWriter
    from radgaze.capture.synth import synth_reading

    rec = synth_reading(3, n_cases=1, image_size=512, rate_hz=120.0)[0]
    writer = SessionWriter(tmp_path / "live.h5", live=True)
    inlet = ChunkedInlet(rec.gaze)
    pipe = LiveSession(rec.display, writer, gaze_inlet=inlet, clock=lambda: rec.t_end)
    first = rec.view_events[0].copy()
    first["t_lsl"] = rec.t_start
    pipe.begin_case(rec.case_id, rec.image, first)
    for row in rec.view_events[1:]:
        pipe.add_view_event(row)
    pipe.start()
    from radgaze.capture.gazemath.punctuation import apply_dictated_punctuation

    words, _ = apply_dictated_punctuation(rec.words, final=True)
    time.sleep(0.3)
    pipe.add_words(words)
    deadline = time.monotonic() + 30
    while inlet.chunks and time.monotonic() < deadline:  # the gaze arrives in chunks while words are aligned
        time.sleep(0.02)
    pipe.end_case(rec.t_end)
    pipe.stop()
    events = []
    while not pipe.events.empty():
        events.append(pipe.events.get())
    assert not [e for e in events if e[0] == "error"], [e for e in events if e[0] == "error"]
    writer.close()
    sentences = [p for k, p in events if k == "sentence"]
    assert len(sentences) == len(rec.sentences) > 0
    with SessionReader(tmp_path / "live.h5") as r:
        live = r.case(rec.case_id)
    assert live.gaze.size == rec.gaze.size
    assert live.sentences.text == rec.sentences.text
    for i in range(len(rec.sentences)):
        a, b = live.sentence_heatmap(i), rec.sentence_heatmap(i)
        assert (a is None) == (b is None)
        if a is not None:
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # same gaze, same functions
