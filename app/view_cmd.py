"""``radgaze view PATH…``: the viewer alone — no tracker, no microphone, no ASR.

Files or folders of DICOM/PNG/JPEG images or session files become one worklist (a session contributes one
item per recorded case, shown with its image). Reading as in a PACS: W/L presets, right-drag W/L, zoom, pan,
invert, the corner text in the file's own values; Help ▸ Keyboard shortcuts lists every key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radgaze.capture.base.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from radgaze.capture.base.helpformat import DefaultsOnceFormatter

    p = argparse.ArgumentParser(
        prog="radgaze view",
        description="Open images (DICOM, PNG, JPEG) or session files in the viewer, without an eye tracker "
        "or dictation. Right-drag: horizontal = window width, vertical = level. Help ▸ Keyboard shortcuts "
        "lists the keys; Ctrl+Q quits.",
        epilog="example: radgaze view ./cxr/ study.dcm --preset lung",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, help="image or session files, or folders of them")
    p.add_argument(
        "--preset",
        default=None,
        help="window to open each image with: default, lung, mediastinum or bone (default: the file's window)",
    )
    p.add_argument("--seconds", type=float, default=None, help="quit after this many seconds (unattended)")
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the window before quitting")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from radgaze.app.state import WINDOW_PRESETS
    from radgaze.app.worklist import scan_folder

    if args.preset is not None and args.preset not in ("default", *WINDOW_PRESETS):
        raise ConfigError(
            f"--preset: expected one of default, {', '.join(WINDOW_PRESETS)}, got {args.preset!r}"
        )
    if args.seconds is not None and not args.seconds >= 0:
        raise ConfigError(f"--seconds: expected a number of seconds >= 0, got {args.seconds:g}")
    n_items = sum(len(scan_folder(p)) for p in args.paths)  # a missing path fails here, on one line
    if n_items == 0:
        raise ConfigError(
            f"expected DICOM/PNG/JPEG images or session files in {', '.join(map(str, args.paths))}, found none"
        )
    from PySide6 import QtCore

    from radgaze.app.qtapp import ensure_qapp, quit_all, raise_failure, run_until_closed, unattended

    app = ensure_qapp("radgaze view")
    window = open_viewer(args.paths, args.preset)
    failures: list = []
    if args.seconds is not None or args.screenshot is not None:
        end = unattended(lambda: finish(window, args), quit_all, failures)
        QtCore.QTimer.singleShot(int((args.seconds or 0.0) * 1000) + 300, end)
    run_until_closed(app, [window])
    raise_failure(failures)
    return 0


def open_viewer(paths: list[Path], preset: str | None = None):
    """The main window without the reading panel, on ``paths``; shown."""
    from radgaze.app.main_window import MainWindow

    window = MainWindow(reading_panel=False, title="radgaze view", settings_key="view")
    if preset is not None:
        window.case_loaded.connect(lambda _case: window.state.apply_preset(preset))
    window.show()
    window.open_paths(paths)
    return window


def finish(window, args: argparse.Namespace) -> None:
    from radgaze.app.qtapp import save_png

    if args.screenshot is not None:
        save_png(window.grab(), args.screenshot)
        print(f"radgaze view: screenshot {args.screenshot}", flush=True)
