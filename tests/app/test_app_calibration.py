"""Calibration check: accuracy in degrees from gaze on targets, and the dialog's flow with a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry

geometry = pytest.importorskip(
    "radgaze.capture.gazemath.geometry", reason="radgaze.capture.gazemath.geometry (lead) not written yet"
)

from radgaze.app.calibration import CalibrationCheck, calibration_accuracy, target_positions  # noqa: E402


def _gaze_at(points_px, t0, dur_s, rate_hz=100.0, valid=True):
    n = int(dur_s * rate_hz)
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t0 + np.arange(n) / rate_hz
    g["x_screen_px"], g["y_screen_px"] = points_px
    g["flags"] = GAZE_VALID if valid else 0
    return g


def test_accuracy_is_the_angular_offset():
    display = DisplayGeometry()
    ppd_x, ppd_y = geometry.ppd_screen(display)
    targets = target_positions(display)
    windows = np.array([(i * 2.0 + 0.5, i * 2.0 + 1.5) for i in range(len(targets))])
    # 0.5 deg to the right on every target, plus a saccade sample outside the windows
    parts = [_gaze_at((tx + 0.5 * ppd_x, ty), i * 2.0, 2.0) for i, (tx, ty) in enumerate(targets)]
    res = calibration_accuracy(np.concatenate(parts), targets, windows, display, warn_deg=1.0)
    assert res.offsets_deg == pytest.approx(np.full(len(targets), 0.5), abs=1e-6)
    assert res.ok and "0.50°" in res.summary()
    parts[2] = _gaze_at((targets[2][0], targets[2][1] + 4 * ppd_y), 4.0, 2.0)  # one target 4 deg off
    res = calibration_accuracy(np.concatenate(parts), targets, windows, display, warn_deg=1.0)
    assert (
        res.max_deg == pytest.approx(4.0)
        and res.mean_deg == pytest.approx(1.2)
        and not res.ok
        and "recalibrate" in res.summary()
    )
    blink = [_gaze_at(t, i * 2.0, 2.0, valid=False) for i, t in enumerate(targets)]
    res = calibration_accuracy(np.concatenate(blink), targets, windows, display)
    assert np.isnan(res.mean_deg) and not res.ok


def test_dialog_walks_the_targets(qtbot):
    display = DisplayGeometry(800, 600, 800 * 0.25, 600 * 0.25, 600.0)
    ppd_x, _ = geometry.ppd_screen(display)
    clock = {"t": 10.0}
    check = CalibrationCheck(display, lambda: None, lambda: clock["t"], target_dur_s=1.0, settle_s=0.3)
    targets = check.targets
    shown = []

    def pull():
        i = check.index
        if not 0 <= i < len(targets):
            return np.zeros(0, GAZE_DTYPE)
        g = _gaze_at((targets[i][0] + 2 * ppd_x, targets[i][1]), clock["t"] - 0.05, 0.05)
        clock["t"] += 0.05
        shown.append(i)
        return g

    check.pull_gaze = pull
    qtbot.addWidget(check)
    check.resize(800, 600)
    check.show()
    with qtbot.waitSignal(check.finished, timeout=10_000) as blocker:
        check.start()
    res = blocker.args[0]
    assert sorted(set(shown)) == list(range(len(targets)))
    assert res.mean_deg == pytest.approx(2.0, abs=0.05) and not res.ok
