"""The second look at sign-off, end to end through the real record window.

Synthetic readers who each make one kind of error (radgaze.capture.synth.readers) read phantom radiographs in
a real ``radgaze record`` window: their gaze is a real LSL stream in the Tobii bridge's layout from another
process (tests/app/gaze_script_proc.py), started when the case starts; their dictation comes as the ASR
delivers words. Space (real key events) ends the dictation: the overlay must mark exactly what the reader
missed — the skipped zone (search error), the place dwelt on and not reported (decision error) — and nothing
for a complete reading, nor for a brief glance (a recognition error leaves no trace in dwell or coverage).
H hides and shows it, the reader dictates again, Enter signs off and the labels step follows. The session
then holds what was shown, when, and what came after; replay shows it at its time; the REFLACX export says so.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from radgaze.capture.base.records import GAZE_DTYPE, VIEW_CASE, DisplayGeometry, Words

WINDOW_PX = (2048, 1536)  # a 3 MP monitor's pitch at a 65 cm distance: a chest the size a reader sees it
IMAGE_PX = 1024
SEED = 3
READERS = ("complete", "search", "decision", "recognition")
AGAIN = "there is a small nodule in the {zone} zone."  # what the reader adds after the second look


@pytest.fixture
def scripted_tracker(tmp_path):
    name = f"radgaze-second-look-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gaze_script_proc.py")), name, "x".join(map(str, WINDOW_PX)), "120"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "READY"
    lines: queue.Queue = queue.Queue()  # read in a thread: the window's event loop must keep running
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout], daemon=True).start()
    proc.lines = lines
    yield name, proc
    proc.stdin.write("QUIT\n")
    proc.stdin.flush()
    proc.wait(10)


def _matching_display(scale: float) -> DisplayGeometry:
    """A square screen of the record display's pixel pitch on which the fitted image has ``scale``: the
    synthetic reader plans its fixations with the image px per degree the window gives it."""
    base = DisplayGeometry()
    n = int(round(scale * IMAGE_PX))
    pitch_x, pitch_y = base.screen_w_mm / base.screen_w_px, base.screen_h_mm / base.screen_h_px
    return DisplayGeometry(n, n, n * pitch_x, n * pitch_y, base.viewing_distance_mm)


def _reading(k: int, display: DisplayGeometry | None = None):
    from radgaze.capture.synth import synth_reading

    opts = {"display": display} if display is not None else {}
    return synth_reading(
        SEED, n_cases=1, first_case=k, image_size=IMAGE_PX, reader=READERS[k], zoom_p=0.0, **opts
    )


def _next_line(qtbot, proc, timeout_s: float) -> str:
    """The helper's next line, the window's event loop running meanwhile."""
    got: list[str] = []

    def arrived() -> bool:
        try:
            got.append(proc.lines.get_nowait())
        except queue.Empty:
            return False
        return True

    qtbot.waitUntil(arrived, timeout=int(timeout_s * 1000))
    return got[0]


def _play(qtbot, proc, win, tmp_path: Path, record) -> float:
    """The reading's gaze onto the window's screen through its view now; returns the LSL time it starts."""
    view = win.state.current_view_row(VIEW_CASE)
    g = record.gaze
    rows = np.zeros(g.size, GAZE_DTYPE)
    rows["t_lsl"] = g["t_lsl"] - record.t_start
    rows["x_screen_px"] = g["x_img_px"] * view["scale"] + view["offset_x"]
    rows["y_screen_px"] = g["y_img_px"] * view["scale"] + view["offset_y"]
    rows["pupil"] = g["pupil"]
    path = tmp_path / f"{record.case_id}.npy"
    np.save(path, rows)
    proc.stdin.write(f"PLAY {path}\n")
    proc.stdin.flush()
    line = _next_line(qtbot, proc, 20).split()
    assert line[0] == "T0", line
    return float(line[1])


def _look_again(qtbot, proc, win, tmp_path: Path, cluster) -> float:
    """The reader looks at the circled place for 2.5 s (gaze through the window's view); returns its start."""
    view = win.state.current_view_row(VIEW_CASE)
    rows = np.zeros(int(2.5 * 250), GAZE_DTYPE)
    rows["t_lsl"] = np.arange(rows.size) / 250.0
    jitter = np.random.default_rng(0).normal(0.0, 1.0, (2, rows.size))  # ~0.02 deg of tracker noise
    rows["x_screen_px"] = cluster.x_img_px * view["scale"] + view["offset_x"] + jitter[0]
    rows["y_screen_px"] = cluster.y_img_px * view["scale"] + view["offset_y"] + jitter[1]
    rows["pupil"] = 3.5
    path = tmp_path / "look_again.npy"
    np.save(path, rows)
    proc.stdin.write(f"PLAY {path}\n")
    proc.stdin.flush()
    line = _next_line(qtbot, proc, 20).split()
    assert line[0] == "T0", line
    return float(line[1])


def _said(words: Words, dt: float) -> Words:
    return Words(words.t_start + dt, words.t_end + dt, list(words.text), words.probability)


def _read_case(qtbot, win, ctl, parts, proc, tmp_path, k: int):
    """Case k read by its synthetic reader up to Space; returns (its synthetic record, the overlay shown)."""
    qtbot.waitUntil(lambda: ctl.recording and win.loaded.case_id == f"synth{SEED}-{k:04d}", timeout=20_000)
    qtbot.wait(300)
    view = win.state.current_view_row(VIEW_CASE)
    record = _reading(k, _matching_display(float(view["scale"])))[0]
    t0 = _play(qtbot, proc, win, tmp_path, record)
    assert _next_line(qtbot, proc, record.duration_s + 30) == "DONE"
    parts.session.add_words(_said(record.words, t0 - record.t_start))  # as the ASR delivers them, late
    # every word has reached the capture worker (the last sentence closes with the case, after sign-off; the
    # second look takes its window from its words)
    qtbot.waitUntil(lambda: len(ctl.words) >= len(record.words), timeout=20_000)
    qtbot.waitUntil(lambda: len(ctl.sentences) >= len(record.sentences) - 1, timeout=20_000)
    flow = win.second_look
    shown = len(flow.latency_s)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    assert ctl.recording  # the case goes on recording during the second look
    qtbot.waitUntil(lambda: len(flow.latency_s) > shown, timeout=20_000)
    return record, flow.overlay.shown


def _check_overlay(kind: str, record, sl) -> None:
    truth = record.attrs.get("reader_error")
    if kind in ("complete", "recognition"):
        assert sl.empty, (kind, sl.status_line())
        assert sl.status_line().startswith("no marks:")
        return
    ppd = float(np.median(record.fixations["ppd_img"]))
    if kind == "search":
        assert sl.zones_not_viewed == [truth["zone"]] and sl.clusters == [], sl.status_line()
        cell = (int(truth["y_img_px"] / sl.grid_scale), int(truth["x_img_px"] / sl.grid_scale))
        assert sl.unviewed[cell], "the missed nodule is not in the shaded part"
    else:
        (c,) = sl.clusters
        assert np.hypot(c.x_img_px - truth["x_img_px"], c.y_img_px - truth["y_img_px"]) < 1.0 * ppd
        assert c.dwell_s >= 1.0 and sl.zones_not_viewed == [] and not sl.unviewed.any()


@pytest.mark.slow
def test_the_second_look_marks_exactly_what_each_synthetic_reader_missed(
    qtbot, tmp_path, scripted_tracker, artifacts_dir
):
    from PySide6.QtWidgets import QApplication

    from radgaze.app.record_cmd import build_parser, open_sources, open_window

    name, proc = scripted_tracker
    images = tmp_path / "cxr"
    images.mkdir()
    for k in range(len(READERS)):
        reading = _reading(k)
        (images / reading[0].image.path).write_bytes(reading.pngs[0])
    (tmp_path / "labels_only.toml").write_text(
        "[steps]\nshapes = false\nchest_box = false\ntranscript = false\n"
    )
    out = tmp_path / "sessions" / "second_look.h5"
    args = build_parser().parse_args(
        [str(out), "--images", str(images), "--tracker", name, "--no-audio", "--display", "x".join(map(str, WINDOW_PX)),
         "--second-look", "on", "--protocol", str(tmp_path / "labels_only.toml"), "--keep-names"]
    )  # fmt: skip
    parts = open_sources(args, QApplication.instance())
    try:
        win, ctl = open_window(args, parts)
        qtbot.addWidget(win)
        win.resize(*WINDOW_PX)
        qtbot.waitExposed(win)
        win.activateWindow()
        qtbot.waitUntil(lambda: win.isActiveWindow() and win.loaded is not None, timeout=10_000)
        qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # the first case; the next ones start by themselves
        extra = None
        for k, kind in enumerate(READERS):
            record, sl = _read_case(qtbot, win, ctl, parts, proc, tmp_path, k)
            _check_overlay(kind, record, sl)
            win.grab().save(str(artifacts_dir / f"second_look_{kind}.png"))
            assert "Second look" in win.statusBar().currentMessage()
            if kind == "decision":  # H hides and shows it; the reader looks again and dictates the nodule
                qtbot.keyClick(win, "h")
                assert not win.second_look.overlay.visible
                qtbot.keyClick(win, "h")
                assert win.second_look.overlay.visible
                said = AGAIN.format(zone=record.attrs["reader_error"]["zone"])
                n = len(said.split())
                t_look = _look_again(qtbot, proc, win, tmp_path, sl.clusters[0])
                extra = scripted_words(said, t_look + 0.6, 0.1)  # said while looking at it, after Space
                parts.session.add_words(extra)
                assert _next_line(qtbot, proc, 30) == "DONE"
                want = len(record.words) + n
                qtbot.waitUntil(lambda want=want: len(ctl.words) >= want, timeout=20_000)
                qtbot.wait(500)  # the recomputed second look (late words) is drawn
            qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)  # sign off: the labels step
            assert not ctl.recording and win.annotation.annotating and not win.second_look.active
            for ch in "15":
                qtbot.keyClick(win, ch)
            qtbot.keyClick(win, QtCore.Qt.Key.Key_Return)
        qtbot.waitUntil(
            lambda: sum(s[1] == "labels" for s in win.annotation.saved) == len(READERS), timeout=20_000
        )
        win.close()
    finally:
        parts.close()
    _check_the_session(out, tmp_path, extra, artifacts_dir, qtbot)


def scripted_words(text: str, t0: float, step_s: float) -> Words:
    words = text.split()
    t = t0 + step_s * np.arange(len(words))
    return Words(t, t + 0.8 * step_s, words, np.ones(len(words)))


def _check_the_session(out: Path, tmp_path: Path, extra: Words, artifacts_dir: Path, qtbot) -> None:
    said = " ".join(extra.text)
    from radgaze.capture.exporters.reflacx import export_reflacx
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.second_look import read_second_looks

    stored = read_second_looks(out)
    ids = [f"synth{SEED}-{k:04d}" for k in range(len(READERS))]
    assert sorted(stored) == ids and all(s["shown"] and s["assignment"] == "on" for s in stored.values())
    decision = stored[ids[2]]
    kinds = [k for _, k in decision["events"]]
    assert kinds[:2] == ["computed", "shown"] and kinds[-1] == "signed_off"
    assert ["hidden", "shown"] == [k for k in kinds[2:] if k in ("hidden", "shown")]
    with SessionReader(out) as r:
        case = r.case(ids[2])
    after = case.sentences.t_start >= decision["t_space_lsl"]
    assert [t for t, a in zip(case.sentences.text, after) if a] == [said]  # what the reader added, after
    assert case.annotation.labels[0].label == "Normal radiograph"
    _check_replay(out, ids[2], decision, qtbot)
    _check_review(out, ids[2], said, tmp_path, qtbot, artifacts_dir)
    result = export_reflacx([out], tmp_path / "export")
    rows = (tmp_path / "export" / "radgaze_ids.csv").read_text().splitlines()
    assert rows[0].endswith(",second_look") and len(result.written) == len(READERS)
    assert all(row.endswith(",shown") for row in rows[1:])


def _check_replay(out: Path, case_id: str, stored: dict, qtbot) -> None:
    """Replay draws the overlay from the moment it was shown to sign-off, not while it was hidden."""
    from radgaze.app.replay import ReplayWindow

    replay = ReplayWindow(out, audio=False)
    qtbot.addWidget(replay)
    try:
        replay.open_case(case_id)
        times = {k: t for t, k in stored["events"]}  # the last of each kind
        t_shown = next(t for t, k in stored["events"] if k == "shown")
        t_hidden = next(t for t, k in stored["events"] if k == "hidden")
        t_again = next(t for t, k in stored["events"] if k == "shown" and t > t_hidden)  # H twice: ms apart
        for t, drawn in ((t_shown - 0.5, False), (t_shown + 0.01, True), ((t_hidden + t_again) / 2, False),
                         (times["signed_off"] - 0.01, True), (times["signed_off"] + 0.5, False)):  # fmt: skip
            replay.seek(t)
            assert (replay.second_look.overlay.shown is not None) is drawn, (t - t_shown, drawn)
        replay.seek(t_shown + 0.01)
        assert len(replay.second_look.overlay.shown.clusters) == 1
    finally:
        replay.close()


def _check_review(out: Path, case_id: str, said: str, tmp_path: Path, qtbot, artifacts_dir: Path) -> None:
    """Review: the sentence dictated during the second look is marked so, with the overlay the reader had."""
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
    with qtbot.waitSignal(win.rows_ready, timeout=180_000):
        win.show()
    try:
        k = next(i for i, c in enumerate(win.cases) if c.record.case_id == case_id)
        texts = win.cases[k].record.sentences.text
        win.select(k, texts.index(said))
        assert win.sentence_label.text().endswith("· after the second look")
        assert win.second_look.overlay.shown is not None  # what was up while it was said
        win.grab().save(str(artifacts_dir / "second_look_review.png"))
        win.select(k, 0)
        assert "second look" not in win.sentence_label.text() and win.second_look.overlay.shown is None
    finally:
        win.close()
