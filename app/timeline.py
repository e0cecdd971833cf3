"""Replay timeline: Qt-free playback clock and lookups, and the pyqtgraph timeline widget.

The lookups (word, sentence, fixation at a time; the scanpath trail) live in :mod:`radgaze.app.replay_frame`
(Qt-free, shared with the video renderer) and are re-exported here.
:class:`Playback` is the replay's clock (psygnal, Qt-free): current time, playing, speed; the window's timer
calls :meth:`Playback.advance` with wall-clock seconds. :class:`TimelineWidget` draws two linked plots over
seconds since the case start: the gaze x/y traces (image px) with fixation bars, and the word track with
sentence spans; a draggable cursor and a click anywhere seek.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from psygnal import Signal
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.replay_frame import SCANPATH_TRAIL_S as SCANPATH_TRAIL_S
from radgaze.app.replay_frame import fixation_at as fixation_at
from radgaze.app.replay_frame import sentence_at as sentence_at
from radgaze.app.replay_frame import span_at as span_at
from radgaze.app.replay_frame import trail_slice as trail_slice
from radgaze.app.replay_frame import word_at as word_at
from radgaze.capture.base.records import CaseRecord, Words

SPEEDS: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)  # issue 4: 0.25x-4x
WORD_ROWS_Y = (1.3, 0.7)  # the word labels' rows on the word track (y of the track's axis)
LABEL_GAP_PX = 4.0


def label_rows(starts_px: np.ndarray, widths_px: np.ndarray, n_rows: int = 2, gap_px: float = LABEL_GAP_PX):
    """For labels in time order starting at ``starts_px`` with ``widths_px`` (screen px): the row each goes in
    (the first whose last label ends ``gap_px`` before it starts), or -1 when none has room."""
    row_end = [-np.inf] * n_rows
    rows = []
    for start, width in zip(starts_px, widths_px, strict=True):
        row = next((r for r in range(n_rows) if row_end[r] + gap_px <= start), -1)
        if row >= 0:
            row_end[row] = start + width
        rows.append(row)
    return rows


STEP_FALLBACK_S = 0.1  # arrow step when a case has no fixations or words


def event_times(record: CaseRecord) -> np.ndarray:
    """Sorted unique times the arrow keys step between: fixation starts and word starts."""
    parts = [record.fixations["t_start"], np.asarray(record.words.t_start, dtype=np.float64)]
    return np.unique(np.concatenate([p.astype(np.float64) for p in parts]))


def step_time(events: np.ndarray, t_lsl: float, direction: int) -> float:
    """Next (direction > 0) or previous event strictly after/before ``t_lsl``; +-STEP_FALLBACK_S without one."""
    if direction > 0:
        i = int(np.searchsorted(events, t_lsl + 1e-9, side="right"))
        return float(events[i]) if i < events.size else t_lsl + STEP_FALLBACK_S
    i = int(np.searchsorted(events, t_lsl - 1e-9, side="left")) - 1
    return float(events[i]) if i >= 0 else t_lsl - STEP_FALLBACK_S


# ------------------------------------------------------------------------------------------ clock
class Playback:
    """The replay clock over [t_start, t_end] (LSL s). Qt-free; emits only on change."""

    time_changed = Signal(float)
    playing_changed = Signal(bool)
    speed_changed = Signal(float)

    def __init__(self, t_start: float = 0.0, t_end: float = 0.0) -> None:
        self.t_start, self.t_end = float(t_start), float(max(t_end, t_start))
        self.t = self.t_start
        self.playing = False
        self.speed = 1.0

    def set_range(self, t_start: float, t_end: float) -> None:
        self.t_start, self.t_end = float(t_start), float(max(t_end, t_start))
        self.set_playing(False)
        self.seek(self.t_start, force=True)

    def seek(self, t_lsl: float, *, force: bool = False) -> None:
        t = min(max(float(t_lsl), self.t_start), self.t_end)
        if t != self.t or force:
            self.t = t
            self.time_changed.emit(t)

    def set_playing(self, playing: bool) -> None:
        playing = bool(playing)
        if playing and self.t >= self.t_end:
            self.seek(self.t_start)  # play at the end starts over
        if playing != self.playing:
            self.playing = playing
            self.playing_changed.emit(playing)

    def toggle(self) -> None:
        self.set_playing(not self.playing)

    def set_speed(self, speed: float) -> None:
        if not (math.isfinite(speed) and SPEEDS[0] <= speed <= SPEEDS[-1]):
            raise ValueError(f"speed must be in [{SPEEDS[0]}, {SPEEDS[-1]}], got {speed!r}")
        if speed != self.speed:
            self.speed = float(speed)
            self.speed_changed.emit(self.speed)

    def advance(self, wall_dt_s: float) -> None:
        """Move on by ``wall_dt_s`` wall seconds times the speed (when playing); stops at the end."""
        if not self.playing:
            return
        self.seek(self.t + wall_dt_s * self.speed)
        if self.t >= self.t_end:
            self.set_playing(False)


# ------------------------------------------------------------------------------------------ widget
class _ClickViewBox(pg.ViewBox):
    clicked = QtCore.Signal(float)  # data x

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph override)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(float(self.mapSceneToView(ev.scenePos()).x()))
            ev.accept()
        else:
            super().mouseClickEvent(ev)


class TimelineWidget(pg.GraphicsLayoutWidget):
    """Gaze traces + fixation bars (top) and words + sentence spans (bottom) over seconds since case start.

    ``seek_requested`` carries an LSL time (from a click or a cursor drag)."""

    seek_requested = QtCore.Signal(float)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("#1e1e1e")
        self.t0 = 0.0
        self.gaze_box, self.words_box = _ClickViewBox(), _ClickViewBox()
        self.gaze_plot = self.addPlot(row=0, col=0, viewBox=self.gaze_box)
        self.words_plot = self.addPlot(row=1, col=0, viewBox=self.words_box)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 2)
        self.words_plot.setXLink(self.gaze_plot)
        self.gaze_plot.setLabel("left", "gaze x, y (image px)")
        # legend on its own dark box in the traces' colours, larger than the default 8 pt: readable over the
        # orange y trace
        self.gaze_plot.addLegend(
            offset=(-6, 4),
            labelTextSize="9pt",
            labelTextColor="#eeeeee",
            brush=pg.mkBrush(20, 20, 20, 220),
            pen=pg.mkPen("#888888"),
            colCount=2,
        )
        self.words_plot.setLabel("bottom", "time since case start", units="s")
        for plot in (self.gaze_plot, self.words_plot):  # same axis width: the linked x ranges line up
            plot.getAxis("left").setWidth(56)
        self.words_plot.getAxis("left").setStyle(showValues=False)
        self.words_plot.getAxis("left").setTicks([[]])
        self.words_plot.setYRange(-0.1, 2.1, padding=0)
        for p in (self.gaze_plot, self.words_plot):
            p.setMouseEnabled(x=True, y=False)
            p.showGrid(x=True, alpha=0.2)
            p.hideButtons()  # no pyqtgraph auto-range "A" button: the timeline always shows the whole case
            p.setMenuEnabled(False)
        self.words_box.setLimits(yMin=-0.2, yMax=2.2)
        self.x_curve = self.gaze_plot.plot(pen=pg.mkPen("#4fc3f7", width=2), name="gaze x")
        self.y_curve = self.gaze_plot.plot(pen=pg.mkPen("#ffb74d", width=2), name="gaze y")
        self.fix_bars: pg.BarGraphItem | None = None
        self.sentence_bars: pg.BarGraphItem | None = None
        self.word_bars: pg.BarGraphItem | None = None
        self._content: list[tuple[pg.PlotItem, QtWidgets.QGraphicsItem]] = []  # per-case items
        self.cursors = []
        for p in (self.gaze_plot, self.words_plot):
            line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ff5252", width=2))
            line.sigDragged.connect(self._on_cursor_dragged)
            p.addItem(line, ignoreBounds=True)
            self.cursors.append(line)
        self.gaze_box.clicked.connect(self._on_click)
        self.words_box.clicked.connect(self._on_click)
        self.highlight = pg.BarGraphItem(x0=[0], x1=[0], y0=[0.55], y1=[1.45], brush="#ffeb3b80", pen=None)
        self.highlight.setVisible(False)
        self.words_plot.addItem(self.highlight)
        self.setMinimumHeight(240)
        self._word_font = QtGui.QFont()
        self._word_font.setPointSizeF(8.0)
        self.words_box.sigXRangeChanged.connect(lambda *_: self.layout_words())
        self.words_box.sigResized.connect(lambda *_: self.layout_words())

    # -- content --------------------------------------------------------------------------------------
    def set_record(self, record: CaseRecord) -> None:
        """Draw a case: traces, fixation bars, words and sentence spans."""
        for plot, item in self._content:
            plot.removeItem(item)
        self._content = []
        self.t0 = record.t_start
        g = record.gaze
        if g.size:
            t = g["t_lsl"] - self.t0
            self.x_curve.setData(t, g["x_img_px"].astype(np.float64), connect="finite")
            self.y_curve.setData(t, g["y_img_px"].astype(np.float64), connect="finite")
        else:  # imported sessions: fixations only, drawn as steps at the fixation positions
            self.x_curve.setData(*_fixation_steps(record.fixations, "x_img_px", self.t0))
            self.y_curve.setData(*_fixation_steps(record.fixations, "y_img_px", self.t0))
        h_img = float(max(record.image.width, record.image.height, 1))
        fx = record.fixations
        self.fix_bars = pg.BarGraphItem(
            x0=fx["t_start"] - self.t0,
            x1=fx["t_end"] - self.t0,
            y0=np.full(fx.size, -0.06 * h_img),
            y1=np.full(fx.size, -0.01 * h_img),
            brush="#81c784",
            pen=None,
        )
        self._add(self.gaze_plot, self.fix_bars)
        self.gaze_plot.setYRange(-0.08 * h_img, h_img, padding=0.02)
        s = record.sentences
        colours = [pg.intColor(i, hues=8, alpha=90) for i in range(len(s))]
        self.sentence_bars = pg.BarGraphItem(
            x0=np.asarray(s.window_start) - self.t0,
            x1=np.asarray(s.t_end) - self.t0,
            y0=np.full(len(s), 1.6),
            y1=np.full(len(s), 2.0),
            brushes=colours,
            pen=None,
        )
        self._add(self.words_plot, self.sentence_bars)
        self._draw_words(record.words)
        for i in range(len(s)):
            item = pg.TextItem(f"S{i + 1}", color="#ffffff", anchor=(0, 0.5))
            item.setPos(float(s.window_start[i] - self.t0), 1.8)
            self._add(self.words_plot, item)
        self.gaze_plot.setXRange(0.0, max(record.duration_s, 1e-3), padding=0.01)
        self.gaze_box.setLimits(xMin=-1.0, xMax=record.duration_s + 1.0)
        self.set_time(record.t_start)
        self.layout_words()

    def _draw_words(self, w: Words) -> None:
        """The word track: a bar per word, and its label (placed by :meth:`layout_words`)."""
        self.word_bars = pg.BarGraphItem(
            x0=np.asarray(w.t_start) - self.t0,
            x1=np.asarray(w.t_end) - self.t0,
            y0=np.full(len(w), 0.6),
            y1=np.full(len(w), 1.4),
            brush="#90a4ae60",
            pen=None,
        )
        self._add(self.words_plot, self.word_bars)
        metrics = QtGui.QFontMetrics(self._word_font)
        self._word_items, self._word_t_s = [], np.asarray(w.t_start, np.float64) - self.t0
        self._word_w_px = np.array([metrics.horizontalAdvance(text) + 2.0 for text in w.text])
        for text in w.text:
            item = pg.TextItem(text, color="#e0e0e0", anchor=(0, 0.5))
            item.setFont(self._word_font)
            self._add(self.words_plot, item)
            self._word_items.append(item)

    def layout_words(self) -> None:
        """Place the word labels for the current zoom: each in the first of the rows where it does not overlap
        the label before it; a word with room in neither is not labelled (its bar stays; zoom in to read it)."""
        items = getattr(self, "_word_items", [])
        if not items:
            return
        (x0, x1), width_px = self.words_box.viewRange()[0], max(self.words_box.width(), 1.0)
        starts_px = (self._word_t_s - x0) / max(x1 - x0, 1e-9) * width_px
        (y0, y1), height_px = self.words_box.viewRange()[1], max(self.words_box.height(), 1.0)
        rows_apart_px = abs(WORD_ROWS_Y[0] - WORD_ROWS_Y[1]) / max(y1 - y0, 1e-9) * height_px
        text_px = QtGui.QFontMetrics(self._word_font).height()
        n_rows = len(WORD_ROWS_Y) if rows_apart_px >= text_px else 1  # a short track: one row, no overlap
        rows = label_rows(starts_px, self._word_w_px, n_rows=n_rows)
        for item, t_s, row in zip(items, self._word_t_s, rows, strict=True):
            item.setVisible(row >= 0)
            if row >= 0:
                item.setPos(float(t_s), WORD_ROWS_Y[row])

    def _add(self, plot: pg.PlotItem, item: QtWidgets.QGraphicsItem) -> None:
        plot.addItem(item)
        self._content.append((plot, item))

    def set_time(self, t_lsl: float) -> None:
        for line in self.cursors:
            with QtCore.QSignalBlocker(line):
                line.setValue(t_lsl - self.t0)

    def set_current_word(self, words: Words, index: int) -> None:
        if index < 0:
            self.highlight.setVisible(False)
            return
        self.highlight.setOpts(x0=[words.t_start[index] - self.t0], x1=[words.t_end[index] - self.t0])
        self.highlight.setVisible(True)

    @property
    def cursor_s(self) -> float:
        """Cursor position, seconds since the case start."""
        return float(self.cursors[0].value())

    # -- input ----------------------------------------------------------------------------------------
    def _on_click(self, x_s: float) -> None:
        self.seek_requested.emit(self.t0 + x_s)

    def _on_cursor_dragged(self, line: pg.InfiniteLine) -> None:
        self.seek_requested.emit(self.t0 + float(line.value()))

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt override)
        ev.ignore()  # arrows and space belong to the replay window's shortcuts


def _fixation_steps(fixations: np.ndarray, column: str, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, value) drawing each fixation as a flat segment, NaN-separated (for fixation-only sessions)."""
    n = fixations.size
    t = np.full(3 * n, np.nan)
    v = np.full(3 * n, np.nan)
    t[0::3], t[1::3] = fixations["t_start"] - t0, fixations["t_end"] - t0
    v[0::3] = v[1::3] = fixations[column]
    return t, v
