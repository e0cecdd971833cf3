"""``radgaze record --sim`` in the window (issue 23, item 5): the simulated reader looks at the image where the
window draws it. A real LSL outlet (the simulated tracker's thread) and a real inlet; the gaze received is mapped
through the record window's own image -> screen transform, as the recorder maps it."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image
from test_app_record_mode import shown_record_window

from radgaze.app.sim_view import start_window_sim
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
from radgaze.capture.live.gaze.inlet import GazeInlet, concat_chunks
from radgaze.capture.live.sim_tracker import SimTracker, synthetic_gaze

DISPLAY = DisplayGeometry()


def _on_image_fraction(qtbot, win, name: str, seconds: float) -> float:
    """Share of the gaze received in ``seconds`` that the window's transform puts on its image."""
    inlet = GazeInlet(resolve_gaze_stream(name, timeout_s=10.0), DISPLAY).start()
    chunks, end = [], time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            qtbot.wait(20)  # the main thread runs: the window's signals keep the rectangle current
            chunks += inlet.drain()
    finally:
        inlet.stop()
    s, _ = concat_chunks(chunks)
    assert s.size > 50, f"only {s.size} samples in {seconds} s"
    v = win.state.current_view_row()
    x = (s["x_screen_px"] - v["offset_x"]) / v["scale"]
    y = (s["y_screen_px"] - v["offset_y"]) / v["scale"]
    h, w = win.state.pixels.shape[:2]
    return float(np.mean((x >= 0) & (x < w) & (y >= 0) & (y < h)))


def test_simulated_gaze_lands_on_the_image_as_the_window_draws_it(qtbot, tmp_path):
    y, x = np.mgrid[0:600, 0:500]
    Image.fromarray((20000 + 30 * x + 10 * y).astype(np.uint16)).save(tmp_path / "a.png")
    win = shown_record_window(qtbot, tmp_path, (1300, 800))
    win.state.fit()
    name = f"sim-view-{time.monotonic_ns()}"
    sim, rect = start_window_sim("tobii", 120.0, DISPLAY, name)
    try:
        rect.follow(win.state)
        fitted = _on_image_fraction(qtbot, win, name, 3.0)
        win.state.zoom_at(2.0, 300.0, 300.0)  # the reader zooms in: the simulated reader follows
        win.state.pan_by(-120.0, 40.0)
        zoomed = _on_image_fraction(qtbot, win, name, 2.0)
    finally:
        sim.stop()
    assert fitted >= 0.85 and zoomed >= 0.5, (fitted, zoomed)
    print(f"on the image: fitted {fitted:.1%}, zoomed 2x and panned {zoomed:.1%}")


def test_without_the_window_rect_the_synthetic_display_layout_misses_the_image(qtbot, tmp_path):
    """The figure before: the synthetic readings' own screen layout, replayed into this window."""
    y, x = np.mgrid[0:600, 0:500]
    Image.fromarray((20000 + 30 * x + 10 * y).astype(np.uint16)).save(tmp_path / "a.png")
    win = shown_record_window(qtbot, tmp_path, (1300, 800))
    win.state.fit()
    name = f"sim-view-old-{time.monotonic_ns()}"
    gaze, _ = synthetic_gaze(0, 120.0, DISPLAY)
    sim = SimTracker(gaze, "tobii", 120.0, DISPLAY, name=name).start()
    try:
        before = _on_image_fraction(qtbot, win, name, 3.0)
    finally:
        sim.stop()
    print(f"on the image without following the window: {before:.1%}")
    assert before < 0.85
