"""What a reader tripped over in the annotation steps (issue 23), driven by real key presses and mouse drags on a
real AnnotateWindow (pytest-qt, offscreen): a pending certainty is never carried to another ellipse, a drag just
outside an ellipse (inside its bounding box) draws a new one, a drag starting under the corner text draws."""

from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest
from test_annotate_window import EFFUSION, HEART, drag, enter, keys, window  # noqa: F401 (fixture)

from radgaze.app.annotate.shapes import shape_contains
from radgaze.capture.base.records import SHAPE_BOX, SHAPE_ELLIPSE


def window_drag(win, a: tuple[float, float], b: tuple[float, float], steps: int = 6) -> None:
    """A left-button drag as the window system delivers it: to the window, so Qt finds the widget under the
    pointer (a label over the image takes the press when it takes the mouse), image points ``a`` -> ``b``."""
    handle = win.windowHandle()
    canvas = win.image_view.canvas.viewport()

    def at(x_img: float, y_img: float) -> QtCore.QPoint:
        x, y = win.state.transform.image_to_view(x_img, y_img)
        return canvas.mapTo(win, QtCore.QPoint(round(x), round(y)))

    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    QTest.mouseMove(handle, at(*a))
    QTest.mousePress(handle, left, none, at(*a))
    for k in range(1, steps + 1):
        t = k / steps
        QTest.mouseMove(handle, at(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
    QTest.mouseRelease(handle, left, none, at(*b))


def _to_shapes_step(qtbot, win) -> None:
    keys(qtbot, win, "45")  # Enlarged cardiac silhouette, Consistent with
    keys(qtbot, win, "93")  # Consolidation, Possibly
    enter(qtbot, win)
    assert win.panel.annotator.step == "shapes"


def test_a_certainty_typed_for_one_ellipse_is_not_carried_to_the_next(window, qtbot, artifacts_dir):  # noqa: F811
    win, _ = window
    _to_shapes_step(qtbot, win)
    drag(win, HEART[:2], HEART[2:])  # ellipse A
    keys(qtbot, win, "9")  # Consolidation on A; its certainty not typed
    assert "Ellipse 1, Consolidation: press 1–5" in win.panel.pending_label.text()
    drag(win, EFFUSION[:2], EFFUSION[2:])  # ellipse B: A's pending certainty is cancelled, and said so
    notice = win.panel.pending_label.text()
    assert "Ellipse 1, Consolidation: certainty not given, cancelled (ellipse 2 drawn)" in notice
    assert win.panel.pending_label.isVisible()
    assert win.grab().save(str(artifacts_dir / "annotate_pending_cancelled.png"))
    keys(qtbot, win, "4")  # a label key again: Enlarged cardiac silhouette on B, not a certainty
    a, b = win.panel.annotator.annotation.shapes
    assert (a.labels, a.certainty) == (("Consolidation",), 0)
    assert (b.labels, b.certainty) == (("Enlarged cardiac silhouette",), 0)
    keys(qtbot, win, "5")
    assert win.panel.annotator.annotation.shapes[1].certainty == 5
    assert win.panel.annotator.annotation.shapes[0].certainty == 0
    enter(qtbot, win)  # refused: ellipse 1 has no certainty; the next digit gives it
    assert "shape 1: expected a certainty" in win.panel.problems_label.text()
    assert win.panel.annotator.selected == 0
    assert "Ellipse 1, Consolidation: press 1–5" in win.panel.pending_label.text()
    keys(qtbot, win, "3")
    shapes = win.panel.annotator.annotation.shapes
    assert [(s.labels, s.certainty) for s in shapes] == [
        (("Consolidation",), 3),
        (("Enlarged cardiac silhouette",), 5),
    ]
    enter(qtbot, win)
    assert win.panel.annotator.step == "chest_box"


def test_selecting_another_ellipse_cancels_a_pending_certainty(window, qtbot):  # noqa: F811
    win, _ = window
    _to_shapes_step(qtbot, win)
    drag(win, HEART[:2], HEART[2:])
    keys(qtbot, win, "45")
    drag(win, EFFUSION[:2], EFFUSION[2:])
    keys(qtbot, win, "9")  # Consolidation on B, pending
    centre = ((HEART[0] + HEART[2]) / 2, (HEART[1] + HEART[3]) / 2)
    drag(win, centre, (centre[0] + 1, centre[1] + 1))  # the reader picks ellipse A up
    assert win.panel.annotator.selected == 0
    assert "Ellipse 2, Consolidation: certainty not given, cancelled (ellipse 1 selected)" in (
        win.panel.pending_label.text()
    )
    keys(qtbot, win, "2")  # now a label key (Support devices: not a case label, so nothing happens)
    assert [s.certainty for s in win.panel.annotator.annotation.shapes] == [5, 0]


@pytest.mark.parametrize(
    ("kind", "point", "inside"),
    [
        (SHAPE_ELLIPSE, (50.0, 50.0), True),  # the centre
        (SHAPE_ELLIPSE, (1.0, 1.0), False),  # the bounding box's corner
        (SHAPE_ELLIPSE, (50.0, 0.5), True),  # the top of the ellipse
        (SHAPE_ELLIPSE, (86.0, 86.0), False),  # outside the ellipse (0.72² · 2 > 1), inside the box
        (SHAPE_BOX, (1.0, 1.0), True),
        (SHAPE_BOX, (101.0, 50.0), False),
    ],
)
def test_shape_contains_is_the_shape_not_its_box(kind, point, inside):
    assert shape_contains(kind, (0.0, 0.0, 100.0, 100.0), point) is inside


def test_a_drag_from_an_ellipses_box_corner_draws_a_new_ellipse(window, qtbot, artifacts_dir):  # noqa: F811
    win, _ = window
    _to_shapes_step(qtbot, win)
    drag(win, HEART[:2], HEART[2:])
    keys(qtbot, win, "45")
    before = win.panel.annotator.annotation.shapes[0].box
    corner = (HEART[2] - 4.0, HEART[3] - 4.0)  # inside the heart ellipse's bounding box, outside the ellipse
    assert not shape_contains(SHAPE_ELLIPSE, HEART, corner)
    win.panel.annotator.selected = None  # no corner handle to grab: the drag must draw
    drag(win, corner, (corner[0] + 60.0, corner[1] + 50.0))
    shapes = win.panel.annotator.annotation.shapes
    assert len(shapes) == 2 and shapes[0].box == before  # A did not move
    tol = 1.5 / win.state.transform.scale
    assert all(abs(g - w) <= tol for g, w in zip(shapes[1].box, (*corner, corner[0] + 60, corner[1] + 50)))
    assert win.grab().save(str(artifacts_dir / "annotate_drag_from_box_corner.png"))


def test_a_chest_box_drawn_from_under_the_corner_text(window, qtbot, artifacts_dir):  # noqa: F811
    win, _ = window
    _to_shapes_step(qtbot, win)
    for box in (HEART, EFFUSION):
        drag(win, box[:2], box[2:])
    keys(qtbot, win, "9")
    keys(qtbot, win, "3")
    win.panel.annotator.select(0)
    keys(qtbot, win, "45")
    enter(qtbot, win)
    assert win.panel.annotator.step == "chest_box", win.panel.problems_label.text()
    readout = win.image_view.readout
    assert readout.isVisible() and readout.width() > 40
    # pan so the image's point (12, 12) lies under the middle of the corner text, as a zoomed-in film does
    centre = readout.geometry().center()
    vx, vy = win.state.transform.image_to_view(12.0, 12.0)
    win.state.pan_by(centre.x() - vx, centre.y() - vy)
    qtbot.wait(10)
    top_left = win.state.transform.view_to_image(centre.x(), centre.y())
    assert readout.geometry().contains(centre) and abs(top_left[0] - 12.0) < 1 and abs(top_left[1] - 12.0) < 1
    window_drag(win, (12.0, 12.0), (300.0, 380.0))
    box = win.panel.annotator.annotation.chest_box
    tol = 1.5 / win.state.transform.scale
    assert box is not None and all(abs(g - w) <= tol for g, w in zip(box, (12.0, 12.0, 300.0, 380.0)))
    chest_tag = _tag_rect_global(win, "chest")  # its tag stays clear of the corner text (item 6)
    corner = QtCore.QRect(readout.mapToGlobal(QtCore.QPoint(0, 0)), readout.size())
    assert not chest_tag.intersects(corner), (chest_tag, corner)
    assert win.grab().save(str(artifacts_dir / "annotate_chest_box_from_corner.png"))
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)
    assert win.panel.annotator.step == "transcript"


def _tag_item(win, text: str):
    for item in win.panel.overlay.items:
        kids = item.childItems()
        if kids and isinstance(kids[0], QtWidgets.QGraphicsSimpleTextItem) and kids[0].text() == text:
            return item
    raise AssertionError(f"no tag {text!r} among {win.panel.overlay.captions}")


def _tag_rect_global(win, text: str) -> QtCore.QRect:
    viewport = win.image_view.canvas.viewport()
    rect = win.image_view.canvas.mapFromScene(_tag_item(win, text).sceneBoundingRect()).boundingRect()
    return QtCore.QRect(viewport.mapToGlobal(rect.topLeft()), rect.size())


def test_a_label_tag_on_bright_bone_sits_on_a_dark_plate(window, qtbot, artifacts_dir):  # noqa: F811
    win, _ = window
    _to_shapes_step(qtbot, win)
    bone = (150.0, 420.0, 250.0, 460.0)  # the bright body below the lungs: the tag above it lies on bone
    drag(win, bone[:2], bone[2:])
    keys(qtbot, win, "45")
    qtbot.wait(10)
    viewport = win.image_view.canvas.viewport()
    item = _tag_item(win, "Enlarged cardiac silhouette 5/5")
    rect = win.image_view.canvas.mapFromScene(item.sceneBoundingRect()).boundingRect()
    frame = viewport.grab().toImage()
    lum = [
        QtGui.QColor(frame.pixel(x, y)).lightness()
        for x in range(rect.left() + 1, rect.right(), 2)
        for y in range(rect.top() + 1, rect.bottom(), 2)
    ]
    below = [
        QtGui.QColor(frame.pixel(x, rect.bottom() + 25)).lightness() for x in range(rect.left(), rect.right())
    ]
    assert sorted(below)[len(below) // 2] > 200  # the film under the tag is bright bone
    dark = sum(v < 90 for v in lum) / len(lum)
    assert dark > 0.6, f"only {dark:.0%} of the tag's pixels are dark: green text on bone"
    assert win.grab().save(str(artifacts_dir / "annotate_tag_on_bone.png"))


def _answer_next_dialog(qtbot, button_text: str, seen: list[str]) -> None:
    """When the next modal dialog opens, note its text and click its button ``button_text`` (a real click)."""

    def answer() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        if box is None:
            QtCore.QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        button = next(b for b in box.buttons() if b.text() == button_text)
        QTest.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)

    QtCore.QTimer.singleShot(0, answer)


def test_ctrl_q_in_an_unconfirmed_step_asks_before_quitting(window, qtbot):  # noqa: F811
    from radgaze.app.qtapp import install_quit_action

    win, path = window
    install_quit_action(win)
    ctrl_q = (QtCore.Qt.Key.Key_Q, QtCore.Qt.KeyboardModifier.ControlModifier)
    _to_shapes_step(qtbot, win)  # the labels step is confirmed and saved: nothing to lose yet
    drag(win, HEART[:2], HEART[2:])
    keys(qtbot, win, "45")
    seen: list[str] = []
    _answer_next_dialog(qtbot, "Keep annotating", seen)
    qtbot.keyClick(win, *ctrl_q)
    assert seen == ["case0: the ellipses step is not confirmed (Enter); what was done in it is not saved."]
    assert win.isVisible() and len(win.panel.annotator.annotation.shapes) == 1  # the draft is still there
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is win)  # back at work, keys and all
    _answer_next_dialog(qtbot, "Quit", seen)
    qtbot.keyClick(win, *ctrl_q)
    assert len(seen) == 2 and not win.isVisible()


def test_ctrl_q_asks_nothing_when_every_step_is_saved(window, qtbot):  # noqa: F811
    from radgaze.app.qtapp import install_quit_action

    win, _ = window
    install_quit_action(win)
    _to_shapes_step(qtbot, win)
    assert win.panel.unsaved_work() == ""
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Q, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert not win.isVisible()


def test_ctrl_q_in_the_record_windows_ellipse_step_asks_first(qtbot, tmp_path):
    from test_record_annotate import _window_with_protocol

    from radgaze.app.qtapp import install_quit_action

    win, ctl, flow, _ = _window_with_protocol(
        qtbot, tmp_path, "[steps]\nchest_box = false\ntranscript = false\n"
    )
    install_quit_action(win)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # dictated: the labels step
    keys(qtbot, win, "94")
    enter(qtbot, win)
    drag(win, (50.0, 60.0), (150.0, 200.0))  # an ellipse, not yet confirmed
    seen: list[str] = []
    _answer_next_dialog(qtbot, "Keep annotating", seen)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Q, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert seen == ["a: the ellipses step is not confirmed (Enter); what was done in it is not saved."]
    assert win.isVisible() and flow.panel.annotator.step == "shapes"
    assert len(flow.panel.annotator.annotation.shapes) == 1


def _to_transcript_step(qtbot, win) -> None:
    _to_shapes_step(qtbot, win)
    for box in (HEART, EFFUSION):
        drag(win, box[:2], box[2:])
    keys(qtbot, win, "93")
    win.panel.annotator.select(0)
    keys(qtbot, win, "45")
    enter(qtbot, win)
    drag(win, (30.0, 30.0), (370.0, 450.0))
    enter(qtbot, win)
    assert win.panel.annotator.step == "transcript", win.panel.problems_label.text()


def test_the_transcript_step_is_a_multi_line_editor_one_sentence_a_line(window, qtbot, artifacts_dir):  # noqa: F811
    win, path = window
    _to_transcript_step(qtbot, win)
    edit = win.panel.transcript_edit
    assert edit.hasFocus() and not win.panel.labels_list.isVisible()
    assert edit.toPlainText().splitlines() == [
        "the heart is enlarged.",
        "there is a left pleural effusion.",
        "the right lung is clear.",
    ]
    line_px = edit.fontMetrics().lineSpacing()
    assert edit.viewport().height() >= 6 * line_px  # a six-sentence report in view at once
    # keyboard first: Ctrl+Home, Down to the second sentence, past "there is a", type the missed word
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Home, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Down)
    for _ in "there is a":
        qtbot.keyClick(edit, QtCore.Qt.Key.Key_Right)
    qtbot.keyClicks(edit, " large")
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_End)
    qtbot.keyClick(
        edit, QtCore.Qt.Key.Key_Return, QtCore.Qt.KeyboardModifier.ShiftModifier
    )  # a line break only
    assert win.panel.annotator.step == "transcript"
    assert edit.toPlainText().splitlines()[1:3] == ["there is a large left pleural effusion.", ""]
    assert win.grab().save(str(artifacts_dir / "annotate_transcript_step.png"))
    enter(qtbot, win)  # Enter confirms, as in every step
    assert win.panel.progress.text() == "Case 2 of 2 · step 1/4"
    assert win.corrections == [("case0", 1, [1])]  # one word inserted; sentence 2's heatmap recomputed


def test_the_reading_tab_stays_reachable_while_a_case_is_annotated(qtbot, tmp_path, artifacts_dir):
    from test_record_annotate import _window_with_protocol

    win, ctl, flow, _ = _window_with_protocol(
        qtbot, tmp_path, "[steps]\nchest_box = false\ntranscript = false\n"
    )
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # dictated: the labels step, in the Annotation tab
    assert _shown(flow.panel) and not _shown(win.reading)
    bar = next(
        b
        for b in win.findChildren(QtWidgets.QTabBar)
        if "Reading" in [b.tabText(i) for i in range(b.count())]
    )
    reading_tab = [bar.tabText(i) for i in range(bar.count())].index("Reading")
    QTest.mouseClick(bar, QtCore.Qt.MouseButton.LeftButton, pos=bar.tabRect(reading_tab).center())
    qtbot.waitUntil(lambda: _shown(win.reading))  # transcript and sentence heatmaps in view
    assert _shown(win.reading.transcript) and not _shown(flow.panel)
    assert win.grab().save(str(artifacts_dir / "record_reading_tab_while_annotating.png"))
    keys(qtbot, win, "94")  # the label keys still act on the case being annotated
    assert [(c.label, c.certainty) for c in flow.panel.annotator.annotation.labels] == [("Consolidation", 4)]
    annotation_tab = [bar.tabText(i) for i in range(bar.count())].index("Annotation")
    QTest.mouseClick(bar, QtCore.Qt.MouseButton.LeftButton, pos=bar.tabRect(annotation_tab).center())
    qtbot.waitUntil(lambda: _shown(flow.panel))


def _shown(widget) -> bool:
    """On screen: visible and not covered by another tab of its dock area."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()
