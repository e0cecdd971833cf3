"""Simulated gaze: the rate is honoured, fixations and saccades look like eye movements, blinks and outages
are marked, and the view transform in force maps screen to image."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import (
    GAZE_GAP_BEFORE,
    GAZE_ON_IMAGE,
    GAZE_VALID,
    VIEW_DTYPE,
    VIEW_ZOOM,
    DisplayGeometry,
)
from radgaze.capture.gazemath.fixations import fixations_from_gaze
from radgaze.capture.gazemath.geometry import fit_view, ppd_screen
from radgaze.capture.synth.reading import Dwell, GazeParams, plan_fixations, render_gaze

SIZE = 1024
DISPLAY = DisplayGeometry()


def _reading(rate_hz: float, seed: int = 0, *, duration_s: float = 20.0, view_events=None, **params):
    rng = np.random.default_rng(seed)
    fit = np.asarray(fit_view(SIZE, SIZE, DISPLAY, t_lsl=0.0, window=(30000.0, 60000.0)), VIEW_DTYPE).reshape(
        -1
    )
    views = fit if view_events is None else view_events
    ppd_img = float(np.mean(ppd_screen(DISPLAY))) / float(fit["scale"][0])
    pts = rng.uniform(150, SIZE - 150, (40, 2))
    p = GazeParams(rate_hz=rate_hz, **params)
    sched, _ = plan_fixations(rng, [Dwell(0.2, duration_s - 0.5, pts)], ppd_img, p)
    gaze, gaps = render_gaze(rng, sched, views, DISPLAY, (SIZE, SIZE), 0.0, duration_s, p)
    return sched, gaze, gaps, views, ppd_img


@pytest.mark.parametrize("rate_hz", [60.0, 250.0, 1000.0, 2000.0])
def test_rate_is_honoured_and_fixations_are_recovered(rate_hz):
    sched, gaze, gaps, views, _ = _reading(rate_hz, outage_p=0.0)
    dt = np.diff(gaze["t_lsl"])
    assert np.allclose(dt, 1.0 / rate_hz)
    assert abs(gaze.size - 20.0 * rate_hz) <= 1
    # the detector the live pipeline uses finds about the planned fixations
    fix = fixations_from_gaze(gaze, views, DISPLAY)
    assert 0.7 * len(sched) <= len(fix) <= 1.3 * len(sched), (len(fix), len(sched))


def test_fixations_are_still_and_saccades_fast():
    sched, gaze, _, _, _ = _reading(1000.0, blinks_per_min=0.0, dropouts_per_min=0.0, outage_p=0.0)
    ppd = np.mean(ppd_screen(DISPLAY))
    t = gaze["t_lsl"]
    speed = np.hypot(np.diff(gaze["x_screen_px"]), np.diff(gaze["y_screen_px"])) / ppd / np.diff(t)
    k = np.searchsorted(sched.t_start, t[:-1], side="right") - 1
    inside = (k >= 0) & (t[:-1] > sched.t_start[k] + 0.01) & (t[1:] < sched.t_end[k] - 0.01)
    assert np.median(speed[inside]) < 10.0  # deg/s: drift and tracker noise only
    peaks = [speed[(t[:-1] >= a) & (t[:-1] < b)].max() for a, b in zip(sched.t_end[:-1], sched.t_start[1:])]
    amps = np.hypot(np.diff(sched.x_img_px), np.diff(sched.y_img_px))
    big = amps > np.percentile(amps, 50)
    assert np.median(np.array(peaks)[big]) > 150.0  # deg/s, main-sequence peak velocities of >5 deg saccades
    sac_ms = (sched.t_start[1:] - sched.t_end[:-1]) * 1000
    assert 20 <= sac_ms.min() and np.median(sac_ms) < 80
    dur = sched.t_end - sched.t_start
    assert 0.2 < np.median(dur) < 0.4


def test_blinks_and_dropouts_are_invalid_samples():
    _, gaze, _, _, _ = _reading(500.0, seed=2, duration_s=60.0, outage_p=0.0)
    invalid = (gaze["flags"] & GAZE_VALID) == 0
    assert 0.005 < invalid.mean() < 0.1
    assert np.all(np.isnan(gaze["x_screen_px"][invalid])) and np.all(np.isnan(gaze["pupil"][invalid]))
    assert np.all(np.isfinite(gaze["x_screen_px"][~invalid]))
    assert np.all((gaze["flags"][invalid] & GAZE_ON_IMAGE) == 0)
    # several separate episodes, each short
    starts = np.flatnonzero(np.diff(invalid.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(invalid.astype(int)) == -1)
    assert len(starts) >= 4
    assert np.max(ends[: len(starts)] - starts[: len(ends)]) / 500.0 < 0.5


def test_an_outage_removes_samples_and_is_listed_as_a_gap():
    _, gaze, gaps, _, _ = _reading(250.0, seed=3, outage_p=1.0)
    assert len(gaps) == 1
    lost, back = gaps[0]["t_lost"], gaps[0]["t_back"]
    t = gaze["t_lsl"]
    assert not np.any((t >= lost) & (t < back))
    after = np.searchsorted(t, back)
    assert gaze["flags"][after] & GAZE_GAP_BEFORE
    assert np.count_nonzero(gaze["flags"] & GAZE_GAP_BEFORE) == 1


def test_gaze_goes_through_the_view_in_force():
    fit = np.asarray(fit_view(SIZE, SIZE, DISPLAY, t_lsl=0.0, window=(30000.0, 60000.0)), VIEW_DTYPE).reshape(
        -1
    )
    zoom = fit.copy()
    zoom["t_lsl"], zoom["kind"], zoom["scale"] = 10.0, VIEW_ZOOM, fit["scale"] * 2
    zoom["offset_x"] = DISPLAY.screen_w_px / 2 - 400 * zoom["scale"]
    zoom["offset_y"] = DISPLAY.screen_h_px / 2 - 500 * zoom["scale"]
    views = np.concatenate([fit, zoom])
    sched, gaze, _, _, ppd_img = _reading(250.0, seed=4, view_events=views, blinks_per_min=0.0, outage_p=0.0)
    k = np.searchsorted(sched.t_start, gaze["t_lsl"], side="right") - 1
    mid = (k >= 0) & (gaze["t_lsl"] > sched.t_start[k] + 0.02) & (gaze["t_lsl"] < sched.t_end[k])
    valid = mid & ((gaze["flags"] & GAZE_VALID) > 0)
    err_px = np.hypot(gaze["x_img_px"] - sched.x_img_px[k], gaze["y_img_px"] - sched.y_img_px[k])[valid]
    zoomed = gaze["t_lsl"][valid] >= 10.0
    # within ~1 degree of the planned point in image px (tracker offset + drift), before and after the zoom
    assert np.median(err_px[~zoomed]) < ppd_img
    assert np.median(err_px[zoomed]) < ppd_img / 2
    # the same image point sits at a different screen place once zoomed
    scr = gaze["x_screen_px"][valid]
    assert np.nanstd(scr[zoomed]) > 1.5 * np.nanstd(scr[~zoomed])


def test_rate_outside_what_trackers_do_is_refused():
    with pytest.raises(ValueError, match="rate_hz"):
        GazeParams(rate_hz=0.5)
