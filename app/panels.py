"""Side-panel widgets shared by the modes: tracker status, live transcript, sentence list with heatmap
thumbnails, viewing controls. Each is thin: it shows what it is given and emits what the user asks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.state import WINDOW_PRESETS, ViewerState

THUMB_PX = 72  # sentence-list thumbnail side (logical px)


@dataclass(frozen=True)
class TrackerStatus:
    """What the tracker panel shows. NaN = unknown."""

    name: str = ""
    rate_hz: float = float("nan")  # measured over the last seconds
    valid_pct: float = float("nan")  # % of samples flagged valid over the last seconds
    last_drift_deg: float = float("nan")  # last calibration-check accuracy (deg)
    connected: bool = False  # samples have come
    since_last_s: float = float("nan")  # time since the newest sample
    lost: bool = False  # no sample for longer than LOST_AFTER_S
    back_after_s: float = float("nan")  # the outage just recovered from lasted this long (shown a while)
    clock_steps: int = 0  # steps of the tracker's clock this session (samples kept on a corrected timeline)
    last_clock_step_s: float = float("nan")  # the newest step (+: the stamps jumped forward)


def heatmap_thumbnail(
    image_u8: np.ndarray | None,
    heatmap: np.ndarray | None,
    side_px: int = THUMB_PX,
    colormap: str = "inferno",
) -> QtGui.QImage:
    """A small RGB picture: the (windowed, uint8) image under the heatmap; a grey cross-hatch for the empty
    marker (a sentence without fixations)."""
    h = side_px
    if heatmap is not None and heatmap.size:
        hm_h, hm_w = heatmap.shape
        w = max(1, round(side_px * hm_w / hm_h))
    elif image_u8 is not None:
        w = max(1, round(side_px * image_u8.shape[1] / image_u8.shape[0]))
    else:
        w = side_px
    base = np.zeros((h, w, 3), np.float32)
    if image_u8 is not None:
        yi = np.linspace(0, image_u8.shape[0] - 1, h).astype(int)
        xi = np.linspace(0, image_u8.shape[1] - 1, w).astype(int)
        base[:] = image_u8[np.ix_(yi, xi)][..., None] / 255.0
    if heatmap is not None and heatmap.size and heatmap.max() > 0:
        yi = np.linspace(0, heatmap.shape[0] - 1, h).astype(int)
        xi = np.linspace(0, heatmap.shape[1] - 1, w).astype(int)
        v = heatmap[np.ix_(yi, xi)] / heatmap.max()
        rgb = pg.colormap.get(colormap).map(v.reshape(-1), mode="float")[:, :3].reshape(h, w, 3)
        a = np.clip(v / 0.4, 0, 1)[..., None] * 0.75  # same alpha ramp as the main overlay, capped
        base = base * (1 - a) + rgb * a
    else:
        stripes = ((np.add.outer(np.arange(h), np.arange(w)) // 4) % 2).astype(np.float32)
        base = base * 0.5 + 0.25 * stripes[..., None]
    rgb8 = np.ascontiguousarray((base * 255).astype(np.uint8))
    return QtGui.QImage(rgb8.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


class LevelMeter(QtWidgets.QProgressBar):
    """The microphone's level in dBFS (RMS of the last audio block), green / amber / red as a mixing desk:
    red above -6 dBFS (near clipping), grey "no audio" until the first block."""

    FLOOR_DBFS = -60.0

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(round(self.FLOOR_DBFS), 0)
        self.setValue(round(self.FLOOR_DBFS))
        self.setTextVisible(True)
        self.setFormat("microphone: no audio")
        self.setMaximumHeight(18)
        self.setToolTip("Microphone level (dBFS, RMS): speak so it moves into the green; red means too loud")
        self.dbfs = float("nan")

    def set_source(self, text: str) -> None:
        """Say what feeds dictation when no microphone does (e.g. the demo's scripted words)."""
        self.setFormat(text)

    def set_level(self, dbfs: float) -> None:
        self.dbfs = float(dbfs)
        v = max(self.FLOOR_DBFS, min(0.0, self.dbfs))
        self.setValue(round(v))
        self.setFormat(f"microphone {self.dbfs:.0f} dBFS" if self.dbfs > -90 else "microphone: silence")
        colour = "#d03030" if v > -6 else "#d0a020" if v > -18 else "#30a040"
        self.setStyleSheet(f"QProgressBar::chunk {{ background: {colour} }}")


class TrackerPanel(QtWidgets.QGroupBox):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Tracker", parent)
        self.label = QtWidgets.QLabel("no tracker")
        self.label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.label.setToolTip("The eye tracker's stream: measured rate, share of valid samples, last drift")
        self.calibrate_button = QtWidgets.QPushButton("Calibration check…")
        self.calibrate_button.setToolTip(
            "Look at the targets shown full-screen; measures the tracker's drift"
        )
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.calibrate_button)
        self.status = TrackerStatus()

    def show_status(self, status: TrackerStatus, warn_deg: float) -> None:
        self.status = status

        def fmt(v: float, spec: str) -> str:
            return "–" if v != v else format(v, spec)

        drift = fmt(status.last_drift_deg, ".2f") + "°"
        if status.last_drift_deg == status.last_drift_deg and status.last_drift_deg > warn_deg:
            drift = f"<span style='color:#ff6060'>{drift} (recalibrate)</span>"
        red = "<span style='color:#ff6060'>{}</span>"
        if not status.connected:
            state = red.format("not connected")
        elif status.lost:
            state = red.format(f"lost · {status.since_last_s:.1f} s since the last sample")
        elif status.back_after_s == status.back_after_s:
            state = f"connected · back after {status.back_after_s:.1f} s lost"
        else:
            state = "connected"
        self.label.setText(
            f"<b>{status.name or 'tracker'}</b><br>{state}<br>"
            f"rate {fmt(status.rate_hz, '.0f')} Hz · valid {fmt(status.valid_pct, '.0f')} %<br>"
            f"last drift {drift}{clock_step_line(status)}"
        )


def clock_step_line(status: TrackerStatus) -> str:
    """The tracker panel's clock line (amber): how often the tracker's clock stepped and by how much; its
    samples were kept on a corrected timeline (radgaze.capture.gazemath.clock). Empty when it never did."""
    if status.clock_steps <= 0:
        return ""
    times = "once" if status.clock_steps == 1 else f"{status.clock_steps} times"
    return (
        f"<br><span style='color:#e0a030'>tracker clock stepped {times}, last {status.last_clock_step_s:+.1f} s"
        " · samples kept, times corrected</span>"
    )


class TranscriptView(QtWidgets.QPlainTextEdit):
    """Final words in black, the unconfirmed preview in grey."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.final_text = ""
        self.preview_text = ""

    def set_text(self, final_text: str, preview_text: str = "") -> None:
        if (final_text, preview_text) == (self.final_text, self.preview_text):
            return
        self.final_text, self.preview_text = final_text, preview_text
        self.document().setHtml(
            f"<span>{_escape(final_text)}</span> <span style='color:#888'>{_escape(preview_text)}</span>"
        )
        self.moveCursor(QtGui.QTextCursor.MoveOperation.End)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SentenceList(QtWidgets.QListWidget):
    """Closed sentences with a thumbnail of their heatmap; selecting one shows its heatmap on the image."""

    sentence_selected = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.setWordWrap(True)
        self.setSpacing(2)
        self.heatmaps: list[np.ndarray | None] = []
        self.currentRowChanged.connect(self._on_row)

    def add_sentence(self, text: str, heatmap: np.ndarray | None, image_u8: np.ndarray | None) -> int:
        thumb = heatmap_thumbnail(image_u8, heatmap)
        suffix = "" if heatmap is not None else "  (no fixations)"
        row = QtWidgets.QListWidgetItem(QtGui.QIcon(QtGui.QPixmap.fromImage(thumb)), text + suffix)
        self.addItem(row)
        self.heatmaps.append(heatmap)
        if heatmap is not None:  # the newest heatmap is the one shown over the image: mark it
            with QtCore.QSignalBlocker(self):
                self.setCurrentRow(self.count() - 1)
        self.scrollToBottom()
        return self.count() - 1

    def clear_sentences(self) -> None:
        with QtCore.QSignalBlocker(self):
            self.clear()
        self.heatmaps = []

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.sentence_selected.emit(row)


class ViewControls(QtWidgets.QWidget):
    """Presets, invert, fit, 1:1, gaze-cursor toggle, heatmap opacity and colormap, bound to the state."""

    COLORMAPS = ("inferno", "viridis", "turbo", "plasma")

    def __init__(self, state: ViewerState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.preset_buttons: dict[str, QtWidgets.QToolButton] = {}
        presets = [
            ("default", "Default", "0", "The file's own window: its W/L tags, else the histogram window")
        ]
        presets += [(n, p.label, p.key, p.tooltip) for n, p in WINDOW_PRESETS.items()]
        for name, label, key, tip in presets:
            b = QtWidgets.QToolButton()
            b.setText(label)
            b.setToolTip(f"{tip} ({key})" if key else tip)
            b.clicked.connect(lambda _=False, n=name: state.apply_preset(n))
            layout.addWidget(b)
            self.preset_buttons[name] = b
        self.invert = QtWidgets.QCheckBox("Invert")
        self.invert.setToolTip("Invert grey levels (I)")
        self.invert.toggled.connect(state.set_invert)
        self.fit_button = QtWidgets.QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the whole image into the window (F, or double-click)")
        self.fit_button.clicked.connect(state.fit)
        self.one_button = QtWidgets.QToolButton()
        self.one_button.setText("1:1")
        self.one_button.setToolTip("One image pixel per screen pixel (1)")
        self.one_button.clicked.connect(state.one_to_one)
        self.gaze_cursor = QtWidgets.QCheckBox("Gaze cursor")
        self.gaze_cursor.setToolTip(
            "Show where the tracker says you look (G; for set-up, hidden while reading)"
        )
        self.gaze_cursor.toggled.connect(state.set_gaze_cursor_visible)
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Heatmap opacity")
        self.opacity.valueChanged.connect(lambda v: state.set_overlay_style(opacity=v / 100.0))
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(self.COLORMAPS)
        self.colormap.setToolTip("Heatmap colour map")
        self.colormap.currentTextChanged.connect(lambda name: state.set_overlay_style(colormap=name))
        for w in (self.invert, self.fit_button, self.one_button, self.gaze_cursor):
            layout.addWidget(w)
        heat_label = QtWidgets.QLabel("Heatmap")
        heat_label.setToolTip("The sentence heatmap over the image: opacity and colour map")
        layout.addWidget(heat_label)
        layout.addWidget(self.opacity)
        layout.addWidget(self.colormap)
        layout.addStretch(1)
        state.invert_changed.connect(self._on_invert)
        state.gaze_cursor_visible_changed.connect(self._on_gaze_visible)
        state.overlay_changed.connect(self._on_overlay)

    def _on_invert(self, invert: bool) -> None:
        with QtCore.QSignalBlocker(self.invert):
            self.invert.setChecked(invert)

    def _on_gaze_visible(self, visible: bool) -> None:
        with QtCore.QSignalBlocker(self.gaze_cursor):
            self.gaze_cursor.setChecked(visible)

    def _on_overlay(self, overlay) -> None:
        if overlay is None:
            return
        with QtCore.QSignalBlocker(self.opacity), QtCore.QSignalBlocker(self.colormap):
            self.opacity.setValue(round(overlay.opacity * 100))
            self.colormap.setCurrentText(overlay.colormap)
