"""``radgaze annotate SESSION.h5…``: the REFLACX protocol after dictation, case after case, keyboard first.

Steps per case (the protocol file says which): labels (with a certainty each) → ellipses tied to labels → chest box →
transcript check → next case. Enter confirms a step (and saves it: one annotation revision in the session file,
so a crash keeps every step confirmed); Esc or Backspace goes back. Left-drag draws on the image (an ellipse in
the shapes step, the box in the chest step); dragging a shape moves it, dragging its corner resizes it; Delete
removes the selected one. The viewer's own keys stay, but ``1`` and ``0`` are label keys here (1:1 and the
file's window are on the toolbar). The panel itself is :class:`radgaze.app.annotate.panel.AnnotatePanel`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from radgaze.app.annotate.panel import ANNOTATION_KEYS, AnnotatePanel
from radgaze.app.image_view import ImageView
from radgaze.app.panels import ViewControls
from radgaze.app.shortcuts import install_viewing_keys
from radgaze.app.state import ViewerState
from radgaze.capture.annotation.labels import LabelSet, load_label_set
from radgaze.capture.annotation.protocol import Protocol, load_protocol
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import CaseAnnotation
from radgaze.capture.store.edits import annotate_session_file


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
        self.corrections: list[tuple[str, int, list[int]]] = []  # (case, edits, sentences recomputed)
        self.state = ViewerState()
        self.image_view = ImageView(self.state)
        self.panel = AnnotatePanel(
            self.image_view, protocol, label_set, self._save_step, self._save_transcript
        )
        self.panel.finished.connect(lambda _case_id: self.open_case(self.index + 1))
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
        viewing = install_viewing_keys(self, self.state, extra=ANNOTATION_KEYS)
        for clash in ("1", "0"):  # label keys here; 1:1 and the file's window stay on the toolbar
            viewing[clash].setEnabled(False)
        self.panel.install_keys(self)
        self.open_case(0)

    # -- cases ----------------------------------------------------------------------------------------
    def open_case(self, index: int) -> None:
        from radgaze.app.replay import load_replay_case

        self.index = index
        if index >= len(self.work):
            self.panel.close_case(
                f"All {len(self.work)} cases annotated", "Close the window (Ctrl-Q) when done."
            )
            return
        item = self.work[index]
        case = load_replay_case(item.session, item.case_id)
        rec = case.record
        self.record = rec
        self.state.set_case(rec.case_id, case.pixels, window=case.window, meta=case.meta)
        self.setWindowTitle(f"radgaze annotate — {item.session.name} / {item.case_id}")
        self.panel.open_case(
            rec.case_id, rec.image.width, rec.image.height, rec.words.text, rec.annotation,
            progress=f"Case {index + 1} of {len(self.work)}",
        )  # fmt: skip

    def quit_question(self) -> str:
        """What Ctrl-Q or closing the window would lose (asked first; ``radgaze.app.qtapp.close_confirmed``)."""
        return self.panel.unsaved_work()

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt override)
        from radgaze.app.qtapp import close_confirmed

        if ev.spontaneous() and not close_confirmed(self):  # the close button; Ctrl-Q asks in quit_all
            ev.ignore()
            return
        super().closeEvent(ev)

    # -- storage (the panel's host) -------------------------------------------------------------------
    def _save_step(self, case_id: str, annotation: CaseAnnotation, step: str) -> str:
        item = self.work[self.index]
        revision = annotate_session_file(item.session, case_id, annotation, step=step)
        self.statusBar().showMessage(f"{case_id}: {step} saved (revision {revision})")
        self.saved.emit(case_id, step, revision)
        return f"revision {revision}"

    def _save_transcript(self, case_id: str, shown: list[str], text: str) -> None:
        """The transcript as the reader left it: stored as a correction when it differs from the recognised."""
        from radgaze.capture.gazemath.correction import correct_case, edits_from_text
        from radgaze.capture.store.edits import correct_session_file

        edits = edits_from_text(shown, text)
        if not edits:
            return
        corrected = correct_case(self.record, edits)
        correct_session_file(self.work[self.index].session, corrected)
        self.record = corrected
        self.corrections.append((case_id, len(edits), list(corrected.correction.recomputed)))


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
    from radgaze.app.qtapp import (
        ensure_qapp,
        raise_failure,
        restore_window_geometry,
        run_until_closed,
        save_png,
        unattended,
    )
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
    failures: list = []
    if args.screenshot is not None:
        shoot = unattended(lambda: save_png(win.grab(), args.screenshot), win.close, failures)
        QtCore.QTimer.singleShot(300, shoot)
    run_until_closed(app, [win])
    raise_failure(failures)
    return 0
