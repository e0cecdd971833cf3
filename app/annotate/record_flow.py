"""``radgaze record``'s per-case protocol: dictate → labels → ellipses → chest box → transcript → next case.

When the reader stops dictating a case (Space), the annotation panel takes the reading panel's place (a tab of
the same dock) with the protocol's steps for that case, on the image as the reader left it (zoom, pan, W/L).
Each confirmed step goes to the recorder's writer thread (:meth:`radgaze.capture.live.live_session.LiveSession.annotate`): one
annotation revision in the session file being recorded, so a ``kill -9`` keeps the dictation and every step
confirmed. After the last step the next worklist case opens and its dictation starts at once. While a case is
being annotated, Space and the worklist keys wait (the image must stay the annotated one), and ``1``/``0`` are
label keys.
"""

from __future__ import annotations

from PySide6 import QtCore

from radgaze.app.annotate.panel import AnnotatePanel
from radgaze.capture.annotation.check import annotation_problems
from radgaze.capture.annotation.labels import LabelSet
from radgaze.capture.annotation.protocol import Protocol
from radgaze.capture.base.records import STEP_DICTATE, CaseAnnotation

# the record window's keys off while a case is annotated (label keys here; a change of image); Space stays
# and says why recording waits (RecordController.hold)
HELD_KEYS = ("1", "0", "N", "P", "PgDown", "PgUp")


def hold_case_navigation(window, keys, held: bool) -> None:
    """While ``held``: the window's ``keys`` and its worklist, Previous and Next do nothing (the image must
    stay the case being signed off or annotated); released again with ``held`` False."""
    for key in keys:
        if key in window.shortcuts:
            window.shortcuts[key].setEnabled(not held)
    for w in (window.worklist_widget, window.prev_button, window.next_button):
        w.setEnabled(not held)


def protocol_annotates(protocol: Protocol) -> bool:
    """Whether the protocol has a step after the dictation (else record mode only dictates)."""
    return any(step != STEP_DICTATE for step in protocol.steps)


class RecordAnnotation(QtCore.QObject):
    """The annotation steps of each case dictated in a record window."""

    def __init__(self, window, controller, pipeline, protocol: Protocol, label_set: LabelSet) -> None:
        super().__init__(window)
        self.window, self.controller, self.pipeline = window, controller, pipeline
        self.panel = AnnotatePanel(
            window.image_view, protocol, label_set, self._save_step, self._save_transcript
        )
        self.dock = window.add_reading_tab("Annotation", self.panel)
        self.panel.install_keys(window)
        window.quit_question = self.panel.unsaved_work  # Ctrl-Q mid-step asks first (qtapp.close_confirmed)
        self.panel.close_case(
            "Annotation", "Dictate a case (Space to start and stop); its steps follow here."
        )
        self.closed: set[str] = set()  # cases whose file part is closed (their words are final)
        self.saved: list[tuple[str, str, int]] = []  # (case_id, step, revision) the writer confirmed
        self.refused: list[tuple[str, str, str]] = []
        self.corrections: list[tuple[str, int, list[int]]] = []  # (case, edits, sentences recomputed)
        pipeline.report_case_words = True
        controller.hold = self._hold
        controller.recording_changed.connect(self._on_recording_changed)
        controller.capture_event.connect(self._on_capture_event)
        self.panel.finished.connect(self._on_finished)
        self._set_annotating(False)

    @property
    def annotating(self) -> bool:
        return self.panel.annotator is not None

    # -- the flow ---------------------------------------------------------------------------------------
    def _on_recording_changed(self, recording: bool) -> None:
        if recording or not self.controller.recorded_ids or self.window.loaded is None:
            return
        case_id = self.controller.recorded_ids[-1]
        h, w = self.window.loaded.pixels.shape[:2]
        wl = self.window.worklist
        self.panel.open_case(
            case_id, int(w), int(h), self.controller.words.text,
            progress=f"Case {wl.index + 1} of {len(wl.items)}",
        )  # fmt: skip
        self._set_annotating(True)
        self.window.state.set_heatmap(None)  # the reader localises findings, not their own gaze

    def _on_finished(self, case_id: str) -> None:
        wl = self.window.worklist
        last = wl.index >= len(wl.items) - 1
        self.panel.close_case(
            f"All {len(wl.items)} cases read" if last else "Annotation",
            "Close the window (Ctrl-Q) to finish the session." if last else "",
        )
        self._set_annotating(False)
        self.window.statusBar().showMessage(f"{case_id}: annotated")
        if last:
            self.dock.raise_()  # "All N cases read" stays in view
            return
        wl.next()
        self.controller.start()  # the next case: its dictation starts at once

    def _hold(self) -> str:
        if self.annotating:
            return f"{self.panel.case_id}: finish its annotation first (Enter confirms a step)"
        return ""

    def _set_annotating(self, on: bool) -> None:
        """The panel's keys on and the clashing window keys off (and back); the worklist waits."""
        for sc in self.panel.shortcuts.values():
            sc.setEnabled(on)
        hold_case_navigation(self.window, HELD_KEYS, on)
        (self.dock if on else self.window.reading_dock).raise_()
        if on:
            self.window.image_view.setFocus()

    # -- storage: through the recorder's writer thread ---------------------------------------------------
    def _save_step(self, case_id: str, annotation: CaseAnnotation, step: str) -> str:
        a = self.panel.annotator
        problems = annotation_problems(annotation, a.width_px, a.height_px)  # what the writer would refuse
        if problems:
            raise ValueError(f"case {case_id}: annotation not stored: {problems[0]}")
        self.pipeline.annotate(case_id, annotation, step)
        return "sent to the recorder"

    def _save_transcript(self, case_id: str, shown: list[str], text: str) -> None:
        if case_id not in self.closed:
            raise ValueError(f"case {case_id}: the dictation's last words are still coming; Enter again")
        if text.split() != list(shown):
            self.pipeline.correct(case_id, text)

    def _on_capture_event(self, kind: str, payload) -> None:
        bar = self.window.statusBar()
        if kind == "case_words":
            case_id, words = payload
            self.closed.add(case_id)
            if case_id == self.panel.case_id:
                self.panel.set_words(words)
                self.window.state.set_heatmap(None)  # the case's last sentences came before its words
        elif kind == "annotation_saved":
            self.saved.append(payload)
            bar.showMessage(f"{payload[0]}: {payload[1]} saved (revision {payload[2]})")
        elif kind == "corrected":
            self.corrections.append(payload)
            bar.showMessage(f"{payload[0]}: transcript corrected ({payload[1]} edits)")
        elif kind == "case_pass" and payload[1] is not None:
            bar.showMessage(f"{payload[0]}: transcript decoded again from the whole case (the one kept)")
        elif kind == "annotation_refused":
            self.refused.append(payload)
            bar.showMessage(f"{payload[0]}: {payload[1]} NOT saved: {payload[2]}")
