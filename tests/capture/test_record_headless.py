"""Headless recording end to end with real components: a simulated tracker on a real LSL outlet, an audio
file played in real time as the microphone, faster-whisper with a tiny local model, the live pipeline and the
HDF5 writer; then SIGTERM (clean finish) and kill -9 (at most the last second lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from radgaze.capture.live.tiny_whisper import build_tiny_whisper
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny")


@pytest.fixture()
def image(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "cxr.png"
    Image.fromarray(rng.integers(0, 65535, (600, 500), dtype=np.uint16)).save(path)
    return path


@pytest.fixture()
def speech(tmp_path, shared_data_or_none) -> Path:
    if shared_data_or_none is not None:
        return shared_data_or_none / "audio" / "jfk.flac"
    t = np.arange(16000 * 6) / 16000
    path = tmp_path / "tone.wav"
    soundfile.write(
        path, (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype("f4"), 16000
    )
    return path


@pytest.fixture()
def shared_data_or_none() -> Path | None:
    """The real speech clip's folder when present; a generated tone stands in otherwise."""
    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    return data if data.is_dir() else None


def _record(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"no line starting {prefix!r}; stderr: {proc.stderr.read()}")


def test_headless_record_of_an_audio_file_writes_words_sentences_and_heatmaps(
    tmp_path, image, speech, tiny_whisper
):
    out = tmp_path / "out"
    proc = _record(
        [
            "--sim",
            "--audio-file",
            str(speech),
            "--whisper",
            str(tiny_whisper),
            "--beam",
            "1",
            "--image",
            str(image),
            "--out",
            str(out),
            "--case-id",
            "c1",
        ]
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case = r.case("c1")
        prov = r.provenance
    assert case.complete
    assert case.gaze.size > 250 * 4  # ~ the audio's length at 250 Hz
    assert case.audio is not None and case.audio.samples.size / 16000 == pytest.approx(
        soundfile.info(str(speech)).duration, abs=0.3
    )
    assert case.fixations.size > 5
    t0, t1 = case.audio.block_t_lsl[0], case.audio.block_t_lsl[-1] + 0.2
    if len(case.words):
        assert np.all(case.words.t_start >= t0 - 1e-6) and np.all(case.words.t_end <= t1 + 1e-6)
        assert np.all(np.diff(case.words.t_start) >= 0)
        assert len(case.sentences) >= 1
    assert prov["tracker"]["stream"]["layout"] == "tobii" and prov["asr_model"] == str(tiny_whisper)
    assert describe_session(path)["valid"]


def test_headless_record_sigterm_finishes_cleanly(tmp_path, image):
    out = tmp_path / "out"
    proc = _record(["--sim", "--no-audio", "--image", str(image), "--out", str(out), "--case-id", "c1"])
    _wait_for_line(proc, "recording to")
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case = r.case("c1")
    assert case.complete and case.gaze.size > 250 * 2 and case.fixations.size > 3


def test_headless_record_kill_minus_9_loses_at_most_a_second(tmp_path, image):
    out = tmp_path / "out"
    proc = _record(["--sim", "--no-audio", "--image", str(image), "--out", str(out), "--case-id", "c1"])
    _wait_for_line(proc, "recording to")
    time.sleep(3.0)
    import pylsl

    t_kill = pylsl.local_clock()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case = r.case("c1")
    assert not case.complete
    assert case.gaze.size > 250
    assert t_kill - case.gaze["t_lsl"][-1] < 1.0
    assert describe_session(path)["cases"][0]["complete"] is False


def test_headless_record_reports_bad_input_in_one_line(tmp_path, image):
    proc = _record(["--sim", "--no-audio", "--image", str(tmp_path / "missing.png"), "--out", str(tmp_path)])
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in stderr and stderr.strip().count("\n") == 0
    proc = _record(["--sim", "--image", str(image), "--out", str(tmp_path)])
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--mic" in stderr
