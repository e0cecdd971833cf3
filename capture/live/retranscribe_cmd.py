"""``radgaze retranscribe``: re-recognise recorded cases offline from their stored audio
(capture/live/retranscribe.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radgaze.capture.base.errors import ConfigError, RadgazeError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.live.retranscribe import load_retranscriber, retranscribe_session
from radgaze.capture.store.reader import list_sessions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze retranscribe",
        description="Re-recognise recorded cases offline from their stored audio with another (larger) "
        "faster-whisper model, e.g. overnight on a GPU. The new words are stored beside the live ones, as a "
        "transcript correction is; sentences and heatmaps are recomputed from them and the case's "
        "heatmaps_from becomes 'retranscribed' (radgaze inspect shows it). A case the reader corrected is "
        "left as is (one line says so); so are cases without audio. --dry-run prints how the new words differ "
        "from the live ones and writes nothing.",
        epilog="example: radgaze retranscribe sessions/ --whisper base --device cuda --dry-run\n"
        "         radgaze retranscribe sessions/reader1/*.h5 --whisper ./models/faster-whisper-medium.en",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument(
        "sessions", nargs="+", type=Path, metavar="SESSIONS", help="session files or folders of them"
    )
    p.add_argument(
        "--whisper",
        required=True,
        metavar="MODEL",
        help="faster-whisper model: a local model directory, an installed wheel model (tiny.en, base) or a "
        "hub name (downloaded once)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to decode")
    p.add_argument("--beam", type=int, default=5, help="beam size (5 is faster-whisper's own)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the difference from the live words, store nothing"
    )
    return p


def _session_paths(args_sessions: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for given in args_sessions:
        if not given.exists():
            raise ConfigError(
                f"expected a session file or a folder of them, got {str(given)!r}, which does not exist"
            )
        found = list_sessions(given)
        if not found:
            raise ConfigError(f"expected session files (*.h5) in {str(given)!r}, got none")
        paths += found
    return paths


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    paths = _session_paths(args.sessions)
    engine = load_retranscriber(args.whisper, device=args.device, beam=args.beam)
    status = 0
    for path in paths:
        try:
            retranscribe_session(path, engine, dry_run=args.dry_run)
        except RadgazeError as exc:
            print("radgaze retranscribe: " + " ".join(str(exc).split()), file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
