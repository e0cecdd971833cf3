"""ViewerState: pure view maths and the LSL-stamped view-event log (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.app.state import (
    MAX_SCALE,
    ViewerState,
    ViewTransform,
    drag_window,
    fit_transform,
    preset_window,
    zoom_about,
)
from radgaze.capture.base.records import (
    VIEW_CASE,
    VIEW_DTYPE,
    VIEW_FIT,
    VIEW_INVERT,
    VIEW_PAN,
    VIEW_WINDOW,
    VIEW_ZOOM,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 0.5
        return self.t


@pytest.fixture
def state() -> ViewerState:
    s = ViewerState(clock=FakeClock())
    s.set_viewport(800, 600, origin_view_px=(10.0, 20.0))
    ramp = np.tile(np.arange(1000, dtype=np.uint16), (500, 1))  # 1000 wide x 500 high, values = x
    s.set_case("c1", ramp, window=(500.0, 1000.0))
    return s


def test_fit_transform_centres_and_keeps_aspect():
    t = fit_transform(1000, 500, 800, 600)
    assert t.scale == pytest.approx(0.8)
    assert (t.offset_x, t.offset_y) == pytest.approx((0.0, 100.0))  # 600 - 400 = 200 spare, half above


def test_zoom_about_keeps_the_anchor_point_fixed():
    t = ViewTransform(0.5, 10.0, 20.0)
    anchor = (300.0, 200.0)
    before = t.view_to_image(*anchor)
    z = zoom_about(t, 2.0, *anchor)
    assert z.scale == pytest.approx(1.0)
    assert z.view_to_image(*anchor) == pytest.approx(before)
    assert zoom_about(t, 1e6, 0, 0).scale == MAX_SCALE
    with pytest.raises(ValueError, match="positive"):
        zoom_about(t, 0.0, 0, 0)


def test_drag_window_horizontal_is_width_vertical_is_level_as_in_pacs_viewers():
    # RadiAnt / OHIF / Weasis: right = wider, down = higher level
    assert drag_window(100.0, 50.0, 10.0, 0.0, 2.0, 1.0) == (100.0, 70.0)
    assert drag_window(100.0, 50.0, 0.0, 5.0, 2.0, 1.0) == (110.0, 50.0)
    assert drag_window(100.0, 50.0, -100.0, 0.0, 2.0, 1.0) == (100.0, 1.0)  # never narrower than 1 level
    # REFLACX's viewer, selectable: horizontal = level, vertical = width
    assert drag_window(100.0, 50.0, 10.0, 0.0, 2.0, 1.0, "reflacx") == (120.0, 50.0)
    assert drag_window(100.0, 50.0, 0.0, 5.0, 2.0, 1.0, "reflacx") == (100.0, 60.0)
    with pytest.raises(ValueError, match="mode"):
        drag_window(100.0, 50.0, 0.0, 5.0, 2.0, 1.0, "sideways")


def test_state_drag_follows_its_mode_and_stays_integer_on_integer_data(state):
    c0, w0 = state.window
    state.drag_window(7.3, 0.0)
    c1, w1 = state.window
    assert c1 == c0 and w1 > w0 and w1 == int(w1)
    state.set_wl_drag_mode("reflacx")
    state.drag_window(7.3, 0.0)
    assert state.window[1] == w1 and state.window[0] > c1 and state.window[0] == int(state.window[0])


def test_presets_follow_the_histogram(state):
    lung = preset_window(state.percentiles, "lung")
    bone = preset_window(state.percentiles, "bone")
    assert lung[0] < bone[0]  # lungs are dark, bone bright
    state.apply_preset("bone")
    assert state.window == pytest.approx(bone)
    with pytest.raises(ValueError, match="preset"):
        preset_window(state.percentiles, "brain")


def test_set_case_fits_and_stamps_a_case_row(state):
    ev = state.view_events
    assert ev.dtype == VIEW_DTYPE and len(ev) == 1
    assert ev["kind"][0] == VIEW_CASE
    assert ev["scale"][0] == pytest.approx(0.8)
    # offsets are on the screen: view offset + the widget's origin on the screen
    assert (ev["offset_x"][0], ev["offset_y"][0]) == pytest.approx((0.0 + 10.0, 100.0 + 20.0))
    assert (ev["window_center"][0], ev["window_width"][0]) == (500.0, 1000.0)


def test_every_view_change_is_one_stamped_row(state):
    rows = []
    state.view_event.connect(rows.append)
    state.wheel(1.0, 400, 300)  # zoom in one notch around the centre
    state.pan_by(5, -3)
    state.drag_window(10, 0)
    state.set_invert(True)
    state.set_invert(True)  # no change: no row
    state.fit()
    kinds = [int(r["kind"]) for r in rows]
    assert kinds == [VIEW_ZOOM, VIEW_PAN, VIEW_WINDOW, VIEW_INVERT, VIEW_FIT]
    t = state.view_events["t_lsl"]
    assert np.all(np.diff(t) > 0)  # stamped in order on the (fake) LSL clock
    assert state.view_events[-1]["invert"] == 1
    zoom_row = rows[0]
    assert zoom_row["scale"] == pytest.approx(0.8 * 1.25)


def test_resizing_in_fit_mode_refits_and_is_recorded(state):
    state.set_viewport(400, 600)
    assert state.transform.scale == pytest.approx(0.4)
    assert state.view_events[-1]["kind"] == VIEW_FIT
    state.zoom_at(2.0, 0, 0)  # leaves fit mode
    state.set_viewport(400, 600, origin_view_px=(50.0, 20.0))  # window moved: same view, new screen offset
    last = state.view_events[-1]
    assert last["kind"] == VIEW_PAN and state.transform.scale == pytest.approx(0.8)
    assert last["offset_x"] == pytest.approx(state.transform.offset_x + 50.0)


def test_screen_mapping_of_a_row_matches_the_transform(state):
    state.zoom_at(3.0, 123.0, 77.0)
    row = state.view_events[-1]
    x_img, y_img = 321.0, 123.0
    x_view, y_view = state.transform.image_to_view(x_img, y_img)
    x_screen = x_img * row["scale"] + row["offset_x"]
    assert x_screen == pytest.approx(x_view + state.origin_view_px[0])
    assert (y_img * row["scale"] + row["offset_y"]) == pytest.approx(y_view + state.origin_view_px[1])


def test_overlay_keeps_style_across_heatmaps(state):
    seen = []
    state.overlay_changed.connect(seen.append)
    state.set_heatmap(np.ones((4, 8)), scale=125.0, label="s1")
    state.set_overlay_style(opacity=0.3, colormap="viridis")
    state.set_heatmap(np.ones((2, 4)), scale=250.0, label="s2")
    ov = state.overlay
    assert ov.shape == (2, 4) and ov.opacity == 0.3 and ov.colormap == "viridis" and ov.label == "s2"
    with pytest.raises(ValueError, match="opacity"):
        state.set_overlay_style(opacity=1.5)
    state.set_heatmap(None)
    assert seen[-1] is None and len(seen) == 4


def test_float_images_get_a_float_minimum_width():
    s = ViewerState(clock=FakeClock())
    s.set_case("f", np.linspace(0, 1e-3, 100, dtype=np.float32).reshape(10, 10))
    s.set_window(5e-4, 0.0)
    assert 0 < s.window[1] < 1e-6
