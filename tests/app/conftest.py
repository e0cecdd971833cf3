"""Qt test hygiene: Python's cyclic garbage is collected on the main thread between tests.

Windows of one test become garbage when it ends; if a collection happened later in a worker thread (a review
model loader, the ASR worker) PySide would destroy those widgets on the main thread while the worker waits
for the GIL inside Qt — a deadlock this suite hit once. Collecting here, on the main thread, prevents it;
the app does the same with capture.qtapp.collect_garbage_on_main_thread.
"""

from __future__ import annotations

import gc
import os
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
    """A real X server (Xvfb) at 1600 x 1000 for tests that start the app as a real process."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    for n in range(90, 160):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"Xvfb :{n} did not start")
        time.sleep(0.1)
    yield f":{n}"
    proc.terminate()
    proc.wait(5)
