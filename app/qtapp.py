"""The one QApplication of a windowed command, with a clear error instead of Qt's abort when there is no
display to open a window on."""

from __future__ import annotations

import gc
import os
import sys

from radgaze.capture.errors import ConfigError


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

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([name])
    collect_garbage_on_main_thread(app)
    return app


def collect_garbage_on_main_thread(app, interval_ms: int = 500) -> None:
    """Run Python's cyclic garbage collector only on the Qt main thread.

    Left automatic, a collection can start in any thread that allocates (the ASR worker, the review model
    loader) and free Qt wrappers there; PySide then destroys the widgets on the main thread while the worker,
    inside Qt, waits for the GIL the main thread holds — a deadlock seen in this project's test runs. So
    automatic collection is turned off and a main-thread timer runs the generations whose thresholds were
    passed, as CPython's automatic collector would.
    """
    from PySide6 import QtCore

    if getattr(app, "_radgaze_gc_timer", None) is not None:
        return
    gc.disable()
    timer = QtCore.QTimer(app)
    timer.timeout.connect(collect_due_generations)
    timer.start(interval_ms)
    app._radgaze_gc_timer = timer


def collect_due_generations() -> int:
    """Collect the oldest generation whose allocation threshold was passed; returns objects found."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if counts[generation] > thresholds[generation]:
            return gc.collect(generation)
    return 0
