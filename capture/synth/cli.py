"""``radgaze synth``: write synthetic reading sessions (phantom images, gaze, dictation) to a folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.fixations import IVT_WINDOW_S, add_fixation_options, fixation_params
from radgaze.capture.io.display import parse_display
from radgaze.capture.synth.readers import ERROR_KINDS, READERS
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
    add_fixation_options(p)
    p.add_argument("--preview", metavar="PNG", help="also draw the first case with its findings and scanpath")
    p.add_argument(
        "--reader",
        choices=(*READERS, "mixed"),
        default="default",
        help="who reads: radgaze's usual reader; a complete one (every lung zone within the useful field of "
        "view); one who misses a nodule by a search error (skips its zone), a decision error (dwells on it, "
        "does not report it) or a recognition error (one brief glance); mixed: each case draws one of the "
        "four at random. The truth (case attrs reader_error) says which",
    )
    p.add_argument(
        "--second-look",
        choices=("on", "off", "random"),
        default=None,
        help="run the second-look trial: each case's arm (random: seeded per case), the overlay computed at "
        "sign-off and stored; in the on arm the reader looks at each mark again (default: no trial)",
    )
    p.add_argument("--second-look-seed", type=int, default=0, help="seed of --second-look random")
    p.add_argument(
        "--respond-p",
        type=float,
        default=0.6,
        help="trial: chance a reader shown a missed finding reports it (an input of the simulation)",
    )
    p.add_argument(
        "--false-report-p",
        type=float,
        default=0.1,
        help="trial: chance a reader reports a finding at a mark with nothing there (an input)",
    )
    return p


def case_readers(reader: str, seed: int, n_cases: int) -> list[str]:
    """The reader of each case: ``reader`` for all, or for ``mixed`` one of complete / search / decision /
    recognition per case, drawn from the seed."""
    if reader != "mixed":
        return [reader] * n_cases
    kinds = ("complete", *ERROR_KINDS)
    rng = np.random.default_rng([seed, 22])
    return [str(kinds[k]) for k in rng.integers(len(kinds), size=n_cases)]


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
    trial = _trial(args)
    t0 = time.perf_counter()
    paths = write_readers_sessions(args, display, trial)
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


def _trial(args: argparse.Namespace):
    if args.second_look is None:
        return None
    from radgaze.capture.synth.trial import TrialOptions

    try:
        return TrialOptions(args.second_look, args.second_look_seed, args.respond_p, args.false_report_p)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def write_readers_sessions(args: argparse.Namespace, display: DisplayGeometry, trial) -> list[Path]:
    """The sessions: one reader kind for all (one call), or mixed (files of consecutive same-kind cases)."""
    kinds = case_readers(args.reader, args.seed, args.cases)
    common = dict(image_size=args.size, rate_hz=args.rate, display=display, trial=trial)
    common.update(ivt_window_s=fixation_params("ivt", args.ivt_window_ms).get("window_s", IVT_WINDOW_S))
    if args.reader != "mixed":
        kw = {} if args.reader == "default" else {"reader": args.reader}
        return write_synthetic_sessions(
            args.out_dir, args.cases, args.seed, cases_per_file=args.cases_per_file, **common, **kw
        )
    paths = []
    for first in range(0, args.cases, args.cases_per_file):
        n = min(args.cases_per_file, args.cases - first)
        for kind in dict.fromkeys(kinds[first : first + n]):
            picked = [i for i in range(first, first + n) if kinds[i] == kind]
            paths += write_case_subset(args, picked, kind, common)
    return paths


def write_case_subset(args: argparse.Namespace, picked: list[int], kind: str, common: dict) -> list[Path]:
    """One session file per case index in ``picked`` read by ``kind`` (synth-s{seed}-r{index}.h5)."""
    from radgaze.capture.store.writer import SessionWriter
    from radgaze.capture.synth.session import synth_reading

    out = []
    for i in picked:
        reading = synth_reading(args.seed, n_cases=1, first_case=i, reader=kind, **common)
        path = Path(args.out_dir) / f"synth-s{args.seed}-r{i:04d}.h5"
        prov = {"source": "synthetic", "generator": "radgaze synth", "seed": args.seed, "reader": kind}
        with SessionWriter(path, reader_id=f"synthetic-reader-{args.seed}", provenance=prov) as w:
            (Path(args.out_dir) / reading[0].image.path).write_bytes(reading.pngs[0])
            w.write_case(reading[0])
            for log in reading.second_looks:
                w.write_second_look(log.case_id, *log.payload())
        out.append(path)
    return out
