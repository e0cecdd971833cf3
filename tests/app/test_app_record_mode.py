"""Record mode's window and controller against a stand-in pipeline (queues only): what the UI sends to the
capture side and what it shows of what comes back. The real pipeline is exercised in test_app_live.py."""

from __future__ import annotations

import queue
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from radgaze.app.main_window import MainWindow
from radgaze.app.recording import RecordController
from radgaze.capture.base.records import (
    VIEW_CASE,
    VIEW_INVERT,
    VIEW_PAN,
    VIEW_WINDOW,
    VIEW_ZOOM,
    DisplayGeometry,
    ImageRef,
    Words,
)
from radgaze.capture.live.live_session import LiveSentence, TrackerStats


class StandInPipeline:
    """Records commands; events are put by the test (what LivePipeline's worker would produce)."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.asr = None
        self.forward_screen_gaze = False
        self.calls: list[tuple] = []
        self.t = 50.0
        self.writer = SimpleNamespace(
            path=Path("stand-in.h5")
        )  # LiveSession's SessionWriter: where it writes

    def clock(self) -> float:
        self.t += 0.01
        return self.t

    def begin_case(self, case_id, image, initial_view, **kw):
        self.calls.append(("begin_case", case_id, image, int(initial_view["kind"])))

    def end_case(self, t_end):
        self.calls.append(("end_case", t_end))

    def add_view_event(self, row):
        self.calls.append(("view", int(row["kind"])))


def shown_record_window(qtbot, folder, size: tuple[int, int]) -> MainWindow:
    """A record-mode main window on screen with ``folder``'s images as its worklist."""
    win = MainWindow(title="radgaze record (test)")
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    win.open_folder(folder)
    return win


@pytest.fixture
def recorder(qtbot, tmp_path):
    y, x = np.mgrid[0:400, 0:300]
    chest = (20000 + 15000 * np.exp(-((x - 150) ** 2 / 3000 + (y - 220) ** 2 / 9000))).astype(np.uint16)
    for name in ("case1.png", "case2.png"):
        Image.fromarray(chest).save(tmp_path / name)
    win = shown_record_window(qtbot, tmp_path, (1300, 850))
    pipe = StandInPipeline()
    pipe.writer.path = tmp_path / "sessions" / "r.h5"  # the session file lies in a folder beside the images
    # named after their files (--keep-names): these tests follow cases by name; the default is in test_record_privacy
    ctl = RecordController(win, pipe, DisplayGeometry(), tracker_name="sim", keep_names=True)
    return win, pipe, ctl


def test_space_starts_and_stops_a_session_case(recorder):
    win, pipe, ctl = recorder
    win.shortcuts["Space"].activated.emit()
    assert ctl.recording and win.reading.record_button.isChecked()
    kind, case_id, image, view_kind = pipe.calls[0]
    assert (kind, case_id, view_kind) == ("begin_case", "case1", VIEW_CASE)  # with the view from the start
    assert (
        isinstance(image, ImageRef) and (image.width, image.height) == (300, 400) and len(image.sha256) == 64
    )
    assert image.path == "../case1.png"  # relative to the session file, not to the working folder (issue 20)
    win.state.wheel(1, 100, 100)
    win.state.drag_window(5, 0)
    assert pipe.calls[1:] == [("view", VIEW_ZOOM), ("view", VIEW_WINDOW)]  # every view change recorded
    win.next_button.click()  # next case while recording: the case is closed and the next one begun
    assert [c[0] for c in pipe.calls[3:5]] == ["end_case", "begin_case"]
    assert pipe.calls[4][1] == "case2"
    win.reading.record_button.click()
    assert not ctl.recording and pipe.calls[-1][0] == "end_case"  # its end is fixed at once (closed a moment
    # later by the capture loop: the ASR's last words may still come, tests/capture/test_capture_loop.py)
    assert win.worklist.items[1].status == "recorded"


def test_live_results_fill_the_panel(recorder, artifacts_dir):
    win, pipe, ctl = recorder
    ctl.start()
    pipe.events.put(("status", TrackerStats(119.6, 97.0, 1000, pipe.t)))
    t0 = pipe.t  # the case began a moment ago on the pipeline's clock
    late = Words(np.array([t0 - 2.0]), np.array([t0 - 1.5]), ["clear."], np.ones(1))  # the case before's
    words = Words(
        t0 + np.array([1.0, 1.3, 1.6]),
        t0 + np.array([1.2, 1.5, 1.8]),
        ["Heart", "size", "normal."],
        np.ones(3),
    )
    pipe.events.put(("words", late))
    pipe.events.put(("words", words))
    hm = np.zeros((64, 48), np.float32)
    yy, xx = np.mgrid[0:64, 0:48]
    hm += np.exp(-((xx - 20) ** 2 + (yy - 36) ** 2) / 30.0)
    hm /= hm.sum()
    pipe.events.put(("sentence", LiveSentence("case1", 0, "Heart size normal.", hm, 6.25, 1.0, 1.8, 7)))
    pipe.events.put(("sentence", LiveSentence("case1", 1, "No effusion.", None, 6.25, 2.0, 2.8, 0)))
    pipe.events.put(("gaze", (150.0, 200.0)))
    ctl.poll()
    assert "119.6" not in win.reading.tracker.label.text() and "120 Hz" in win.reading.tracker.label.text()
    assert "valid 97 %" in win.reading.tracker.label.text()
    assert win.reading.transcript.final_text == "Heart size normal."
    sl = win.reading.sentences
    assert sl.count() == 2 and not sl.item(0).icon().isNull()
    assert "no fixations" in sl.item(1).text()
    ov = win.state.overlay  # the last sentence with a heatmap is shown over the image
    assert ov is not None and ov.shape == (64, 48) and ov.scale == 6.25 and ov.label == "Heart size normal."
    assert win.state.gaze_img_px == (150.0, 200.0) and not win.image_view.gaze_item.isVisible()
    win.grab().save(str(artifacts_dir / "record.png"))


def test_tracker_status_warns_on_drift(recorder):
    win, pipe, ctl = recorder
    ctl.last_drift_deg = 1.7
    ctl._show_status()
    assert "recalibrate" in win.reading.tracker.label.text()


def test_reading_a_case_again_records_a_new_session_case(recorder):
    win, pipe, ctl = recorder
    ctl.start()
    ctl.stop()
    ctl.start()
    begun = [c[1] for c in pipe.calls if c[0] == "begin_case"]
    assert begun == ["case1", "case1~2"]
    assert [c[0] for c in pipe.calls] == ["begin_case", "end_case", "begin_case"]  # closed before the next


def test_view_changes_land_in_the_session_file(qtbot, tmp_path):
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.writer import SessionWriter

    y, x = np.mgrid[0:300, 0:200]
    Image.fromarray((1000 + 30 * x + 10 * y).astype(np.uint16)).save(tmp_path / "c.png")
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    qtbot.waitExposed(win)
    win.open_folder(tmp_path)
    writer = SessionWriter(tmp_path / "s.h5", live=True)
    session = LiveSession(DisplayGeometry(), writer).start()
    ctl = RecordController(win, session, DisplayGeometry())
    ctl.start()
    win.state.wheel(2, 50, 60)
    win.state.pan_by(-20, 5)
    win.state.drag_window(0, 30)
    win.state.set_invert(True)
    ctl.stop()
    session.stop()
    writer.close()
    with SessionReader(tmp_path / "s.h5") as r:
        ev = r.case(r.case_ids[0]).view_events
    assert list(ev["kind"]) == [VIEW_CASE, VIEW_ZOOM, VIEW_PAN, VIEW_WINDOW, VIEW_INVERT]
    assert ev["scale"][1] == pytest.approx(ev["scale"][0] * 1.25**2)
    # right-drag down: a higher level (PACS convention), the width kept
    assert ev["window_center"][3] > ev["window_center"][2] and ev["window_width"][3] == ev["window_width"][2]
    assert ev["invert"][4] == 1
    assert np.all(np.diff(ev["t_lsl"]) > 0)
