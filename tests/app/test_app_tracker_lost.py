"""The record window's tracker panel against a REAL tracker outage: a Tobii-layout LSL outlet in another
process is killed (kill -9) and started again under the same source id. The panel turns to "lost" (red, time
since the last sample) and back, and its rate / validity cover the last seconds only (issue 9)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from radgaze.app.main_window import MainWindow
from radgaze.app.recording import LOST_AFTER_S, RecordController
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.live.live_session import STATUS_EVERY_S, LiveSession, TrackerStats

OUTLET_PROC = Path(__file__).resolve().parents[1] / "capture" / "lsl_outlet_proc.py"
TOBII_LABELS = ["left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil"]


def _start_outlet(tmp_path: Path, name: str) -> subprocess.Popen:
    spec = {"outlets": [{"name": name, "type": "Gaze", "format": "float32", "rate": 120.0, "labels": TOBII_LABELS,
                         "source_id": name + "-src", "rows": [[0.4, 0.5, 3.0, 0.4, 0.5, 3.0]]}],
            "lifetime_s": 60}  # fmt: skip
    return start_outlet_process(tmp_path, spec)


def start_outlet_process(tmp_path: Path, spec: dict) -> subprocess.Popen:
    """Real LSL outlets in another process (tests/capture/lsl_outlet_proc.py) from ``spec``, once they publish."""
    path = tmp_path / f"{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, str(OUTLET_PROC), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_lost_needs_less_than_a_second_by_design():
    # the worker reports every STATUS_EVERY_S; the panel says lost after LOST_AFTER_S without a sample
    assert LOST_AFTER_S + STATUS_EVERY_S < 1.0


@contextmanager
def record_window_on_stream(qtbot, images: Path, name: str, session_file: Path, size=(1200, 800)):
    """The record window with a live session recording the real LSL gaze stream ``name`` into
    ``session_file`` (``images`` as its worklist); the session, inlet and writer are stopped on leaving."""
    from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
    from radgaze.capture.live.gaze.inlet import GazeInlet
    from radgaze.capture.store.writer import SessionWriter

    display = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
    inlet = GazeInlet(resolve_gaze_stream(name, timeout_s=10.0), display).start()
    writer = SessionWriter(session_file, live=True)
    session = LiveSession(display, writer, gaze_inlet=inlet).start()
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    win.open_folder(images)
    ctl = RecordController(win, session, display, tracker_name=name)
    try:
        yield SimpleNamespace(inlet=inlet, writer=writer, session=session, win=win, ctl=ctl)
    finally:
        session.stop()
        inlet.stop()
        writer.close()


@pytest.mark.slow
def test_panel_shows_lost_and_recovery_when_a_real_outlet_is_killed(qtbot, tmp_path, artifacts_dir):
    name = f"radgaze-outage-{time.monotonic_ns()}"
    Image.fromarray(np.full((300, 200), 2000, np.uint16)).save(tmp_path / "c.png")
    proc = _start_outlet(tmp_path, name)
    try:
        with record_window_on_stream(qtbot, tmp_path, name, tmp_path / "s.h5") as rec:
            win, ctl, session, label = rec.win, rec.ctl, rec.session, rec.win.reading.tracker.label
            qtbot.waitUntil(lambda: "connected" in label.text() and "rate 12" in label.text(), timeout=15000)
            assert "lost" not in label.text() and "valid 100 %" in label.text()
            proc.kill()  # the tracker's bridge dies
            proc.wait(10)
            qtbot.waitUntil(lambda: "lost" in label.text(), timeout=10000)
            assert "ff6060" in label.text() and "since the last sample" in label.text()
            assert ctl.stats.t_last < session.clock() - LOST_AFTER_S
            # rate / validity over the last seconds only: after STATUS_WINDOW_S without samples they are gone
            qtbot.waitUntil(lambda: "rate – Hz" in label.text(), timeout=10000)
            assert "lost" in label.text()
            win.grab().save(str(artifacts_dir / "tracker_lost.png"))
            proc = _start_outlet(tmp_path, name)  # the bridge is started again: same source id
            qtbot.waitUntil(lambda: "back after" in label.text(), timeout=20000)
            assert "lost ·" not in label.text() and "ff6060" not in label.text().split("last drift")[0]
            win.grab().save(str(artifacts_dir / "tracker_back.png"))
    finally:
        proc.kill()
        proc.wait(10)


def test_stats_without_any_sample_say_not_connected(qtbot, tmp_path):
    from test_app_record_mode import StandInPipeline

    win = MainWindow()
    qtbot.addWidget(win)
    pipe = StandInPipeline()
    ctl = RecordController(win, pipe, DisplayGeometry(), tracker_name="sim")
    ctl.stats = TrackerStats(float("nan"), float("nan"), 0, float("nan"))
    ctl._show_status()
    assert "not connected" in win.reading.tracker.label.text()
    ctl.stats = TrackerStats(120.0, 100.0, 10, pipe.t - 2.0)
    ctl._show_status()
    assert "lost · 2.0 s" in win.reading.tracker.label.text()


def test_audio_file_plays_from_the_moment_recording_starts(qtbot, tmp_path):
    """Windowed ``record --audio-file F``: nothing of F is played (or transcribed) before Space; the first
    block is stamped after the case began."""
    import soundfile
    from test_app_record_mode import StandInPipeline

    from radgaze.app.record_cmd import start_audio
    from radgaze.capture.live.audio import AudioFileSource

    wav = tmp_path / "dictation.wav"
    soundfile.write(wav, np.zeros(16000, np.float32), 16000)
    Image.fromarray(np.full((300, 200), 2000, np.uint16)).save(tmp_path / "c.png")
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_folder(tmp_path)
    pipe = StandInPipeline()
    ctl = RecordController(win, pipe, DisplayGeometry(), tracker_name="sim")
    audio = AudioFileSource(wav)
    start_audio(ctl, audio, from_file=True)
    try:
        qtbot.wait(300)
        assert audio.queue.empty()  # the window is open, recording is not: the file waits
        import pylsl

        t_begin = pylsl.local_clock()
        win.shortcuts["Space"].activated.emit()
        assert ctl.recording
        qtbot.waitUntil(lambda: not audio.queue.empty(), timeout=5000)
        block = audio.queue.get()
        assert block.t_lsl_first_sample >= t_begin
    finally:
        audio.stop()
