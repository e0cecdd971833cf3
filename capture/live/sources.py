"""What both recorders record from and how they are told (``radgaze record`` and ``radgaze record --headless``):
one set of options (:func:`add_source_options`: tracker, layout, display, screen size, distance, audio, ASR,
reader, privacy), and one way to open the gaze inlet and the dictation sources from them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import DeviceError
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.fixations import add_fixation_options, fixation_params, fixation_settings
from radgaze.capture.io.display import display_for_ppd, ppd_record
from radgaze.capture.live.asr import add_asr_options
from radgaze.capture.live.gaze.layouts import PPD_CHANNELS


def add_source_options(p: argparse.ArgumentParser) -> None:
    """The options both recorders share: where gaze and dictation come from, the screen they are mapped to,
    who reads, and what of names and paths the session keeps (docs/privacy.md)."""
    _add_gaze_options(p)
    _add_display_options(p)
    _add_audio_options(p)
    add_asr_options(p)
    add_fixation_options(p)
    p.add_argument("--reader-id", default="anonymous", help="pseudonymous reader id stored in the session")
    add_privacy_options(p)


def _add_gaze_options(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--tracker",
        default=None,
        help="LSL gaze stream name or source id; 'any' or none: the one gaze stream of this LSL session that a "
        "layout reads",
    )
    src.add_argument(
        "--sim", action="store_true", help="start a simulated eye tracker (a real LSL stream) and record it"
    )
    p.add_argument("--sim-rate", type=float, default=250.0, help="rate of the simulated tracker (Hz)")
    p.add_argument(
        "--layout",
        default=None,
        help="force a gaze channel layout (tobii, pupil, neon, gazepoint, gazepoint36, eyelink, generic; "
        "default: from the stream)",
    )
    p.add_argument(
        "--layout-config", type=Path, default=None, help="TOML/JSON channel mapping for the tracker"
    )


def _add_display_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--display",
        default=None,
        help="the tracker's screen WxH in px (default: the window's screen; headless: 1536x2048, a portrait "
        "3 MP reading monitor)",
    )
    p.add_argument(
        "--screen-mm",
        default=None,
        help="the screen's WxH in mm (default: the size the monitor reports to Qt, else the default pixel pitch)",
    )
    p.add_argument("--distance-mm", type=float, default=None, help="viewing distance in mm (default: 650)")


def _add_audio_options(p: argparse.ArgumentParser) -> None:
    audio = p.add_mutually_exclusive_group()
    audio.add_argument(
        "--mic",
        "--audio-device",
        dest="mic",
        default=None,
        help="microphone: device name (or part of it) or index (default: the system's default input)",
    )
    audio.add_argument(
        "--audio-file",
        type=Path,
        default=None,
        help="play this file in real time as the microphone, from the moment recording first starts (in the "
        "window it plays on through the following cases)",
    )
    p.add_argument("--no-audio", action="store_true", help="record gaze and view only (no dictation)")


def add_privacy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="name cases (and the headless recorder's session file) after the image's file name (default: its "
        "content hash; docs/privacy.md)",
    )
    p.add_argument(
        "--keep-provenance-paths",
        action="store_true",
        help="store the host name, the audio source and the image's absolute path (default: none of them)",
    )


def tracker_stream_name(args: argparse.Namespace) -> str | None:
    """The stream ``--tracker`` names (None: the one gaze stream a layout reads)."""
    return None if args.tracker in (None, "any") else args.tracker


def open_gaze_inlet(args: argparse.Namespace, display: DisplayGeometry, name: str | None, timeout_s: float):
    """(the started inlet, the stream's name) of the gaze stream ``name`` (None: the one a layout reads), mapped
    to ``display``."""
    from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
    from radgaze.capture.live.gaze.inlet import GazeInlet

    info = resolve_gaze_stream(name, timeout_s, layout=args.layout, config_path=args.layout_config)
    return GazeInlet(info, display, layout=args.layout, config_path=args.layout_config).start(), info.name()


def open_dictation(args: argparse.Namespace):
    """(audio source, started ASR worker) from the options; (None, None) with ``--no-audio``. The audio source is
    not started (the recorder starts it when recording starts)."""
    if args.no_audio:
        return None, None
    from radgaze.capture.live.asr import asr_config_from_args, streaming_from_config
    from radgaze.capture.live.audio import AudioFileSource, MicrophoneSource

    if args.audio_file is not None:
        if not args.audio_file.is_file():
            raise DeviceError(f"--audio-file: expected an audio file, found nothing at {args.audio_file}")
        audio = AudioFileSource(args.audio_file)
    else:
        audio = MicrophoneSource(args.mic)
    return audio, streaming_from_config(asr_config_from_args(args)).start()


def recording_provenance(
    args: argparse.Namespace, inlet, display: DisplayGeometry, ppd: dict, kind: str
) -> dict:
    """The session's provenance: tracker, ASR model, audio source, display and px/deg, which recorder."""
    from radgaze.capture import __version__
    from radgaze.capture.live.asr import DEFAULT_MODEL

    return {
        "software": f"radgaze {__version__}",
        "tracker": inlet.provenance(),
        "asr_model": None if args.no_audio else (args.whisper or DEFAULT_MODEL),
        "audio_source": "none" if args.no_audio else str(args.audio_file or args.mic or "default"),
        "display": display.to_dict(),
        "ppd": ppd,
        "recorder": kind,
        "fixations": fixation_settings(getattr(args, "method", "ivt"), recording_fixation_params(args)),
    }


def recording_fixation_params(args: argparse.Namespace) -> dict:
    """The live fixation detector's parameters the recorder's options ask for (checked: one ConfigError line).
    The window recorder has no --method: I-VT."""
    return fixation_params(getattr(args, "method", "ivt"), args.ivt_window_ms)


TRACKER_PPD_WAIT_S = 2.0  # how long the recorder waits for the first px/deg a tracker sends in its channels
PPD_FROM_TRACKER_LIVE = "tracker: the EyeLink app's pixelsPerDegreeX/Y channels (when the recording began)"


def tracker_display(
    inlet, display: DisplayGeometry, wait_s: float = TRACKER_PPD_WAIT_S
) -> tuple[DisplayGeometry, dict] | None:
    """The display with the px/deg the tracker sends in its own channels (the EyeLink app's pixelsPerDegreeX/Y),
    and its record; None when the stream sends none (within ``wait_s`` of the inlet opening)."""
    if inlet.layout is None or not all(c in inlet.layout.labels for c in PPD_CHANNELS):
        return None
    deadline = time.monotonic() + wait_s
    while not np.isfinite(inlet.stats.tracker_ppd_x) and time.monotonic() < deadline:
        time.sleep(0.02)
    ppd_x, ppd_y = inlet.stats.tracker_ppd_x, inlet.stats.tracker_ppd_y
    if not (np.isfinite(ppd_x) and np.isfinite(ppd_y)):
        return None
    shown = display_for_ppd(
        display.screen_w_px, display.screen_h_px, ppd_x, ppd_y, display.viewing_distance_mm
    )
    return shown, ppd_record(shown, PPD_FROM_TRACKER_LIVE)
