"""What a researcher tripped over in replay's exports (issue 23, item 7): ``--export`` writes every case (or
``--case``'s) and says what it wrote; in the video, a fixation off the film's bottom edge never covers the
transcript bar, and the subtitle starts at the sentence's first word."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from replay_review_sessions import IMAGE_H, write_session

from radgaze.app.replay_export import FrameRenderer, VideoSettings, subtitle_lines

CYAN = np.array([0, 229, 255])  # the trail's colour in the video


def test_replay_export_writes_every_case_and_says_so(tmp_path, qapp, capsys):
    pytest.importorskip("av")
    from radgaze.app.replay import main

    session = write_session(tmp_path / "s" / "reading.h5", 3)
    out = tmp_path / "out"
    assert main([str(session), "--export", str(out), "--export-video", str(out / "case.mp4")]) == 0
    captured = capsys.readouterr()
    printed = captured.out.split()
    for case_id in ("case0", "case1", "case2"):
        assert str(out / case_id / "fixations.csv") in printed
        assert (out / case_id / "sentences.csv").is_file()
        assert (out / f"case_{case_id}.mp4").stat().st_size > 1000
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("radgaze replay: 3 case(s) exported (case0, case1, case2)")
    assert str(out) in summary

    one = tmp_path / "one"
    assert main([str(session), "--case", "case2", "--export", str(one)]) == 0
    captured = capsys.readouterr()
    assert (one / "fixations.csv").is_file() and not (one / "case0").exists()
    assert "1 case(s) exported (case2)" in captured.err
    header, *rows = (one / "fixations.csv").read_text().splitlines()
    assert rows  # case2's own fixations


def test_subtitle_lines_start_at_the_sentence_and_wrap():
    words = "the heart is enlarged. there is a left pleural effusion with a meniscus at the base.".split()
    fits = lambda text: len(text) <= 24  # noqa: E731
    assert subtitle_lines(words, 0, fits) == []
    assert subtitle_lines(words, 4, fits) == [[(0, "the"), (1, "heart"), (2, "is"), (3, "enlarged.")]]
    second = subtitle_lines(words, 8, fits)  # "there" is the second sentence's first word, on the left
    assert second[0][0] == (4, "there") and [w for line in second for _, w in line][-1] == "left"
    long = subtitle_lines(words, len(words), fits)
    assert len(long) == 2 and long[0][0] == (-1, "…") and long[-1][-1] == (15, "base.")


def _case():
    from replay_review_sessions import make_case

    return make_case("case0", 1000.0)


def test_video_frame_keeps_fixations_off_the_transcript_bar(tmp_path, artifacts_dir):
    from PIL import Image
    from replay_review_sessions import phantom

    rec = _case()
    fx = rec.fixations.copy()
    fx["y_img_px"][-3:] = IMAGE_H + 40.0  # the reader looked below the film (the desk, the keyboard)
    rec = replace(rec, fixations=fx)
    settings = VideoSettings(trail_s=60.0, height_px=480)
    r = FrameRenderer(rec, phantom(), (30000.0, 36000.0), settings)
    frame = r.render(float(fx["t_start"][-1] + 0.05))
    bar = frame[r.img_h :, :, :]
    cyan = np.all(np.abs(bar.astype(int) - CYAN) <= 30, axis=-1)
    assert not cyan.any(), f"{int(cyan.sum())} trail pixels in the transcript bar"
    # the subtitle starts at its sentence's first word, at the bar's left margin
    text_cols = np.flatnonzero((bar[:, :, :].max(axis=-1) > 120).any(axis=0))
    assert text_cols.size and 6 <= text_cols[0] <= 14
    Image.fromarray(frame).save(artifacts_dir / "replay_video_frame.png")
