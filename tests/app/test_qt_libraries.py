"""Qt's xcb libraries missing (issue 23, item 14): a windowed command says in one line which Debian packages to
install, before Qt aborts with its own crash text (as the display check does for a missing X server)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from radgaze.app.qtapp import XCB_LIBRARY_PACKAGES, check_xcb_libraries, missing_packages
from radgaze.capture.base.errors import ConfigError


def test_a_library_that_is_not_installed_is_named_by_its_package():
    # a real probe (ctypes.util.find_library) of a library no system has, beside one every Linux has
    libraries = {"c": "libc6", "radgaze-no-such-library": "libradgaze-fake0"}
    assert missing_packages(libraries) == ["libradgaze-fake0"]
    with pytest.raises(ConfigError) as err:
        check_xcb_libraries(libraries)
    said = str(err.value)
    assert "\n" not in said and "libradgaze-fake0" in said and "libc6" not in said
    assert "apt-get install -y libradgaze-fake0" in said


def test_the_xcb_libraries_of_this_machine_are_all_there():
    assert (
        missing_packages(XCB_LIBRARY_PACKAGES) == []
    )  # the suite's own windows need them (.ci/run installs)


WITHOUT_XCB_CURSOR = r"""
import ctypes.util, sys
real = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "xcb-cursor" else real(name)  # as if not installed
from radgaze.app.cli import main
sys.exit(main(["view", sys.argv[1]]))
"""


@pytest.mark.xvfb
def test_radgaze_view_without_libxcb_cursor_says_which_package_in_one_line(xvfb_display, tmp_path):
    png = tmp_path / "cxr.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(png)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["DISPLAY"] = xvfb_display
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_XCB_CURSOR, str(png)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("radgaze view: Qt's X11 (xcb) platform needs libraries")
    assert "libxcb-cursor0" in lines[0] and "libxcb-shape0" not in lines[0]
    assert "Aborted" not in proc.stderr and "qt.qpa" not in proc.stderr
