"""``radgaze record``: read cases with the eye tracker and dictation running, into a session file.

The window: worklist, image, and the reading panel (start/stop with Space or the button, tracker status with
rate / % valid / last drift, calibration check, live transcript, sentences with heatmap thumbnails filling as
they are dictated). Every view change is stamped and recorded. ``--headless`` runs the lead's headless
recorder (radgaze.capture.live.record) with the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radgaze.capture.base.errors import ConfigError, SessionBusyError


def build_parser() -> argparse.ArgumentParser:
    from radgaze.capture.base.helpformat import DefaultsOnceFormatter

    p = argparse.ArgumentParser(
        prog="radgaze record",
        description="Record a reading: gaze from an LSL eye tracker, dictation from the microphone (or a "
        "file), every view change, sentence heatmaps live; one session file. Space starts/stops recording a "
        "case, then the protocol's annotation steps follow (labels, ellipses, chest box, transcript; Enter "
        "confirms each) and the next case starts; closing the window, Ctrl-Q or Ctrl-C finish and save. With "
        "--headless: no window (options below).",
        epilog="examples:\n  radgaze record s.h5 --images ./cxr --sim --audio-file dictation.flac\n"
        "  radgaze record s.h5 --images ./cxr --tracker Tobii --mic USB\n"
        "  radgaze record --headless --sim --audio-file dictation.flac --image cxr.png --out sessions/",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("output", type=Path, help="session file to write (must not exist)")
    p.add_argument("--images", type=Path, required=True, help="folder of images (DICOM/PNG/JPEG) to read")
    from radgaze.capture.live.sources import add_source_options

    add_source_options(p)
    p.add_argument(
        "--scene-markers",
        action="store_true",
        help="draw AprilTag markers (tag36h11, ids 0-3) at the viewer's corners, for a head-mounted tracker's "
        "screen mapping (needs radgaze[headmounted]; `radgaze pupil-bridge` / `radgaze neon-bridge` map Pupil Core's "
        "/ Neon's gaze onto them)",
    )
    p.add_argument("--start", action="store_true", help="start recording the first case at once")
    p.add_argument("--seconds", type=float, default=None, help="quit after N seconds (unattended runs)")
    p.add_argument("--screenshot", type=Path, default=None, help="with --seconds: save a PNG of the window")
    p.add_argument("--headless", action="store_true", help="no window: record one image (options below)")
    p.add_argument(
        "--protocol",
        type=Path,
        default=None,
        help="per-case protocol TOML: which annotation steps follow each dictation (default: REFLACX's, "
        "assets/annotation/reflacx_protocol.toml)",
    )
    p.add_argument("--labels", type=Path, default=None, help="label set TOML (default: REFLACX's 17 labels)")
    p.add_argument("--no-annotate", action="store_true", help="dictation only: no annotation steps")
    _add_second_look_options(p)
    p.add_argument(
        "--run",
        type=Path,
        default=None,
        help="training run that Model > Retrain trains into (default: runs/default beside the session)",
    )
    return p


def _add_second_look_options(p: argparse.ArgumentParser) -> None:
    """The second look at sign-off (radgaze.app.second_look): the arm, its seed and parameters, a model."""
    p.add_argument(
        "--second-look",
        choices=("on", "off", "random"),
        default=None,
        help="at Space, before the annotation steps, show where the reader dwelt without dictating and what "
        "of the lung fields they never viewed (H hides, Enter signs off): on every case, on none (computed and "
        "stored, not shown: a trial's control arm) or per case at random (seeded, stored in the file); "
        "default: no second look",
    )
    p.add_argument("--second-look-seed", type=int, default=0, help="seed of --second-look random")
    p.add_argument(
        "--dwell-s",
        type=float,
        default=1.0,
        help="second look: cumulative dwell that counts (decision errors)",
    )
    p.add_argument("--ufov-deg", type=float, default=2.5, help="second look: useful field of view radius")
    p.add_argument(
        "--second-look-model",
        type=Path,
        default=None,
        help="training run whose model's attention the second look compares with the reader's gaze (marks "
        "high attention never viewed; its current/best/last checkpoint, as review uses)",
    )


def full_help() -> str:
    """``record --help``: the window's options, then the headless recorder's."""
    from radgaze.capture.live.record import build_parser as headless_parser

    headless = headless_parser().format_help()
    return build_parser().format_help() + "\n" + "-" * 78 + "\n" + headless


def screen_display(app, viewing_distance_mm: float | None = None):
    """DisplayGeometry of the primary screen: physical px and mm as Qt reports them (the default pitch when
    Qt reports no plausible size, e.g. offscreen)."""
    return _qt_screen(app, viewing_distance_mm)[0]


def _qt_screen(app, viewing_distance_mm: float | None):
    """(DisplayGeometry, whether its mm are the monitor's own) of the primary screen."""
    from radgaze.capture.base.records import DisplayGeometry

    screen = app.primaryScreen()
    base = DisplayGeometry()
    dpr = screen.devicePixelRatio()
    w_px, h_px = round(screen.geometry().width() * dpr), round(screen.geometry().height() * dpr)
    w_mm, h_mm = screen.physicalSize().width(), screen.physicalSize().height()
    pitch = base.screen_w_mm / base.screen_w_px
    reported = 0.1 < w_mm / max(w_px, 1) < 1.0 and 0.1 < h_mm / max(h_px, 1) < 1.0
    if not reported:
        w_mm, h_mm = w_px * pitch, h_px * pitch  # implausible pitch reported: keep the default pitch
    display = DisplayGeometry(
        w_px, h_px, float(w_mm), float(h_mm), viewing_distance_mm or base.viewing_distance_mm
    )
    return display, reported


def window_display(args: argparse.Namespace, app):
    """The record window's display and its px/deg record (where the size and distance came from): --display /
    --screen-mm / --distance-mm, else this screen as Qt reports it (its EDID size), else stated defaults."""
    from radgaze.capture.io.display import (
        SCREEN_MM_ASSUMED,
        SCREEN_MM_FROM_QT,
        display_from_options,
        options_ppd_source,
        ppd_record,
    )

    distance_mm, distance_from = remembered_distance(args.distance_mm)
    qt, reported = _qt_screen(app, distance_mm)
    if args.display:  # another screen than this one: Qt's size says nothing about it
        display = display_from_options(args.display, args.screen_mm, distance_mm)
        otherwise = SCREEN_MM_ASSUMED
    else:
        px = f"{qt.screen_w_px}x{qt.screen_h_px}"
        display = display_from_options(px, args.screen_mm, distance_mm, default=qt)
        otherwise = SCREEN_MM_FROM_QT if reported else SCREEN_MM_ASSUMED
    source = options_ppd_source(
        args.screen_mm, args.distance_mm, screen_mm_otherwise=otherwise, distance_otherwise=distance_from
    )
    return display, ppd_record(display, source)


DISTANCE_KEY = "record/viewing_distance_mm"
EXPECTED_MINUTES = 30.0  # the free space of the output's folder must hold this much recording (checked first)


def remembered_distance(given_mm: float | None) -> tuple[float | None, str]:
    """The viewing distance to use and, when none is given, where it came from: a distance given with
    --distance-mm is remembered for this workstation (QSettings) and used by later recordings that give none."""
    from radgaze.app.qtapp import settings
    from radgaze.capture.io.display import DISTANCE_ASSUMED, DISTANCE_REMEMBERED

    store = settings()
    if given_mm is not None:
        store.setValue(DISTANCE_KEY, float(given_mm))
        return given_mm, DISTANCE_ASSUMED
    stored = store.value(DISTANCE_KEY)
    try:
        value = float(stored) if stored is not None else None
    except (TypeError, ValueError):
        value = None
    if value is None or value <= 0:
        return None, DISTANCE_ASSUMED
    return value, DISTANCE_REMEMBERED


def check_output_file(output: Path) -> None:
    """Before any device opens, one line when the session file cannot be written: another recorder is writing
    it (named), it exists, or its folder has no room for EXPECTED_MINUTES (the free space is printed)."""
    from radgaze.capture.store.integrity import check_free_space, writer_of

    writer = writer_of(output)
    if writer is not None:  # a second recorder: one line naming the first (issue 24)
        raise SessionBusyError(f"{output}: expected no other writer, got one already recording it ({writer})")
    if output.exists():
        raise ConfigError(
            f"session file {str(output)!r} exists; choose a new file (sessions are written once)"
        )
    print(check_free_space(output.parent, EXPECTED_MINUTES), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--headless" in argv:
        from radgaze.capture.live.record import main as headless_main

        return int(headless_main(argv) or 0)
    if "-h" in argv or "--help" in argv:
        print(full_help())
        return 0
    args = build_parser().parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds: expected a number of seconds > 0, got {args.seconds:g}")
    check_output_file(args.output)
    from radgaze.capture.live.sources import recording_fixation_params

    recording_fixation_params(args)  # a bad --ivt-window-ms fails before the devices open
    if args.second_look is not None:  # bad second-look parameters fail before the devices open
        from radgaze.capture.gazemath.second_look import SecondLookParams

        try:
            SecondLookParams(dwell_s=args.dwell_s, ufov_deg=args.ufov_deg)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not args.no_annotate:  # a bad protocol or label file fails before the devices open
        from radgaze.capture.annotation.labels import load_label_set
        from radgaze.capture.annotation.protocol import load_protocol

        load_protocol(args.protocol), load_label_set(args.labels)
    from radgaze.app.worklist import scan_folder

    if not scan_folder(args.images):  # fail before opening devices
        raise ConfigError(f"--images: expected DICOM/PNG/JPEG files in {str(args.images)!r}, found none")
    from PySide6 import QtCore

    from radgaze.app.qtapp import ensure_qapp, quit_all, raise_failure, run_until_closed, unattended

    app = ensure_qapp("radgaze record")
    parts = open_sources(args, app)
    controller, failures = None, []
    try:
        window, controller = open_window(args, parts)
        if args.start:
            controller.start()
        if parts.audio is not None:
            start_audio(controller, parts.audio, from_file=args.audio_file is not None)
        if args.seconds is not None:
            end = unattended(lambda: finish(window, controller, args), lambda: quit_all(app), failures)
            QtCore.QTimer.singleShot(int(args.seconds * 1000), end)
        run_until_closed(app, [window])  # closing it, Ctrl-Q, Ctrl-C, SIGTERM: the open case is saved
    finally:
        parts.close()
        if controller is None or not controller.recorded_ids:
            args.output.unlink(missing_ok=True)  # nothing recorded: no empty file blocks the name
    if not controller.recorded_ids:
        print(f"radgaze record: nothing was recorded; {args.output} not written", flush=True)
    else:
        print(f"radgaze record: wrote {args.output} ({len(controller.recorded_ids)} case(s))", flush=True)
    raise_failure(failures)  # the screenshot could not be written (the recording is kept)
    return 0


def start_audio(controller, audio, *, from_file: bool) -> None:
    """The microphone opens with the window (live preview, levels). An ``--audio-file`` stands for the
    reader's voice: it starts playing — and being transcribed — when recording first starts (Space, the
    button or ``--start``), and then plays on through the following cases like a microphone left on."""
    if not from_file or controller.recording:
        audio.start()
        return

    def on_recording(started: bool) -> None:
        if started:
            controller.recording_changed.disconnect(on_recording)
            audio.start()

    controller.recording_changed.connect(on_recording)


class Sources:
    """What record mode runs besides the window, closed in order (inlets before outlets, writer last)."""

    def __init__(self) -> None:
        self.inlet = self.audio = self.asr = self.session = self.writer = self.display = self.sim = None
        self.tracker_name = ""

    def close(self) -> None:
        self._close_capture()
        if self.sim is not None:
            self.sim.stop()

    def _close_capture(self) -> None:
        if self.audio is not None:
            self.audio.stop()
        if self.session is not None:
            self.session.stop()
        if self.inlet is not None:
            self.inlet.stop()
        if self.writer is not None:
            if self.session is not None:
                self.session.write_counters()  # the inlet's final counters (the worker has stopped)
            self.writer.close()


def open_sources(args: argparse.Namespace, app) -> Sources:
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.live.sources import (
        open_dictation,
        open_gaze_inlet,
        recording_fixation_params,
        recording_provenance,
        tracker_display,
        tracker_stream_name,
    )
    from radgaze.capture.store.writer import SessionWriter

    s = Sources()
    s.display, ppd = window_display(args, app)
    name = tracker_stream_name(args)
    if args.sim:
        import os

        from radgaze.app.sim_view import start_window_sim

        name = f"radgaze-sim-record-{os.getpid()}"  # unique: two recorders never mix streams
        # the simulated reader looks at the image where the window will draw it (open_window binds it)
        s.sim, s.sim_rect = start_window_sim(args.layout or "tobii", args.sim_rate, s.display, name)
    try:
        s.inlet, s.tracker_name = open_gaze_inlet(args, s.display, name, timeout_s=10.0 if args.sim else 5.0)
    except BaseException:
        s.close()
        raise
    s.display, ppd = tracker_display(s.inlet, s.display) or (s.display, ppd)  # the tracker's own px/deg first
    s.audio, s.asr = open_dictation(args)
    s.writer = SessionWriter(
        args.output,
        reader_id=args.reader_id,
        provenance=recording_provenance(args, s.inlet, s.display, ppd, "window"),
        live=True,
        keep_provenance_paths=args.keep_provenance_paths,
    )
    s.session = LiveSession(
        s.display, s.writer, gaze_inlet=s.inlet, audio_queue=s.audio.queue if s.audio else None, asr=s.asr,
        fixation_params=recording_fixation_params(args),
    ).start()  # fmt: skip
    return s


def open_window(args: argparse.Namespace, s: Sources):
    from radgaze.app.main_window import MainWindow
    from radgaze.app.recording import RecordController

    window = MainWindow(title=f"radgaze record — {args.output.name}", settings_key="record")
    controller = RecordController(
        window,
        s.session,
        s.display,
        tracker_name=s.tracker_name,
        keep_names=args.keep_names,
        keep_paths=args.keep_provenance_paths,
    )
    window.open_folder(args.images)
    if getattr(s, "sim_rect", None) is not None:
        s.sim_rect.follow(window.state)  # --sim: the simulated gaze lands on the image as drawn
    window.annotation = None if args.no_annotate else install_annotation(window, controller, s.session, args)
    window.second_look = install_second_look(window, controller, s.session, args)
    window.scene_markers = install_scene_markers(window, args)
    from radgaze.app.retrain import install_retrain_action, worklist_session_files

    # one-click retrain on the worklist's sessions and the one being recorded (not a folder searched blindly)
    run_dir = args.run or (args.output.parent / "runs" / "default")
    install_retrain_action(window, lambda: worklist_session_files(window, [args.output]), run_dir)
    window.show()
    return window, controller


def install_scene_markers(window, args: argparse.Namespace):
    """The AprilTag markers at the viewer's corners with --scene-markers (else None)."""
    if not getattr(args, "scene_markers", False):
        return None
    from radgaze.app.scene_markers import MarkerOverlay

    return MarkerOverlay(window.image_view, publish=True)  # the bridges follow where they are


def install_annotation(window, controller, session, args: argparse.Namespace):
    """The protocol's annotation steps after each dictated case (None when the protocol has none)."""
    from radgaze.app.annotate.record_flow import RecordAnnotation, protocol_annotates
    from radgaze.capture.annotation.labels import load_label_set
    from radgaze.capture.annotation.protocol import load_protocol

    protocol = load_protocol(args.protocol)
    if not protocol_annotates(protocol):
        return None
    return RecordAnnotation(window, controller, session, protocol, load_label_set(args.labels))


def install_second_look(window, controller, session, args: argparse.Namespace):
    """The second look at each Space that ends a dictation (None without ``--second-look``)."""
    if args.second_look is None:
        return None
    from radgaze.app.second_look import SecondLookFlow
    from radgaze.capture.gazemath.second_look import SecondLookParams

    params = SecondLookParams(dwell_s=args.dwell_s, ufov_deg=args.ufov_deg)
    attention = None
    if args.second_look_model is not None:
        from radgaze.app.second_look import model_attention

        attention = model_attention(args.second_look_model)
    return SecondLookFlow(
        window,
        controller,
        session,
        mode=args.second_look,
        seed=args.second_look_seed,
        params=params,
        attention_for=attention,
    )


def finish(window, controller, args: argparse.Namespace) -> None:
    """Unattended end (--seconds): save the screenshot (the caller then quits; closing the sources lets the ASR
    deliver its last words into the open case before it is closed: LiveSession.stop)."""
    from radgaze.app.qtapp import save_png

    controller.poll()
    if args.screenshot is not None:
        save_png(window.grab(), args.screenshot)
