"""The record window when the disk fills while recording (issue 24, item 3): a real tracker (Tobii-layout LSL
outlet in another process), a session file on a small tmpfs that fills. The window says so in one line, the
recording stops, and the file keeps everything flushed before, valid. Before: abort/segfault, an invalid file."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app_tracker_lost import record_window_on_stream, start_outlet_process

from radgaze.capture.store.integrity import DISK_RESERVE_BYTES

OUTLET_PROC = Path(__file__).resolve().parents[1] / "capture" / "lsl_outlet_proc.py"
TOBII_LABELS = ["left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil"]


def _start_outlet(tmp_path: Path, name: str) -> subprocess.Popen:
    spec = {"outlets": [{"name": name, "type": "Gaze", "format": "float32", "rate": 600.0, "labels": TOBII_LABELS,
                         "source_id": name + "-src", "rows": [[0.4, 0.5, 3.0, 0.41, 0.52, 3.1],
                                                              [0.6, 0.3, 3.2, 0.62, 0.31, 3.3]]}],
            "lifetime_s": 120}  # fmt: skip
    return start_outlet_process(tmp_path, spec)


@pytest.mark.slow
def test_the_window_says_the_disk_is_full_and_the_file_stays_valid(qtbot, tmp_path):
    from radgaze.capture.store.summary import describe_session

    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2048k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    name = f"radgaze-diskfull-{time.monotonic_ns()}"
    Image.fromarray(np.full((300, 200), 2000, np.uint16)).save(tmp_path / "c.png")
    proc = _start_outlet(tmp_path, name)
    try:
        with record_window_on_stream(qtbot, tmp_path, name, disk / "s.h5", size=(1200, 800)) as rec:
            win, ctl = rec.win, rec.ctl
            qtbot.waitUntil(lambda: "connected" in win.reading.tracker.label.text(), timeout=15000)
            ctl.start()
            qtbot.wait(1000)
            st = os.statvfs(disk)
            with open(disk / "filler.bin", "wb") as fh:  # the disk fills while the case is recorded
                fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - DISK_RESERVE_BYTES - 60_000))
            qtbot.waitUntil(lambda: "disk full" in win.statusBar().currentMessage(), timeout=60000)
            message = win.statusBar().currentMessage()
            assert message.startswith("capture error: ") and "\n" not in message
            assert "what was written before is kept" in message
    finally:  # the writer was closed on leaving: after the failure it closes without writing more
        proc.kill()
        proc.wait(10)
    try:
        info = describe_session(disk / "s.h5")
        assert info["valid"], info["errors"]
        assert info["cases"][0]["gaze_samples"] > 0 and not (disk / ".s.h5.lock").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
