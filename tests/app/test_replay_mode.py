"""Replay: timeline lookups, the playback clock, transcript spans, audio mapping, and the replay window."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtWidgets
from replay_review_sessions import SENTENCES, write_session

from radgaze.app.audio_player import AudioPlayer, render_block, sample_at, time_at
from radgaze.app.timeline import (
    Playback,
    event_times,
    fixation_at,
    sentence_at,
    span_at,
    step_time,
    trail_slice,
    word_at,
)
from radgaze.app.transcript import word_at_char, word_char_spans
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import FIXATION_DTYPE, Audio, Sentences, Words


# ------------------------------------------------------------------------------------------ pure
def test_span_at_inside_between_and_outside():
    t0, t1 = np.array([0.0, 1.0, 3.0]), np.array([0.5, 2.0, 4.0])
    assert [span_at(t0, t1, t) for t in (-1.0, 0.0, 0.5, 0.7, 1.5, 2.5, 3.0, 4.0, 4.1)] == [
        -1,
        0,
        0,
        -1,
        1,
        -1,
        2,
        2,
        -1,
    ]


def test_word_sentence_fixation_lookups():
    words = Words(np.array([10.0, 10.5, 11.0]), np.array([10.4, 10.9, 11.3]), ["a", "b", "c."], np.ones(3))
    assert word_at(words, 10.6) == 1 and word_at(words, 10.95) == -1 and word_at(Words.empty(), 10.0) == -1
    s = Sentences(
        np.array([10.0, 12.0]),
        np.array([11.3, 13.0]),
        np.array([9.0, 11.0]),  # windows overlap: 11.0..11.3 belongs to both, the later one wins
        np.array([11.3, 13.0]),
        ["a b c.", "d."],
        np.array([0, 1], np.int32),
        np.array([1, 1], np.int32),
    )
    assert [sentence_at(s, t) for t in (8.0, 9.5, 11.1, 11.5, 13.5)] == [-1, 0, 1, 1, -1]
    fx = np.zeros(2, FIXATION_DTYPE)
    fx["t_start"], fx["t_end"] = [1.0, 2.0], [1.5, 2.2]
    assert [fixation_at(fx, t) for t in (0.5, 1.2, 1.7, 2.1)] == [-1, 0, -1, 1]
    assert trail_slice(np.array([0.0, 1.0, 2.0, 3.0]), 2.5, 1.6) == slice(1, 3)


def test_step_time_moves_between_events_and_falls_back():
    ev = np.array([1.0, 2.0, 3.0])
    assert step_time(ev, 1.0, +1) == 2.0
    assert step_time(ev, 2.5, -1) == 2.0
    assert step_time(ev, 1.0, -1) == pytest.approx(0.9)  # nothing before: the fallback step
    assert step_time(np.zeros(0), 5.0, +1) == pytest.approx(5.1)


def test_playback_clock_speed_and_end():
    pb = Playback(100.0, 102.0)
    times = []
    pb.time_changed.connect(times.append)
    pb.advance(1.0)
    assert pb.t == 100.0  # paused: nothing moves
    pb.set_playing(True)
    pb.set_speed(2.0)
    pb.advance(0.25)
    assert pb.t == pytest.approx(100.5)
    pb.advance(10.0)
    assert pb.t == 102.0 and not pb.playing  # clamped at the end, stopped
    pb.set_playing(True)  # play at the end starts over
    assert pb.t == 100.0 and pb.playing
    with pytest.raises(ValueError, match="speed"):
        pb.set_speed(8.0)
    assert times == [100.5, 102.0, 100.0]


def test_word_char_spans_round_trip():
    text, spans = word_char_spans(["the", "heart.", "no", "effusion."])
    assert text == "the heart.\nno effusion."
    assert [text[a:b] for a, b in spans] == ["the", "heart.", "no", "effusion."]
    assert word_at_char(spans, text.index("no")) == 2
    assert word_at_char(spans, 0) == 0 and word_at_char(np.zeros((0, 2), int), 0) == -1
    text, spans = word_char_spans(["Normal", "heart", ".", "No", "effusion", ","])
    assert text == "Normal heart.\nNo effusion,"
    assert [text[a:b] for a, b in spans] == ["Normal", "heart", ".", "No", "effusion", ","]


def test_audio_sample_mapping_through_blocks():
    audio = Audio(np.zeros(3000, np.int16), 1000, np.array([50.0, 51.5]), np.array([0, 1000]))
    assert sample_at(audio, 50.25) == pytest.approx(250.0)
    assert sample_at(audio, 51.6) == pytest.approx(1100.0)  # second block starts late (a 0.5 s gap)
    assert time_at(audio, 1100.0) == pytest.approx(51.6)
    assert sample_at(audio, 49.0) == pytest.approx(-1000.0)


def test_render_block_reads_at_speed_and_pads_with_silence():
    samples = (np.arange(100) * 100).astype(np.int16)
    block, pos = render_block(samples, 10.0, 2.0, 4)
    assert pos == 18.0
    np.testing.assert_allclose(block * 32768.0, [1000, 1200, 1400, 1600], atol=1e-3)
    block, _ = render_block(samples, 98.0, 1.0, 4)
    np.testing.assert_allclose(block * 32768.0, [9800, 9900, 0, 0], atol=1e-3)
    assert not render_block(samples, -50.0, 1.0, 8)[0].any()


def test_audio_player_without_a_device_is_silent(monkeypatch):
    class Broken:
        def __init__(self, **_kw):
            raise OSError("no default output device")

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(OutputStream=Broken))
    p = AudioPlayer()
    p.set_audio(Audio(np.ones(1600, np.int16), 16000, np.array([5.0]), np.array([0])))
    assert p.play(5.0) is False
    assert "no audio output" in p.error and not p.available and not p.playing


def test_audio_player_callback_plays_from_the_cued_time(monkeypatch):
    made = []

    class FakeStream:
        def __init__(self, **kw):
            self.callback = kw["callback"]
            made.append(self)

        def start(self):
            pass

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(OutputStream=FakeStream))
    samples = np.arange(16000, dtype=np.int16)
    p = AudioPlayer()
    p.set_audio(Audio(samples, 16000, np.array([5.0]), np.array([0])))
    assert p.play(5.5, speed=1.0)
    out = np.zeros((4, 1), np.float32)
    made[0].callback(out, 4, None, None)
    np.testing.assert_allclose(out[:, 0] * 32768.0, [8000, 8001, 8002, 8003], atol=1e-2)
    assert p.position_t_lsl() == pytest.approx(5.5 + 4 / 16000)
    p.stop()
    made[0].callback(out, 4, None, None)
    assert not out.any()


# ------------------------------------------------------------------------------------------ window
@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    return write_session(tmp_path_factory.mktemp("replay") / "reading.h5", 2)


@pytest.fixture(scope="module")
def imported_session(tmp_path_factory) -> Path:
    return write_session(
        tmp_path_factory.mktemp("replay_imp") / "imported.h5", 1, imported=True, prefix="imp"
    )


@pytest.fixture
def window(qtbot, session):
    from radgaze.app.replay import ReplayWindow

    win = ReplayWindow(session, audio=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_seek_highlights_the_word_and_overlays_its_sentence(window):
    rec = window.case.record
    k = 7  # "left" in "there is a left pleural effusion."
    t = float(rec.words.t_start[k] + rec.words.t_end[k]) / 2
    window.seek(t)
    assert window.current_word == k
    assert window.transcript.current == k and window.transcript.current_text == rec.words.text[k] == "left"
    assert window.timeline.highlight.isVisible()
    assert window.timeline.cursor_s == pytest.approx(t - rec.t_start)
    # the sentence being said is followed: its heatmap is overlaid, on the heatmap grid
    overlay = window.state.overlay
    assert overlay is not None and overlay.label == SENTENCES[1][0]
    assert overlay.shape == rec.heatmaps.shape[1:] and overlay.scale == rec.heatmap_scale
    np.testing.assert_allclose(overlay.heatmap, rec.sentence_heatmap(1))
    assert window.image_view.heatmap_item.isVisible()
    # between two words nothing is highlighted
    window.seek(float(rec.words.t_end[k] + rec.words.t_start[k + 1]) / 2)
    assert window.transcript.current == -1 and not window.timeline.highlight.isVisible()


def test_scanpath_trail_and_current_fixation(window):
    rec = window.case.record
    fx = rec.fixations
    t = float(fx["t_start"][4] + 0.1)  # inside the 5th fixation
    window.seek(t)
    x, y = window.trail.getData()
    expected = fx[(fx["t_start"] > t - 3.0) & (fx["t_start"] <= t)]
    np.testing.assert_allclose(x, expected["x_img_px"])
    np.testing.assert_allclose(y, expected["y_img_px"])
    assert window.fixation_item.isVisible()
    assert window.fixation_item.pos().x() == pytest.approx(float(fx["x_img_px"][4]))
    gx, gy = window.state.gaze_img_px
    assert abs(gx - fx["x_img_px"][4]) < 20 and abs(gy - fx["y_img_px"][4]) < 20  # raw gaze is on it


def test_sentence_selection_colormap_and_opacity(window, qtbot):
    window.follow_sentences = False
    window.sentences.setCurrentRow(2)
    rec = window.case.record
    assert window.state.overlay.label == SENTENCES[2][0]
    np.testing.assert_allclose(window.state.overlay.heatmap, rec.sentence_heatmap(2))
    window.controls.opacity.setValue(80)
    window.controls.colormap.setCurrentText("viridis")
    assert window.state.overlay.opacity == pytest.approx(0.8)
    assert window.image_view.heatmap_item.opacity() == pytest.approx(0.8)
    assert window.state.overlay.colormap == "viridis"


def test_space_plays_the_clock_forward_and_arrows_step(window, qtbot):
    window.seek(window.playback.t_start)
    window.activateWindow()
    window.speed_box.setCurrentIndex(4)  # 2x
    assert window.playback.speed == 2.0
    t_before = window.playback.t
    wall_start = time.perf_counter()
    window.shortcuts["Space"].activated.emit()
    assert window.playback.playing and window.timer.isActive() and window.play_button.isChecked()
    qtbot.waitUntil(lambda: window.playback.t > t_before, timeout=10_000)  # the clock runs while playing
    qtbot.wait(300)
    window.shortcuts["Space"].activated.emit()
    wall_s = time.perf_counter() - wall_start
    assert not window.playback.playing and not window.timer.isActive()
    advanced = window.playback.t - t_before
    assert 0.0 < advanced <= 2.0 * wall_s + 1e-3  # at 2x, never ahead of twice the wall time played
    t_paused = window.playback.t
    qtbot.wait(100)
    assert window.playback.t == t_paused  # paused: the clock stands
    t = window.playback.t
    window.shortcuts["Right"].activated.emit()
    assert window.playback.t == pytest.approx(step_time(event_times(window.case.record), t, +1))
    window.shortcuts["Shift+Left"].activated.emit()
    assert window.playback.t == pytest.approx(
        max(step_time(event_times(window.case.record), t, +1) - 1.0, window.playback.t_start)
    )


def test_replay_has_the_viewers_keys_and_lists_them_in_help(window, qtbot):
    state = window.state
    state.zoom_at(2.0, 50.0, 50.0)
    assert not state.fitted
    window.shortcuts["F"].activated.emit()
    assert state.fitted
    invert = state.invert
    window.shortcuts["I"].activated.emit()
    assert state.invert is (not invert)
    window.shortcuts["I"].activated.emit()
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus[0] == "File" and menus[-1] == "Help", (
        menus
    )  # File ▸ Quit first, Help ▸ Keyboard shortcuts last


def test_timeline_click_seeks(window):
    rec = window.case.record
    window.timeline.seek_requested.emit(rec.t_start + 2.0)
    assert window.playback.t == pytest.approx(rec.t_start + 2.0)


def test_second_case_and_screenshot(window, qtbot, artifacts_dir):
    window.case_box.setCurrentIndex(1)
    assert window.case.record.case_id == "case1"
    rec = window.case.record
    window.seek(float(rec.words.t_start[8]) + 0.05)  # "pleural"
    qtbot.wait(50)
    out = artifacts_dir / "replay.png"
    assert window.grab().save(str(out))
    assert out.stat().st_size > 10_000


def test_imported_session_without_gaze_or_audio(qtbot, imported_session, artifacts_dir):
    from radgaze.app.replay import ReplayWindow

    win = ReplayWindow(imported_session, audio=True)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    rec = win.case.record
    assert rec.gaze.size == 0 and rec.audio is None
    assert "no audio" in win.audio_label.text()
    x, _ = win.timeline.x_curve.getData()  # fixations drawn as steps instead of the raw trace
    assert np.isfinite(x).sum() == 2 * rec.fixations.size
    win.seek(float(rec.fixations["t_start"][2]) + 0.05)
    assert win.fixation_item.isVisible()
    assert not win.image_view.gaze_item.isVisible()  # no raw gaze to show
    assert win.playback.playing is False
    win.shortcuts["Space"].activated.emit()  # plays with no audio at all
    assert win.playback.playing
    win.shortcuts["Space"].activated.emit()
    assert win.grab().save(str(artifacts_dir / "replay_imported.png"))


def test_replay_cli_unattended_screenshot(session, tmp_path, qapp):
    from radgaze.app.replay import main

    out = tmp_path / "shot.png"
    assert (
        main([str(session), "--case", "case1", "--start", "3", "--seconds", "0.3", "--screenshot", str(out)])
        == 0
    )
    assert out.stat().st_size > 10_000
    with pytest.raises(SessionFormatError, match="nope"):
        main([str(session), "--case", "nope", "--seconds", "0"])
    with pytest.raises(SessionFormatError, match="not a file"):
        main([str(tmp_path / "missing.h5")])


@pytest.mark.slow
def test_replay_of_a_synthetic_reading(qtbot, tmp_path, artifacts_dir):
    synth = pytest.importorskip("radgaze.capture.synth", reason="radgaze.capture.synth is not available")
    from radgaze.app.replay import ReplayWindow

    (path,) = synth.write_synthetic_sessions(tmp_path, n_cases=1, seed=3, image_size=1024)
    win = ReplayWindow(path, audio=False)
    qtbot.addWidget(win)
    win.resize(1500, 950)
    win.show()
    rec = win.case.record
    assert rec.gaze.size > 1000 and len(rec.words) > 5 and len(rec.sentences) >= 2
    s = 1  # seek into the second sentence's first word
    k = int(np.searchsorted(rec.words.t_start, rec.sentences.t_start[s] - 1e-6))
    win.seek(float(rec.words.t_start[k] + rec.words.t_end[k]) / 2)
    assert win.transcript.current_text == rec.words.text[k]
    assert win.state.overlay is not None and win.state.overlay.label == rec.sentences.text[s]
    assert win.state.overlay.shape == rec.heatmaps.shape[1:]
    x, _ = win.trail.getData()
    assert x is not None and len(x) >= 1
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "replay_synth.png"))


def test_replay_draws_the_readers_ellipses_labels_and_chest_box(qtbot, tmp_path, artifacts_dir):
    from radgaze.app.replay import ReplayWindow

    path = write_session(tmp_path / "annotated.h5", 1, annotated=True)
    win = ReplayWindow(path, audio=False)
    qtbot.addWidget(win)
    win.resize(1366, 740)
    win.show()
    qtbot.waitExposed(win)
    overlay = win.annotation_overlay
    assert overlay.captions == ["Enlarged cardiac silhouette 5/5", "Pleural abnormality 4/5", "chest"]
    ellipses = [i for i in overlay.items if isinstance(i, QtWidgets.QGraphicsEllipseItem)]
    assert [e.rect().getCoords() for e in ellipses] == [
        (165.0, 265.0, 235.0, 335.0),
        (275.0, 350.0, 345.0, 410.0),
    ]
    assert all(
        e.parentItem() is win.image_view.image_space for e in ellipses
    )  # in image px: follows zoom, pan
    assert "annotated: Enlarged cardiac silhouette, Pleural abnormality" in win.statusBar().currentMessage()
    win.seek(win.case.record.t_start + 2.0)
    assert win.grab().save(str(artifacts_dir / "replay_annotation.png"))
