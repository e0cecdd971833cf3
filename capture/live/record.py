"""``radgaze record --headless``: record one reading with no window.

Threads: the gaze inlet (pulls LSL), the audio source (PortAudio callback or file player), the ASR worker
(faster-whisper) — each only pushes timestamped records to a queue. This thread drives the
:class:`~radgaze.capture.live.capture_loop.CaptureLoop` — the same loop the record window drives — which drains the
queues into the case's live pipeline, the single writer of the session file. SIGINT and SIGTERM finish the case
cleanly (last sentences closed, file closed); ``kill -9`` loses at most the last flush interval (0.25 s) of data.

The case begins when recording starts (the image is shown from then on) and ends when it stops; it holds what
was stamped in between, as the window's cases do (docs/session-format.md, "What a case holds"): gaze that
arrived before the case began (the inlet opens before the ASR model loads: seconds of pre-roll) is not stored.
The inlet's final counters (samples, invalid, gaps, reconnects, clock offsets) are written into the file's
provenance when the case ends and again at close, and the closing "saved ..." line prints the counts
``radgaze inspect`` reads back.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pylsl

from radgaze.capture.base.errors import ConfigError, StoreWriteError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import DisplayGeometry, ImageRef
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, ClosedSentence
from radgaze.capture.gazemath.geometry import fit_view
from radgaze.capture.io.display import display_from_options, options_ppd_source, ppd_record
from radgaze.capture.io.images import LoadedImage, default_window, load_image
from radgaze.capture.live.capture_loop import LOOP_PERIOD_S, CaptureLoop, CaptureStats
from radgaze.capture.live.sources import (
    PPD_FROM_TRACKER_LIVE,
    add_source_options,
    open_dictation,
    open_gaze_inlet,
    recording_fixation_params,
    recording_provenance,
    tracker_display,
    tracker_stream_name,
)
from radgaze.capture.store.case_image import stored_image_path
from radgaze.capture.store.integrity import check_free_space
from radgaze.capture.store.privacy import opaque_case_id
from radgaze.capture.store.writer import SessionWriter

__all__ = ["PPD_FROM_TRACKER_LIVE", "Recorder", "build_parser", "main", "open_recorder", "summary_line"]


class Recorder:
    """One case of a live session file, recorded by the shared capture loop on this thread.

    ``loop``: a :class:`CaptureLoop` on the session's writer; ``gaze``/``audio``: its sources (stopped at the
    end); the case is begun with :meth:`begin` (the image shown from ``view``'s time) and the audio started
    with :meth:`start_audio`; :meth:`run` until stopped, then :meth:`finish`.
    """

    def __init__(self, loop: CaptureLoop, gaze, audio=None, *, ppd: dict | None = None) -> None:
        self.loop, self.gaze, self.audio = loop, gaze, audio
        self.ppd = ppd  # the px/deg record of the display the gaze is mapped to

    @property
    def stats(self) -> CaptureStats:
        return self.loop.stats

    @property
    def pipeline(self):
        return self.loop.pipeline

    def begin(self, case_id: str, image: ImageRef, view: np.ndarray, *, attrs: dict | None = None) -> None:
        self.loop.begin_case(case_id, image, view, attrs=attrs)

    def start_audio(self, t_lsl_start: float | None = None) -> None:
        """Start the microphone / the audio file (its first sample stamped ``t_lsl_start``, default now)."""
        if self.audio is None:
            return
        if t_lsl_start is not None:
            self.audio.t_lsl_start = t_lsl_start
        self.audio.start()

    def step(self) -> list[ClosedSentence]:
        """One pass over every queue; returns the sentences that closed."""
        return self.loop.step()

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        t_end = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            self.step()
            if self.audio is not None and self.loop.audio_ended and duration_s is None:
                break  # an audio file ended: finish() closes the case
            time.sleep(LOOP_PERIOD_S)

    def finish(self, t_end: float | None = None) -> list[ClosedSentence]:
        """End the case at ``t_end`` (default now), let the last audio and words come in, close the case, stop
        the sources."""
        self.loop.end_case(self.loop.clock() if t_end is None else t_end)
        closed: list[ClosedSentence] = []
        while self.loop.pipeline is not None:  # the case's last audio blocks on their way (END_GRACE_S)
            closed += self.loop.step()
            if self.loop.audio_ended:
                break
            time.sleep(LOOP_PERIOD_S)
        if self.audio is not None:
            self.audio.stop()
        closed += self.loop.finish()
        self.gaze.stop()
        self.loop.pull_gaze()  # the last samples the inlet took: counted (after the case), not stored
        self.loop.write_counters()
        return closed

    def abort(self) -> None:
        """After the session file could not be written: stop every source, write nothing more, let the
        writer keep what it flushed (SessionWriter.close after a failure)."""
        for source in (self.audio, self.loop.asr, self.gaze):
            if source is not None:
                source.stop()
        self.loop.writer.close()


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
    add_source_options(p)
    p.add_argument("--image", type=Path, required=True, help="the radiograph being read (DICOM/PNG/JPEG)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to record (default: until Ctrl-C, or until the audio file ends)",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the session file")
    p.add_argument(
        "--expect-minutes",
        type=float,
        default=30.0,
        help="minutes of recording the free space of --out must hold before recording starts (checked, shown)",
    )
    p.add_argument(
        "--case-id", default=None, help="case id (default: from the image's content; --keep-names: its stem)"
    )
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
    recording_fixation_params(args)  # a bad --ivt-window-ms fails before anything opens
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
        recorder = open_recorder(args, display, out, ppd)
        image = image_ref(img, args.image, out, keep=args.keep_provenance_paths)
        view = fit_view(img.meta.width, img.meta.height, recorder.loop.display, t_lsl=pylsl.local_clock(),
                        window=default_window(img))  # fmt: skip
        recorder.begin(case_id, image, view, attrs={"ppd": recorder.ppd})
        recorder.start_audio()
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


def _record(recorder: Recorder, stop: threading.Event, duration_s: float | None) -> None:
    try:
        recorder.run(stop, duration_s)
    except KeyboardInterrupt:
        pass
    recorder.finish()
    recorder.loop.writer.close()


def summary_line(out: Path, s: CaptureStats) -> str:
    """The closing line: the counts ``radgaze inspect`` reads back from the file."""
    lat = np.percentile(s.sentence_latency_s, 95) if s.sentence_latency_s else float("nan")
    return (
        f"saved {out}: {s.gaze_samples} gaze samples, {s.gaps} gaps, {s.clock_steps} clock steps, "
        f"{s.audio_s:.1f} s audio, {s.words} words, "
        f"{s.sentences} sentences (heatmap p95 {lat * 1000:.0f} ms after the last word's end; "
        f"{s.gaze_pre_roll} gaze samples before the case began and {s.gaze_outside} after it ended not stored)"
        + _case_pass_note(s)
    )


def _case_pass_note(s: CaptureStats) -> str:
    """What the case pass did (capture/live/asr.py policy point 7), when one was asked for."""
    if not s.case_pass_s:
        return ""
    when = f"{max(s.case_pass_s):.1f} s after the case closed"
    if s.case_passes:
        return f"; transcript: the case pass (the case decoded whole) replaced the streamed words, {when}"
    return f"; transcript: the case pass found the streamed words unchanged, {when}"


def _start_sim(args, display: DisplayGeometry):
    from radgaze.capture.live.sim_tracker import SimTracker, synthetic_gaze

    gaze, _ = synthetic_gaze(0, args.sim_rate, display)
    return SimTracker(gaze, args.layout or "tobii", args.sim_rate, display, name="radgaze-sim-record").start()


def image_ref(img: LoadedImage, path: Path, session: Path, *, keep: bool) -> ImageRef:
    """How the session names the image it was read from (relative to the session; absolute with ``keep``)."""
    meta = img.meta
    stored = stored_image_path(path, session, keep=keep)
    return ImageRef(stored, meta.sha256, meta.width, meta.height, meta.bits_stored, meta.photometric)


def open_recorder(args, display: DisplayGeometry, out: Path, ppd: dict) -> Recorder:
    """The headless recorder's sources (gaze inlet, audio source not yet started, ASR worker) and session file
    (``out``) from its options; no case open yet. ``recorder.ppd``: the px/deg record (the tracker's own first)."""
    name = "radgaze-sim-record" if args.sim else tracker_stream_name(args)
    inlet, _ = open_gaze_inlet(args, display, name, timeout_s=10.0)
    display, ppd = tracker_display(inlet, display) or (display, ppd)  # the tracker's own px/deg first
    audio, asr = open_dictation(args)
    writer = SessionWriter(
        out,
        reader_id=args.reader_id,
        provenance=recording_provenance(args, inlet, display, ppd, "headless"),
        live=True,
        keep_provenance_paths=args.keep_provenance_paths,
    )
    loop = CaptureLoop(
        writer,
        display,
        gaze=inlet,
        audio_queue=None if audio is None else audio.queue,
        asr=asr,
        method=args.method,
        lead_s=args.lead,
        fixation_params=recording_fixation_params(args),
    )
    return Recorder(loop, inlet, audio, ppd=ppd)
