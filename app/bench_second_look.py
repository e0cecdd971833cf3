"""``radgaze bench second-look``: from Space to the second-look overlay drawn, in the record window.

A real record window (offscreen by default) with a real :class:`radgaze.capture.live.live_session.LiveSession` worker writing a
real live session file reads a synthetic case (radgaze.capture.synth, 2048 px, the default 3 MP display) over
and over: each repeat starts a case, hands the worker that reading's gaze and words (a stand-in for the LSL
inlet and the ASR: everything arrives at once), waits until its sentences are closed, presses Space (the
window's own shortcut) and measures until :class:`radgaze.app.second_look.SecondLookFlow` has drawn the
overlay (``latency_s``: the worker's loop (20 ms period) takes the command and computes it, the window polls
every 5 ms while it waits, the items are drawn), then Enter signs off; ``compute_p50_ms`` / ``compute_p95_ms``
time the maths alone on the same case. Figures: p50 / p95 / max ms over the repeats; goal (issue 22) p95 <= 100 ms; and the load
average beside them (capture.base.report). Then the mark rates on synthetic readers (1024 px, the default 3 MP
display, seeds from 100): ``false_mark_rate_complete`` (a complete reading marked at all) and, per reader,
``exact_marks_*`` = cases whose overlay marked exactly what the reader missed (nothing for complete,
recognition and radgaze's default reader).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from radgaze.capture.base.report import bench_result, print_result

GOALS = {"space_to_overlay_p95_ms": ("<=", 100.0)}
IMAGE_PX = 2048


class ReadingInlet:
    """Stands for the LSL inlet: ``drain()`` hands over the chunks given to :meth:`feed` once."""

    def __init__(self) -> None:
        self._chunks: list = []

    def feed(self, gaze: np.ndarray) -> None:
        from radgaze.capture.base.records import GAP_DTYPE
        from radgaze.capture.live.gaze.inlet import GazeChunk

        self._chunks.append(GazeChunk(gaze, np.zeros(0, GAP_DTYPE), float(gaze["t_lsl"][-1])))

    def drain(self) -> list:
        out, self._chunks = self._chunks, []
        return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze bench second-look",
        description="Space -> second-look overlay drawn, in a record window with the real capture worker.",
        epilog="example: radgaze bench second-look --repeats 30 --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=30, help="cases read, one Space each")
    p.add_argument(
        "--mark-cases",
        type=int,
        default=50,
        help="synthetic cases per reader kind for the mark rates (complete: twice as many; 0: skip)",
    )
    return p


def compute_figures(record, pixels, repeats: int) -> dict:
    """The maths alone (radgaze.capture.gazemath.second_look.compute_second_look on the whole case), for
    telling the computation from the worker's and the UI's polling in the Space -> overlay figure."""
    from radgaze.capture.gazemath.second_look import compute_second_look

    windows = np.c_[record.sentences.window_start, record.sentences.window_end]
    wh = (record.image.width, record.image.height)
    ms = []
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        compute_second_look(record.fixations, windows, wh, t_lsl=record.t_end, pixels=pixels)
        ms.append((time.perf_counter() - t) * 1000.0)
    return {
        "compute_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "compute_p95_ms": round(float(np.percentile(ms, 95)), 1),
    }


def mark_figures(n: int) -> dict:
    """How often the overlay marks exactly what each synthetic reader missed (synth.trial.mark_rates): the
    false-mark rate of complete readings, the exact-mark rate of each error."""
    from radgaze.capture.synth.trial import mark_rates

    kinds = {"complete": 2 * n, "search": n, "decision": n, "recognition": n, "default": n}
    rates = mark_rates(kinds, seed=100)
    figures = {f"exact_marks_{k}": f"{ok}/{total}" for k, (ok, total) in rates.items()}
    ok, total = rates["complete"]
    figures["false_mark_rate_complete"] = round(1 - ok / total, 3)
    return figures


def _window(folder: Path, out: Path):
    from radgaze.app.main_window import MainWindow
    from radgaze.app.recording import RecordController
    from radgaze.app.second_look import SecondLookFlow
    from radgaze.capture.base.records import DisplayGeometry
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.writer import SessionWriter

    inlet = ReadingInlet()
    writer = SessionWriter(out, live=True)
    session = LiveSession(DisplayGeometry(), writer, gaze_inlet=inlet).start()
    win = MainWindow(title="radgaze bench second-look")
    win.resize(1600, 1000)
    win.show()
    win.open_folder(folder)
    ctl = RecordController(win, session, DisplayGeometry())
    flow = SecondLookFlow(win, ctl, session, mode="on")
    return win, ctl, flow, session, inlet, writer


def _read_once(app, win, ctl, flow, session, inlet, record) -> None:
    """One case: the reading's gaze and words shifted to now, Space, the overlay, Enter."""
    from radgaze.capture.base.records import Words

    ctl.start()
    deadline = time.monotonic() + 30
    while session.case_id != ctl.recorded_ids[-1] and time.monotonic() < deadline:
        time.sleep(0.002)  # the worker has closed the last case and opened this one: the gaze is this case's
    t0 = session.clock() + 0.05
    gaze = record.gaze.copy()
    gaze["t_lsl"] += t0 - record.t_start
    inlet.feed(gaze)
    w = record.words
    session.add_words(
        Words(w.t_start + t0 - record.t_start, w.t_end + t0 - record.t_start, w.text, w.probability)
    )
    # every word in, every sentence but the last closed (the last closes with the case, after sign-off)
    while (
        len(ctl.words) < len(w) or len(ctl.sentences) < len(record.sentences) - 1
    ) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    n = len(flow.latency_s)
    win.shortcuts["Space"].activated.emit()
    while len(flow.latency_s) == n and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)
    flow.sign_off()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from radgaze.app.qtapp import ensure_qapp
    from radgaze.capture.synth import synth_reading

    app = ensure_qapp("radgaze bench")
    reading = synth_reading(22, n_cases=1, image_size=IMAGE_PX)
    record = reading[0]
    with tempfile.TemporaryDirectory(prefix="radgaze-bench-sl-") as tmp:
        folder = Path(tmp) / "cxr"
        folder.mkdir()
        (folder / record.image.path).write_bytes(reading.pngs[0])
        win, ctl, flow, session, inlet, writer = _window(folder, Path(tmp) / "bench.h5")
        try:
            for _ in range(args.repeats):
                _read_once(app, win, ctl, flow, session, inlet, record)
        finally:
            ctl.stop()
            session.stop()
            writer.close()
            win.close()
    ms = np.asarray(flow.latency_s) * 1000.0
    figures = {
        "space_to_overlay_p50_ms": round(float(np.percentile(ms, 50)), 1) if ms.size else None,
        "space_to_overlay_p95_ms": round(float(np.percentile(ms, 95)), 1) if ms.size else None,
        "space_to_overlay_max_ms": round(float(ms.max()), 1) if ms.size else None,
        "repeats": int(ms.size),
        "fixations_per_case": int(record.fixations.size),
        "image_px": IMAGE_PX,
    }
    figures.update(compute_figures(record, reading.images[0], args.repeats))
    if args.mark_cases > 0:
        figures.update(mark_figures(args.mark_cases))
    notes = {} if ms.size else {"space_to_overlay_p95_ms": "no overlay was drawn"}
    print_result(bench_result(figures, GOALS, notes), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
