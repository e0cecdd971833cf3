"""``radgaze demo``: the whole live loop on an embedded default, offline.

The main window opens on synthetic cases (radgaze.capture.synth: phantom radiographs, reports, realistic gaze).
A simulated eye tracker (radgaze.capture.live.sim_tracker.SimTracker, a real LSL outlet in the Tobii layout) streams the
synthetic reader's gaze, placed where this window shows the image; a scripted dictation releases the synthetic
report's words at their times (plus an ASR-like latency) as final words. The same live pipeline as ``radgaze
record`` (radgaze.capture.live.live_session: LSL inlet thread; a worker thread running radgaze.capture.live.pipeline into the session file)
turns them into sentence heatmaps that appear one by one in the reading panel and over the image. Nothing of
the capture or the alignment runs on the UI thread.

``--seconds N --screenshot FILE.png`` runs unattended: N seconds, then a screenshot of the window, then exit.
A screenshot shows sentence heatmaps: when the case on screen at N seconds has none yet (the reader just
moved on), the window's last frame of the previous case is saved instead (a real frame of this run). The gaze
cursor is shown from the first second (the sign that gaze streams); ``--hide-gaze`` hides it, as record does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError, RadgazeError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry, Words
from radgaze.capture.live.gaze.layouts import LAYOUT_NAMES

LEAD_IN_S = 2.0  # gaze streams this long before the first case (the LSL inlet connects meanwhile)
CASE_GAP_S = 3.0  # between cases: the finished case and its heatmaps stay on screen a moment
# Final words reach the pipeline this long after they were spoken: streaming Whisper commits ~1 s chunks once
# two decodes agree (radgaze.capture.live.asr: CHUNK_S = 1 s, LocalAgreement-2), so 1.2 s is a realistic commit delay.
ASR_LATENCY_S = 1.2
WINDOW_PX = (1400, 900)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze demo",
        description="Open the viewer on synthetic cases with a simulated eye tracker (LSL) and a scripted "
        "dictation driving the live pipeline: sentence heatmaps appear as they are dictated.",
        epilog="example: radgaze demo --seconds 40 --screenshot demo.png",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="quit after N seconds (default: run until the window is closed)",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="save a PNG of the window before quitting (the last case that has heatmaps)",
    )
    p.add_argument("--cases", type=int, default=3, help="synthetic cases")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic reading")
    p.add_argument("--image-size", type=int, default=1024, help="synthetic image side in px")
    p.add_argument("--rate", type=float, default=120.0, help="simulated tracker rate (Hz)")
    p.add_argument(
        "--layout", default="tobii", choices=LAYOUT_NAMES, help="LSL layout of the simulated tracker"
    )
    p.add_argument(
        "--keep", type=Path, default=None, help="folder for the cases and session (default: a temp folder)"
    )
    p.add_argument(
        "--hide-gaze",
        action="store_true",
        help="hide the gaze cursor (shown in the demo; hidden when recording)",
    )
    return p


# ------------------------------------------------------------------------------------------ pure parts
@dataclass(frozen=True)
class DemoCase:
    case_id: str
    t_offset_s: float  # start of the case on the demo's timeline (s after the stream's first sample)
    duration_s: float


def gaze_on_screen(gaze: np.ndarray, scale: float, offset_x: float, offset_y: float) -> np.ndarray:
    """The synthetic reader's gaze re-placed on this screen: image px through (scale, offset) to screen px.

    Samples without image coordinates (blinks, dropouts) stay invalid."""
    out = gaze.copy()
    valid = (
        ((gaze["flags"] & GAZE_VALID) != 0) & np.isfinite(gaze["x_img_px"]) & np.isfinite(gaze["y_img_px"])
    )
    out["x_screen_px"] = np.where(valid, gaze["x_img_px"] * scale + offset_x, np.nan)
    out["y_screen_px"] = np.where(valid, gaze["y_img_px"] * scale + offset_y, np.nan)
    out["flags"] = np.where(valid, gaze["flags"], gaze["flags"] & ~np.uint8(GAZE_VALID))
    return out


def demo_timeline(records, view_rows) -> tuple[np.ndarray, list[DemoCase]]:
    """Concatenate the cases' gaze on one timeline starting at 0 (s), after LEAD_IN_S of gaze at the first
    point, CASE_GAP_S between cases; ``view_rows[i]`` places case i on the screen. Returns (GAZE rows whose
    t_lsl is the timeline time, cases)."""
    parts, cases, t = [], [], LEAD_IN_S
    for rec, row in zip(records, view_rows):
        g = gaze_on_screen(rec.gaze, float(row["scale"]), float(row["offset_x"]), float(row["offset_y"]))
        g["t_lsl"] = g["t_lsl"] - rec.t_start + t
        parts.append(g)
        cases.append(DemoCase(rec.case_id, t, rec.duration_s))
        t += rec.duration_s + CASE_GAP_S
    first = parts[0][np.argmax((parts[0]["flags"] & GAZE_VALID) != 0)]
    lead = np.repeat(first[None], max(1, int(LEAD_IN_S * 100)), axis=0)
    lead["t_lsl"] = np.linspace(0.0, LEAD_IN_S, lead.size, endpoint=False)
    return np.concatenate([lead, *parts]), cases


def dictation_script(records, cases: list[DemoCase], t0_lsl: float) -> list[tuple[float, Words]]:
    """(release time, words) per word on the LSL clock: each case's words (dictated punctuation converted as
    the ASR does) moved to the case's place on the demo timeline, released ASR_LATENCY_S after they end."""
    from radgaze.capture.gazemath.punctuation import apply_dictated_punctuation

    script = []
    for rec, case in zip(records, cases):
        words, _ = apply_dictated_punctuation(rec.words, final=True)
        shift = t0_lsl + case.t_offset_s - rec.t_start
        for k in range(len(words)):
            w = Words(
                np.array([words.t_start[k] + shift]),
                np.array([words.t_end[k] + shift]),
                [words.text[k]],
                np.asarray(words.probability[k : k + 1], np.float32),
            )
            script.append((float(w.t_end[0]) + ASR_LATENCY_S, w))
    script.sort(key=lambda item: item[0])
    return script


class ScriptedDictation:
    """A thread releasing scripted final words into the pipeline at their times (a stand-in for the ASR
    worker); ``latest_preview`` mimics the ASR's preview (words spoken but not yet final)."""

    def __init__(self, script: list[tuple[float, Words]], add_words, clock) -> None:
        self.script, self.add_words, self.clock = script, add_words, clock
        self.latest_preview = None
        self.n_released = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-dictation", daemon=True)

    def start(self) -> ScriptedDictation:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        from radgaze.capture.gazemath.punctuation import join_tokens
        from radgaze.capture.live.asr import Preview

        while not self._stop.is_set() and self.n_released < len(self.script):
            now = self.clock()
            due = [w for t, w in self.script[self.n_released :] if t <= now]
            for w in due:
                self.add_words(w)
            self.n_released += len(due)
            spoken = [w.text[0] for t, w in self.script[self.n_released :] if w.t_start[0] <= now]
            self.latest_preview = Preview("", join_tokens(spoken), now)
            self._stop.wait(0.05)


# ------------------------------------------------------------------------------------------ the app
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds: expected a number of seconds > 0, got {args.seconds:g}")
    from radgaze.app.qtapp import ensure_qapp, run_until_closed

    app = ensure_qapp("radgaze demo")
    demo = Demo(args, app)
    try:
        demo.start()
        run_until_closed(app, [demo.window])  # Ctrl-Q, closing the window, Ctrl-C, SIGTERM, --seconds
    finally:
        demo.shutdown()
    if demo.error is not None:
        raise demo.error
    print(
        f"radgaze demo: {demo.n_sentences()} sentence heatmaps over {demo.n_cases_shown} case(s); "
        f"session {demo.session_path}"
        + (f"; screenshot {args.screenshot}{demo.screenshot_note}" if args.screenshot else ""),
        flush=True,
    )
    return 0


class Demo:
    """Everything the demo runs, started and stopped in order (inlets are closed before outlets)."""

    def __init__(self, args: argparse.Namespace, app) -> None:
        self.args, self.app = args, app
        self.folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="radgaze-demo-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session_path = self.folder / "demo-live.h5"
        self.window = self.controller = self.pipeline = self.inlet = self.sim = self.writer = None
        self.dictation: ScriptedDictation | None = None
        self.error: BaseException | None = None
        self.n_cases_shown = 0
        self.cases: list[DemoCase] = []
        self.last_heatmap_frame = None  # QPixmap of the last case that showed heatmaps
        self.screenshot_note = ""
        self.t0_lsl = 0.0

    def n_sentences(self) -> int:
        return 0 if self.controller is None else self.controller.n_sentences_total

    def start(self) -> None:
        """Write the synthetic cases, open the window, start the tracker, capture, dictation and timers."""
        from PySide6 import QtCore

        self._write_cases()
        display = self._open_window()
        # every synthetic case has the same size, so the fitted view of the first places them all
        row = self.window.state.current_view_row()
        gaze, self.cases = demo_timeline(self.records, [row] * len(self.records))
        self._start_capture(gaze, display)
        self._start_dictation()
        self.controller.start()
        self.n_cases_shown = 1
        self.case_timer = QtCore.QTimer()
        self.case_timer.setInterval(100)
        self.case_timer.timeout.connect(self._advance)
        self.case_timer.start()
        if self.args.seconds is not None:
            QtCore.QTimer.singleShot(int(self.args.seconds * 1000), self.finish)

    def _write_cases(self) -> None:
        """The synthetic reading's images into the demo folder (the worklist the window opens)."""
        from radgaze.capture.synth import synth_reading

        args = self.args
        reading = synth_reading(
            args.seed, n_cases=args.cases, image_size=args.image_size, rate_hz=args.rate, zoom_p=0.0
        )
        for rec, png in zip(reading, reading.pngs):
            (self.folder / rec.image.path).write_bytes(png)
        self.records = list(reading)

    def _open_window(self):
        """The main window on the demo folder; returns the display geometry the gaze is drawn on."""
        from radgaze.app.main_window import MainWindow
        from radgaze.app.record_cmd import screen_display

        self.window = MainWindow(
            title="radgaze demo — synthetic cases, simulated tracker and dictation", settings_key="demo"
        )
        self.window.resize(*WINDOW_PX)
        self.window.show()
        self.window.open_folder(self.folder)
        self.app.processEvents()
        self.window.state.set_gaze_cursor_visible(not self.args.hide_gaze)
        self.window.reading.level.set_source("microphone: none (scripted dictation)")
        return covering_display(screen_display(self.app), self.window)

    def _start_capture(self, gaze, display) -> None:
        """Live session file, simulated tracker over LSL, inlet, live pipeline and the record controller."""
        import pylsl

        from radgaze.app.recording import RecordController
        from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
        from radgaze.capture.live.gaze.inlet import GazeInlet
        from radgaze.capture.live.live_session import LiveSession
        from radgaze.capture.live.sim_tracker import SimTracker
        from radgaze.capture.store.writer import SessionWriter

        args = self.args
        self.writer = SessionWriter(
            self.session_path,
            reader_id="demo",
            provenance={
                "source": "radgaze demo",
                "tracker": f"sim-tracker ({args.layout})",
                "asr_model": "script",
            },
            live=True,
        )
        name = f"radgaze-demo-{os.getpid()}"  # unique on this machine: two demos never mix streams
        self.sim = SimTracker(gaze, args.layout, args.rate, display, name=name, loop=False)
        self.t0_lsl = pylsl.local_clock()
        self.sim.start()
        self.inlet = GazeInlet(resolve_gaze_stream(name, timeout_s=10.0), display).start()
        self.pipeline = LiveSession(display, self.writer, gaze_inlet=self.inlet).start()
        by_id = {rec.case_id: rec for rec in self.records}
        self.controller = RecordController(
            self.window,
            self.pipeline,
            display,
            tracker_name=f"simulated {args.layout} {args.rate:g} Hz",
            case_extras=lambda case: _case_extras(by_id.get(case.case_id)),
        )
        self.controller.error.connect(self._on_error)

    def _start_dictation(self) -> None:
        """The scripted dictation, releasing each word when the synthetic reader has said it."""
        import pylsl

        self.dictation = ScriptedDictation(
            dictation_script(self.records, self.cases, self.t0_lsl),
            self.pipeline.add_words,
            pylsl.local_clock,
        )
        self.controller.preview_source = self.dictation
        self.dictation.start()

    def _advance(self) -> None:
        """Show the next case when the synthetic reader moves on; stop recording after the last one."""
        import pylsl

        now = pylsl.local_clock() - self.t0_lsl
        k = self.n_cases_shown
        if k < len(self.cases) and now >= self.cases[k].t_offset_s:
            self._keep_frame()
            self.window.worklist.next()
            self.n_cases_shown += 1
        last = self.cases[-1]
        if self.controller.recording and now >= last.t_offset_s + last.duration_s + ASR_LATENCY_S + 1.0:
            self.controller.stop()
            self.window.statusBar().showMessage(f"demo finished: session written to {self.session_path}")

    def _on_error(self, message: str) -> None:
        self.window.statusBar().showMessage(f"demo error: {message}")
        try:
            self.controller.raise_errors()
        except BaseException as exc:  # noqa: BLE001 - re-raised by main after the window closes
            self.error = exc
        self.finish()

    def _keep_frame(self) -> None:
        """Before the next case replaces this one: keep its last frame if it shows heatmaps (--screenshot)."""
        if self.args.screenshot is not None and self.controller.sentences:
            self.controller.poll()
            self.last_heatmap_frame = self.window.grab()

    def finish(self) -> None:
        from radgaze.app.qtapp import quit_all, save_png

        try:
            if self.args.screenshot is not None and self.window is not None:
                self.controller.poll()
                self.app.processEvents()
                frame = self.window.grab()
                if not self.controller.sentences and self.last_heatmap_frame is not None:
                    frame = self.last_heatmap_frame  # the case on screen has no heatmap yet
                    self.screenshot_note = (
                        " (the previous case's last frame: the current one has no heatmap yet)"
                    )
                save_png(frame, self.args.screenshot)
        except (RadgazeError, OSError) as exc:  # raised by main once the loop has returned (exit 2, one line)
            self.error = self.error or exc
        finally:
            quit_all(self.app)

    def shutdown(self) -> None:
        for stop in (
            lambda: self.case_timer.stop(),
            lambda: self.dictation.stop(),
            lambda: self.pipeline.stop(),
            lambda: self.inlet.stop(),
            lambda: self.sim.stop(),
            lambda: self.writer.close(),
        ):
            try:
                stop()
            except AttributeError:
                pass  # not started


def _case_extras(rec) -> dict:
    """Ground truth carried into the recorded session case (labels; synthetic provenance)."""
    if rec is None:
        return {}
    return {"labels": tuple(rec.labels), "attrs": {"synthetic": True, "demo": True}}


def covering_display(display: DisplayGeometry, window) -> DisplayGeometry:
    """The screen, grown (same pixel pitch) to contain the window when the window is larger than the screen
    (offscreen runs): gaze on the window then stays on the tracker's screen."""
    geo = window.frameGeometry()
    dpr = window.devicePixelRatioF()
    w_px = max(display.screen_w_px, round((geo.x() + geo.width()) * dpr))
    h_px = max(display.screen_h_px, round((geo.y() + geo.height()) * dpr))
    if (w_px, h_px) == (display.screen_w_px, display.screen_h_px):
        return display
    pitch_x, pitch_y = display.screen_w_mm / display.screen_w_px, display.screen_h_mm / display.screen_h_px
    return DisplayGeometry(w_px, h_px, w_px * pitch_x, h_px * pitch_y, display.viewing_distance_mm)
