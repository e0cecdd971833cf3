"""Calibration check: fixate targets, measure the tracker's accuracy in degrees of visual angle, warn if off.

Not a calibration (the tracker's own software does that): a check that the calibration still holds, as
REFLACX's capture app did between cases (it warned when the drift exceeded 85 px, REFERENCE-NOTES.md).
Accuracy here is in degrees so it does not depend on the screen: the angular offset between the median gaze
over the settled part of each target's presentation and the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry

# Warn above 1 degree: a calibrated screen-based tracker is accurate to 0.5 deg or better (Tobii Pro / EyeLink
# data sheets quote 0.25-0.5 deg); beyond 1 deg the error exceeds the 1-deg heatmap sigma itself.
DRIFT_WARN_DEG = 1.0
# Targets as fractions of the screen: centre and four points at 15 % from the edges (a 5-point check, the
# common validation layout of EyeLink/Tobii validation routines).
TARGETS_FRAC = ((0.5, 0.5), (0.15, 0.15), (0.85, 0.15), (0.85, 0.85), (0.15, 0.85))
TARGET_DUR_S = 1.5  # each target is shown this long
SETTLE_S = 0.5  # the first 0.5 s (saccade + latency, ~200-300 ms saccade onset) are not used


@dataclass(frozen=True)
class CalibrationResult:
    targets_screen_px: np.ndarray  # (k, 2)
    offsets_deg: np.ndarray  # (k,) NaN where the target got no valid gaze
    mean_deg: float
    max_deg: float
    warn_deg: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.mean_deg) and self.mean_deg <= self.warn_deg)

    def summary(self) -> str:
        if not np.isfinite(self.mean_deg):
            return "calibration check: no valid gaze on the targets"
        verdict = "ok" if self.ok else f"above {self.warn_deg:g}° — recalibrate the tracker"
        return f"calibration check: mean {self.mean_deg:.2f}°, worst {self.max_deg:.2f}° ({verdict})"


def target_positions(display: DisplayGeometry, fracs=TARGETS_FRAC) -> np.ndarray:
    """(k, 2) target centres in screen px."""
    f = np.asarray(fracs, np.float64)
    return f * np.array([display.screen_w_px, display.screen_h_px], np.float64)


def calibration_accuracy(
    gaze: np.ndarray,
    targets_screen_px: np.ndarray,
    windows_t_lsl: np.ndarray,
    display: DisplayGeometry,
    warn_deg: float = DRIFT_WARN_DEG,
) -> CalibrationResult:
    """Accuracy from GAZE_DTYPE samples: for target i, the median valid gaze within ``windows_t_lsl[i]``
    (start, end) against the target, in degrees (x and y px converted with the display's ppd)."""
    from radgaze.capture.gazemath.geometry import ppd_screen

    ppd_x, ppd_y = ppd_screen(display)
    valid = (gaze["flags"] & GAZE_VALID) != 0
    offsets = np.full(len(targets_screen_px), np.nan)
    for i, ((t0, t1), (tx, ty)) in enumerate(zip(windows_t_lsl, targets_screen_px)):
        sel = valid & (gaze["t_lsl"] >= t0) & (gaze["t_lsl"] < t1)
        if np.count_nonzero(sel):
            dx = (float(np.median(gaze["x_screen_px"][sel])) - tx) / ppd_x
            dy = (float(np.median(gaze["y_screen_px"][sel])) - ty) / ppd_y
            offsets[i] = float(np.hypot(dx, dy))
    finite = offsets[np.isfinite(offsets)]
    mean = float(finite.mean()) if finite.size else float("nan")
    worst = float(finite.max()) if finite.size else float("nan")
    return CalibrationResult(np.asarray(targets_screen_px, float), offsets, mean, worst, warn_deg)


class CalibrationCheck(QtWidgets.QWidget):
    """Full-screen targets shown one after another; ``finished`` carries the CalibrationResult.

    ``pull_gaze`` returns the GAZE_DTYPE samples (screen px, LSL clock) received since the last call; it is
    polled from a timer (it must not block). Targets are drawn at their screen positions mapped into this
    widget (mapFromGlobal), so the check is right even when the widget is not exactly the full screen.
    """

    finished = QtCore.Signal(object)

    def __init__(
        self,
        display: DisplayGeometry,
        pull_gaze: Callable[[], np.ndarray],
        clock: Callable[[], float],
        *,
        warn_deg: float = DRIFT_WARN_DEG,
        target_dur_s: float = TARGET_DUR_S,
        settle_s: float = SETTLE_S,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.display, self.pull_gaze, self.clock = display, pull_gaze, clock
        self.warn_deg, self.target_dur_s, self.settle_s = warn_deg, target_dur_s, settle_s
        self.targets = target_positions(display)
        self.windows = np.zeros((len(self.targets), 2))
        self.index = -1
        self._t_shown = 0.0
        self._samples: list[np.ndarray] = []
        self.result: CalibrationResult | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(20)
        self._timer.timeout.connect(self._tick)
        self.setStyleSheet("background: #202020")

    def start(self) -> None:
        self.pull_gaze()  # discard what came before
        self.index = 0
        self._t_shown = self.clock()
        self._timer.start()
        self.update()

    def _tick(self) -> None:
        got = self.pull_gaze()
        if got is not None and len(got):
            self._samples.append(got)
        now = self.clock()
        if now - self._t_shown < self.target_dur_s:
            return
        self.windows[self.index] = (self._t_shown + self.settle_s, self._t_shown + self.target_dur_s)
        self.index += 1
        self._t_shown = now
        if self.index >= len(self.targets):
            self._timer.stop()
            gaze = np.concatenate(self._samples) if self._samples else np.zeros(0, GAZE_DTYPE)
            self.result = calibration_accuracy(gaze, self.targets, self.windows, self.display, self.warn_deg)
            self.finished.emit(self.result)
        self.update()

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor(32, 32, 32))
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        if 0 <= self.index < len(self.targets):
            dpr = self.devicePixelRatioF()
            tx, ty = self.targets[self.index] / dpr
            local = self.mapFromGlobal(QtCore.QPointF(tx, ty))
            p.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255), 2))
            p.drawEllipse(local, 12, 12)
            p.setBrush(QtGui.QColor(255, 60, 60))
            p.drawEllipse(local, 3, 3)
        elif self.result is not None:
            p.setPen(QtGui.QColor(255, 255, 255) if self.result.ok else QtGui.QColor(255, 96, 96))
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.result.summary())
        p.end()
