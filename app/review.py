"""``radgaze review RUN_DIR SESSIONS``: the model's attention next to the radiologist's, with agreement metrics.

Two image panes over the same image (each its own :class:`radgaze.app.state.ViewerState`, zoom/pan/window linked):
the radiologist's heatmap of the selected sentence on the left, the model's attention for the same sentence
(or for any text typed in) on the right. Below, every sentence of every case with CC, NSS, KLD, SIM, AUC-Judd
(:mod:`radgaze.model.agreement`) and the disagreement (1 - CC), sorted most-disagreeing first (click a header to sort by
another column), and a per-case table. Both panes show one view (every zoom, pan and fit mirrored exactly) and
both maps on the same footing (scaled from their median to their maximum, the lower half transparent, a colour bar each). Export the
sentence table as CSV (sentences numbered as the table shows them, a mean row last) and the figure
(reader | model | metrics) drawn with matplotlib as PNG, SVG or PDF (:mod:`radgaze.app.review_figure`).
"Retrain…" opens :class:`radgaze.app.retrain.RetrainDialog`; when a retrain finishes its checkpoint is loaded and the
metrics are recomputed.

The model runs on one worker thread (loading, the metrics of all cases, typed-text queries); the UI thread
only draws what the worker hands back.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.annotation_overlay import AnnotationOverlay
from radgaze.app.image_view import ImageView
from radgaze.app.panels import ViewControls
from radgaze.app.qtapp import restore_window_geometry, save_window_geometry
from radgaze.app.retrain import RetrainDialog, resolve_checkpoint
from radgaze.app.review_figure import FigurePanels
from radgaze.app.second_look import ReviewSecondLook
from radgaze.app.shortcuts import install_viewing_keys
from radgaze.app.state import ViewerState
from radgaze.capture.base.errors import ImageLoadError, RadgazeError, SessionFormatError
from radgaze.capture.base.records import CaseRecord
from radgaze.capture.store.case_image import add_images_option, use_image_dirs
from radgaze.model.agreement import (
    METRIC_TITLES,
    METRICS,
    SentenceAgreement,
    case_rows,
    display_map,
    model_maps_on_grid,
    sentence_agreement,
    sentences_with_heatmaps,
    sort_by_disagreement,
    summarise_cases,
    write_csv,
)

COLUMNS = ("Session", "Case", "#", "Sentence", "Fix", *(METRIC_TITLES[m] for m in METRICS), "Disagreement")
CASE_COLUMNS = ("Session", "Case", "Sentences", *(METRIC_TITLES[m] for m in METRICS), "Disagreement")
COL_DISAGREEMENT = len(COLUMNS) - 1
FIGURE_MAX_IMAGE_PX = 1600  # the radiograph inside an exported figure is subsampled to this long side
COLOUR_BAR_W_PX = 46


class ColourBar(QtWidgets.QWidget):
    """The overlay's scale beside a pane: its colormap with the alpha ramp over grey, from 0 (the map's
    minimum, transparent) at the bottom to 1 (its maximum) at the top."""

    def __init__(self, state: ViewerState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setFixedWidth(COLOUR_BAR_W_PX)
        self.setToolTip("Attention as a fraction of this map's range (min–max normalised, as the other pane)")
        state.overlay_changed.connect(lambda _o: self.update())

    @property
    def colormap(self) -> str:
        return self.state.overlay.colormap if self.state.overlay is not None else "inferno"

    def paintEvent(self, _ev: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        from radgaze.app.image_view import heatmap_lut

        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor("#111"))
        fm = p.fontMetrics()
        top, bottom = fm.height(), self.height() - fm.height()
        bar = QtCore.QRect(6, top, 14, max(1, bottom - top))
        lut = heatmap_lut(self.colormap)
        opacity = 1.0  # the colormap itself, with the overlay's alpha ramp, over a mid grey
        grey = QtGui.QColor(96, 96, 96)
        for y in range(bar.height()):
            r, g, b, a = (int(x) for x in lut[int((1.0 - y / max(1, bar.height() - 1)) * (len(lut) - 1))])
            f = a / 255.0 * opacity
            colour = QtGui.QColor(
                round(grey.red() * (1 - f) + r * f),
                round(grey.green() * (1 - f) + g * f),
                round(grey.blue() * (1 - f) + b * f),
            )
            p.fillRect(bar.x(), bar.y() + y, bar.width(), 1, colour)
        p.setPen(QtGui.QColor("#ddd"))
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        for frac, label in ((1.0, "1"), (0.5, ".5"), (0.0, "0")):
            y = bar.y() + round((1.0 - frac) * (bar.height() - 1))
            p.drawText(bar.right() + 4, y + fm.ascent() // 2, label)
        p.end()


@dataclass
class ReviewCase:
    """One case with its image and the model's maps of its sentences (heatmap grid)."""

    session: Path
    record: CaseRecord
    pixels: np.ndarray
    window: tuple[float, float] | None
    model_maps: dict[int, np.ndarray]  # sentence index -> (h_hm, w_hm)
    pixels01: np.ndarray | None = None  # the image as the model sees it (io.images.windowed01)
    meta: object | None = None  # the file's ImageMeta (the corner says "uint8" for an 8-bit PNG, not uint16)


def load_case_image(
    record: CaseRecord, session: Path
) -> tuple[np.ndarray, tuple[float, float] | None, np.ndarray, object]:
    """(the pixels as stored, their default window, the image as the model sees it in training and eval, the
    file's ImageMeta)."""
    from radgaze.capture.io.images import default_window, windowed01
    from radgaze.capture.store.case_image import load_case_image

    img = load_case_image(record.image, session)  # verified: sha256, width, height
    return img.pixels, default_window(img), windowed01(img), img.meta


def compute_review(
    model, sessions: list[Path]
) -> tuple[list[ReviewCase], list[SentenceAgreement], list[str]]:
    """Every case of ``sessions`` whose image loads: the model's maps and the agreement rows. Also returns the
    problems met (unreadable sessions, missing images) as messages. Runs on the worker thread."""
    from radgaze.capture.store.reader import SessionReader

    cases, rows, problems = [], [], []
    for path in sessions:
        try:
            with SessionReader(path) as reader:
                records = list(reader.cases())
        except SessionFormatError as exc:
            problems.append(str(exc))
            continue
        for rec in records:
            idx = sentences_with_heatmaps(rec)
            if not idx:
                continue
            try:
                pixels, window, pixels01, meta = load_case_image(rec, path)
            except ImageLoadError as exc:
                problems.append(f"{path.name}/{rec.case_id}: {exc}")
                continue
            shape = rec.heatmaps.shape[1:]
            maps = model_maps_on_grid(model, pixels01, [rec.sentences.text[i] for i in idx], shape)
            cases.append(ReviewCase(path, rec, pixels, window, dict(zip(idx, maps)), pixels01, meta))
            rows.extend(case_rows(rec, maps, session=path.name))
    return cases, rows, problems


# Hit / In shapes of a sentence that names no finding, or whose gaze no reader's shape holds: not applicable
MISSING = {"ellipse_hit": "n/a", "ellipse_mass": "n/a"}


class _NumItem(QtWidgets.QTableWidgetItem):
    """A numeric cell that sorts by value (NaN sorts below every number)."""

    def __init__(self, value: float, fmt: str = "{:.3f}", missing: str = "–") -> None:
        super().__init__(missing if isinstance(value, float) and math.isnan(value) else fmt.format(value))
        self.value = -math.inf if isinstance(value, float) and math.isnan(value) else float(value)
        self.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        if isinstance(other, _NumItem):
            return self.value < other.value
        return super().__lt__(other)


class _Bridge(QtCore.QObject):
    """Carries a finished future from the worker thread to the UI thread (queued signal)."""

    finished = QtCore.Signal(object, object)  # callback, future


class ReviewWindow(QtWidgets.QMainWindow):
    """The review mode over a run directory and a folder (or file) of sessions."""

    rows_ready = QtCore.Signal(int)  # number of sentence rows after a (re)computation
    failed = QtCore.Signal(str)  # the worker raised (model missing, unreadable checkpoint, ...)

    def __init__(self, run_dir: str | Path, sessions: str | Path) -> None:
        super().__init__()
        from radgaze.capture.store.reader import list_sessions

        self.run_dir = Path(run_dir)
        self.sessions_path = Path(sessions)
        self.session_files = list_sessions(self.sessions_path)
        if not self.session_files:
            raise SessionFormatError(f"expected session files (*.h5) in {self.sessions_path}, found none")
        self.setWindowTitle(f"radgaze review — {self.run_dir.name}")
        self.model = None
        self.checkpoint: Path | None = None
        self.cases: list[ReviewCase] = []
        self.rows: list[SentenceAgreement] = []
        self.current: tuple[int, int] | None = None  # (case index, sentence index)
        self.query_text = ""
        self.shown_maps: tuple[np.ndarray | None, np.ndarray | None] = (None, None)  # raw (reader, model)
        self.shown_metrics: dict[str, float] | None = None
        self.busy = False
        self.retrain_dialog: RetrainDialog | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radgaze-review")
        self._bridge = _Bridge()
        self._bridge.finished.connect(self._deliver)
        self._linking = False

        self.reader_state = ViewerState(clock=time.monotonic)
        self.model_state = ViewerState(clock=time.monotonic)
        self.reader_view = ImageView(self.reader_state)
        self.model_view = ImageView(self.model_state)
        # the reader's ellipses on both sides: "Hit" and "In shapes" score the model against them
        self.overlays = (AnnotationOverlay(self.reader_view), AnnotationOverlay(self.model_view))
        self.second_look = ReviewSecondLook(self.reader_view)  # what the reader saw when a sentence was said
        self.controls = ViewControls(self.reader_state)  # W/L presets drive both panes (linked)
        self._link_states()
        self._build_ui()
        # the viewer's keys on the reader's pane (the model pane mirrors it): F fits both, also from the table
        self.shortcuts = install_viewing_keys(self, self.reader_state)
        self.load_model_and_compute()

    # -- construction ---------------------------------------------------------------------------------
    def _pane(
        self, title: str, view: ImageView, state: ViewerState
    ) -> tuple[QtWidgets.QWidget, QtWidgets.QLabel]:
        box = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        label = QtWidgets.QLabel(title)
        label.setStyleSheet(
            "QLabel { background: #263238; color: white; padding: 3px 6px; font-weight: bold }"
        )
        v.addWidget(label)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(view, 1)
        bar = ColourBar(state)
        row.addWidget(bar)
        v.addLayout(row, 1)
        self.colour_bars.append(bar)
        return box, label

    def _build_ui(self) -> None:
        """Toolbar, the figure (both panes and the metrics line), the tables, in a splitter."""
        self._build_toolbar()
        self._build_figure()
        self._build_tables()
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.controls)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.figure)
        split.addWidget(self.tabs)
        split.setSizes([620, 300])
        v.addWidget(split, 1)
        self.setCentralWidget(central)

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Review")
        bar.setObjectName("Review")
        bar.setMovable(False)
        self.case_box = QtWidgets.QComboBox()
        self.case_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.case_box.setMinimumContentsLength(18)
        self.case_box.currentIndexChanged.connect(lambda i: self.select(i, 0) if i >= 0 else None)
        bar.addWidget(QtWidgets.QLabel(" Case "))
        bar.addWidget(self.case_box)
        self.query_edit = QtWidgets.QLineEdit()
        self.query_edit.setPlaceholderText("type a sentence to see where the model looks, Enter")
        self.query_edit.setMinimumWidth(320)
        self.query_edit.returnPressed.connect(lambda: self.ask(self.query_edit.text()))
        bar.addWidget(QtWidgets.QLabel(" Text "))
        bar.addWidget(self.query_edit)
        bar.addSeparator()
        self.csv_action = bar.addAction("Export CSV…", self._ask_csv)
        self.fig_action = bar.addAction("Export figure…", self._ask_figure)
        self.retrain_action = bar.addAction("Retrain…", self.open_retrain)

    def _build_figure(self) -> None:
        self.figure = QtWidgets.QWidget()  # what "Export figure" saves: both panes and the metrics line
        fv = QtWidgets.QVBoxLayout(self.figure)
        fv.setContentsMargins(0, 0, 0, 0)
        fv.setSpacing(0)
        self.sentence_label = QtWidgets.QLabel("")
        self.sentence_label.setWordWrap(True)
        self.sentence_label.setStyleSheet(
            "QLabel { background: #111; color: #eee; padding: 4px 8px; font-size: 13px }"
        )
        pair = QtWidgets.QHBoxLayout()
        pair.setSpacing(2)
        self.colour_bars: list[ColourBar] = []
        left, self.reader_title = self._pane("Radiologist", self.reader_view, self.reader_state)
        right, self.model_title = self._pane("Model", self.model_view, self.model_state)
        pair.addWidget(left, 1)
        pair.addWidget(right, 1)
        self.metrics_label = QtWidgets.QLabel("")
        self.metrics_label.setStyleSheet(
            "QLabel { background: #111; color: #eee; padding: 4px 8px; font-family: monospace }"
        )
        fv.addWidget(self.sentence_label)
        fv.addLayout(pair, 1)
        fv.addWidget(self.metrics_label)

    def _build_tables(self) -> None:
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.case_table = QtWidgets.QTableWidget(0, len(CASE_COLUMNS))
        self.case_table.setHorizontalHeaderLabels(CASE_COLUMNS)
        self.case_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.case_table.verticalHeader().setVisible(False)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.table, "Sentences (most disagreeing first)")
        self.tabs.addTab(self.case_table, "Cases")

    def _link_states(self) -> None:
        """One view for both panes: every zoom, pan, fit and refit of one pane is mirrored exactly onto the
        other (same scale and offsets, fit mode carried over), as are window/level, invert and the heatmap
        style. Both canvases repaint their whole viewport, so nothing of a previous image stays behind."""
        a, b = self.reader_state, self.model_state

        def link(src: ViewerState, dst: ViewerState) -> None:
            def on_transform(t) -> None:
                if not self._linking and dst.pixels is not None and dst.image_size == src.image_size:
                    self._linking = True
                    try:
                        dst.set_transform(t)
                        dst.fitted = src.fitted  # a later resize refits both (then mirrored again)
                    finally:
                        self._linking = False

            def on_window(c: float, w: float) -> None:
                if not self._linking and dst.pixels is not None:
                    self._linking = True
                    try:
                        dst.set_window(c, w)
                    finally:
                        self._linking = False

            src.transform_changed.connect(on_transform)
            src.window_changed.connect(on_window)
            src.invert_changed.connect(dst.set_invert)

        link(a, b)
        link(b, a)
        a.overlay_changed.connect(
            lambda o: b.set_overlay_style(opacity=o.opacity, colormap=o.colormap) if o is not None else None
        )
        full = QtWidgets.QGraphicsView.ViewportUpdateMode.FullViewportUpdate
        for view in (self.reader_view, self.model_view):
            view.canvas.setViewportUpdateMode(full)

    # -- worker ---------------------------------------------------------------------------------------
    def _submit(self, fn, on_done) -> None:
        gc.collect()  # Qt garbage is freed here, on the main thread, never by a collection in the worker
        future = self._executor.submit(fn)
        future.add_done_callback(lambda f: self._bridge.finished.emit(on_done, f))

    def _deliver(self, on_done, future: Future) -> None:
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 (worker errors are shown, never lost in a thread)
            self.busy = False
            message = str(exc) if isinstance(exc, RadgazeError) else f"{type(exc).__name__}: {exc}"
            self.statusBar().showMessage(f"error: {message}")
            self.failed.emit(message)
            return
        on_done(result)

    def load_model_and_compute(self, checkpoint: str | Path | None = None) -> None:
        """(Re)load the model (``checkpoint``, else the run's current one) and recompute every metric."""
        from radgaze.model.checkpoint import load_checkpoint

        self.busy = True
        self.statusBar().showMessage("loading the model and computing the model's attention …")
        sessions = list(self.session_files)
        run_dir = self.run_dir

        def work():
            path = Path(checkpoint) if checkpoint is not None else resolve_checkpoint(run_dir)
            model = load_checkpoint(path)
            return path, model, compute_review(model, sessions)

        self._submit(work, self._on_computed)

    def _on_computed(self, result) -> None:
        self.checkpoint, self.model, (self.cases, rows, problems) = result
        self.rows, self.problems = rows, problems
        self.busy = False
        self._fill_tables()
        with QtCore.QSignalBlocker(self.case_box):
            self.case_box.clear()
            self.case_box.addItems([f"{c.session.name} / {c.record.case_id}" for c in self.cases])
        msg = f"{len(self.rows)} sentences in {len(self.cases)} cases · model {self.checkpoint}"
        if problems:
            msg += f" · {len(problems)} problem(s): {problems[0]}"
        self.statusBar().showMessage(msg)
        if self.rows:
            self.table.selectRow(0)  # the most disagreeing sentence
        elif self.cases:
            self.select(0, 0)
        self.rows_ready.emit(len(self.rows))

    # -- tables ---------------------------------------------------------------------------------------
    def _fill_tables(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            first = QtWidgets.QTableWidgetItem(row.session)
            first.setData(QtCore.Qt.ItemDataRole.UserRole, (row.session, row.case_id, row.sentence_index))
            cells = [
                first,
                QtWidgets.QTableWidgetItem(row.case_id),
                _NumItem(row.sentence_index + 1, "{:.0f}"),
                QtWidgets.QTableWidgetItem(row.text),
                _NumItem(row.n_fixations, "{:.0f}"),
                *(_NumItem(getattr(row, m), missing=MISSING.get(m, "–")) for m in METRICS),
                _NumItem(row.disagreement),
            ]
            for c, item in enumerate(cells):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortItems(COL_DISAGREEMENT, QtCore.Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.Stretch)
        summary = sort_by_disagreement(summarise_cases(self.rows))
        self.case_table.setSortingEnabled(False)
        self.case_table.setRowCount(len(summary))
        for r, cs in enumerate(summary):
            cells = [
                QtWidgets.QTableWidgetItem(cs.session),
                QtWidgets.QTableWidgetItem(cs.case_id),
                _NumItem(cs.n_sentences, "{:.0f}"),
                *(_NumItem(getattr(cs, m)) for m in METRICS),
                _NumItem(cs.disagreement),
            ]
            for c, item in enumerate(cells):
                self.case_table.setItem(r, c, item)
        self.case_table.setSortingEnabled(True)
        self.case_table.resizeColumnsToContents()

    def table_rows_in_view_order(self) -> list[SentenceAgreement]:
        """The sentence rows in the table's current (sorted) order."""
        by_key = {(r.session, r.case_id, r.sentence_index): r for r in self.rows}
        out = []
        for i in range(self.table.rowCount()):
            key = self.table.item(i, 0).data(QtCore.Qt.ItemDataRole.UserRole)
            out.append(by_key[tuple(key)])
        return out

    def _on_table_selection(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        key = self.table.item(items[0].row(), 0).data(QtCore.Qt.ItemDataRole.UserRole)
        session, case_id, sentence = key
        for ci, c in enumerate(self.cases):
            if c.session.name == session and c.record.case_id == case_id:
                self.select(ci, int(sentence))
                return

    # -- selection ------------------------------------------------------------------------------------
    def select(self, case_index: int, sentence_index: int) -> None:
        """Show sentence ``sentence_index`` of case ``case_index``: reader heatmap left, model map right."""
        if not 0 <= case_index < len(self.cases):
            return
        case = self.cases[case_index]
        rec = case.record
        if self.current is None or self.current[0] != case_index:
            for state in (self.reader_state, self.model_state):
                state.set_case(rec.case_id, case.pixels, window=case.window, meta=case.meta)
            for overlay in self.overlays:
                overlay.show(rec.annotation)
            with QtCore.QSignalBlocker(self.case_box):
                self.case_box.setCurrentIndex(case_index)
        if sentence_index not in case.model_maps:
            sentence_index = min(case.model_maps) if case.model_maps else 0
        self.current = (case_index, sentence_index)
        self.query_text = ""
        text = rec.sentences.text[sentence_index] if len(rec.sentences) else ""
        reader = rec.sentence_heatmap(sentence_index) if len(rec.sentences) else None
        model = case.model_maps.get(sentence_index)
        # both maps on the same footing: scaled from their median, so the low end of each is transparent
        self.reader_state.set_heatmap(
            None if reader is None else display_map(reader), rec.heatmap_scale, text
        )
        self.model_state.set_heatmap(None if model is None else display_map(model), rec.heatmap_scale, text)
        self.shown_maps = (reader, model)
        t_said = float(rec.sentences.t_start[sentence_index]) if len(rec.sentences) else float("nan")
        after = self.second_look.show_for(case.session, rec.case_id, t_said)
        self.sentence_label.setText(f"{rec.case_id} · sentence {sentence_index + 1}: “{text}”{after}")
        self.reader_title.setText("Radiologist — gaze heatmap of this sentence")
        self.model_title.setText("Model — attention for this sentence")
        self._show_metrics(sentence_index)

    def _show_metrics(self, sentence_index: int) -> None:
        row = next(
            (
                r
                for r in self.rows
                if self.current is not None
                and r.case_id == self.cases[self.current[0]].record.case_id
                and r.session == self.cases[self.current[0]].session.name
                and r.sentence_index == sentence_index
            ),
            None,
        )
        self.shown_metrics = {m: getattr(row, m) for m in METRICS} if row else None
        self.metrics_label.setText(
            _metrics_text(row.__dict__ if row else None, row.disagreement if row else None)
        )

    def ask(self, text: str) -> None:
        """Show the model's attention for typed ``text`` on the current image (computed on the worker)."""
        text = text.strip()
        if not text or self.model is None or self.current is None:
            return
        case_index, sentence_index = self.current
        case = self.cases[case_index]
        model, shape = self.model, case.record.heatmaps.shape[1:]

        def work():
            return model_maps_on_grid(model, case.pixels01, [text], shape)[0]

        def done(model_map: np.ndarray) -> None:
            self.query_text = text
            rec = case.record
            self.model_state.set_heatmap(display_map(model_map), rec.heatmap_scale, label=text)
            self.shown_maps = (self.shown_maps[0], model_map)
            self.model_title.setText(f"Model — attention for “{text}”")
            if rec.sentence_heatmap(sentence_index) is not None:
                m = sentence_agreement(rec, sentence_index, model_map)
                self.shown_metrics = m
                self.metrics_label.setText(
                    _metrics_text(m, 1.0 - m["cc"]) + f"   (typed text vs sentence {sentence_index + 1})"
                )

        self._submit(work, done)

    # -- export ---------------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path:
        """The sentence table (current sort order) to ``path``; the per-case table to ``<stem>_cases.csv``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(self.table_rows_in_view_order(), path)
        write_csv(sort_by_disagreement(summarise_cases(self.rows)), path.with_name(path.stem + "_cases.csv"))
        self.statusBar().showMessage(f"table written to {path}")
        return path

    def figure_panels(self) -> FigurePanels:
        """What the exported figure shows: the region both panes show now, the windowed image, both maps."""
        st = self.reader_state
        if st.pixels is None or self.current is None:
            raise ImageLoadError("no case shown: nothing to export")
        ci, si = self.current
        rec = self.cases[ci].record
        step = max(1, int(np.ceil(max(st.pixels.shape) / FIGURE_MAX_IMAGE_PX)))
        small = st.pixels[::step, ::step].astype(np.float32)
        c, w = st.window
        u8 = (np.clip((small - c) / w + 0.5, 0.0, 1.0) * 255).astype(np.uint8)
        if st.invert:
            u8 = 255 - u8
        text = rec.sentences.text[si] if len(rec.sentences) else ""
        ov = st.overlay
        return FigurePanels(
            image_u8=u8,
            image_wh=st.image_size,
            crop=st.shown_rect_img_px(),
            reader_map=self.shown_maps[0],
            model_map=self.shown_maps[1],
            scale=rec.heatmap_scale,
            title=f"{rec.case_id} · sentence {si + 1}: “{text}”",
            reader_title="Radiologist: gaze heatmap of the sentence",
            model_title="Model: attention for "
            + (f"“{self.query_text}”" if self.query_text else "the sentence"),
            metrics=self.shown_metrics,
            colormap=ov.colormap if ov is not None else "inferno",
            opacity=ov.opacity if ov is not None else 0.5,
        )

    def export_figure(self, path: str | Path) -> Path:
        """The figure (reader | model | metrics) drawn with matplotlib; the format from the suffix (.png,
        .svg, .pdf), see :mod:`radgaze.app.review_figure`."""
        from radgaze.app.review_figure import render_figure

        path = Path(path)
        try:
            render_figure(self.figure_panels(), path)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(f"could not write the figure to {path}: {exc}") from exc
        self.statusBar().showMessage(f"figure written to {path}")
        return path

    def _ask_csv(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export table", "agreement.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _ask_figure(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export figure", "review.pdf", "PDF (*.pdf);;SVG (*.svg);;PNG (*.png)"
        )
        if path:
            self.export_figure(path)

    # -- retrain --------------------------------------------------------------------------------------
    def open_retrain(self, config: str = "tiny") -> RetrainDialog:
        if self.retrain_dialog is None:
            self.retrain_dialog = RetrainDialog(self.sessions_path, self.run_dir, config=config, parent=self)
            self.retrain_dialog.panel.checkpoint_changed.connect(self.load_model_and_compute)
        self.retrain_dialog.show()
        return self.retrain_dialog

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        save_window_geometry(self, "review")
        if self.retrain_dialog is not None:
            self.retrain_dialog.panel.shutdown()
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().closeEvent(ev)


def _metrics_text(m: dict | None, disagreement: float | None) -> str:
    if m is None:
        return "no metrics for this sentence (no heatmap)"
    parts = [
        f"{METRIC_TITLES[k]} {m[k]:.3f}"
        if not math.isnan(m[k])
        else f"{METRIC_TITLES[k]} {MISSING.get(k, '–')}"
        for k in METRICS
    ]
    return "   ".join(parts) + (f"   disagreement {disagreement:.3f}" if disagreement is not None else "")


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze review",
        description="Model attention vs the radiologist's sentence heatmaps, side by side, with CC, NSS, KLD, "
        "SIM and AUC-Judd per sentence and per case, sorted by disagreement (1 - CC). The model is RUN's "
        "current checkpoint (RUN/current.json, else checkpoints/best, else checkpoints/last).",
        epilog="example: radgaze review runs/tiny sessions/ --export-csv agreement.csv --screenshot review.png",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", type=Path, help="run directory of `radgaze train` (or a checkpoint directory)")
    p.add_argument("sessions", type=Path, help="folder of session files (or one session file)")
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the window, then quit")
    p.add_argument("--export-csv", type=Path, default=None, help="write the sentence table as CSV, then quit")
    p.add_argument(
        "--export-figure",
        type=Path,
        default=None,
        help="write the figure (reader | model | metrics; .png, .svg or .pdf), then quit",
    )
    p.add_argument("--text", default=None, help="show the model's attention for this text on the first case")
    add_images_option(p)  # moved images: found by name and sha256 (radgaze.capture.store.case_image)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    use_image_dirs(args.images)
    resolve_checkpoint(args.run)  # fail early, on one line, when RUN has no checkpoint
    from radgaze.app.qtapp import ensure_qapp, run_until_closed, save_png

    app = ensure_qapp("radgaze review")
    win = ReviewWindow(args.run, args.sessions)
    restore_window_geometry(win, "review", (1500, 1000))  # fits a 1366 x 768 screen, remembered
    win.show()
    unattended = any(x is not None for x in (args.screenshot, args.export_csv, args.export_figure))
    errors: list[BaseException] = []

    def on_ready(_n: int) -> None:
        if args.text:
            win.query_edit.setText(args.text)
            win.ask(args.text)
        if unattended:
            QtCore.QTimer.singleShot(500, finish)

    def finish() -> None:
        for problem in getattr(win, "problems", []):  # unattended: what could not be reviewed, on stderr
            print(f"radgaze review: {problem}", file=sys.stderr, flush=True)
        if not win.cases and getattr(win, "problems", []):
            errors.append(SessionFormatError(f"nothing to review: {win.problems[0]}"))
        try:
            app.processEvents()
            if args.export_csv is not None:
                win.export_csv(args.export_csv)
            if args.export_figure is not None:
                win.export_figure(args.export_figure)
            if args.screenshot is not None:
                save_png(win.grab(), args.screenshot)
        except (RadgazeError, OSError) as exc:  # (an OSError escaping a Qt slot left the window open: a hang)
            errors.append(exc)
        win.close()  # the last window: run_until_closed returns

    def on_failed(message: str) -> None:
        from radgaze.capture.base.errors import CheckpointError

        errors.append(CheckpointError(message))
        win.close()

    win.rows_ready.connect(on_ready)
    win.failed.connect(on_failed)
    run_until_closed(app, [win])  # File ▸ Quit, Ctrl-Q, closing the window, Ctrl-C and SIGTERM end it
    if errors:
        raise errors[0]
    return 0
