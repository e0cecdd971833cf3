"""``radgaze import {reflacx,egd,xdf,edf,asc}``: convert public gaze + dictation recordings to session files."""

from __future__ import annotations

import argparse
from pathlib import Path

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.fixations import add_fixation_options, fixation_params
from radgaze.capture.importers.common import ImportResult, display_from_options
from radgaze.capture.io.display import options_ppd_source


class _FMT(argparse.HelpFormatter):
    """Shows a default only where there is one (not "(default: None)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lead-s", type=float, default=EYE_VOICE_LEAD_S, help="eye-voice lead of sentence windows (s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace session files that exist")


def _geometry(p: argparse.ArgumentParser, *, display: bool) -> None:
    if display:
        p.add_argument("--display", metavar="WxH", help="screen resolution in px")
    p.add_argument("--screen-mm", metavar="WxH", help="screen size in mm")
    p.add_argument("--distance-mm", type=float, help="viewing distance in mm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radgaze import",
        description="Convert REFLACX, EGD-CXR, XDF (LabRecorder) or EyeLink (EDF/ASC) recordings to radgaze session files, with "
        "fixations, words, sentences and one gaze heatmap per dictated sentence.",
        epilog="example: radgaze import reflacx ~/reflacx-1.0.0 ./sessions/reflacx",
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="{reflacx,egd,xdf,edf,asc}")

    _add_reflacx(sub)
    _add_egd(sub)
    _add_xdf(sub)
    _add_eyelink(sub, "edf")
    _add_eyelink(sub, "asc")
    return parser


def _add_reflacx(sub) -> None:
    p = sub.add_parser(
        "reflacx",
        formatter_class=_FMT,
        help="REFLACX dataset folder -> one session file per reading",
        description="REFLACX (metadata_phase_*.csv + one folder per reading with fixations.csv, "
        "timestamps_transcription.csv, anomaly_location_ellipses.csv, ...) -> OUT/<reading id>.h5. Times stay "
        "seconds from the reading's audio start; readings marked eye_tracking_data_discarded are skipped. "
        "Without --display the screen is inferred from the recorded screen rectangles.",
        epilog="example: radgaze import reflacx ~/reflacx-1.0.0 ./sessions/reflacx --images ~/mimic-cxr/files",
    )
    p.add_argument("src", help="REFLACX folder (holding metadata_phase_*.csv, or main_data/ with them)")
    p.add_argument("out", help="output folder for session files")
    p.add_argument(
        "--images", help="folder with the MIMIC-CXR images (hashes and size checks); default: none"
    )
    _geometry(p, display=True)
    p.add_argument(
        "--skip-broken", action="store_true", help="skip broken readings (listed) instead of stopping"
    )
    p.add_argument("--limit", type=int, help="import at most this many readings")
    _common(p)


def _add_egd(sub) -> None:
    p = sub.add_parser(
        "egd",
        formatter_class=_FMT,
        help="EGD-CXR dataset folder -> one session file per recording session",
        description="EGD-CXR (fixations.csv and/or eye_gaze.csv, master_sheet.csv, "
        "audio_segmentation_transcripts/<dicom_id>/transcript.json) -> OUT/egd_<session>.h5. The padded "
        "image is fitted to the fixed 1920x1080 screen; phrase times are spread evenly over their words.",
        epilog="example: radgaze import egd ~/egd-cxr/1.0.0 ./sessions/egd --images ~/mimic-cxr/files",
    )
    p.add_argument("src", help="EGD-CXR folder")
    p.add_argument("out", help="output folder for session files")
    p.add_argument("--images", help="folder holding <dicom_id>.dcm/.png/.jpg (sizes and hashes)")
    p.add_argument(
        "--mimic-metadata", help="MIMIC-CXR metadata CSV (dicom_id, Rows, Columns) for image sizes"
    )
    p.add_argument(
        "--screen-mm", metavar="WxH", help="screen size in mm (EGD-CXR does not state it: 527x296 assumed)"
    )
    p.add_argument(
        "--distance-mm", type=float, help="viewing distance in mm (EGD-CXR does not state it: 650 assumed)"
    )
    add_fixation_options(p)  # I-VT on eye_gaze.csv when a session has no fixations.csv
    p.add_argument(
        "--skip-broken", action="store_true", help="skip broken cases (listed) instead of stopping"
    )
    _common(p)


def _add_xdf(sub) -> None:
    d = DisplayGeometry()
    p = sub.add_parser(
        "xdf",
        formatter_class=_FMT,
        help="one XDF recording (gaze + word streams) -> one session file",
        description="An XDF file with a gaze stream (Tobii, Pupil, Gazepoint, EyeLink or XDF Gaze meta-data) "
        'and a string word stream (one word per sample, or JSON {"word","start","end"}) -> '
        "OUT/<file stem>.h5. The image is fitted to the display for the whole recording. Default display: "
        f"{d.screen_w_px}x{d.screen_h_px} px, {d.screen_w_mm:g}x{d.screen_h_mm:g} mm at "
        f"{d.viewing_distance_mm:g} mm.",
        epilog="example: radgaze import xdf reading.xdf ./sessions --image chest.dcm --display 1920x1080",
    )
    p.add_argument("file", help="XDF file (LabRecorder)")
    p.add_argument("out", help="output folder for the session file")
    p.add_argument("--image", required=True, help="the image that was read (DICOM/PNG/JPEG)")
    _geometry(p, display=True)
    p.add_argument("--gaze-stream", help="name of the gaze stream (default: by type Gaze/Eyetracker)")
    p.add_argument("--words-stream", help="name of the word stream (default: by type Markers/Words)")
    p.add_argument("--layout", help="force a gaze layout: tobii, pupil, gazepoint, eyelink, generic")
    p.add_argument("--layout-config", help="TOML/JSON file mapping gaze channels (see radgaze sim-tracker)")
    p.add_argument("--fixations", choices=("ivt", "idt"), default="ivt", help="fixation detection")
    add_fixation_options(p)
    p.add_argument(
        "--case-id", help="case id (default: xdf- + the recording's content hash; docs/privacy.md)"
    )
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="name the case after the file and keep the paths (default: hashes)",
    )
    _common(p)


def _add_eyelink(sub, kind: str) -> None:
    what = (
        "an EyeLink EDF file (needs the optional extra: pip install 'radgaze[eyelink]')"
        if kind == "edf"
        else "an EyeLink ASC file (SR Research's edf2asc text; -res keeps the px/deg)"
    )
    p = sub.add_parser(
        kind,
        formatter_class=_FMT,
        help=f"{what} -> one session file, one case per trial",
        description=f"{what} -> OUT/<file stem>.h5 with one case per TRIALID trial, times on EyeLink's own clock "
        "(s), EyeLink's missing codes as invalid samples, px/deg from the tracker's recorded gaze resolution "
        "(else --screen-mm with --distance-mm), EyeLink's own fixations, saccades and blinks kept beside radgaze's "
        "fixations. Without --image / --image-map the screen is the case's image. EyeLink files hold no "
        "dictation: cases have no words.",
        epilog=f"example: radgaze import {kind} reading.{kind} ./sessions --image-map trials.csv",
    )
    p.add_argument("file", help=f"EyeLink .{kind} file")
    p.add_argument("out", help="output folder for the session file")
    images = p.add_mutually_exclusive_group()
    images.add_argument(
        "--image", help="the image every trial showed (DICOM/PNG/JPEG), fitted to the display"
    )
    images.add_argument("--image-map", help="CSV with columns trial,image (paths relative to the CSV)")
    _geometry(p, display=True)
    p.add_argument("--eye", choices=("both", "left", "right"), default="both", help="eyes to use")
    p.add_argument("--fixations", choices=("ivt", "idt"), default="ivt", help="fixation detection")
    add_fixation_options(p)
    _common(p)


def _import_eyelink(args) -> ImportResult:
    from radgaze.capture.importers.eyelink import (
        EyeLinkOptions,
        GeometryOptions,
        import_eyelink,
        read_image_map,
    )

    if bool(args.screen_mm) != (args.distance_mm is not None):
        raise ConfigError(
            "--screen-mm and --distance-mm: expected both (the screen's size and how far away it is), got one"
        )
    opts = EyeLinkOptions(
        image=args.image,
        image_map=read_image_map(args.image_map) if args.image_map else None,
        geometry=GeometryOptions(args.display, args.screen_mm, args.distance_mm),
        eye=args.eye,
        fixation_method=args.fixations,
        fixation_params=fixation_params(args.fixations, args.ivt_window_ms),
    )
    if Path(args.file).suffix.lower() != f".{args.source}":
        raise ConfigError(f"radgaze import {args.source}: expected a .{args.source} file, got {args.file}")
    return import_eyelink(args.file, args.out, opts=opts, lead_s=args.lead_s, overwrite=args.overwrite)


def _report(result: ImportResult, out: str) -> None:
    print(f"{result.summary()} -> {out}")
    for case, why in result.skipped:
        print(f"  skipped {case}: {why}")
    for warning in result.warnings:
        print(f"  warning: {warning}")


def _import_egd(args) -> ImportResult:
    from radgaze.capture.importers.egd import EGD_DISPLAY, egd_ppd_source, import_egd

    display = display_from_options(None, args.screen_mm, args.distance_mm, EGD_DISPLAY)
    return import_egd(
        args.src,
        args.out,
        images=args.images,
        mimic_metadata=args.mimic_metadata,
        display=display,
        lead_s=args.lead_s,
        overwrite=args.overwrite,
        skip_broken=args.skip_broken,
        ppd_source=egd_ppd_source(args.screen_mm, args.distance_mm),
        fixation_params=fixation_params("ivt", args.ivt_window_ms),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.source == "reflacx":
        from radgaze.capture.importers.reflacx import import_reflacx

        display = None
        if args.display or args.screen_mm or args.distance_mm:
            display = display_from_options(args.display, args.screen_mm, args.distance_mm, DisplayGeometry())
        result = import_reflacx(
            args.src,
            args.out,
            images=args.images,
            display=display,
            lead_s=args.lead_s,
            overwrite=args.overwrite,
            skip_broken=args.skip_broken,
            limit=args.limit,
            ppd_source=options_ppd_source(args.screen_mm, args.distance_mm),
        )
        _report(result, args.out)
    elif args.source == "egd":
        _report(_import_egd(args), args.out)
    elif args.source in ("edf", "asc"):
        _report(_import_eyelink(args), args.out)
    else:
        from radgaze.capture.importers.xdf import import_xdf

        display = display_from_options(args.display, args.screen_mm, args.distance_mm, DisplayGeometry())
        result = import_xdf(
            args.file,
            args.out,
            image=args.image,
            display=display,
            gaze_stream=args.gaze_stream,
            words_stream=args.words_stream,
            layout=args.layout,
            layout_config=args.layout_config,
            fixation_method=args.fixations,
            case_id=args.case_id,
            lead_s=args.lead_s,
            overwrite=args.overwrite,
            ppd_source=options_ppd_source(args.screen_mm, args.distance_mm),
            keep_names=args.keep_names,
            fixation_params=fixation_params(args.fixations, args.ivt_window_ms),
        )
        _report(result, args.out)
    return 0
