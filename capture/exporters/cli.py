"""``radgaze export {reflacx,bids} SESSIONS... OUT``: session files in REFLACX's layout or as a BIDS dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.base.errors import ConfigError, StoreWriteError
from radgaze.capture.exporters.reflacx import export_reflacx
from radgaze.capture.store.reader import list_sessions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radgaze export",
        description="Write session files in another tool's layout.",
        epilog="example: radgaze export reflacx ./sessions ./reflacx-export",
    )
    sub = parser.add_subparsers(dest="target", required=True, metavar="{reflacx,bids}")
    p = sub.add_parser(
        "reflacx",
        help="sessions -> REFLACX 1.0 layout (main_data/, gaze_data/), one reading per case",
        description="Every case of SESSIONS (files or folders of .h5) as a REFLACX reading: metadata_phase_3.csv "
        "with the reader's labels and certainties, fixations.csv, timestamps_transcription.csv, "
        "transcription.txt, anomaly_location_ellipses.csv, chest_bounding_box.csv and gaze_data/<id>/gaze.csv. "
        "Times become seconds from the case's audio start. `radgaze import reflacx OUT ...` reads it back.",
        epilog="example: radgaze export reflacx ./sessions/reader1 ./reflacx-export --overwrite",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="SESSIONS... OUT", help="session files or folders, then OUT"
    )
    p.add_argument("--labels", type=Path, help="label set TOML the annotations use (default: REFLACX's)")
    p.add_argument("--overwrite", action="store_true", help="replace an export that exists in OUT")
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="write image paths, file-name stems and session paths (default: content hashes; docs/privacy.md)",
    )
    _add_bids(sub)
    return parser


def _add_bids(sub) -> None:
    p = sub.add_parser(
        "bids",
        help="sessions -> a BIDS 1.11 dataset with eye-tracking (physio + physioevents), one run per case",
        description="Every case of SESSIONS as a run of a BIDS 1.11 dataset: sub-<reader>/ses-<file>/beh/ with "
        "events.tsv (image, words, sentences; StimulusPresentation from the display), "
        "recording-eye1_physio.tsv.gz (timestamp, screen x/y px, pupil) and recording-eye1_physioevents.tsv.gz "
        "(fixations, the tracker's own fixations/saccades/blinks, words, sentences) with their sidecars; "
        "image-space fixations and sentence heatmaps in derivatives/radgaze/. Check it with the BIDS validator "
        "(PyPI: bids-validator-deno).",
        epilog="example: radgaze export bids ./sessions ./bids --task cxrreading",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="SESSIONS... OUT", help="session files or folders, then OUT"
    )
    p.add_argument(
        "--task", default="cxrreading", help="BIDS task label, letters and digits (default: cxrreading)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="name sessions by file stem and images by file name (default: content hashes; docs/privacy.md)",
    )


def _export_bids(sessions: list[Path], out: Path, args: argparse.Namespace) -> int:
    from radgaze.capture.exporters.bids import export_bids

    try:
        result = export_bids(
            sessions, out, task=args.task, overwrite=args.overwrite, keep_names=args.keep_names
        )
    except OSError as exc:  # a read-only or full OUT: one line
        raise StoreWriteError(f"{out}: cannot write the export ({exc.strerror or exc})") from None
    print(f"exported {len(result.runs)} run(s) from {len(sessions)} session file(s) to {out} (BIDS 1.11)")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.paths) < 2:
        raise ConfigError(
            f"expected SESSIONS... OUT (at least two paths), got {[str(p) for p in args.paths]}"
        )
    *inputs, out = args.paths
    sessions: list[Path] = []
    for path in inputs:
        if path.is_dir():
            sessions += list_sessions(path)
        elif path.is_file():
            sessions.append(path)
        else:
            raise ConfigError(f"expected a session file or a folder of them, got {path} (not found)")
    if not sessions:
        raise ConfigError(f"expected session files (.h5) in {[str(p) for p in inputs]}, found none")
    if args.target == "bids":
        return _export_bids(sessions, out, args)
    label_set = load_label_set(args.labels)
    try:
        result = export_reflacx(
            sessions, out, label_set=label_set, overwrite=args.overwrite, keep_names=args.keep_names
        )
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # a read-only or full OUT: one line
        raise StoreWriteError(f"{out}: cannot write the export ({exc.strerror or exc})") from None
    print(f"exported {len(result.written)} reading(s) from {len(sessions)} session file(s) to {out}")
    for note in result.notes:
        print(f"  note: {note}")
    for why in result.skipped:
        print(f"  skipped: {why}")
    return 1 if result.skipped else 0
