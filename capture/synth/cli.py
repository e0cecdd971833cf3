"""``radgaze synth``: write synthetic reading sessions (phantom images, gaze, dictation) to a folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from radgaze.capture.errors import ConfigError
from radgaze.capture.helpformat import DefaultsOnceFormatter
from radgaze.capture.io.display import parse_display
from radgaze.capture.records import DisplayGeometry
from radgaze.capture.synth.session import DEFAULT_IMAGE_SIZE, DEFAULT_RATE_HZ, write_synthetic_sessions

RATE_RANGE_HZ = (60.0, 2000.0)  # from consumer (Gazepoint 60 Hz) to research trackers (EyeLink 2000 Hz)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze synth",
        description=(
            "Generate synthetic reading sessions: phantom chest radiographs (16-bit PNG) with findings at "
            "known places, a dictated report with word times, and eye-tracker gaze (search, eye-voice lead, "
            "saccades, blinks, dropouts) in screen coordinates with the view transform. Writes session files "
            "of --cases-per-file cases each, images beside them. Deterministic by seed."
        ),
        epilog="example: radgaze synth ./sessions --cases 8 --seed 1 --rate 500 --preview ./preview.png",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("out_dir", help="folder for the session files (*.h5) and images (*.png)")
    p.add_argument("--cases", type=int, default=4, help="number of cases in all")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same sessions)")
    p.add_argument(
        "--rate", type=float, default=DEFAULT_RATE_HZ, help="eye-tracker sampling rate in Hz (60-2000)"
    )
    p.add_argument("--size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side in pixels")
    p.add_argument("--cases-per-file", type=int, default=4, help="cases per session file (one reading each)")
    p.add_argument(
        "--display",
        metavar="WxH",
        help="screen size in pixels the gaze is on (same pixel pitch and viewing distance); default: a 3 MP "
        "portrait diagnostic monitor, 1536x2048",
    )
    p.add_argument("--preview", metavar="PNG", help="also draw the first case with its findings and scanpath")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cases < 1:
        raise ConfigError(f"--cases: expected a positive number of cases, got {args.cases}")
    if not RATE_RANGE_HZ[0] <= args.rate <= RATE_RANGE_HZ[1]:
        raise ConfigError(f"--rate: expected {RATE_RANGE_HZ[0]:g}-{RATE_RANGE_HZ[1]:g} Hz, got {args.rate:g}")
    if not 64 <= args.size <= 8192:
        raise ConfigError(f"--size: expected 64-8192 px, got {args.size}")
    if args.cases_per_file < 1:
        raise ConfigError(f"--cases-per-file: expected >= 1, got {args.cases_per_file}")
    display = parse_display(args.display) if args.display else DisplayGeometry()
    if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        raise ConfigError(
            f"{args.out_dir}: expected a folder for the session files, got an existing file (synth writes "
            "*.h5 sessions and *.png images into a folder)"
        )
    taken = sorted(Path(args.out_dir).glob(f"synth-s{args.seed}-*.h5"))
    if taken:
        raise ConfigError(
            f"{args.out_dir}: expected no synth-s{args.seed}-*.h5 there, found {taken[0].name}; use "
            "another folder or seed (session files are written once)"
        )
    t0 = time.perf_counter()
    paths = write_synthetic_sessions(
        args.out_dir,
        args.cases,
        args.seed,
        cases_per_file=args.cases_per_file,
        image_size=args.size,
        rate_hz=args.rate,
        display=display,
    )
    for path in paths:
        print(path)
    print(f"{args.cases} cases in {len(paths)} session file(s), {time.perf_counter() - t0:.1f} s")
    if args.preview:
        from radgaze.capture.synth.preview import write_preview
        from radgaze.capture.synth.session import synth_reading

        reading = synth_reading(
            args.seed, n_cases=1, image_size=args.size, rate_hz=args.rate, display=display
        )
        print(write_preview(args.preview, reading[0], reading.images[0]))
    return 0
