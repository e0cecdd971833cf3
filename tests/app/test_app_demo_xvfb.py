"""`radgaze demo` for real: a window on an X server (Xvfb), the simulated tracker over LSL, the scripted
dictation through the live pipeline; the screenshot is left in artifacts/ for a person to look at."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

WINDOW_SCRIPT = r"""
import json, sys
import numpy as np
from PIL import Image
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication([])
from radgaze.app.main_window import MainWindow
folder, shot = sys.argv[1], sys.argv[2]
y, x = np.mgrid[0:600, 0:500]
img = 30000 + 20000 * np.sin(x / 40.0) * np.cos(y / 55.0)
Image.fromarray(img.astype(np.uint16)).save(folder + "/a.png")
win = MainWindow(title="radgaze (xvfb)")
win.resize(1100, 800)
win.move(60, 40)
win.show()
win.open_folder(folder)
QtCore.QTimer.singleShot(800, app.quit)
app.exec()
row = win.state.view_events[-1]
origin = win.image_view.canvas.mapToGlobal(QtCore.QPoint(0, 0))
win.grab().save(shot)
print(json.dumps({"platform": app.platformName(), "origin": [origin.x(), origin.y()],
                  "offset": [float(row["offset_x"]), float(row["offset_y"])],
                  "view_offset": [win.state.transform.offset_x, win.state.transform.offset_y]}))
"""


@pytest.mark.xvfb
def test_main_window_in_a_real_x_window(xvfb_display, artifacts_dir, tmp_path):
    import json

    shot = artifacts_dir / "xvfb_window.png"
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    out = subprocess.run(
        [sys.executable, "-c", WINDOW_SCRIPT, str(tmp_path), str(shot)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["platform"] == "xcb"
    assert info["origin"][0] >= 60  # the window manager-less X server keeps the requested position
    # the recorded image -> screen offset is the canvas's place on the screen plus the image's place in it
    expected = [info["origin"][i] + info["view_offset"][i] for i in (0, 1)]
    assert info["offset"] == pytest.approx(expected, abs=1.0)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[1] >= 1000 and img.std() > 20


@pytest.mark.slow
@pytest.mark.xvfb
def test_demo_runs_unattended_in_a_real_window(xvfb_display, artifacts_dir, tmp_path):
    pytest.importorskip(
        "radgaze.capture.gazemath.align",
        reason="radgaze.capture.gazemath.align (LiveAligner) not written yet",
    )
    from radgaze.app.demo import CASE_GAP_S, LEAD_IN_S
    from radgaze.capture.synth import synth_reading

    # screenshot in the pause after the first case: all its sentence heatmaps are in the list by then
    first = synth_reading(0, n_cases=1, image_size=768, rate_hz=120.0, zoom_p=0.0)[0]
    seconds = LEAD_IN_S + first.duration_s + CASE_GAP_S - 0.5
    shot = artifacts_dir / "demo.png"
    shot.unlink(missing_ok=True)
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    cmd = [
        sys.executable,
        "-m",
        "radgaze.app.cli",
        "demo",
        "--seconds",
        f"{seconds:.1f}",
        "--screenshot",
        str(shot),
    ]
    cmd += ["--cases", "2", "--image-size", "768", "--keep", str(tmp_path / "demo")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"(\d+) sentence heatmaps", out.stdout)
    assert m and int(m.group(1)) == len(first.sentences), out.stdout + out.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    assert img.std() > 20  # a drawn window, not a blank frame
    session = tmp_path / "demo" / "demo-live.h5"
    from radgaze.capture.store.summary import describe_session

    info = describe_session(session)
    assert info["valid"] and info["cases"][0]["gaze_samples"] > 1000 and info["cases"][0]["sentences"] >= 1


def _demo(xvfb_display, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    cmd = [sys.executable, "-m", "radgaze.app.cli", "demo", *args, "--keep", str(tmp_path / "demo")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _heat_pixels(rgb: np.ndarray) -> int:
    """Pixels in the inferno colours of a heatmap over a grey radiograph (red/orange/yellow, not grey)."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return int(((r > 150) & (r - b > 70) & (r >= g)).sum())


@pytest.mark.slow
@pytest.mark.xvfb
def test_the_readme_demo_command_screenshot_shows_heatmaps(xvfb_display, artifacts_dir, tmp_path):
    shot = artifacts_dir / "demo_readme_40s.png"
    shot.unlink(missing_ok=True)
    out = _demo(xvfb_display, tmp_path, "--seconds", "40", "--screenshot", str(shot))  # the README's command
    m = re.search(r"(\d+) sentence heatmaps", out.stdout)
    assert m and int(m.group(1)) >= 1, out.stdout
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert _heat_pixels(img) > 2000  # heatmaps over the image and in the sentence list, not an empty list


@pytest.mark.xvfb
def test_the_demo_shows_gaze_in_its_first_seconds(xvfb_display, artifacts_dir, tmp_path):
    shot = artifacts_dir / "demo_first_seconds.png"
    _demo(xvfb_display, tmp_path, "--seconds", "4", "--screenshot", str(shot), "--cases", "1")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    cursor = (g > 200) & (r < 90) & (b > 60) & (b < 180)  # the green gaze ring (0, 255, 120)
    assert cursor.sum() > 20
