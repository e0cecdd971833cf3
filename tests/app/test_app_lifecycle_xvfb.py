"""The lifecycle of every windowed command, as a real process on a real X server (Xvfb), driven by real key
events (xdotool, through XTEST) and by the close request a window manager sends (WM_DELETE_WINDOW):
Ctrl-Q quits, closing the last window ends the process, Ctrl-C (SIGINT) ends it cleanly with the recording
saved, and a DISPLAY nobody answers on is one line and exit 2."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.xvfb

START_TIMEOUT_S = 90.0  # Python + Qt + the first image on two busy cores
EXIT_TIMEOUT_S = 40.0


# ------------------------------------------------------------------------------------------ X helpers
class _XClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessage), ("pad", ctypes.c_long * 24)]


def wm_close(display: str, window_id: int) -> None:
    """Ask a window to close exactly as a window manager does for its close button (ICCCM 4.2.8.1:
    a WM_PROTOCOLS client message carrying WM_DELETE_WINDOW)."""
    x11 = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    ev = _XEvent()
    ev.xclient.type = 33  # ClientMessage
    ev.xclient.window = window_id
    ev.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
    ev.xclient.format = 32
    ev.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    ev.xclient.data[1] = 0  # CurrentTime
    x11.XSendEvent(dpy, window_id, 0, 0, ctypes.byref(ev))
    x11.XFlush(dpy)
    x11.XCloseDisplay(dpy)


def xdotool(display: str, *args: str) -> str:
    out = subprocess.run(
        ["xdotool", *args], env=dict(os.environ, DISPLAY=display), capture_output=True, text=True, timeout=20
    )
    return out.stdout


def wait_window(display: str, proc: subprocess.Popen, title: str) -> int:
    """The X id of the process's visible top-level window whose title contains ``title``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited {proc.returncode} before its window showed:\n{out}\n{err[-3000:]}")
        ids = xdotool(display, "search", "--onlyvisible", "--name", title).split()
        if ids:
            time.sleep(1.0)  # let it finish showing (first paint, event loop running)
            return int(ids[0])
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"no window titled {title!r} within {START_TIMEOUT_S:.0f} s")


def press(display: str, window_id: int, keys: str) -> None:
    """Real key events (XTEST) into the focused window."""
    xdotool(display, "windowfocus", "--sync", str(window_id))
    time.sleep(0.3)
    xdotool(display, "key", "--clearmodifiers", keys)


def start(display: str, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool)")
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    return subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {EXIT_TIMEOUT_S:.0f} s after it was told to end:\n{out}\n{err[-3000:]}")
    return proc.returncode, out, err


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "cxr"
    folder.mkdir()
    y, x = np.mgrid[0:400, 0:320]
    img = 20000 + 15000 * np.sin(x / 30.0) * np.cos(y / 45.0)
    Image.fromarray(img.astype(np.uint16)).save(folder / "a.png")
    return folder


# ------------------------------------------------------------------------------------------ tests
def test_view_quits_on_ctrl_q(xvfb_display, images):
    proc = start(xvfb_display, "view", str(images))
    wid = wait_window(xvfb_display, proc, "radgaze view")
    press(xvfb_display, wid, "ctrl+q")
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err


def test_view_remembers_its_window_geometry(xvfb_display, images):
    proc = start(xvfb_display, "view", str(images))
    wid = wait_window(xvfb_display, proc, "radgaze view")
    xdotool(xvfb_display, "windowsize", "--sync", str(wid), "1180", "690")
    xdotool(xvfb_display, "windowmove", "--sync", str(wid), "70", "50")
    time.sleep(0.5)
    press(xvfb_display, wid, "ctrl+q")
    assert finished(proc)[0] == 0
    proc = start(xvfb_display, "view", str(images))
    wid = wait_window(xvfb_display, proc, "radgaze view")
    geometry = xdotool(xvfb_display, "getwindowgeometry", str(wid))
    press(xvfb_display, wid, "ctrl+q")
    assert finished(proc)[0] == 0
    assert "Geometry: 1180x690" in geometry, geometry
    assert "Position: 70,50" in geometry, geometry


def test_view_ends_when_its_window_is_closed(xvfb_display, images):
    proc = start(xvfb_display, "view", str(images))
    wid = wait_window(xvfb_display, proc, "radgaze view")
    wm_close(xvfb_display, wid)
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]


def test_view_ends_cleanly_on_ctrl_c(xvfb_display, images):
    proc = start(xvfb_display, "view", str(images))
    wait_window(xvfb_display, proc, "radgaze view")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "SIGINT" in err  # one line saying why it closes


@pytest.fixture
def session(tmp_path) -> Path:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "radgaze.app.cli",
            "synth",
            str(tmp_path / "s"),
            "--cases",
            "1",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return next((tmp_path / "s").glob("*.h5"))


def test_replay_ends_when_its_window_is_closed_and_on_ctrl_q(xvfb_display, session):
    proc = start(xvfb_display, "replay", str(session), "--no-audio")
    wid = wait_window(xvfb_display, proc, "replay")
    wm_close(xvfb_display, wid)
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    proc = start(xvfb_display, "replay", str(session), "--no-audio")
    wid = wait_window(xvfb_display, proc, "replay")
    press(xvfb_display, wid, "ctrl+q")
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]


def test_review_ends_when_its_window_is_closed_and_on_ctrl_q(xvfb_display, session, tmp_path):
    import torch

    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), run / "checkpoints" / "last")
    proc = start(xvfb_display, "review", str(run), str(session))
    wid = wait_window(xvfb_display, proc, "radgaze review")
    wm_close(xvfb_display, wid)
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    proc = start(xvfb_display, "review", str(run), str(session))
    wid = wait_window(xvfb_display, proc, "radgaze review")
    press(xvfb_display, wid, "ctrl+q")
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]


def test_record_ctrl_c_finishes_and_saves_the_recording(xvfb_display, images, tmp_path):
    from radgaze.capture.store.summary import describe_session

    out_file = tmp_path / "reading.h5"
    proc = start(
        xvfb_display, "record", str(out_file), "--images", str(images), "--sim", "--no-audio", "--start"
    )
    wait_window(xvfb_display, proc, "radgaze record")
    time.sleep(3.0)  # gaze streams into the open case
    proc.send_signal(signal.SIGINT)
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    info = describe_session(out_file)
    assert info["valid"], info
    assert info["cases"][0]["gaze_samples"] > 100  # the case recorded until Ctrl-C is in the file, closed


def test_record_closed_without_recording_leaves_no_file(xvfb_display, images, tmp_path):
    out_file = tmp_path / "reading.h5"
    proc = start(xvfb_display, "record", str(out_file), "--images", str(images), "--sim", "--no-audio")
    wid = wait_window(xvfb_display, proc, "radgaze record")
    press(xvfb_display, wid, "ctrl+q")
    rc, out, err = finished(proc)
    assert rc == 0, err[-3000:]
    assert "nothing was recorded" in out
    assert not out_file.exists()  # the name is free for the next try


def test_an_unreachable_display_is_one_line_and_exit_2(images):
    free = next(n for n in range(300, 400) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = f":{free}"
    out = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "view", str(images)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot open display ':{free}'" in lines[0], out.stderr
