"""``radgaze sim-tracker``: publish a simulated eye tracker (capture/live/sim_tracker.py) as a real LSL
stream."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.io.display import parse_display  # noqa: F401  (re-exported)
from radgaze.capture.live.gaze.layouts import LAYOUT_NAMES
from radgaze.capture.live.sim_tracker import DEFAULT_RATE_HZ, SimTracker, gaze_from_session, synthetic_gaze


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze sim-tracker",
        description="Publish a simulated eye tracker as a real LSL stream (real-time replay of synthetic or "
        "recorded gaze, in the channel layout and metadata of a real LSL bridge).",
        epilog="examples: radgaze sim-tracker --layout pupil --rate 200 --seed 3 --duration 60\n"
        "          radgaze sim-tracker --session sessions/reading-001.h5 --layout eyelink",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("--layout", choices=LAYOUT_NAMES, default="tobii", help="channel layout to publish")
    p.add_argument(
        "--rate", type=float, default=None, help="sample rate in Hz (default: the layout's tracker's)"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic gaze")
    src.add_argument("--session", type=Path, default=None, help="replay the gaze of this session file")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C, looping)",
    )
    p.add_argument("--name", default=None, help="stream name (default: the bridge's usual name)")
    p.add_argument("--source-id", default=None, help="LSL source id (default radgaze-sim:NAME)")
    p.add_argument(
        "--display", default=None, help="screen size WxH in px (default: the session's, else 1536x2048)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rate = args.rate if args.rate is not None else DEFAULT_RATE_HZ[args.layout]
    display = parse_display(args.display) if args.display else None
    if args.session is not None:
        gaze, session_display = gaze_from_session(args.session)
        display = display or session_display or DisplayGeometry()
        source = f"session {args.session}"
    else:
        display = display or DisplayGeometry()
        gaze, source = synthetic_gaze(args.seed, rate, display)
    sim = SimTracker(
        gaze, args.layout, rate, display, name=args.name, source_id=args.source_id, duration_s=args.duration
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start()
    print(
        f"publishing {sim.name!r} (type {sim.layout.stream_type}, layout {sim.layout.name}, "
        f"{sim.layout.n_channels} x {sim.layout.channel_format} at {rate:g} Hz, source_id {sim.source_id!r}, "
        f"display {display.screen_w_px}x{display.screen_h_px}); Ctrl-C to stop",
        flush=True,
    )
    print(f"gaze: {source}, {gaze.size} samples", flush=True)
    try:
        while sim.running and not stop.is_set():
            time.sleep(0.1)
    finally:
        sim.stop()
    if sim.error is not None:
        raise sim.error
    print(f"sim-tracker: published {sim.n_pushed} samples", flush=True)
    return 0
