"""One REFLACX writer and one replay frame: replay's export and ``radgaze export reflacx`` write the same
fixations.csv and timestamps_transcription.csv (REFLACX's conventions), and the replay window and its video renderer
draw from the same :func:`radgaze.app.replay_frame.frame_at`."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from replay_review_sessions import T0, make_case, phantom, stamp_image_hash

from radgaze.app.replay_frame import GAZE_STALE_S, frame_at
from radgaze.capture.base.records import Words

AUDIO_LATE_S = 0.75  # the audio's first sample comes after the image was shown: REFLACX's 0 is the audio's


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    from radgaze.capture.store.writer import SessionWriter

    path = tmp_path_factory.mktemp("one_writer") / "r.h5"
    rec = make_case("w0", T0)
    a = rec.audio
    rec.audio = dataclasses.replace(a, block_t_lsl=a.block_t_lsl + AUDIO_LATE_S)
    Image.fromarray(phantom()).save(path.parent / rec.image.path)
    stamp_image_hash(rec, path.parent)
    with SessionWriter(path, reader_id="r", provenance={"source": "test"}) as w:
        w.write_case(rec)
    return path


def test_replay_export_and_export_reflacx_write_the_same_bytes(session, tmp_path, qtbot):
    from radgaze.app.replay import ReplayWindow
    from radgaze.capture.exporters.cli import main as export_main

    out = tmp_path / "reflacx"
    assert export_main(["reflacx", str(session), str(out)]) == 0
    (reading,) = [p for p in (out / "main_data").iterdir() if p.is_dir()]
    win = ReplayWindow(session)  # the replay window's own export (its Export tables action)
    qtbot.addWidget(win)
    paths = win.export_tables(tmp_path / "replay")
    for name in ("fixations.csv", "timestamps_transcription.csv"):
        assert (tmp_path / "replay" / name).read_bytes() == (reading / name).read_bytes(), name
    assert paths["fixations"] == tmp_path / "replay" / "fixations.csv"
    rec = win.case.record
    fx = list(csv.DictReader((reading / "fixations.csv").open(newline="")))
    # REFLACX's conventions: s from the audio start, window a fraction of the stored range, pupil filled
    assert float(fx[0]["timestamp_start_fixation"]) == pytest.approx(
        rec.fixations["t_start"][0] - (T0 + AUDIO_LATE_S), abs=1e-3
    )
    assert float(fx[0]["window_width"]) == pytest.approx(60000 / 65535, abs=1e-5)
    assert float(fx[0]["window_level"]) == pytest.approx(30000 / 65535, abs=1e-5)
    assert all(float(r["pupil_area_normalized"]) == 3.5 for r in fx)
    sentences = list(csv.DictReader((tmp_path / "replay" / "sentences.csv").open()))
    words = list(csv.DictReader((reading / "timestamps_transcription.csv").open(newline="")))
    assert float(sentences[0]["timestamp_start_sentence"]) == pytest.approx(
        float(words[0]["timestamp_start_word"]), abs=1e-3
    )  # one clock in replay's folder
    win.close()


# ------------------------------------------------------------------------------------------ frame_at
def _case_for_frames():
    rec = make_case("f0", T0)
    rec.gaze["x_img_px"][10] = np.nan  # one sample off the image (a blink)
    return rec


def test_frame_at_gaze_goes_stale_after_a_tenth_of_a_second():
    rec = _case_for_frames()
    t = float(rec.gaze["t_lsl"][5])
    assert frame_at(rec, t).gaze_xy_img_px == (float(rec.gaze["x_img_px"][5]), float(rec.gaze["y_img_px"][5]))
    assert frame_at(rec, float(rec.gaze["t_lsl"][10])).gaze_xy_img_px is None  # not on the image
    late = dataclasses.replace(rec, gaze=rec.gaze[:6])  # the tracker stops after sample 5
    assert frame_at(late, t + GAZE_STALE_S * 0.99).gaze_xy_img_px is not None
    assert frame_at(late, t + GAZE_STALE_S).gaze_xy_img_px is None


def test_frame_at_trail_fixation_and_words():
    rec = _case_for_frames()
    fx = rec.fixations
    t = float(fx["t_start"][4] + 0.1)  # 0.1 s into fixation 4
    f = frame_at(rec, t, trail_s=1.2)
    assert f.fixation == 4 and f.trail.stop == 5
    assert all(fx["t_start"][i] > t - 1.2 for i in range(f.trail.start, f.trail.stop))
    assert f.trail.start == 0 or fx["t_start"][f.trail.start - 1] <= t - 1.2
    assert f.trail_dur_s[-1] == pytest.approx(0.1) and f.trail_dur_s[0] == pytest.approx(
        min(float(fx["t_end"][f.trail.start]), t) - float(fx["t_start"][f.trail.start])
    )
    w = rec.words
    mid = float(w.t_start[2] + 0.1)
    assert frame_at(rec, mid).word == 2 and frame_at(rec, mid).n_said == 3
    between = float(w.t_end[2] + 0.05)  # words 0.4 s apart, 0.3 s long
    assert frame_at(rec, between).word == -1 and frame_at(rec, between).n_said == 3
    empty = dataclasses.replace(rec, words=Words.empty(), view_events=rec.view_events[:0])
    assert frame_at(empty, mid).word == -1 and frame_at(empty, mid).view == -1


def test_the_window_and_the_video_draw_the_same_frame(session, qtbot):
    from radgaze.app.replay import ReplayWindow
    from radgaze.app.replay_export import FrameRenderer, VideoSettings

    win = ReplayWindow(session)
    qtbot.addWidget(win)
    rec = win.case.record
    renderer = FrameRenderer(rec, win.case.pixels, (30000.0, 60000.0), VideoSettings(trail_s=win.trail_s))
    for t in np.linspace(rec.t_start + 0.5, rec.t_end - 0.5, 7):
        f = frame_at(rec, float(t), win.trail_s)
        win.seek(float(t))
        assert win.trail_fixation_numbers() == list(range(f.trail.start + 1, f.trail.stop + 1))
        if f.gaze_xy_img_px is None:
            assert np.isnan(win.state.gaze_img_px).all()
        else:
            assert win.state.gaze_img_px == pytest.approx(f.gaze_xy_img_px)
        frame = renderer.render(float(t))
        if f.gaze_xy_img_px is not None:  # the video's gaze ring (green) where frame_at puts it
            x = int(round(f.gaze_xy_img_px[0] * renderer.k + renderer.x0 + 10))
            y = int(round(f.gaze_xy_img_px[1] * renderer.k))
            ring = frame[max(0, y - 1) : y + 2, max(0, x - 2) : x + 1]
            assert (ring[..., 1] > 200).any() and (ring[..., 0] < 60).any()
    win.close()
