"""The annotation panel: the REFLACX protocol's steps for one case at a time, beside an image view.

Used by ``radgaze annotate`` (closed session files) and by ``radgaze record`` (right after a case is dictated).
The panel owns the case's :class:`~radgaze.app.annotate.model.CaseAnnotator`, the shape editor on the image view
and the overlay; it does not store anything itself: each confirmed step goes to the host's ``save_step``
(and the transcript to ``save_transcript``), which stores it in a file or hands it to the recorder's writer.
Enter confirms a step; Esc or Backspace goes back; the label keys (``1``–``9``, ``0``, ``Q``–``U``) toggle
labels, the next digit is the certainty; Delete removes the selected ellipse.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.annotate.model import LABEL_KEYS, CaseAnnotator
from radgaze.app.annotate.shapes import ShapeEditor
from radgaze.app.annotation_overlay import AnnotationOverlay
from radgaze.app.shortcuts import Key, install_keys
from radgaze.capture.annotation.labels import LabelSet
from radgaze.capture.annotation.protocol import Protocol
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import (
    STEP_CHEST_BOX,
    STEP_LABELS,
    STEP_SHAPES,
    STEP_TRANSCRIPT,
    CaseAnnotation,
)

STEP_TITLES = {
    STEP_LABELS: "Labels: a key toggles a label, then 1–5 its certainty",
    STEP_SHAPES: "Ellipses: drag on the image, then a label key (and 1–5) for the selected one",
    STEP_CHEST_BOX: "Chest box: drag one box around heart and lungs",
    STEP_TRANSCRIPT: "Transcript: correct what was recognised below, then Enter",
}
STEP_NAMES = {
    STEP_LABELS: "labels",
    STEP_SHAPES: "ellipses",
    STEP_CHEST_BOX: "chest box",
    STEP_TRANSCRIPT: "transcript",
}
ANNOTATION_KEYS = (
    Key(tuple(LABEL_KEYS), "labels, in the list's order (then 1–5: the certainty, 5 = Consistent with)"),
    Key(("Return", "Enter"), "confirm this step and save it (next step, next case)"),
    Key(("Esc", "Backspace"), "back one step"),
    Key(("Delete",), "delete the selected ellipse"),
)
# save_step(case_id, annotation, step) -> what the status bar says; raises ValueError/SessionFormatError
SaveStep = Callable[[str, CaseAnnotation, str], str]
# save_transcript(case_id, recognised words shown, the text as the reader left it)
SaveTranscript = Callable[[str, list[str], str], None]


def sentence_lines(words: list[str]) -> str:
    """The words as the reader edits them: one sentence a line (a line ends after a word ending in . ? or !)."""
    lines, line = [], []
    for word in words:
        line.append(word)
        if word.endswith((".", "?", "!")):
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)] if line else lines)


class TranscriptEdit(QtWidgets.QPlainTextEdit):
    """The transcript step's editor: several lines (a six-sentence report in view at once), Enter confirms the
    step as everywhere in the protocol, Shift+Enter breaks a line (line breaks are only whitespace to the
    correction: sentences come from the punctuation)."""

    submitted = QtCore.Signal()

    def text(self) -> str:
        return self.toPlainText()

    def setText(self, text: str) -> None:  # noqa: N802 (QLineEdit's name, which the panel's callers use)
        self.setPlainText(text)

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt override)
        enter = ev.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)
        if enter and not ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(ev)


class AnnotatePanel(QtWidgets.QWidget):
    """The steps of one case; ``finished`` when its last step is confirmed and saved."""

    saved = QtCore.Signal(str, str, str)  # case_id, step, what the host said of it
    finished = QtCore.Signal(str)  # case_id

    def __init__(
        self,
        image_view,
        protocol: Protocol,
        label_set: LabelSet,
        save_step: SaveStep,
        save_transcript: SaveTranscript,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.image_view, self.protocol, self.label_set = image_view, protocol, label_set
        self.save_step, self.save_transcript = save_step, save_transcript
        self.case_id = ""
        self.words: list[str] = []  # the recognised words shown in the transcript step
        self.annotator: CaseAnnotator | None = None
        self._saved: CaseAnnotation | None = None  # the annotation as last saved
        self.overlay = AnnotationOverlay(image_view)
        self.editor = ShapeEditor(image_view, self)
        self.shortcuts: dict[str, QtGui.QShortcut] = {}
        self._build()

    # -- construction ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setMinimumWidth(340)
        lay = QtWidgets.QVBoxLayout(self)
        self.progress = QtWidgets.QLabel()
        self.progress.setStyleSheet("font-weight: bold; font-size: 13pt")
        self.step_label = QtWidgets.QLabel()
        self.step_label.setWordWrap(True)
        # room for three lines: a wrapped label in a stretching column is otherwise squeezed to one
        self.step_label.setMinimumHeight(3 * self.step_label.fontMetrics().lineSpacing() + 4)
        self.step_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.pending_label = QtWidgets.QLabel()  # a certainty awaited (for which shape), or one cancelled
        self.pending_label.setWordWrap(True)
        self.pending_label.setStyleSheet("color: #e65100; font-weight: bold")
        self.pending_label.setMinimumHeight(3 * self.pending_label.fontMetrics().lineSpacing() + 4)
        self.pending_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.labels_list = QtWidgets.QListWidget()
        self.labels_list.setToolTip("Click or press the key shown; the number after a label is its certainty")
        self.labels_list.itemClicked.connect(self._on_label_clicked)
        self.other_text = QtWidgets.QLineEdit()
        self.other_text.setPlaceholderText("Other: what is it? (Enter when done)")
        self.other_text.setToolTip("The free text of the label 'Other'")
        self.other_text.editingFinished.connect(self._on_other_text)
        self.transcript_edit = TranscriptEdit()
        self.transcript_edit.submitted.connect(self.next_step)
        self.transcript_edit.setToolTip(
            "The recognised words, one sentence a line: fix, insert, delete or merge words here; Enter saves "
            "the correction (unchanged words keep their times, the heatmaps of changed sentences are "
            "recomputed); Shift+Enter breaks a line"
        )
        scale = "  ".join(f"{c.level} {c.name}" for c in self.label_set.certainties)
        self.scale_label = QtWidgets.QLabel(f"Certainty: {scale}")
        self.scale_label.setWordWrap(True)
        self.problems_label = QtWidgets.QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #c62828")
        buttons = QtWidgets.QHBoxLayout()
        self.back_button = QtWidgets.QPushButton("Back (Esc)")
        self.back_button.setToolTip("Back one step")
        self.back_button.clicked.connect(self.back)
        self.next_button = QtWidgets.QPushButton("Next (Enter)")
        self.next_button.setToolTip("Confirm this step and save it")
        self.next_button.clicked.connect(self.next_step)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)
        for w in (self.progress, self.step_label, self.pending_label, self.labels_list, self.other_text, self.transcript_edit,
                  self.scale_label):  # fmt: skip
            lay.addWidget(w, 1 if w in (self.labels_list, self.transcript_edit) else 0)
        lay.addWidget(self.problems_label)
        lay.addLayout(buttons)

    def install_keys(self, host: QtWidgets.QWidget) -> dict[str, QtGui.QShortcut]:
        """The panel's keys as window-wide shortcuts of ``host`` (its window); returns {key: shortcut}."""
        bindings = [(Key((k,), "label"), lambda k=k: self.press(k)) for k in LABEL_KEYS]
        bindings += [(Key(("Return",), ""), self.next_step), (Key(("Enter",), ""), self.next_step)]
        bindings += [(Key(("Esc",), ""), self.back), (Key(("Backspace",), ""), self.back)]
        bindings += [(Key(("Delete",), ""), self.delete_selected)]
        self.shortcuts = install_keys(host, bindings)
        return self.shortcuts

    # -- cases ----------------------------------------------------------------------------------------
    def open_case(
        self,
        case_id: str,
        width_px: int,
        height_px: int,
        words: list[str],
        annotation: CaseAnnotation | None = None,
        progress: str = "",
    ) -> None:
        """Start the protocol on a case (``annotation``: what was saved before, to go on from there)."""
        self.case_id, self.words, self._progress = case_id, list(words), progress
        self.annotator = CaseAnnotator(self.protocol, self.label_set, width_px, height_px)
        if annotation is not None:
            self.annotator.annotation = annotation
        self._saved = copy.deepcopy(self.annotator.annotation)  # what the file holds: quitting loses nothing
        self.transcript_edit.setText(sentence_lines(self.words))
        self.refresh()

    def unsaved_work(self) -> str:
        """One sentence naming the open step's unconfirmed work ("" when nothing would be lost by quitting)."""
        a = self.annotator
        if a is None or a.finished:
            return ""
        typed = a.step == STEP_TRANSCRIPT and self.transcript_edit.text().split() != self.words
        if a.annotation == self._saved and not typed:
            return ""
        step = STEP_NAMES.get(a.step, a.step).replace("ellipses", f"{self.protocol.shape}s")
        return f"{self.case_id}: the {step} step is not confirmed (Enter); what was done in it is not saved."

    def close_case(self, title: str, message: str) -> None:
        """No case: the panel says ``title`` and ``message`` (all done, waiting for a dictation…)."""
        self.annotator, self.case_id = None, ""
        self.progress.setText(title)
        self.step_label.setText(message)
        self.refresh()

    def set_words(self, words: list[str]) -> None:
        """The case's recognised words as stored (the recorder's last words came after the panel opened);
        the transcript field follows unless the reader has edited it already."""
        if self.transcript_edit.text().split() == self.words:
            self.transcript_edit.setText(sentence_lines(words))
        self.words = list(words)

    # -- actions --------------------------------------------------------------------------------------
    def press(self, key: str) -> None:
        if self.annotator is not None and self.annotator.press(key):
            self.refresh()

    def next_step(self) -> None:
        a = self.annotator
        if a is None:
            return
        self._on_other_text()
        step = a.confirm()
        if step is None:
            self.refresh()
            return
        case_id = self.case_id
        try:
            if step == STEP_TRANSCRIPT:
                self.save_transcript(case_id, self.words, self.transcript_edit.text())
            said = self.save_step(case_id, a.annotation, step)
        except (ValueError, SessionFormatError) as exc:
            self.window().statusBar().showMessage(f"not saved: {exc}")
            a.back()
            self.refresh()
            return
        self._saved = copy.deepcopy(a.annotation)
        self.saved.emit(case_id, step, said)
        if a.finished:
            self.finished.emit(case_id)
        else:
            self.refresh()

    def back(self) -> None:
        if self.annotator is not None:
            self.annotator.back()
            self.refresh()

    def delete_selected(self) -> None:
        if self.annotator is not None and self.annotator.delete_selected():
            self.refresh()

    def _on_label_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        self.press(LABEL_KEYS[self.labels_list.row(item)])
        self.image_view.setFocus()

    def _on_other_text(self) -> None:
        if self.annotator is not None:
            self.annotator.set_text("Other", self.other_text.text().strip())

    # -- state -> widgets -----------------------------------------------------------------------------
    def refresh(self) -> None:
        a = self.annotator
        shapes_step = a is not None and a.step == STEP_SHAPES  # the selection only means something there
        self.overlay.show(None if a is None else a.annotation, selected=a.selected if shapes_step else None)
        self.labels_list.clear()
        self.next_button.setEnabled(a is not None)
        self.back_button.setEnabled(a is not None and a.step_index > 0)
        self.transcript_edit.setVisible(a is not None and a.step == STEP_TRANSCRIPT)
        self.labels_list.setVisible(a is None or a.step != STEP_TRANSCRIPT)  # the report gets the room
        self.other_text.setVisible(a is not None and a.step == STEP_LABELS)
        self.pending_label.setText("" if a is None else a.notice)
        self.pending_label.setVisible(bool(self.pending_label.text()))
        if a is None:
            self.problems_label.setText("")
            return
        self.progress.setText(f"{self._progress} · step {a.step_index + 1}/{len(a.steps)}".lstrip(" ·"))
        self.step_label.setText(STEP_TITLES.get(a.step, a.step))
        if a.step == STEP_TRANSCRIPT:
            self.transcript_edit.setFocus()  # type straight away; Enter saves
        elif self.transcript_edit.hasFocus():
            self.image_view.setFocus()
        self._fill_labels(a)
        problems = a.problems()
        self.problems_label.setText("\n".join(problems[:4]))

    def _fill_labels(self, a: CaseAnnotator) -> None:
        chosen = {c.label: c for c in a.annotation.labels}
        shape = a.annotation.shapes[a.selected] if a.step == STEP_SHAPES and a.selected is not None else None
        for key, spec in zip(LABEL_KEYS, self.label_set.labels):
            c = chosen.get(spec.name)
            mark = "■" if c else "□"
            if shape is not None:
                mark = "●" if spec.name in shape.labels else ("○" if c else " ")
            level = f"  {c.certainty}/5" if c and c.certainty else ("  ?/5" if c else "")
            row = QtWidgets.QListWidgetItem(f"{key}  {mark} {spec.name}{level}")
            if a.step == STEP_SHAPES and not c:
                row.setForeground(QtCore.Qt.GlobalColor.gray)
            self.labels_list.addItem(row)
