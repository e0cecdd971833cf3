"""``radgaze record``: read cases with the eye tracker and dictation running, into a session file.

The window: worklist, image, and the reading panel (start/stop with Space or the button, tracker status with
rate / % valid / last drift, calibration check, live transcript, sentences with heatmap thumbnails filling as
they are dictated). Every view change is stamped and recorded. ``--headless`` runs the lead's headless
recorder (capture.record) with the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from capture.errors import ConfigError

DEFAULT_WHISPER = "small.en"  # capture.asr.DEFAULT_MODEL (see its docstring for why)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze record",
        description="Record a reading: gaze from an LSL eye tracker, dictation from the microphone (or a "
        "file), every view change, sentence heatmaps live; one session file.",
        epilog="example: radgaze sim-tracker & radgaze record s.h5 --images ./cxr --whisper ./tiny-whisper",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("output", type=Path, help="session file to write (must not exist)")
    p.add_argument("--images", type=Path, required=True, help="folder of images (DICOM/PNG/JPEG) to read")
    p.add_argument("--tracker", default=None, help="LSL gaze stream name (default: the one gaze stream)")
    p.add_argument("--layout", default=None, help="force a channel layout (tobii, pupil, gazepoint, ...)")
    p.add_argument("--display", default=None, help="tracker screen WxH px (default: this screen's)")
    p.add_argument("--whisper", default=DEFAULT_WHISPER, help="faster-whisper model name or directory")
    audio = p.add_mutually_exclusive_group()
    audio.add_argument("--audio-device", default=None, help="input device index or name (default input)")
    audio.add_argument("--audio-file", type=Path, default=None, help="play this file as the microphone")
    p.add_argument("--no-audio", action="store_true", help="record gaze and view only (no dictation)")
    p.add_argument("--reader-id", default="anonymous", help="pseudonymous reader id stored in the session")
    p.add_argument("--headless", action="store_true", help="no window: run capture.record's recorder")
    return p


def screen_display(app, viewing_distance_mm: float | None = None):
    """DisplayGeometry of the primary screen: physical px and mm as Qt reports them (the default pitch when
    Qt reports no plausible size, e.g. offscreen)."""
    from capture.records import DisplayGeometry

    screen = app.primaryScreen()
    base = DisplayGeometry()
    dpr = screen.devicePixelRatio()
    w_px, h_px = round(screen.geometry().width() * dpr), round(screen.geometry().height() * dpr)
    w_mm, h_mm = screen.physicalSize().width(), screen.physicalSize().height()
    pitch = base.screen_w_mm / base.screen_w_px
    if not (0.1 < w_mm / max(w_px, 1) < 1.0 and 0.1 < h_mm / max(h_px, 1) < 1.0):
        w_mm, h_mm = w_px * pitch, h_px * pitch  # implausible pitch reported: keep the default pitch
    return DisplayGeometry(
        w_px, h_px, float(w_mm), float(h_mm), viewing_distance_mm or base.viewing_distance_mm
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--headless" in argv:
        from capture.record import main as headless_main

        return int(headless_main(argv) or 0)
    args = build_parser().parse_args(argv)
    if args.output.exists():
        raise ConfigError(
            f"session file {str(args.output)!r} exists; choose a new file (sessions are written once)"
        )

    from PySide6 import QtWidgets

    from app.live import LiveSession
    from app.main_window import MainWindow
    from app.recording import RecordController
    from capture.gaze.discovery import resolve_gaze_stream
    from capture.gaze.inlet import GazeInlet
    from capture.sim_tracker import parse_display
    from capture.store import SessionWriter

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["radgaze record"])
    display = parse_display(args.display) if args.display else screen_display(app)
    info = resolve_gaze_stream(args.tracker)
    inlet = GazeInlet(info, display, layout=args.layout).start()
    audio_source, asr = None, None
    if not args.no_audio:
        from capture.asr import AsrConfig, StreamingTranscriber, WhisperTranscriber
        from capture.audio import AudioFileSource, MicrophoneSource

        asr = StreamingTranscriber(WhisperTranscriber(AsrConfig(model=args.whisper))).start()
        if args.audio_file is not None:
            audio_source = AudioFileSource(args.audio_file)
        else:
            audio_source = MicrophoneSource(args.audio_device)
    provenance = {"tracker": inlet.provenance(), "asr_model": None if args.no_audio else args.whisper}
    writer = SessionWriter(args.output, reader_id=args.reader_id, provenance=provenance, live=True)
    pipeline = LiveSession(
        display,
        writer,
        gaze_inlet=inlet,
        audio_queue=audio_source.queue if audio_source else None,
        asr=asr,
    ).start()
    window = MainWindow(title=f"radgaze record — {args.output.name}")
    RecordController(window, pipeline, display, tracker_name=info.name())
    window.open_folder(args.images)
    window.resize(1400, 950)
    window.show()
    if audio_source is not None:
        audio_source.start()
    try:
        app.exec()
    finally:
        if audio_source is not None:
            audio_source.stop()
        pipeline.stop()
        inlet.stop()
        writer.close()
    print(f"radgaze record: wrote {args.output}")
    return 0
