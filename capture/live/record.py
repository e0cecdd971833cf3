"""``radgaze record --headless``: record one reading with no window.

Threads: the gaze inlet (pulls LSL), the audio source (PortAudio callback or file player), the ASR worker
(faster-whisper) — each only pushes timestamped records to a queue. The recorder loop (this thread) drains the
queues into the :class:`~radgaze.capture.gazemath.pipeline.LivePipeline`, the single writer of the session file. SIGINT and
SIGTERM finish the case cleanly (last sentences closed, file closed); ``kill -9`` loses at most the last flush
interval (0.25 s) of data.

Gaze that arrived before the case began (the inlet opens before the ASR model loads: seconds of pre-roll) is
not stored: a case holds gaze from its ``t_start`` on (docs/session-format.md, "Gaze"). The inlet's final
counters (samples, invalid, gaps, reconnects, clock offsets) are written into the file's provenance when the
case ends and again at close, and the closing "saved ..." line prints the counts ``radgaze inspect`` reads back.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pylsl

from radgaze.capture import __version__
from radgaze.capture.errors import ConfigError, DeviceError, StoreWriteError
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, ClosedSentence
from radgaze.capture.gazemath.geometry import fit_view
from radgaze.capture.gazemath.pipeline import LivePipeline
from radgaze.capture.helpformat import DefaultsOnceFormatter
from radgaze.capture.io.display import display_for_ppd, display_from_options, options_ppd_source, ppd_record
from radgaze.capture.io.images import default_window, load_image
from radgaze.capture.live.asr import add_asr_options
from radgaze.capture.live.gaze.layouts import PPD_CHANNELS
from radgaze.capture.live.queues import drain
from radgaze.capture.records import DisplayGeometry, ImageRef
from radgaze.capture.store.case_image import stored_image_path
from radgaze.capture.store.integrity import check_free_space
from radgaze.capture.store.privacy import opaque_case_id
from radgaze.capture.store.session_file import SessionWriter

POLL_S = 0.02  # recorder loop period: 50 Hz keeps heatmap latency far below the 50 ms goal's budget


@dataclass
class RecordingStats:
    gaze_samples: int = 0  # stored (from the case's t_start on)
    gaze_pre_roll: int = 0  # arrived before the case began: not stored
    gaps: int = 0
    clock_steps: int = 0  # steps of the tracker's clock found and corrected (none of its samples dropped)
    audio_s: float = 0.0
    words: int = 0
    sentences: int = 0
    sentence_latency_s: list[float] = field(default_factory=list)  # closed time - last word end


class Recorder:
    """Drain gaze, audio and ASR queues into one case of a live session file.

    ``gaze``: a started :class:`radgaze.capture.live.gaze.inlet.GazeInlet` (or anything with ``drain()`` returning chunks with
    ``samples``/``gaps`` and ``stop()``); ``audio``: an audio source with ``queue``/``start()``/``stop()``;
    ``asr``: a :class:`radgaze.capture.live.asr.StreamingTranscriber` or None (no dictation).
    """

    def __init__(self, pipeline: LivePipeline, gaze, audio=None, asr=None) -> None:
        self.pipeline, self.gaze, self.audio, self.asr = pipeline, gaze, audio, asr
        self.stats = RecordingStats()
        self._audio_done = audio is None

    def step(self) -> list[ClosedSentence]:
        """One pass over every queue; returns the sentences that closed."""
        closed = self._drain_gaze()
        self._drain_audio()
        closed += self._drain_words(block=False)
        self.pipeline.writer.tick()
        self._note(closed)
        return closed

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        t_end = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            self.step()
            if self.audio is not None and self._audio_done and duration_s is None:
                break  # an audio file ended: finish() lets the ASR finalise
            time.sleep(POLL_S)

    def finish(self) -> list[ClosedSentence]:
        """Stop the sources, let the ASR finalise, flush every remaining sentence, close the case."""
        if self.audio is not None:
            self.audio.stop()
            self._drain_audio()
        closed: list[ClosedSentence] = []
        if self.asr is not None:
            self.asr.stop()
            closed += self._drain_words(block=True)
        self.gaze.stop()
        closed += self._drain_gaze()
        closed += self.pipeline.finish()
        self.write_counters()
        self._note(closed)
        return closed

    def abort(self) -> None:
        """After the session file could not be written: stop every source, write nothing more, let the
        writer keep what it flushed (SessionWriter.close after a failure)."""
        for source in (self.audio, self.asr, self.gaze):
            if source is not None:
                source.stop()
        self.pipeline.writer.close()

    def write_counters(self) -> None:
        """The inlet's counters as they are now, into the file's provenance (between cases / at close)."""
        provenance = getattr(self.gaze, "provenance", None)
        if provenance is not None:
            self.pipeline.writer.update_provenance(tracker=provenance())

    def _drain_gaze(self) -> list[ClosedSentence]:
        closed: list[ClosedSentence] = []
        t_start = self.pipeline.t_start_lsl
        for chunk in self.gaze.drain():
            keep = chunk.samples["t_lsl"] >= t_start
            self.stats.gaze_pre_roll += int(np.count_nonzero(~keep))
            if chunk.clock_events.size:  # steps of the tracker's clock: the samples are already corrected
                self.pipeline.push_clock_events(chunk.clock_events)
                self.stats.clock_steps += chunk.clock_events.size
            gaps = chunk.gaps[chunk.gaps["t_back"] >= t_start]
            if gaps.size:
                self.pipeline.push_gaps(gaps)
                self.stats.gaps += gaps.size
            samples = chunk.samples[keep]
            closed += self.pipeline.push_gaze(samples)
            self.stats.gaze_samples += samples.size
        return closed

    def _drain_audio(self) -> None:
        if self.audio is not None and not self._audio_done:
            self._audio_done = drain(self.audio.queue, self._take_audio)

    def _take_audio(self, block) -> None:
        self.pipeline.push_audio(block.t_lsl_first_sample, block.samples)
        self.stats.audio_s += block.samples.size / 16000
        if self.asr is not None:
            self.asr.feed(block.t_lsl_first_sample, block.samples)

    def _drain_words(self, *, block: bool) -> list[ClosedSentence]:
        closed: list[ClosedSentence] = []

        def take(words) -> None:
            self.stats.words += len(words)
            closed.extend(self.pipeline.push_words(words))

        if self.asr is not None:
            drain(self.asr.words, take, timeout_s=30.0 if block else None)
        return closed

    def _note(self, closed: list[ClosedSentence]) -> None:
        now = pylsl.local_clock()
        for s in closed:
            self.stats.sentences += 1
            self.stats.sentence_latency_s.append(now - s.t_end)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze record --headless",
        description="Record one reading with no window: gaze from an LSL eye tracker (or a simulated one), "
        "dictation from a microphone (or an audio file played in real time), faster-whisper word times, "
        "fixations and one heatmap per dictated sentence, written live to an HDF5 session file. The view is "
        "the image fitted to the configured screen. Ctrl-C / SIGTERM finish cleanly.",
        epilog="example: radgaze record --headless --sim --audio-file dictation.flac --image cxr.dcm "
        "--duration 30 --out sessions/",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("--headless", action="store_true", help="no window (required for this command)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tracker", help="name of the LSL gaze stream to record ('any' = first gaze stream)")
    src.add_argument(
        "--sim", action="store_true", help="start a simulated tracker (real LSL outlet) and record it"
    )
    mic = p.add_mutually_exclusive_group()
    mic.add_argument(
        "--mic",
        "--audio-device",
        dest="mic",
        help="microphone: device name (or part of it) or index",
    )
    mic.add_argument("--audio-file", type=Path, help="play this file in real time as the microphone")
    p.add_argument("--no-audio", action="store_true", help="record gaze only (no dictation)")
    add_asr_options(p, default_model=None)
    p.add_argument("--image", type=Path, required=True, help="the radiograph being read (DICOM/PNG/JPEG)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to record (default: until Ctrl-C, or until the audio file ends)",
    )
    _add_output_options(p)
    p.add_argument("--case-id", default=None, help="case id (default: the image file's stem)")
    p.add_argument("--reader-id", default="anonymous", help="pseudonymous id of the reader")
    p.add_argument("--display", default=None, help="screen WxH in px (default 1536x2048 portrait 3 MP)")
    p.add_argument(
        "--screen-mm", default=None, help="screen WxH in mm (default: from the default pixel pitch)"
    )
    p.add_argument("--distance-mm", type=float, default=None, help="viewing distance in mm (default 650)")
    p.add_argument(
        "--layout",
        default=None,
        help="force a gaze channel layout (tobii, pupil, neon, gazepoint, gazepoint36, eyelink, generic)",
    )
    p.add_argument(
        "--layout-config", type=Path, default=None, help="TOML/JSON channel mapping for the tracker"
    )
    p.add_argument("--sim-rate", type=float, default=250.0, help="rate of the simulated tracker (Hz)")
    p.add_argument("--method", choices=("ivt", "idt"), default="ivt", help="fixation detection")
    p.add_argument("--lead", type=float, default=EYE_VOICE_LEAD_S, help="eye-voice lead (s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.headless:
        raise ConfigError(
            "radgaze.capture.live.record runs headless only; use `radgaze record` for the window"
        )
    if not args.no_audio and args.mic is None and args.audio_file is None:
        raise ConfigError("expected --mic DEV, --audio-file F or --no-audio")
    display = display_from_options(args.display, args.screen_mm, args.distance_mm)
    ppd = ppd_record(display, options_ppd_source(args.screen_mm, args.distance_mm))
    img = load_image(args.image)
    case_id = args.case_id or (args.image.stem if args.keep_names else opaque_case_id(img.meta.sha256))
    out = args.out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}_{case_id}.h5"

    print(check_free_space(args.out, args.expect_minutes), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim = _start_sim(args, display) if args.sim else None
    try:
        recorder = _open_recorder(args, display, img, case_id, out, ppd)
        print(f"recording to {out} (Ctrl-C to stop)", flush=True)
        try:
            _record(recorder, stop, args.duration)
        except StoreWriteError:
            recorder.abort()  # the file keeps what was flushed; the CLI prints the one line
            raise
    finally:
        if sim is not None:
            sim.stop()
    print(summary_line(out, recorder.stats), flush=True)
    return 0


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder for the session file")
    p.add_argument(
        "--expect-minutes",
        type=float,
        default=30.0,
        help="minutes of recording the free space of --out must hold before recording starts (checked, shown)",
    )
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="name the case and the session file after the image's file name (default: its content hash; "
        "docs/privacy.md)",
    )
    p.add_argument(
        "--keep-provenance-paths",
        action="store_true",
        help="store the host name, the audio source and the image's absolute path (default: none of them)",
    )


def _record(recorder: Recorder, stop: threading.Event, duration_s: float | None) -> None:
    try:
        recorder.run(stop, duration_s)
    except KeyboardInterrupt:
        pass
    recorder.finish()
    recorder.pipeline.writer.close()


def summary_line(out: Path, s: RecordingStats) -> str:
    """The closing line: the counts ``radgaze inspect`` reads back from the file."""
    lat = np.percentile(s.sentence_latency_s, 95) if s.sentence_latency_s else float("nan")
    return (
        f"saved {out}: {s.gaze_samples} gaze samples, {s.gaps} gaps, {s.clock_steps} clock steps, "
        f"{s.audio_s:.1f} s audio, {s.words} words, "
        f"{s.sentences} sentences (heatmap p95 {lat * 1000:.0f} ms after the last word's end; "
        f"{s.gaze_pre_roll} gaze samples before the case began not stored)"
    )


def _start_sim(args, display: DisplayGeometry):
    from radgaze.capture.live.sim_tracker import SimTracker, synthetic_gaze

    gaze, _ = synthetic_gaze(0, args.sim_rate, display)
    return SimTracker(gaze, args.layout or "tobii", args.sim_rate, display, name="radgaze-sim-record").start()


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


def _open_recorder(args, display: DisplayGeometry, img, case_id: str, out: Path, ppd: dict) -> Recorder:
    from radgaze.capture.live.gaze.discovery import resolve_gaze_stream
    from radgaze.capture.live.gaze.inlet import GazeInlet

    name = "radgaze-sim-record" if args.sim else (None if args.tracker == "any" else args.tracker)
    info = resolve_gaze_stream(name, timeout_s=10.0, layout=args.layout, config_path=args.layout_config)
    inlet = GazeInlet(info, display, layout=args.layout, config_path=args.layout_config).start()
    display, ppd = tracker_display(inlet, display) or (display, ppd)  # the tracker's own px/deg first
    audio, asr, asr_name = _open_dictation(args)
    provenance = {
        "software": f"radgaze {__version__}",
        "tracker": inlet.provenance(),
        "asr_model": asr_name,
        "audio_source": str(args.audio_file or args.mic or "none"),
        "display": display.to_dict(),
        "ppd": ppd,
        "recorder": "headless",
    }
    writer = SessionWriter(
        out,
        reader_id=args.reader_id,
        provenance=provenance,
        live=True,
        keep_provenance_paths=args.keep_provenance_paths,
    )
    meta = img.meta
    image = ImageRef(
        stored_image_path(args.image, out, keep=args.keep_provenance_paths),
        meta.sha256,
        meta.width,
        meta.height,
        meta.bits_stored,
        meta.photometric,
    )
    t0 = pylsl.local_clock()
    view = fit_view(meta.width, meta.height, display, t_lsl=t0, window=default_window(img))
    pipeline = LivePipeline(
        writer,
        case_id=case_id,
        image=image,
        display=display,
        initial_view=view,
        method=args.method,
        lead_s=args.lead,
        clock=pylsl.local_clock,
        attrs={"ppd": ppd},
    )
    if audio is not None:
        audio.start()
    if asr is not None:
        asr.start()
    return Recorder(pipeline, inlet, audio, asr)


def _open_dictation(args):
    if args.no_audio:
        return None, None, None
    from radgaze.capture.live.asr import DEFAULT_MODEL, asr_config_from_args, streaming_from_config
    from radgaze.capture.live.audio import AudioFileSource, MicrophoneSource

    if args.audio_file is not None:
        if not args.audio_file.is_file():
            raise DeviceError(f"--audio-file: expected an audio file, found nothing at {args.audio_file}")
        audio = AudioFileSource(args.audio_file)
    else:
        audio = MicrophoneSource(args.mic)
    cfg = asr_config_from_args(args)
    return audio, streaming_from_config(cfg), args.whisper or DEFAULT_MODEL
