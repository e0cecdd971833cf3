"""radgaze annotate: the REFLACX protocol driven by real key presses and mouse drags on the image (pytest-qt),
every confirmed step saved in the session file, and a kill -9 during the ellipse step keeping what was saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6 import QtCore
from PySide6.QtTest import QTest
from replay_review_sessions import write_session

from radgaze.app.annotate.window import AnnotateWindow, WorkItem
from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.annotation.protocol import load_protocol
from radgaze.capture.base.records import LabelChoice
from radgaze.capture.store.annotations import revision_steps
from radgaze.capture.store.reader import SessionReader

HEART = (165.0, 265.0, 235.0, 335.0)  # image px of the phantom's heart target (sentence 1)
EFFUSION = (275.0, 350.0, 345.0, 410.0)


def _view_point(win, x_img: float, y_img: float) -> QtCore.QPoint:
    x, y = win.state.transform.image_to_view(x_img, y_img)
    return QtCore.QPoint(round(x), round(y))


def drag(win, a: tuple[float, float], b: tuple[float, float], steps: int = 6) -> None:
    """A real left-button drag on the image canvas, from image point ``a`` to ``b``."""
    viewport = win.image_view.canvas.viewport()
    left = QtCore.Qt.MouseButton.LeftButton
    QTest.mousePress(viewport, left, QtCore.Qt.KeyboardModifier.NoModifier, _view_point(win, *a))
    for k in range(1, steps + 1):
        t = k / steps
        QTest.mouseMove(viewport, _view_point(win, a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
    QTest.mouseRelease(viewport, left, QtCore.Qt.KeyboardModifier.NoModifier, _view_point(win, *b))


def keys(qtbot, win, sequence: str) -> None:
    for ch in sequence:
        qtbot.keyClick(win, ch)


def enter(qtbot, win) -> None:
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)


@pytest.fixture
def window(qtbot, tmp_path):
    path = write_session(tmp_path / "reading.h5", 2)
    work = [WorkItem(path, "case0"), WorkItem(path, "case1")]
    win = AnnotateWindow(work, load_protocol(), load_label_set())
    qtbot.addWidget(win)
    win.resize(1340, 740)
    win.show()
    qtbot.waitExposed(win)
    win.state.fit()
    yield win, path
    win.close()


def _box_close(got, want, tol_px: float) -> bool:
    return all(abs(g - w) <= tol_px for g, w in zip(got, want))


def test_a_case_is_labelled_localised_and_boxed_from_the_keyboard_and_mouse(window, qtbot, artifacts_dir):
    win, path = window
    saved = []
    win.saved.connect(lambda case_id, step, rev: saved.append((case_id, step, rev)))
    assert win.panel.progress.text() == "Case 1 of 2 · step 1/4"
    keys(qtbot, win, "45")  # Enlarged cardiac silhouette, Consistent with
    keys(qtbot, win, "84")  # Pleural abnormality, Suspicious for / Probably
    assert win.panel.annotator.annotation.labels == [
        LabelChoice("Enlarged cardiac silhouette", 5),
        LabelChoice("Pleural abnormality", 4),
    ]
    assert win.grab().save(str(artifacts_dir / "annotate_labels.png"))
    enter(qtbot, win)
    assert saved == [("case0", "labels", 1)] and win.panel.annotator.step == "shapes"
    enter(qtbot, win)  # no ellipse yet: refused, said why
    assert win.panel.annotator.step == "shapes" and "needs an ellipse" in win.panel.problems_label.text()

    drag(win, HEART[:2], HEART[2:])
    keys(qtbot, win, "45")
    drag(win, EFFUSION[:2], EFFUSION[2:])
    keys(qtbot, win, "84")
    drag(win, (60.0, 60.0), (90.0, 90.0))  # a slip: drawn, then deleted
    assert len(win.panel.annotator.annotation.shapes) == 3
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Delete)
    shapes = win.panel.annotator.annotation.shapes
    assert [(s.labels, s.certainty) for s in shapes] == [
        (("Enlarged cardiac silhouette",), 5),
        (("Pleural abnormality",), 4),
    ]
    tol = 1.5 / win.state.transform.scale  # a screen pixel or so, in image px
    assert _box_close(shapes[0].box, HEART, tol) and _box_close(shapes[1].box, EFFUSION, tol)
    # move the effusion ellipse 20 px right (drag from inside), then pull its bottom-right corner 10 px out
    centre = ((EFFUSION[0] + EFFUSION[2]) / 2, (EFFUSION[1] + EFFUSION[3]) / 2)
    drag(win, centre, (centre[0] + 20, centre[1]))
    moved = (EFFUSION[0] + 20, EFFUSION[1], EFFUSION[2] + 20, EFFUSION[3])
    assert win.panel.annotator.selected == 1 and _box_close(
        win.panel.annotator.annotation.shapes[1].box, moved, 2 * tol
    )
    drag(win, moved[2:], (moved[2] + 10, moved[3] + 10))
    resized = (*moved[:2], moved[2] + 10, moved[3] + 10)
    assert _box_close(win.panel.annotator.annotation.shapes[1].box, resized, 2 * tol)
    assert win.grab().save(str(artifacts_dir / "annotate_shapes.png"))
    enter(qtbot, win)
    assert saved[-1] == ("case0", "shapes", 2) and win.panel.annotator.step == "chest_box"

    drag(win, (30.0, 30.0), (370.0, 450.0))
    assert win.grab().save(str(artifacts_dir / "annotate_chest_box.png"))
    enter(qtbot, win)
    assert win.panel.annotator.step == "transcript" and win.panel.transcript_edit.hasFocus()
    recognised = win.panel.transcript_edit.text()
    assert recognised.startswith(
        "the heart is enlarged.\nthere is a left pleural effusion.\n"
    )  # a sentence a line
    # the recogniser missed a word: the reader types the sentence as dictated (real key presses)
    win.panel.transcript_edit.selectAll()
    typed = recognised.replace("is a left", "is a large left").replace("\n", " ")
    qtbot.keyClicks(win.panel.transcript_edit, typed)
    enter(qtbot, win)
    assert [s for _, s, _ in saved] == ["labels", "shapes", "chest_box", "transcript"]
    assert win.panel.progress.text() == "Case 2 of 2 · step 1/4"  # the next case, at once

    assert win.corrections == [("case0", 1, [1])]  # one word inserted; sentence 2's heatmap recomputed
    with SessionReader(path) as r:
        case0 = r.case("case0")
        ann = case0.annotation
        assert r.case("case1").annotation is None
    assert case0.sentences.text[1] == "there is a large left pleural effusion."
    assert "large" not in case0.recognised_words.text and "large" in case0.words.text
    i = case0.words.text.index("large")  # typed between "a" and "left": about the gap between them
    w = case0.words
    assert w.t_start[i - 1] < w.t_start[i] < w.t_start[i + 1] and w.t_end[i] - w.t_start[i] >= 0.15 - 1e-9
    assert w.t_start[i] <= (w.t_end[i - 1] + w.t_start[i + 1]) / 2 <= w.t_end[i]  # never zero length
    assert ann.confirmed_steps == ["dictate", "labels", "shapes", "chest_box", "transcript"]
    assert [(s.labels, s.certainty) for s in ann.shapes] == [(s.labels, s.certainty) for s in shapes]
    assert _box_close(ann.shapes[1].box, resized, 2 * tol) and _box_close(
        ann.chest_box, (30, 30, 370, 450), tol
    )
    import h5py

    with h5py.File(path, "r") as f:
        assert revision_steps(f["cases/case0"]) == ["labels", "shapes", "chest_box", "transcript"]


def test_normal_is_exclusive_other_takes_text_and_back_keeps_the_work(window, qtbot):
    win, _ = window
    keys(qtbot, win, "45")
    keys(qtbot, win, "1")  # Normal radiograph: chosen alone
    assert win.panel.annotator.annotation.label_names() == ["Normal radiograph"]
    enter(qtbot, win)  # no certainty yet: refused
    assert "expected a certainty" in win.panel.problems_label.text() and win.panel.annotator.step == "labels"
    keys(qtbot, win, "5")  # the digit after a refusal is the missing certainty
    assert win.panel.annotator.annotation.labels == [LabelChoice("Normal radiograph", 5)]
    keys(qtbot, win, "U3")  # Other: clears Normal, asks for its text
    assert win.panel.annotator.annotation.label_names() == ["Other"]
    enter(qtbot, win)
    assert "expected the reader's text" in win.panel.problems_label.text()
    win.panel.other_text.setText("azygos lobe")
    enter(qtbot, win)
    assert win.panel.annotator.step == "shapes"  # Other needs no ellipse
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Escape)
    assert win.panel.annotator.step == "labels" and win.panel.annotator.annotation.labels == [
        LabelChoice("Other", 3, "azygos lobe")
    ]


ANNOTATOR = r"""
import sys, time
from PySide6 import QtCore
from PySide6.QtWidgets import QApplication
sys.path.insert(0, sys.argv[2])
from test_annotate_window import HEART, drag
from radgaze.app.annotate.window import AnnotateWindow, WorkItem
from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.annotation.protocol import load_protocol
from pathlib import Path
app = QApplication([])
win = AnnotateWindow([WorkItem(Path(sys.argv[1]), "case0")], load_protocol(), load_label_set())
win.resize(1340, 740); win.show(); app.processEvents(); win.state.fit(); app.processEvents()
for key in "45":
    win.panel.press(key)
win.panel.next_step()  # labels confirmed and saved
drag(win, HEART[:2], HEART[2:])  # the reader is drawing the first ellipse
win.panel.press("4"); win.panel.press("5")
print("ELLIPSE STEP", win.panel.annotator.step, len(win.panel.annotator.annotation.shapes), flush=True)
while True:
    app.processEvents(); time.sleep(0.01)
"""


def test_kill_minus_9_during_the_ellipse_step_keeps_the_dictation_and_the_labels(tmp_path):
    path = write_session(tmp_path / "reading.h5", 1)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-c", ANNOTATOR, str(path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline and not line.startswith("ELLIPSE STEP"):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    assert line.split() == ["ELLIPSE", "STEP", "shapes", "1"], (
        proc.stderr.read() if proc.poll() is not None else line
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    with SessionReader(path) as r:
        case = r.case("case0")
    assert (
        case.words.text[:4] == ["the", "heart", "is", "enlarged."] and case.fixations.size > 0
    )  # the dictation
    assert case.annotation.labels == [LabelChoice("Enlarged cardiac silhouette", 5)]  # the confirmed step
    assert case.annotation.confirmed_steps == ["dictate", "labels"] and case.annotation.shapes == []
