"""The second look at sign-off in the record window: the reader's own misses drawn on the image before the case
is signed (issue 22; the maths is :mod:`radgaze.capture.gazemath.second_look`).

When the reader presses Space to end a case's dictation and the case's arm is "on", the case keeps recording
and the overlay is drawn: places dwelt on (≥ 1 s) but never looked at while dictating circled in orange, the
parts of the lung fields never within the useful field of view shaded blue (zones named in the status line),
and — with a model's attention map — high-attention places never viewed shaded magenta. H shows/hides it;
Enter (or Space) signs off and the annotation steps follow. Whatever the reader looks at or dictates meanwhile
belongs to the case, after ``t_space_lsl`` in the file. In the "off" arm the overlay is computed and stored
(what would have been shown) but not drawn, and Space ends the dictation at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.shortcuts import Key, install_keys
from radgaze.capture.gazemath.second_look import SecondLook, SecondLookLog, SecondLookParams, second_look_arm

DWELL_COLOUR = QtGui.QColor(255, 145, 0)  # orange circles: "you dwelt here"
UNVIEWED_RGBA = (41, 121, 255, 95)  # translucent blue: "never in your useful field of view"
MODEL_RGBA = (224, 64, 251, 110)  # translucent magenta: "the model looked, you didn't"
CAPTION_PT = 11
TOGGLE_KEY = "H"
FAST_POLL_MS = 5  # while the overlay is being computed the capture events are polled this often (else 33 ms)
# the record window's keys off while the second look is up (a change of image would lose the case)
HELD_KEYS = ("N", "P", "PgDown", "PgUp")
SECOND_LOOK_KEYS = [
    Key((TOGGLE_KEY,), "second look: show/hide the overlay"),
    Key(("Return", "Enter"), "second look: sign off (the annotation steps follow)"),
]


def mask_image(mask: np.ndarray, rgba: tuple[int, int, int, int]) -> QtGui.QImage:
    """An RGBA QImage of a boolean mask: ``rgba`` where set, transparent elsewhere (the QImage owns its data)."""
    h, w = mask.shape
    buf = np.zeros((h, w, 4), np.uint8)
    buf[mask] = rgba
    img = QtGui.QImage(buf.data, w, h, 4 * w, QtGui.QImage.Format.Format_RGBA8888)
    return img.copy()


class SecondLookOverlay:
    """The graphics items of one second look on an ImageView (image px: they follow zoom and pan)."""

    def __init__(self, image_view) -> None:
        self.image_view = image_view
        self.items: list[QtWidgets.QGraphicsItem] = []
        self.captions: list[str] = []
        self.shown: SecondLook | None = None

    def show(self, sl: SecondLook | None) -> None:
        """Draw ``sl`` (None: nothing)."""
        self.clear()
        self.shown = sl
        if sl is None:
            return
        for mask, rgba, z in ((sl.unviewed, UNVIEWED_RGBA, 14.0), (sl.model, MODEL_RGBA, 14.5)):
            if mask is not None and mask.any():
                item = QtWidgets.QGraphicsPixmapItem(QtGui.QPixmap.fromImage(mask_image(mask, rgba)))
                item.setScale(sl.grid_scale)
                self._add(item, z)
        for zone in sl.zones_not_viewed:
            self._caption_at_zone(sl, zone)
        if sl.model is not None and sl.model.any():
            rows, cols = np.nonzero(sl.model)
            x, y = float(cols.min()) * sl.grid_scale, float(rows.max() + 1) * sl.grid_scale
            self._caption("model attended, not viewed", x, y, QtGui.QColor(*MODEL_RGBA[:3]))
        for c in sl.clusters:
            r = c.radius_px
            item = QtWidgets.QGraphicsEllipseItem(QtCore.QRectF(c.x_img_px - r, c.y_img_px - r, 2 * r, 2 * r))
            pen = QtGui.QPen(DWELL_COLOUR, 3)
            pen.setCosmetic(True)
            item.setPen(pen)
            self._add(item, 18.0)
            self._caption(
                f"dwelt {c.dwell_s:.1f} s, not dictated", c.x_img_px - r, c.y_img_px + r, DWELL_COLOUR
            )

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for item in self.items:
            item.setVisible(visible)

    @property
    def visible(self) -> bool:
        return self._visible

    _visible = True

    def clear(self) -> None:
        for item in self.items:
            if item.scene() is not None:
                item.scene().removeItem(item)
        self.items, self.captions, self.shown = [], [], None

    def _caption_at_zone(self, sl: SecondLook, zone: str) -> None:
        x, y = _zone_anchor(sl, zone)
        self._caption(f"{zone} zone not viewed", x, y, QtGui.QColor(*UNVIEWED_RGBA[:3]))

    def _caption(self, text: str, x: float, y: float, colour: QtGui.QColor) -> None:
        item = QtWidgets.QGraphicsSimpleTextItem(text)
        font = item.font()
        font.setPointSize(CAPTION_PT)
        font.setBold(True)
        item.setFont(font)
        item.setBrush(QtGui.QBrush(QtGui.QColor(255, 255, 255)))
        outline = QtGui.QPen(QtGui.QColor(0, 0, 0), 1)
        item.setPen(outline)
        item.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        item.setPos(x, y)
        self._add(item, 19.0)
        self.captions.append(text)
        del colour  # the caption is white on a black outline: readable on film and overlay alike

    def _add(self, item: QtWidgets.QGraphicsItem, z: float) -> None:
        self.image_view.add_image_item(item, z=z)
        self.items.append(item)


def _zone_anchor(sl: SecondLook, zone: str) -> tuple[float, float]:
    """Image px where a zone's caption goes: the centre of the shaded cells on that zone's side of the image
    (the patient's right is on the image's left), else of all shaded cells, else the image's top left."""
    rows, cols = np.nonzero(sl.unviewed)
    if rows.size == 0:
        return 0.0, 0.0
    mid = sl.unviewed.shape[1] / 2
    keep = cols < mid if zone.startswith("right") else cols >= mid
    if keep.any():
        rows, cols = rows[keep], cols[keep]
    return float(cols.min()) * sl.grid_scale, float(np.mean(rows)) * sl.grid_scale


class SecondLookFlow(QtCore.QObject):
    """Space at the end of a dictation: the overlay (arm "on") until Enter, then the case is stopped."""

    ready = QtCore.Signal(object)  # SecondLook drawn

    def __init__(
        self,
        window,
        controller,
        pipeline,
        *,
        mode: str = "on",
        seed: int = 0,
        params: SecondLookParams | None = None,
        attention_for: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    ) -> None:
        super().__init__(window)
        self.window, self.controller, self.pipeline = window, controller, pipeline
        self.mode, self.seed, self.params = mode, int(seed), params or SecondLookParams()
        # (image pixels, the case's sentences) -> a model's attention over the image (None: no model)
        self.attention_for = attention_for
        self.case_id: str | None = None  # the case whose overlay is up
        self.overlay = SecondLookOverlay(window.image_view)
        self.arms: dict[str, bool] = {}  # case_id -> shown, as drawn
        self.latency_s: list[float] = []  # Space -> overlay drawn (bench)
        self._t_space_perf = float("nan")
        self._hidden = False  # H: the reader hid the overlay (a later version stays hidden)
        self._fast_poll = QtCore.QTimer(self)  # picks the overlay up as soon as the worker has it
        self._fast_poll.setInterval(FAST_POLL_MS)
        self._fast_poll.timeout.connect(controller.poll)
        self.shortcuts = install_keys(window, [(SECOND_LOOK_KEYS[0], self.toggle)])
        self.shortcuts.update(install_keys(window, [(SECOND_LOOK_KEYS[1], self.sign_off)]))
        controller.sign_off = self._on_space
        controller.capture_event.connect(self._on_capture_event)
        self._set_active(False)

    @property
    def active(self) -> bool:
        return self.case_id is not None

    def _on_space(self) -> bool:
        """The controller's sign-off hook: True keeps the case recording (the overlay is up)."""
        if self.active:
            self._close()
            return False  # Space during the second look signs off, as Enter does
        if not self.controller.recorded_ids or self.window.loaded is None:
            return False
        case_id = self.controller.recorded_ids[-1]
        shown = second_look_arm(self.mode, self.seed, case_id)
        self.arms[case_id] = shown
        log = SecondLookLog(case_id, shown, self.mode, self.seed, self.pipeline.clock())
        loaded = self.window.loaded
        texts = [s.text for s in self.controller.sentences] or ["the chest radiograph."]
        attention = None
        if self.attention_for is not None:  # evaluated by the capture worker, off the UI thread
            attention = lambda pixels=loaded.pixels, texts=texts: self.attention_for(pixels, texts)  # noqa: E731
        self._t_space_perf = time.perf_counter()
        annotation = getattr(loaded.record, "annotation", None)  # a recorded case read again: its chest box
        chest_box = getattr(annotation, "chest_box", None)
        self.pipeline.begin_second_look(
            log, pixels=loaded.pixels, attention=attention, params=self.params, chest_box=chest_box
        )
        if not shown:
            return False
        self.case_id, self._hidden = case_id, False
        self._fast_poll.start()
        self._set_active(True)
        self.window.state.set_heatmap(None)  # the film and the overlay, not the last sentence's heatmap
        self.window.reading.set_recording(True, f"second look {case_id}: H hides/shows, Enter signs off")
        self.window.statusBar().showMessage(f"{case_id}: second look…")
        return True

    def toggle(self) -> None:
        if not self.active:
            return
        self._hidden = not self._hidden
        visible = not self._hidden
        self.overlay.set_visible(visible)
        self.pipeline.second_look_event(self.case_id, self.pipeline.clock(), "shown" if visible else "hidden")

    def sign_off(self) -> None:
        """Enter: the overlay goes, the case stops (the annotation steps follow)."""
        if self.active:
            self._close()
            self.controller.stop()

    def _close(self) -> None:
        self._fast_poll.stop()
        self.pipeline.second_look_event(self.case_id, self.pipeline.clock(), "signed_off")
        self.overlay.clear()
        self.case_id = None
        self._set_active(False)

    def _set_active(self, on: bool) -> None:
        from radgaze.app.annotate.record_flow import hold_case_navigation

        for sc in self.shortcuts.values():
            sc.setEnabled(on)
        hold_case_navigation(self.window, HELD_KEYS, on)

    def _on_capture_event(self, kind: str, payload) -> None:
        if kind != "second_look":
            return
        case_id, sl, version = payload
        if case_id != self.case_id:
            return  # the off arm (computed, never drawn) or a case already signed off
        self._fast_poll.stop()
        if isinstance(sl, str):  # the worker could not compute it: said; Enter still signs off
            self.window.statusBar().showMessage(f"{case_id}: {sl} (Enter signs off)")
            return
        self.overlay.show(sl)
        self.overlay.set_visible(not self._hidden)
        if version == 0:
            self.latency_s.append(time.perf_counter() - self._t_space_perf)
            self.pipeline.second_look_event(case_id, self.pipeline.clock(), "shown")
        self.window.statusBar().showMessage(f"Second look — {sl.status_line()}  (H hides, Enter signs off)")
        self.ready.emit(sl)


class ReplaySecondLook:
    """Replay's view of a session's second looks: what the reader had on screen at each moment."""

    def __init__(self, image_view, session_path) -> None:
        from radgaze.capture.store.second_look import read_second_looks

        self.overlay = SecondLookOverlay(image_view)
        self.stored = read_second_looks(session_path)  # {case_id: stored dict}; small (masks on a 128 grid)
        self._drawn: tuple[str, float] | None = None  # (case, version time) on screen

    def show_at(self, case_id: str, t_lsl: float) -> SecondLook | None:
        """Draw what case ``case_id``'s reader saw at ``t_lsl`` (nothing before Space, after sign-off, while
        hidden, or in the control arm)."""
        from radgaze.capture.gazemath.second_look import shown_at

        stored = self.stored.get(case_id)
        sl = shown_at(stored, t_lsl) if stored is not None else None
        key = None if sl is None else (case_id, sl.t_lsl)
        if key != self._drawn:
            self.overlay.show(sl)
            self._drawn = key
        return sl


def model_attention(run_dir) -> Callable[[np.ndarray, list[str]], np.ndarray]:
    """The attention of a run's model (the rule review and eval use: radgaze.training.runs.run_checkpoint) for
    an image and the sentences dictated on it: the mean of the sentence maps, on the image's own pixels."""
    from radgaze.model.attention import attention_on_image
    from radgaze.model.checkpoint import load_checkpoint
    from radgaze.training.runs import run_checkpoint

    model = load_checkpoint(run_checkpoint(run_dir))

    def attention(pixels: np.ndarray, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return attention_on_image(model, np.asarray(pixels, np.float32), texts).mean(axis=0)

    return attention


class ReviewSecondLook:
    """Review's view of the second looks of many sessions: on selecting a sentence, the overlay the reader had
    on screen when it was spoken (a sentence dictated during the second look) and whether it came after."""

    def __init__(self, image_view) -> None:
        self.overlay = SecondLookOverlay(image_view)
        self._stored: dict = {}  # session path -> {case_id: stored dict}

    def show_for(self, session_path, case_id: str, t_lsl: float) -> str:
        """Draw what was up at ``t_lsl``; returns "" or a note for the sentence's caption."""
        from radgaze.capture.gazemath.second_look import shown_at
        from radgaze.capture.store.second_look import read_second_looks

        if not np.isfinite(t_lsl):  # a case without sentences
            self.overlay.show(None)
            return ""
        if session_path not in self._stored:
            self._stored[session_path] = read_second_looks(session_path)
        stored = self._stored[session_path].get(case_id)
        sl = shown_at(stored, t_lsl) if stored is not None else None
        if sl is not self.overlay.shown:
            self.overlay.show(sl)
        if stored is None or t_lsl < stored["t_space_lsl"]:
            return ""
        return " · after the second look" if stored["shown"] else " · after Space (second look not shown)"
