"""``radgaze bench viewer``: how fast the viewer reacts, and whether dictation slows it down.

Figures (all on the machine it runs on, Qt platform as set, offscreen by default):

- ``wl_update_median_ms``: one window/level step (a right-drag move) on a 2048 x 2048 uint16 image fitted
  into a 1024² canvas (the 2 x 2-binned pyramid level is drawn), from the state change to the repainted
  canvas, on the viewer's path: pyqtgraph's levels (a uint16 -> uint8 lookup per frame). Goal <= 8 ms median
  (half a 60 Hz frame, so the drag keeps up with the hand). ``*_cpu_median_ms``: the main thread's CPU time
  for the same steps (what a shared machine inflates least). ``wl_update_lut_median_ms``: the alternative, a
  65536-entry uint8 window LUT (radgaze.capture.io.images.window_lut) looked up with numpy, then 8-bit grey;
  ``wl_update_1to1_median_ms``: at 1:1 (full resolution); ``wl_update_gpu_median_ms``: the level path on the
  GPU through pyqtgraph's CuPy option when CuPy and a CUDA device are present (else null, with the reason).
- ``gaze_overlay_hz``: gaze cursor moves drawn per second, each followed by a synchronous repaint of the
  region the cursor left and entered (what Qt's minimal viewport update paints).
- ``frame_ms_idle`` / ``frame_ms_during_asr``: median time of one full frame (pan by a pixel so the whole
  canvas is redrawn, move the cursor, process events) idle, then while the streaming ASR worker decodes speech
  with the tiny test Whisper (radgaze.capture.live.tiny_whisper) in real time. Goal: during <= 1.2 x idle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from radgaze.capture.base.report import bench_result, print_result

# Goals (issue 3): a window/level step within one 60 Hz frame; frames during ASR at most 1.2x the idle ones.
GOALS = {"wl_update_median_ms": ("<=", 8.0), "during_over_idle": ("<=", 1.2)}
IMAGE_SIDE_PX = 2048  # the benchmark size (a 2k x 2k 16-bit radiograph)
CANVAS_PX = (1024, 1024)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze bench viewer",
        description="Viewer latency: W/L update on 2048^2 uint16, gaze overlay rate, frame time idle "
        "vs during streaming ASR.",
        epilog="example: radgaze bench viewer --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=40, help="window/level steps measured")
    p.add_argument("--frame-seconds", type=float, default=4.0, help="seconds of frames per condition")
    p.add_argument(
        "--no-asr", action="store_true", help="skip the ASR condition (frame_ms_during_asr = null)"
    )
    p.add_argument(
        "--audio", type=Path, default=None, help="speech file for the ASR (None: the JFK clip, else a tone)"
    )
    p.add_argument(
        "--whisper-dir", type=Path, default=None, help="faster-whisper model dir (None: the tiny test model)"
    )
    return p


def phantom_uint16(side_px: int = IMAGE_SIDE_PX, seed: int = 0) -> np.ndarray:
    """A smooth 12-bit-like test image with noise (C-contiguous uint16), cheap to make."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side_px, 0:side_px].astype(np.float32) / side_px
    img = 1800 + 1500 * np.exp(-((x - 0.5) ** 2 + (y - 0.55) ** 2) / 0.08) - 900 * ((x - 0.3) ** 2 < 0.02)
    img += rng.normal(0, 40, img.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(img, 0, 65535).astype(np.uint16))


def _median_ms(samples_s: list[float]) -> float:
    return float(np.median(samples_s) * 1e3) if samples_s else float("nan")


def bench_wl(view, app, repeats: int) -> dict:
    """The viewer's W/L path (pyqtgraph's levels) and the alternative (a uint8 LUT per frame), each from the
    state change (a right-drag step) to the repainted canvas, on the same drawn pixels. Wall-clock medians,
    and the main thread's CPU time (``time.thread_time``), which a machine shared with other jobs inflates
    far less."""
    state = view.state
    repaint = view.canvas.viewport().repaint
    wall, cpu = _drag_steps(state, repaint, repeats)  # fitted: the 2x2-binned level is drawn
    drawn_bin, path = view.drawn_bin, view.wl_path
    alt = "lut" if path == "levels" else "levels"
    view.set_wl_path(alt)
    alt_wall, alt_cpu = _drag_steps(state, repaint, repeats)
    view.set_wl_path(path)
    state.one_to_one()
    full_wall, full_cpu = _drag_steps(state, repaint, max(repeats // 2, 5))  # full resolution
    state.fit()
    return {
        "wl_update_median_ms": _median_ms(wall),
        "wl_update_cpu_median_ms": _median_ms(cpu),
        "wl_update_path": path,
        "wl_update_drawn_bin": drawn_bin,
        "wl_update_1to1_median_ms": _median_ms(full_wall),
        "wl_update_1to1_cpu_median_ms": _median_ms(full_cpu),
        f"wl_update_{alt}_median_ms": _median_ms(alt_wall),
        f"wl_update_{alt}_cpu_median_ms": _median_ms(alt_cpu),
        **_gpu_levels(view, repaint, max(repeats // 2, 5)),
    }


def _drag_steps(state, repaint, n: int) -> tuple[list[float], list[float]]:
    """(wall s, main-thread CPU s) of ``n`` right-drag steps, each to the repainted canvas."""
    wall, cpu = [], []
    for i in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        state.drag_window(3.0 if i % 2 else -3.0, 2.0 if i % 4 < 2 else -2.0)
        repaint()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu


def _gpu_levels(view, repaint, n: int) -> dict:
    """pyqtgraph's CuPy level path (``useCupy``), when CuPy finds a CUDA device."""
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any failure means: no GPU path here
        return {"wl_update_gpu_median_ms": None, "wl_update_gpu_note": f"no CuPy/CUDA: {type(exc).__name__}"}
    import pyqtgraph as pg

    pg.setConfigOptions(useCupy=True)
    view.set_wl_path("levels")
    try:
        return {"wl_update_gpu_median_ms": _median_ms(_drag_steps(view.state, repaint, n)[0])}
    finally:
        view.set_wl_path("levels")
        pg.setConfigOptions(useCupy=False)


def bench_gaze(view, app, seconds: float = 1.5) -> float:
    state = view.state
    state.set_gaze_cursor_visible(True)
    rng = np.random.default_rng(1)
    viewport, item = view.canvas.viewport(), view.gaze_item
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        before = view.canvas.mapFromScene(item.sceneBoundingRect()).boundingRect()
        state.set_gaze(*rng.uniform(100, IMAGE_SIDE_PX - 100, 2))
        after = view.canvas.mapFromScene(item.sceneBoundingRect()).boundingRect()
        viewport.repaint(before.united(after).adjusted(-2, -2, 2, 2))
        n += 1
    return n / (time.perf_counter() - t0)


def frame_times(view, app, seconds: float) -> list[float]:
    state = view.state
    rng = np.random.default_rng(2)
    out, t_end, k = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        state.pan_by(1.0 if k % 2 else -1.0, 0.0)  # the whole canvas is redrawn
        state.set_gaze(*rng.uniform(100, IMAGE_SIDE_PX - 100, 2))
        view.canvas.viewport().repaint()
        app.processEvents()
        out.append(time.perf_counter() - t0)
        k += 1
        time.sleep(max(0.0, 1 / 60 - (time.perf_counter() - t0)))  # a 60 Hz display loop
    return out


def default_audio(path: Path | None) -> Path:
    if path is not None:
        return path
    clip = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio" / "jfk.flac"
    if clip.is_file():
        return clip
    import soundfile

    rate = 16000
    t = np.arange(int(11 * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    out = Path(tempfile.mkdtemp(prefix="radgaze-bench-")) / "tone.wav"
    soundfile.write(str(out), tone.astype(np.float32), rate)
    return out


def start_asr(audio: Path, whisper_dir: Path | None):
    """The streaming ASR worker fed in real time from a file; returns (stop_callable, transcriber)."""
    from radgaze.capture.live.asr import AsrConfig, StreamingTranscriber, WhisperTranscriber
    from radgaze.capture.live.audio import AudioFileSource

    if whisper_dir is None:
        from radgaze.capture.live.tiny_whisper import build_tiny_whisper

        cache = Path(os.environ.get("RADGAZE_CACHE", Path(tempfile.gettempdir()) / "radgaze-cache"))
        whisper_dir = build_tiny_whisper(cache / "tiny-whisper")
    cfg = AsrConfig(model=str(whisper_dir), device="cpu", beam_size=1, local_files_only=True)
    asr = StreamingTranscriber(WhisperTranscriber(cfg)).start()
    sources = [AudioFileSource(audio)]
    stop = threading.Event()

    def pump() -> None:  # the pipeline's role here: audio blocks -> ASR
        import queue

        while not stop.is_set():
            try:
                block = sources[-1].queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if block is None:  # loop the clip so the ASR keeps working for the whole measurement
                sources.append(AudioFileSource(audio))
                sources[-1].start()
                continue
            if isinstance(block, BaseException):
                raise block
            asr.feed(block.t_lsl_first_sample, block.samples)

    sources[0].start()
    pumper = threading.Thread(target=pump, daemon=True, name="bench-audio-pump")
    pumper.start()

    def finish() -> None:
        stop.set()
        sources[-1].stop()
        pumper.join(2.0)
        asr.stop(30.0)

    return finish, asr


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a benchmark needs no visible window
    from PySide6 import QtWidgets

    from radgaze.app.image_view import ImageView
    from radgaze.app.state import ViewerState

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["radgaze bench viewer"])
    state = ViewerState()
    view = ImageView(state)
    view.resize(*CANVAS_PX)
    view.show()
    app.processEvents()
    state.set_case("bench", phantom_uint16())
    app.processEvents()
    result: dict = {
        "image": f"{IMAGE_SIDE_PX}x{IMAGE_SIDE_PX} uint16",
        "canvas_px": list(CANVAS_PX),
        "qt_platform": app.platformName(),
    }
    result.update(bench_wl(view, app, args.repeats))
    result["gaze_overlay_hz"] = bench_gaze(view, app)
    idle = frame_times(view, app, args.frame_seconds)
    result["frame_ms_idle"] = _median_ms(idle)
    result["frame_ms_idle_p95"] = float(np.percentile(idle, 95) * 1e3)
    if args.no_asr:
        result["frame_ms_during_asr"] = None
    else:
        finish, asr = start_asr(default_audio(args.audio), args.whisper_dir)
        time.sleep(1.5)  # let the worker reach its first decode
        busy = frame_times(view, app, args.frame_seconds)
        n_decodes = asr.n_decodes
        finish()
        result["frame_ms_during_asr"] = _median_ms(busy)
        result["frame_ms_during_asr_p95"] = float(np.percentile(busy, 95) * 1e3)
        result["asr_decodes_during"] = n_decodes
        result["during_over_idle"] = result["frame_ms_during_asr"] / result["frame_ms_idle"]
    view.close()
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    result = run(args)
    notes = {"during_over_idle": "--no-asr: frame time during ASR not measured"} if args.no_asr else {}
    print_result(bench_result(result, GOALS, notes), args.json)
    return 0
