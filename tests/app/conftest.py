"""Qt test hygiene: Python's cyclic garbage is collected on the main thread between tests.

Windows of one test become garbage when it ends; if a collection happened later in a worker thread (a review
model loader, the ASR worker) PySide would destroy those widgets on the main thread while the worker waits
for the GIL inside Qt — a deadlock this suite hit once. Collecting here, on the main thread, prevents it;
the app does the same with capture.qtapp.collect_garbage_on_main_thread.
"""

from __future__ import annotations

import gc
import os
import select
import shutil
import subprocess
import tempfile
import time

import pytest

# QSettings (window geometry, the W/L drag convention) go to a private folder, never the user's ~/.config;
# subprocesses started by tests inherit it.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="radgaze-test-config-")


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_main_thread():
    enabled = gc.isenabled()
    gc.collect()
    yield
    gc.collect()
    if enabled:  # an in-process command may have switched to main-thread collection; later tests run plain
        gc.enable()


@pytest.fixture(scope="session")
def xvfb_display():
    """A real X server (Xvfb) at 1600 x 1000 for tests that start the app as a real process.

    Xvfb picks a free display number itself (``-displayfd``) and writes it when it is ready, so test sessions
    running side by side on one machine never share (or tear down) each other's server. ``-noreset``: an X
    server resets when its last client leaves and refuses connections meanwhile; between two test processes on
    a loaded machine the next window then failed with "could not connect to display"."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 15
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.5)
        if ready:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        pytest.skip("Xvfb did not report a display number within 15 s")
    yield f":{int(number)}"
    proc.terminate()
    proc.wait(5)
