"""The one QApplication of a windowed command, with a clear error instead of Qt's abort when there is no
display to open a window on."""

from __future__ import annotations

import os
import sys

from capture.errors import ConfigError


def has_display(environ: dict | None = None, platform: str = sys.platform) -> bool:
    """True when Qt can open windows: a platform plugin was chosen, or an X11/Wayland display is set (Linux);
    other systems always have their native windowing."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return True
    return bool(env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def ensure_qapp(name: str):
    """The existing QApplication or a new one; ConfigError (exit 2, one line) when no display exists."""
    if not has_display():
        raise ConfigError(
            "no display to open a window on (DISPLAY/WAYLAND_DISPLAY unset); run it under "
            "`xvfb-run`, set QT_QPA_PLATFORM=offscreen for an unattended run, or use --headless where offered"
        )
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([name])
