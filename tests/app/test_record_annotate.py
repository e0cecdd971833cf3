"""Record mode's per-case protocol: dictate → labels → ellipses → chest box → transcript → next case, all in the
record window, every confirmed step stored by the recorder's own writer thread in the file being recorded.

- the writer thread's part on a real live session file (deferred while the case is open, refusals, corrections);
- ten cases in a row on the real radiographs of ../shared/data, driven by real key presses and mouse drags in
  the real record window (a real LSL tracker in another process), then the session in replay, review's
  metrics and the REFLACX export;
- ``kill -9`` of a real ``radgaze record`` process during the ellipse step, and the file reopened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore
from test_annotate_window import drag
from test_app_record_mode import StandInPipeline, shown_record_window

from radgaze.capture.base.records import CaseAnnotation, LabelChoice, Shape, Words

SENTENCES = "the heart is enlarged. there is a left pleural effusion."


def scripted_words(text: str, t0: float, step_s: float = 0.3) -> Words:
    """Dictation as the ASR delivers it: one word every ``step_s`` from ``t0`` (LSL clock)."""
    words = text.split()
    t = t0 + step_s * np.arange(len(words))
    return Words(t, t + 0.8 * step_s, words, np.ones(len(words)))


def _wait_for(events, kinds: set[str], timeout_s: float = 20.0) -> list[tuple[str, object]]:
    """Events off a LiveSession's queue until one of ``kinds`` came (those before it too)."""
    import queue

    got, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            kind, payload = events.get(timeout=0.2)
        except queue.Empty:
            continue
        got.append((kind, payload))
        if kind in kinds:
            return got
    raise AssertionError(f"none of {kinds} within {timeout_s} s; got {[k for k, _ in got]}")


def test_the_writer_thread_stores_annotations_after_the_case_closes(tmp_path):
    from radgaze.capture.base.records import VIEW_DTYPE, DisplayGeometry, ImageRef
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.writer import SessionWriter

    writer = SessionWriter(tmp_path / "live.h5", live=True)
    pipe = LiveSession(DisplayGeometry(), writer, clock=lambda: 100.0)
    pipe.report_case_words = True
    view = np.zeros(1, VIEW_DTYPE)
    view["t_lsl"], view["scale"] = 90.0, 1.0
    pipe.begin_case("c1", ImageRef("c1.png", "", 400, 500), view[0])
    pipe.add_words(scripted_words(SENTENCES, 91.0))
    labels = CaseAnnotation(labels=[LabelChoice("Enlarged cardiac silhouette", 5)])
    pipe.annotate("c1", labels, "labels")  # confirmed while the case is still open: held until it closes
    labels.labels.append(LabelChoice("Pneumothorax", 2))  # the panel edits on: the stored step must not
    pipe.start()
    pipe.end_case(100.0)
    off = CaseAnnotation(labels=labels.labels[:1], shapes=[Shape("ellipse", 350.0, 10.0, 450.0, 60.0, (), 5)])
    pipe.annotate("c1", off, "shapes")  # off the 400 px wide image: refused, said, nothing stored
    pipe.correct("c1", SENTENCES.replace("is a left", "is a large left"))
    got = _wait_for(pipe.events, {"corrected"})
    kinds = [k for k, _ in got if k not in ("status", "level", "words", "sentence")]
    assert kinds == ["case_ended", "case_words", "annotation_saved", "annotation_refused", "corrected"]
    payloads = {k: p for k, p in got}
    assert payloads["case_words"] == ("c1", SENTENCES.split())
    assert payloads["annotation_saved"] == ("c1", "labels", 1)
    case_id, step, said = payloads["annotation_refused"]
    assert (case_id, step) == ("c1", "shapes") and "inside the 400 × 500 px image, got x 350..450" in said
    assert payloads["corrected"] == ("c1", 1, [1])  # one word inserted; sentence 2 re-derived
    pipe.stop()
    writer.close()
    with SessionReader(tmp_path / "live.h5") as r:
        case = r.case("c1")
    assert case.annotation.labels == [LabelChoice("Enlarged cardiac silhouette", 5)]
    import h5py

    from radgaze.capture.store.annotations import revision_steps

    with h5py.File(tmp_path / "live.h5", "r") as f:
        assert revision_steps(f["cases/c1"]) == ["labels"]  # the refused step left nothing
    assert "large" in case.words.text and "large" not in case.recognised_words.text


# ------------------------------------------------------------------------------ ten cases in the window
HEART_F = (0.38, 0.42, 0.62, 0.70)  # fractions of the image's width/height: where the test draws
EFFUSION_F = (0.66, 0.62, 0.86, 0.82)
CHEST_F = (0.08, 0.08, 0.92, 0.90)
ALL_STEPS = ["dictate", "labels", "shapes", "chest_box", "transcript"]


@pytest.fixture(scope="module")
def tracker_process():
    """A real LSL eye tracker in another process (radgaze sim-tracker, Tobii's bridge layout)."""
    name = f"radgaze-annotate-test-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", "sim-tracker", "--layout", "tobii", "--rate", "120",
         "--name", name, "--display", "1366x740", "--duration", "900"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().startswith(f"publishing '{name}'")
    yield name
    proc.terminate()
    proc.wait(10)


def active_record_window(qtbot, args, parts):
    """The record window of ``args`` on ``parts``' sources, shown, active (keys reach it), its first case loaded."""
    from radgaze.app.record_cmd import open_window

    win, ctl = open_window(args, parts)
    qtbot.addWidget(win)
    win.resize(1366, 740)
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(lambda: win.isActiveWindow() and win.loaded is not None, timeout=10_000)
    return win, ctl


def _box(win, f: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    h, w = win.loaded.pixels.shape[:2]
    return (f[0] * w, f[1] * h, f[2] * w, f[3] * h)


def _keys(qtbot, win, sequence: str) -> None:
    for ch in sequence:
        qtbot.keyClick(win, ch)


def _enter(qtbot, win) -> None:
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)


def _dictate(qtbot, win, ctl, session, text: str) -> None:
    """The reader dictates the case (words stamped on the LSL clock, as the ASR stamps them), then Space."""
    import pylsl

    qtbot.waitUntil(lambda: ctl.recording, timeout=10_000)
    qtbot.wait(1200)  # gaze on the image before the first word (words said before the case are not its)
    n = len(text.split())
    session.add_words(scripted_words(text, pylsl.local_clock() - 0.08 * n, 0.08))
    qtbot.wait(300)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    assert not ctl.recording


def _annotate_abnormal(qtbot, win, panel, shots: Path | None) -> None:
    _keys(qtbot, win, "4584")  # Enlarged cardiac silhouette 5, Pleural abnormality 4
    if shots:
        win.grab().save(str(shots / "record_annotate_labels.png"))
    _enter(qtbot, win)
    assert panel.annotator.step == "shapes"
    drag(win, _box(win, HEART_F)[:2], _box(win, HEART_F)[2:])
    _keys(qtbot, win, "45")
    drag(win, _box(win, EFFUSION_F)[:2], _box(win, EFFUSION_F)[2:])
    _keys(qtbot, win, "84")
    if shots:
        win.grab().save(str(shots / "record_annotate_shapes.png"))
    _enter(qtbot, win)


def _annotate_normal(qtbot, win, panel) -> None:
    _keys(qtbot, win, "15")  # Normal radiograph, Consistent with
    _enter(qtbot, win)
    assert panel.annotator.step == "shapes"
    _enter(qtbot, win)  # Normal needs no ellipse


def _chest_and_transcript(qtbot, win, panel, flow, correct: bool, shots: Path | None) -> None:
    assert panel.annotator.step == "chest_box"
    drag(win, _box(win, CHEST_F)[:2], _box(win, CHEST_F)[2:])
    if shots:
        win.grab().save(str(shots / "record_annotate_chest_box.png"))
    _enter(qtbot, win)
    assert panel.annotator.step == "transcript"
    case_id = panel.case_id
    qtbot.waitUntil(lambda: case_id in flow.closed, timeout=15_000)  # the dictation's last words are in
    if correct:  # the recogniser missed a word: the reader types it in (real key presses)
        panel.transcript_edit.selectAll()
        qtbot.keyClicks(panel.transcript_edit, SENTENCES.replace("is a left", "is a large left"))
    if shots:
        win.grab().save(str(shots / "record_annotate_transcript.png"))
    _enter(qtbot, win)


@pytest.mark.slow
def test_ten_cases_in_a_row_dictated_labelled_localised_and_corrected_from_the_keyboard(
    qtbot, tmp_path, shared_data, tracker_process, artifacts_dir
):
    from radgaze.app.record_cmd import build_parser, open_sources

    images = tmp_path / "cxr"
    images.mkdir()
    films = sorted(p for p in (shared_data / "cxr").glob("*.png"))[:10]
    if len(films) < 10:
        pytest.skip(f"expected 10 radiographs in {shared_data / 'cxr'}, found {len(films)}")
    for p in films:
        (images / p.name).symlink_to(p)
    out = tmp_path / "sessions" / "reading.h5"
    args = build_parser().parse_args(
        [
            str(out),
            "--images",
            str(images),
            "--tracker",
            tracker_process,
            "--no-audio",
            "--display",
            "1366x740",
            "--keep-names",  # the cases are followed by their films' names
        ]
    )
    from PySide6.QtWidgets import QApplication

    parts = open_sources(args, QApplication.instance())
    try:
        win, ctl = active_record_window(qtbot, args, parts)
        flow, panel = win.annotation, win.annotation.panel
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # the first case; the next ones start by themselves
        for k in range(10):
            _dictate(qtbot, win, ctl, parts.session, SENTENCES if k % 2 == 0 else "the lungs are clear.")
            assert panel.progress.text() == f"Case {k + 1} of 10 · step 1/4" and flow.annotating
            qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # Space waits while the case is annotated
            assert not ctl.recording and "finish its annotation first" in win.statusBar().currentMessage()
            shots = artifacts_dir if k == 0 else None
            if k % 2 == 0:
                _annotate_abnormal(qtbot, win, panel, shots)
            else:
                _annotate_normal(qtbot, win, panel)
            _chest_and_transcript(qtbot, win, panel, flow, correct=k == 2, shots=shots)
        qtbot.waitUntil(lambda: sum(s[1] == "transcript" for s in flow.saved) == 10, timeout=20_000)
        assert panel.progress.text() == "All 10 cases read" and not ctl.recording
        assert flow.refused == [] and [c[:2] for c in flow.corrections] == [(ctl.recorded_ids[2], 1)]
        win.grab().save(str(artifacts_dir / "record_annotate_done.png"))
        win.close()
    finally:
        parts.close()
    _check_the_recorded_session(out, [p.stem for p in films], tmp_path)
    _check_review(qtbot, out, tmp_path, artifacts_dir)


def _check_the_recorded_session(out: Path, case_ids: list[str], tmp_path: Path) -> None:
    """What the reader did is in the session, in replay, in review's metrics and in the REFLACX export."""
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.summary import describe_session

    info = describe_session(out)
    assert info["valid"], info["errors"]
    with SessionReader(out) as r:
        assert r.case_ids == case_ids
        cases = [r.case(cid) for cid in case_ids]
    for k, case in enumerate(cases):
        ann = case.annotation
        assert ann.confirmed_steps == ALL_STEPS, case.case_id
        h, w = case.image.height, case.image.width
        chest = (CHEST_F[0] * w, CHEST_F[1] * h, CHEST_F[2] * w, CHEST_F[3] * h)
        np.testing.assert_allclose(ann.chest_box, chest, atol=0.01 * w)
        if k % 2:
            assert ann.labels == [LabelChoice("Normal radiograph", 5)] and ann.shapes == []
            continue
        assert ann.labels == [
            LabelChoice("Enlarged cardiac silhouette", 5),
            LabelChoice("Pleural abnormality", 4),
        ]
        assert [(s.kind, s.labels, s.certainty) for s in ann.shapes] == [
            ("ellipse", ("Enlarged cardiac silhouette",), 5),
            ("ellipse", ("Pleural abnormality",), 4),
        ]
        heart = (HEART_F[0] * w, HEART_F[1] * h, HEART_F[2] * w, HEART_F[3] * h)
        np.testing.assert_allclose(ann.shapes[0].box, heart, atol=0.01 * w)  # drawn through zoom/pan
        assert case.words.text[:4] == ["the", "heart", "is", "enlarged."] and case.gaze.size > 0
    corrected = cases[2]
    assert corrected.correction is not None and "large" in corrected.words.text
    assert "large" not in corrected.recognised_words.text and corrected.sentences.text[1].startswith(
        "there is a large left"
    )
    _check_replay_review_and_export(out, cases, tmp_path)


def _check_replay_review_and_export(out: Path, cases, tmp_path: Path) -> None:
    from PySide6 import QtWidgets

    from radgaze.app.replay import ReplayWindow
    from radgaze.capture.exporters.reflacx import export_reflacx
    from radgaze.capture.importers.reflacx import import_reflacx
    from radgaze.capture.store.reader import SessionReader

    replay = ReplayWindow(out, audio=False)
    try:
        captions = replay.annotation_overlay.captions
        assert captions == ["Enlarged cardiac silhouette 5/5", "Pleural abnormality 4/5", "chest"]
        ellipses = [
            i for i in replay.annotation_overlay.items if isinstance(i, QtWidgets.QGraphicsEllipseItem)
        ]
        assert len(ellipses) == 2
    finally:
        replay.close()
    result = export_reflacx([out], tmp_path / "export")
    assert len(result.written) == 10
    back = import_reflacx(tmp_path / "export", tmp_path / "back").written
    with SessionReader(back[0]) as r:
        first = [r.case(cid) for cid in r.case_ids]
    assert any(
        [(s.labels, s.certainty) for s in c.annotation.shapes]
        == [(s.labels, s.certainty) for s in cases[0].annotation.shapes]
        for c in first
    )


def _check_review(qtbot, out: Path, tmp_path: Path, artifacts_dir: Path) -> None:
    """Review scores a model's attention against the reader's ellipses ("Hit", "In shapes") per sentence."""
    import math

    import torch

    from radgaze.app.review import ReviewWindow
    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), tmp_path / "run" / "checkpoints" / "last")
    win = ReviewWindow(tmp_path / "run", out.parent)
    qtbot.addWidget(win)
    win.resize(1366, 740)
    with qtbot.waitSignal(win.rows_ready, timeout=120_000):
        win.show()
    try:
        rows = win.rows
        assert rows, "no sentence with a heatmap in the recorded session"
        abnormal = [r for r in rows if r.case_id in set(_abnormal_ids(out))]
        normal = [r for r in rows if r not in abnormal]
        # a shape scores the sentences naming a finding that looked into it (>= 50 % of their gaze,
        # docs/agreement.md); the others have no target (NaN, not a miss)
        from radgaze.model.agreement import sentence_shapes_mask

        records = {c.record.case_id: c.record for c in win.cases}
        for r in abnormal:
            rec = records[r.case_id]
            tied = sentence_shapes_mask(rec, r.sentence_index) is not None
            assert tied == (not math.isnan(r.ellipse_hit)) == (not math.isnan(r.ellipse_mass))
            assert not tied or (0.0 <= r.ellipse_mass <= 1.0 and r.ellipse_hit in (0.0, 1.0))
        assert all(rec.annotation.shapes for rec in records.values() if rec.case_id in _abnormal_ids(out))
        assert all(math.isnan(r.ellipse_hit) for r in normal)  # "Normal": nothing localised, undefined
        assert abnormal, "no abnormal case's sentence has a heatmap"
        win.grab().save(str(artifacts_dir / "record_annotate_review.png"))
    finally:
        win.close()


def _abnormal_ids(out: Path) -> list[str]:
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(out) as r:
        return [cid for cid in r.case_ids if r.case(cid).annotation.shapes]


# ------------------------------------------------------------------------------ kill -9 of the recorder
RECORDER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import pylsl
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest
from test_annotate_window import drag
from test_app_record_mode import StandInPipeline, shown_record_window
from test_record_annotate import HEART_F, SENTENCES, scripted_words
from radgaze.app.cli import main

def wait(cond, s=30.0):
    end = time.monotonic() + s
    while not cond():
        if time.monotonic() > end:
            print("TIMEOUT", flush=True); raise SystemExit(3)
        QTest.qWait(20)

def drive():
    app = QtWidgets.QApplication.instance()
    win = next(w for w in app.topLevelWidgets() if hasattr(w, "annotation") and w.isVisible())
    wait(lambda: win.loaded is not None and win.annotation is not None)
    flow, panel, ctl = win.annotation, win.annotation.panel, win.annotation.controller
    win.activateWindow()
    wait(win.isActiveWindow)
    QTest.keyClick(win, QtCore.Qt.Key.Key_Space)  # the reader starts dictating
    wait(lambda: ctl.recording)
    QTest.qWait(1500)
    n = len(SENTENCES.split())
    flow.pipeline.add_words(scripted_words(SENTENCES, pylsl.local_clock() - 0.08 * n, 0.08))
    QTest.qWait(300)
    QTest.keyClick(win, QtCore.Qt.Key.Key_Space)  # ... and stops: the labels step
    for ch in "4584":
        QTest.keyClick(win, ch)
    QTest.keyClick(win, QtCore.Qt.Key.Key_Return)
    wait(lambda: ("labels" in [s[1] for s in flow.saved]))  # the writer stored the labels step
    h, w = win.loaded.pixels.shape[:2]
    box = (HEART_F[0] * w, HEART_F[1] * h, HEART_F[2] * w, HEART_F[3] * h)
    drag(win, box[:2], box[2:])  # the reader is drawing the first ellipse
    QTest.keyClick(win, "4"); QTest.keyClick(win, "5")
    print("ELLIPSE STEP", panel.annotator.step, len(panel.annotator.annotation.shapes), flush=True)

QtCore.QTimer.singleShot(0, drive)
sys.exit(main(["record", *sys.argv[2:]]))
"""


@pytest.mark.slow
def test_kill_minus_9_of_the_recorder_during_the_ellipse_step_keeps_the_dictation_and_the_labels(
    tmp_path, shared_data
):
    import signal

    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.summary import describe_session

    images = tmp_path / "cxr"
    images.mkdir()
    film = shared_data / "cxr" / "00000001_000.png"
    if not film.is_file():
        pytest.skip(f"{film} is absent")
    (images / film.name).symlink_to(film)
    out = tmp_path / "reading.h5"
    args = [
        str(out),
        "--images",
        str(images),
        "--sim",
        "--sim-rate",
        "120",
        "--no-audio",
        "--display",
        "1366x740",
        "--keep-names",  # the case is looked up by its film's name
    ]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(Path(__file__).parent), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline, line = time.monotonic() + 180, ""
    while time.monotonic() < deadline and not line.startswith(("ELLIPSE STEP", "TIMEOUT")):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    assert line.split() == ["ELLIPSE", "STEP", "shapes", "1"], (
        proc.stderr.read() if proc.poll() is not None else line
    )
    os.kill(proc.pid, signal.SIGKILL)  # the recorder dies mid-ellipse: no close, no compaction
    proc.wait(10)
    info = describe_session(out)
    assert info["valid"], info["errors"]
    with SessionReader(out) as r:
        case = r.case("00000001_000")
    assert case.complete and case.words.text == SENTENCES.split() and case.gaze.size > 120  # the dictation
    assert case.annotation.labels == [
        LabelChoice("Enlarged cardiac silhouette", 5),
        LabelChoice("Pleural abnormality", 4),
    ]  # the confirmed step
    assert case.annotation.confirmed_steps == ["dictate", "labels"] and case.annotation.shapes == []


# ------------------------------------------------------------------------------ protocol variants
class StandInSession(StandInPipeline):
    """The LiveSession's commands as the window sends them, annotation included (the writer side is tested
    above)."""

    report_case_words = False

    def annotate(self, case_id, annotation, step):
        self.calls.append(
            ("annotate", case_id, step, [c.label for c in annotation.labels], len(annotation.shapes))
        )

    def correct(self, case_id, text):
        self.calls.append(("correct", case_id, text))


def _window_with_protocol(qtbot, tmp_path, protocol_toml: str):
    from PIL import Image

    from radgaze.app.annotate.record_flow import RecordAnnotation
    from radgaze.app.recording import RecordController
    from radgaze.capture.annotation.labels import load_label_set
    from radgaze.capture.annotation.protocol import load_protocol
    from radgaze.capture.base.records import DisplayGeometry

    y, x = np.mgrid[0:400, 0:300]
    for name in ("a.png", "b.png"):
        Image.fromarray((20000 + 40 * x + 10 * y).astype(np.uint16)).save(tmp_path / name)
    (tmp_path / "protocol.toml").write_text(protocol_toml)
    win = shown_record_window(qtbot, tmp_path, (1366, 740))
    session = StandInSession()
    ctl = RecordController(win, session, DisplayGeometry(), keep_names=True)  # cases followed by name
    flow = RecordAnnotation(win, ctl, session, load_protocol(tmp_path / "protocol.toml"), load_label_set())
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    return win, ctl, flow, session


def test_a_labels_only_protocol_goes_from_dictation_to_labels_to_the_next_case(qtbot, tmp_path):
    win, ctl, flow, session = _window_with_protocol(
        qtbot, tmp_path, "[steps]\nshapes = false\nchest_box = false\ntranscript = false\n"
    )
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # dictated: the labels step
    assert flow.panel.progress.text() == "Case 1 of 2 · step 1/1"
    assert (
        not win.shortcuts["1"].isEnabled() and not win.worklist_widget.isEnabled()
    )  # label keys; no new image
    _keys(qtbot, win, "15")
    _enter(qtbot, win)
    assert ("annotate", "a", "labels", ["Normal radiograph"], 0) in session.calls
    assert ctl.recording and win.loaded.case_id == "b"  # the next case, recording at once
    assert win.shortcuts["1"].isEnabled() and win.worklist_widget.isEnabled()
    session.events.put(("annotation_refused", ("a", "labels", "case a: annotation not stored: disk full")))
    ctl.poll()
    assert "a: labels NOT saved: case a: annotation not stored: disk full" in win.statusBar().currentMessage()


def test_a_box_protocol_draws_boxes_and_a_protocol_without_steps_only_dictates(qtbot, tmp_path):
    from radgaze.app.record_cmd import build_parser, install_annotation

    win, ctl, flow, session = _window_with_protocol(
        qtbot, tmp_path, 'shape = "box"\n[steps]\nchest_box = false\ntranscript = false\n'
    )
    ctl.start()
    ctl.stop()
    _keys(qtbot, win, "94")  # Consolidation, Suspicious for
    _enter(qtbot, win)
    drag(win, (50.0, 60.0), (150.0, 200.0))
    _keys(qtbot, win, "94")
    assert [s.kind for s in flow.panel.annotator.annotation.shapes] == ["box"]
    _enter(qtbot, win)
    assert ("annotate", "a", "shapes", ["Consolidation"], 1) in session.calls
    (tmp_path / "none.toml").write_text(
        "[steps]\nlabels = false\nshapes = false\nchest_box = false\ntranscript = false\n"
    )
    args = build_parser().parse_args(
        ["x.h5", "--images", str(tmp_path), "--protocol", str(tmp_path / "none.toml")]
    )
    assert install_annotation(win, ctl, session, args) is None


def test_a_bad_protocol_or_label_file_is_refused_before_any_device_opens(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((64, 64), 1000, np.uint16)).save(tmp_path / "a.png")
    (tmp_path / "p.toml").write_text("[steps]\nlabels = 'yes'\n")
    (tmp_path / "l.toml").write_text('name = "x"\n[[labels]]\nname = "A"\n[[labels]]\nname = "A"\n')
    for flag, path, says in (
        ("--protocol", "p.toml", "expected true or false for steps ['labels']"),
        ("--labels", "l.toml", "expected a non-empty list 'certainties', got None"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", str(tmp_path / "s.h5"), "--images", str(tmp_path),
             "--tracker", "no-such-tracker", flag, str(tmp_path / path)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )  # fmt: skip
        err = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(err) == 1 and says in err[0], run.stderr
        assert "no-such-tracker" not in err[0] and not (tmp_path / "s.h5").exists()  # before the tracker
