"""The second look's keys and arms in the record window (real widgets and key presses; the capture side is a
stand-in that records commands — the real worker is driven end to end in test_second_look_record.py)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets
from test_app_record_mode import StandInPipeline, shown_record_window

from radgaze.capture.gazemath.second_look import DwellCluster, SecondLook


class StandInSession(StandInPipeline):
    report_case_words = False

    def begin_second_look(self, log, *, pixels=None, attention=None, params=None, chest_box=None):
        self.calls.append(("second_look", log.case_id, log.shown, log.assignment, pixels.shape))
        self.log = log

    def second_look_event(self, case_id, t_lsl, kind):
        self.calls.append(("event", case_id, kind))

    def annotate(self, case_id, annotation, step):
        self.calls.append(("annotate", case_id, step))

    def correct(self, case_id, text):
        self.calls.append(("correct", case_id, text))


def _window(qtbot, tmp_path, mode: str, seed: int = 0):
    from PIL import Image

    from radgaze.app.annotate.record_flow import RecordAnnotation
    from radgaze.app.recording import RecordController
    from radgaze.app.second_look import SecondLookFlow
    from radgaze.capture.annotation.labels import load_label_set
    from radgaze.capture.annotation.protocol import Protocol
    from radgaze.capture.base.records import DisplayGeometry

    y, x = np.mgrid[0:400, 0:300]
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.fromarray((20000 + 40 * x + 10 * y).astype(np.uint16)).save(tmp_path / name)
    win = shown_record_window(qtbot, tmp_path, (1366, 740))
    session = StandInSession()
    ctl = RecordController(win, session, DisplayGeometry(), keep_names=True)  # cases followed by name
    protocol = Protocol(name="labels", steps=("dictate", "labels"))
    win.annotation = RecordAnnotation(win, ctl, session, protocol, load_label_set())
    win.second_look = SecondLookFlow(win, ctl, session, mode=mode, seed=seed)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    return win, ctl, session


def _overlay(case_id: str) -> SecondLook:
    unviewed = np.zeros((128, 96), bool)
    unviewed[80:110, 10:40] = True  # image left (the patient's right), low
    model = np.zeros((128, 96), bool)
    model[30:42, 60:72] = True  # image right (the patient's left), high
    return SecondLook(
        t_lsl=60.0,
        clusters=[DwellCluster(220.0, 150.0, 20.0, 1.4, 5, 55.0)],
        unviewed=unviewed,
        zone_unviewed_frac={"right lower": 0.8},
        zones_not_viewed=["right lower"],
        grid_scale=400 / 128,
        lung_source="image estimate",
        model=model,
    )


def test_space_shows_the_second_look_h_toggles_it_and_enter_goes_on_to_the_labels(
    qtbot, tmp_path, artifacts_dir
):
    win, ctl, session = _window(qtbot, tmp_path, "on")
    flow = win.second_look
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # start dictating
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # stop: the second look, the case still recording
    assert ctl.recording and flow.active and not win.annotation.annotating
    assert ("second_look", "a", True, "on", (400, 300)) in session.calls
    assert ("end_case",) not in [c[:1] for c in session.calls]
    assert not win.worklist_widget.isEnabled() and not win.shortcuts["N"].isEnabled()  # the case stays
    session.events.put(("second_look", ("a", _overlay("a"), 0)))
    ctl.poll()
    overlay = flow.overlay
    assert overlay.captions == [
        "right lower zone not viewed",
        "model attended, not viewed",
        "dwelt 1.4 s, not dictated",
    ]
    assert sum(isinstance(i, QtWidgets.QGraphicsEllipseItem) for i in overlay.items) == 1
    assert sum(isinstance(i, QtWidgets.QGraphicsPixmapItem) for i in overlay.items) == 2  # shading, model
    msg = win.statusBar().currentMessage()
    assert "right lower zone not viewed" in msg and "1 place dwelt on" in msg and len(flow.latency_s) == 1
    assert "model attention where you did not look" in msg
    win.grab().save(str(artifacts_dir / "second_look_flow.png"))
    qtbot.keyClick(win, "h")
    assert not overlay.visible and not any(i.isVisible() for i in overlay.items)
    session.events.put(("second_look", ("a", _overlay("a"), 1)))  # late words: a new version, still hidden
    ctl.poll()
    assert not any(i.isVisible() for i in overlay.items)
    qtbot.keyClick(win, "h")
    assert overlay.visible and all(i.isVisible() for i in overlay.items)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)  # sign off
    assert not ctl.recording and not flow.active and overlay.items == []
    assert win.annotation.annotating and win.annotation.panel.annotator.step == "labels"
    events = [c[2] for c in session.calls if c[0] == "event"]
    assert events == ["shown", "hidden", "shown", "signed_off"]
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)  # labels not given: refused, Enter stays in the step
    for ch in "15":
        qtbot.keyClick(win, ch)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)
    assert ctl.recording and win.loaded.case_id == "b" and not flow.active  # the next case records at once
    calls = [c[0] for c in session.calls]
    assert calls.index("second_look") < calls.index("end_case") < calls.index("begin_case", 1)  # ended after


def test_space_during_the_second_look_signs_off_and_the_off_arm_stops_at_once(qtbot, tmp_path):
    win, ctl, session = _window(qtbot, tmp_path, "off")
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    assert not ctl.recording and not win.second_look.active and win.annotation.annotating
    assert ("second_look", "a", False, "off", (400, 300)) in session.calls  # computed and stored, not shown
    session.events.put(("second_look", ("a", _overlay("a"), 0)))
    ctl.poll()
    assert win.second_look.overlay.items == []  # never drawn in the control arm
    win2, ctl2, session2 = _window(qtbot, tmp_path / ".." / tmp_path.name, "on")
    qtbot.keyClick(win2, QtCore.Qt.Key.Key_Space)
    qtbot.keyClick(win2, QtCore.Qt.Key.Key_Space)
    assert ctl2.recording and win2.second_look.active
    qtbot.keyClick(win2, QtCore.Qt.Key.Key_Space)  # Space again: signs off, as Enter does
    assert not ctl2.recording and not win2.second_look.active and win2.annotation.annotating
    assert [c[2] for c in session2.calls if c[0] == "event"] == ["signed_off"]


def test_the_random_arm_follows_the_seeded_coin_of_each_case(qtbot, tmp_path):
    from radgaze.capture.gazemath.second_look import second_look_arm

    win, ctl, session = _window(qtbot, tmp_path, "random", seed=5)
    for case in ("a", "b", "c", "d"):
        assert win.loaded.case_id == case
        if not ctl.recording:
            qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
        assert win.second_look.active == second_look_arm("random", 5, case)
        if win.second_look.active:
            qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)
        for ch in "15":
            qtbot.keyClick(win, ch)
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)
    arms = [c[2] for c in session.calls if c[0] == "second_look"]
    assert arms == [second_look_arm("random", 5, c) for c in "abcd"]


def test_a_runs_model_attention_is_computed_on_the_capture_worker_and_stored(tmp_path):
    """A real capture worker and live session file; the model a tiny EGMA saved as a run (review's rule)."""
    import threading

    import torch

    from radgaze.app.second_look import model_attention
    from radgaze.capture.base.records import VIEW_DTYPE, DisplayGeometry, ImageRef
    from radgaze.capture.gazemath.second_look import SecondLookLog
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.second_look import read_second_looks
    from radgaze.capture.store.writer import SessionWriter
    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), tmp_path / "run" / "checkpoints" / "last")
    attention = model_attention(tmp_path / "run")
    pixels = np.random.default_rng(0).integers(0, 4096, (256, 192)).astype(np.uint16)
    threads = []

    def on_worker():
        threads.append(threading.current_thread().name)
        return attention(pixels, ["there is a nodule."])

    direct = attention(pixels, ["there is a nodule."])
    assert direct.shape == (256, 192) and abs(float(direct.sum()) - 1.0) < 1e-3
    writer = SessionWriter(tmp_path / "live.h5", live=True)
    pipe = LiveSession(DisplayGeometry(), writer, clock=lambda: 100.0).start()
    view = np.zeros(1, VIEW_DTYPE)
    view["t_lsl"], view["scale"] = 90.0, 1.0
    pipe.begin_case("c1", ImageRef("c1.png", "", 192, 256), view[0])
    log = SecondLookLog("c1", True, "on", 0, 99.0)
    pipe.begin_second_look(log, pixels=pixels, attention=on_worker)
    pipe.end_case(100.0)
    pipe.stop()
    writer.close()
    assert threads == ["radgaze-live"]  # not the UI thread
    stored = read_second_looks(tmp_path / "live.h5")["c1"]
    assert stored["versions"][0]["has_model"] and stored["model"][0].any()  # never looked: all of it unviewed


def test_the_worker_uses_the_readers_chest_box_and_a_failed_second_look_never_stops_the_recording(tmp_path):
    from radgaze.capture.base.records import VIEW_DTYPE, DisplayGeometry, ImageRef
    from radgaze.capture.gazemath.second_look import SecondLookLog
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.second_look import read_second_looks
    from radgaze.capture.store.writer import SessionWriter

    writer = SessionWriter(tmp_path / "live.h5", live=True)
    pipe = LiveSession(DisplayGeometry(), writer, clock=lambda: 100.0).start()
    view = np.zeros(1, VIEW_DTYPE)
    view["t_lsl"], view["scale"] = 90.0, 1.0
    pixels = np.full((256, 192), 1000, np.uint16)
    pipe.begin_case("c1", ImageRef("c1.png", "", 192, 256), view[0])
    bad = SecondLookLog("c1", True, "on", 0, 95.0)
    pipe.begin_second_look(bad, pixels=pixels, attention=np.ones(5))  # not a 2-D map
    good = SecondLookLog("c1", True, "on", 0, 99.0)
    pipe.begin_second_look(good, pixels=pixels, chest_box=(20.0, 30.0, 170.0, 230.0))
    pipe.end_case(100.0)
    pipe.begin_case("c2", ImageRef("c2.png", "", 192, 256), view[0])  # the recording goes on
    pipe.end_case(101.0)
    pipe.stop()
    writer.close()
    events = []
    while not pipe.events.empty():
        events.append(pipe.events.get_nowait())
    looks = [p for k, p in events if k == "second_look"]
    assert looks[0][0] == "c1" and looks[0][2] == -1
    assert looks[0][1].startswith("second look not computed: model attention: expected a finite 2-D map")
    assert [p for k, p in events if k == "case_ended"] == ["c1", "c2"] and not [
        k for k, _ in events if k == "error"
    ]
    stored = read_second_looks(tmp_path / "live.h5")["c1"]
    assert [v["lung_source"] for v in stored["versions"]] == ["chest box"]
