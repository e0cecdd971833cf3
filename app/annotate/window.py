"""``radgaze annotate SESSION.h5…``: the REFLACX protocol after dictation, case after case, keyboard first.

Steps per case (the protocol file says which): labels (with a certainty each) → ellipses tied to labels → chest box →
transcript check → next case. Enter confirms a step (and saves it: one annotation revision in the session file,
so a crash keeps every step confirmed); Esc or Backspace goes back. Left-drag draws on the image (an ellipse in
the shapes step, the box in the chest step); dragging a shape moves it, dragging its corner resizes it; Delete
removes the selected one. The viewer's own keys stay, but ``1`` and ``0`` are label keys here (1:1 and the
file's window are on the toolbar).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from radgaze.app.annotate.model import LABEL_KEYS, CaseAnnotator
from radgaze.app.annotate.shapes import ShapeEditor
from radgaze.app.annotation_overlay import AnnotationOverlay
from radgaze.app.image_view import ImageView
from radgaze.app.panels import ViewControls
from radgaze.app.shortcuts import Key, install_keys, install_viewing_keys
from radgaze.app.state import ViewerState
from radgaze.capture.annotation.labels import LabelSet, load_label_set
from radgaze.capture.annotation.protocol import Protocol, load_protocol
from radgaze.capture.errors import SessionFormatError
from radgaze.capture.records import STEP_CHEST_BOX, STEP_LABELS, STEP_SHAPES, STEP_TRANSCRIPT
from radgaze.capture.store.session_file import annotate_session_file

STEP_TITLES = {
    STEP_LABELS: "Labels: a key toggles a label, then 1–5 its certainty",
    STEP_SHAPES: "Ellipses: drag on the image, then a label key (and 1–5) for the selected one",
    STEP_CHEST_BOX: "Chest box: drag one box around heart and lungs",
    STEP_TRANSCRIPT: "Transcript: correct what was recognised below, then Enter",
}
ANNOTATION_KEYS = (
    Key(tuple(LABEL_KEYS), "labels, in the list's order (then 1–5: the certainty, 5 = Consistent with)"),
    Key(("Return", "Enter"), "confirm this step and save it (next step, next case)"),
    Key(("Esc", "Backspace"), "back one step"),
    Key(("Delete",), "delete the selected ellipse"),
)


@dataclass
class WorkItem:
    session: Path
    case_id: str


class AnnotateWindow(QtWidgets.QMainWindow):
    """Annotate every case of the given sessions in turn; each confirmed step is saved at once."""

    saved = QtCore.Signal(str, str, int)  # case_id, step, revision

    def __init__(self, work: list[WorkItem], protocol: Protocol, label_set: LabelSet) -> None:
        super().__init__()
        self.work, self.protocol, self.label_set = work, protocol, label_set
        self.index = -1
        self.annotator: CaseAnnotator | None = None
        self.corrections: list[tuple[str, int, list[int]]] = []  # (case, edits, sentences recomputed)
        self.state = ViewerState()
        self.image_view = ImageView(self.state)
        self.overlay = AnnotationOverlay(self.image_view)
        self.editor = ShapeEditor(self.image_view, self)
        self._build_panel()
        central = QtWidgets.QSplitter()
        left = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(ViewControls(self.state))
        col.addWidget(self.image_view, 1)
        central.addWidget(left)
        central.addWidget(self.panel)
        central.setStretchFactor(0, 1)
        self.setCentralWidget(central)
        self._install_keys()
        self.open_case(0)

    # -- construction ---------------------------------------------------------------------------------
    def _build_panel(self) -> None:
        self.panel = QtWidgets.QWidget()
        self.panel.setMinimumWidth(340)
        lay = QtWidgets.QVBoxLayout(self.panel)
        self.progress = QtWidgets.QLabel()
        self.progress.setStyleSheet("font-weight: bold; font-size: 13pt")
        self.step_label = QtWidgets.QLabel()
        self.step_label.setWordWrap(True)
        # room for three lines: a wrapped label in a stretching column is otherwise squeezed to one
        self.step_label.setMinimumHeight(3 * self.step_label.fontMetrics().lineSpacing() + 4)
        self.step_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.labels_list = QtWidgets.QListWidget()
        self.labels_list.setToolTip("Click or press the key shown; the number after a label is its certainty")
        self.labels_list.itemClicked.connect(self._on_label_clicked)
        self.other_text = QtWidgets.QLineEdit()
        self.other_text.setPlaceholderText("Other: what is it? (Enter when done)")
        self.other_text.setToolTip("The free text of the label 'Other'")
        self.other_text.editingFinished.connect(self._on_other_text)
        self.transcript_edit = QtWidgets.QLineEdit()
        self.transcript_edit.setToolTip(
            "The recognised words: fix, insert, delete or merge words here; Enter saves the correction "
            "(unchanged words keep their times, the heatmaps of changed sentences are recomputed)"
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
        for w in (self.progress, self.step_label, self.labels_list, self.other_text, self.transcript_edit,
                  self.scale_label):  # fmt: skip
            lay.addWidget(w, 1 if w is self.labels_list else 0)
        lay.addWidget(self.problems_label)
        lay.addLayout(buttons)

    def _install_keys(self) -> None:
        viewing = install_viewing_keys(self, self.state, extra=ANNOTATION_KEYS)
        for clash in ("1", "0"):  # label keys here; 1:1 and the file's window stay on the toolbar
            viewing[clash].setEnabled(False)
        bindings = [(Key((k,), "label"), lambda k=k: self.press(k)) for k in LABEL_KEYS]
        bindings += [(Key(("Return",), ""), self.next_step), (Key(("Enter",), ""), self.next_step)]
        bindings += [(Key(("Esc",), ""), self.back), (Key(("Backspace",), ""), self.back)]
        bindings += [(Key(("Delete",), ""), self.delete_selected)]
        self.annotation_shortcuts = install_keys(self, bindings)

    # -- cases ----------------------------------------------------------------------------------------
    def open_case(self, index: int) -> None:
        from radgaze.app.replay import load_replay_case

        self.index = index
        if index >= len(self.work):
            self.annotator = None
            self.progress.setText(f"All {len(self.work)} cases annotated")
            self.step_label.setText("Close the window (Ctrl-Q) when done.")
            self.refresh()
            return
        item = self.work[index]
        case = load_replay_case(item.session, item.case_id)
        rec = case.record
        self.annotator = CaseAnnotator(self.protocol, self.label_set, rec.image.width, rec.image.height)
        if rec.annotation is not None:  # annotated before: go on from there
            self.annotator.annotation = rec.annotation
        self.record = rec
        self.transcript_edit.setText(" ".join(rec.words.text))
        self.state.set_case(rec.case_id, case.pixels, window=case.window)
        self.setWindowTitle(f"radgaze annotate — {item.session.name} / {item.case_id}")
        self.refresh()

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
        item = self.work[self.index]
        try:
            if step == STEP_TRANSCRIPT:
                self._save_correction(item)
            revision = annotate_session_file(item.session, item.case_id, a.annotation, step=step)
        except (ValueError, SessionFormatError) as exc:
            self.statusBar().showMessage(f"not saved: {exc}")
            a.back()
            self.refresh()
            return
        self.statusBar().showMessage(f"{item.case_id}: {step} saved (revision {revision})")
        self.saved.emit(item.case_id, step, revision)
        if a.finished:
            self.open_case(self.index + 1)
        else:
            self.refresh()

    def _save_correction(self, item: WorkItem) -> None:
        """The transcript as the reader left it: stored as a correction when it differs from the recognised."""
        from radgaze.capture.gazemath.correction import correct_case, edits_from_text
        from radgaze.capture.store.session_file import correct_session_file

        rec = self.record
        shown = rec.words.text
        edits = edits_from_text(shown, self.transcript_edit.text())
        if not edits:
            return
        corrected = correct_case(rec, edits)
        correct_session_file(item.session, corrected)
        self.record = corrected
        self.corrections.append((item.case_id, len(edits), list(corrected.correction.recomputed)))

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
        self.overlay.show(None if a is None else a.annotation, selected=None if a is None else a.selected)
        self.labels_list.clear()
        self.next_button.setEnabled(a is not None)
        self.back_button.setEnabled(a is not None and a.step_index > 0)
        if a is None:
            self.problems_label.setText("")
            return
        self.progress.setText(
            f"Case {self.index + 1} of {len(self.work)} · step {a.step_index + 1}/{len(a.steps)}"
        )
        self.step_label.setText(STEP_TITLES.get(a.step, a.step))
        self.transcript_edit.setVisible(a.step == STEP_TRANSCRIPT)
        self.other_text.setVisible(a.step == STEP_LABELS)
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze annotate",
        description="Annotate recorded cases as REFLACX's readers did: labels with a certainty, an ellipse per "
        "finding tied to its labels, one chest box, a transcript check. Every confirmed step is saved in the "
        "session file at once (radgaze inspect shows it; replay and review draw it).",
        epilog="example: radgaze annotate sessions/reader1/*.h5",
    )
    p.add_argument("sessions", nargs="+", type=Path, help="session files")
    p.add_argument("--protocol", type=Path, help="protocol TOML (default: REFLACX's, assets/annotation)")
    p.add_argument("--labels", type=Path, help="label set TOML (default: REFLACX's 17 labels)")
    p.add_argument("--screenshot", type=Path, help="save a PNG of the window on the first case, then quit")
    return p


def main(argv: list[str] | None = None) -> int:
    from radgaze.app.qtapp import ensure_qapp, restore_window_geometry, run_until_closed
    from radgaze.app.replay import case_ids_of

    args = _parser().parse_args(argv)
    work = []
    for path in args.sessions:
        if not path.is_file():
            raise SessionFormatError(f"expected a session file, got {str(path)!r} (not a file)")
        work += [WorkItem(path, cid) for cid in case_ids_of(path)]
    app = ensure_qapp("radgaze annotate")
    win = AnnotateWindow(work, load_protocol(args.protocol), load_label_set(args.labels))
    restore_window_geometry(win, "annotate", (1340, 740))
    win.show()
    if args.screenshot is not None:

        def shoot() -> None:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            win.grab().save(str(args.screenshot))
            win.close()

        QtCore.QTimer.singleShot(300, shoot)
    run_until_closed(app, [win])
    return 0
