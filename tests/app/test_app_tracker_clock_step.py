"""The record window against a REAL tracker whose clock steps 10 s forward mid-recording (issue 24, item 1): a
Tobii-layout LSL outlet in another process (tests/capture/lsl_outlet_proc.py "clock_steps"). The tracker panel
says the clock stepped and that the samples were kept; the session stores the step as a clock event and keeps
every sample on one continuous timeline."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image
from test_app_tracker_lost import record_window_on_stream, start_outlet_process

OUTLET_PROC = Path(__file__).resolve().parents[1] / "capture" / "lsl_outlet_proc.py"
TOBII_LABELS = ["left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil"]


def _start_outlet(tmp_path: Path, name: str) -> subprocess.Popen:
    spec = {"outlets": [{"name": name, "type": "Gaze", "format": "float32", "rate": 120.0, "labels": TOBII_LABELS,
                         "source_id": name + "-src", "rows": [[0.4, 0.5, 3.0, 0.4, 0.5, 3.0]],
                         "clock_steps": [[2.0, 10.0]]}],
            "lifetime_s": 60}  # fmt: skip
    return start_outlet_process(tmp_path, spec)


def test_panel_shows_a_clock_step_and_the_session_keeps_every_sample(qtbot, tmp_path, artifacts_dir):
    from radgaze.capture.store.reader import SessionReader

    name = f"radgaze-clockstep-{time.monotonic_ns()}"
    Image.fromarray(np.full((300, 200), 2000, np.uint16)).save(tmp_path / "c.png")
    proc = _start_outlet(tmp_path, name)
    try:
        with record_window_on_stream(qtbot, tmp_path, name, tmp_path / "s.h5") as rec:
            win, ctl, inlet, label = rec.win, rec.ctl, rec.inlet, rec.win.reading.tracker.label
            qtbot.waitUntil(lambda: "connected" in label.text(), timeout=15000)
            ctl.start()  # the case is recorded across the step
            qtbot.waitUntil(lambda: "tracker clock stepped once, last +10.0 s" in label.text(), timeout=20000)
            assert "samples kept, times corrected" in label.text() and "lost" not in label.text()
            win.grab().save(str(artifacts_dir / "tracker_clock_step.png"))
            qtbot.wait(500)  # samples after the step
            ctl.stop()
    finally:
        proc.kill()
        proc.wait(10)
    with SessionReader(tmp_path / "s.h5") as r:
        cases = [r.case(c) for c in r.case_ids]
    events = np.concatenate([c.clock_events for c in cases])
    assert events.size == 1 and abs(events["step_s"][0] - 10.0) < 0.1
    t = np.concatenate([c.gaze["t_lsl"] for c in cases])
    assert t.size > 120 and np.all(np.diff(t) > 0) and np.all(np.diff(t) < 0.1)  # continuous: nothing lost
    assert inlet.stats.n_late_dropped == 0
