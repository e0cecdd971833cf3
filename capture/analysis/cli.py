"""``radgaze analyze second-look``: the trial's table per arm from session files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from radgaze.capture.analysis.second_look import reference_truth, session_outcomes
from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.second_look_trial import N_BOOT, table_lines, trial_table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze analyze second-look",
        description="The second-look trial per arm: findings added after the second look and, where the cases "
        "have truth (synthetic findings), sensitivity and false positives per image with bootstrap 95%% CIs.",
        epilog="example: radgaze synth /tmp/t --cases 40 --reader mixed --second-look random && "
        "radgaze analyze second-look /tmp/t",
    )
    p.add_argument("sessions", nargs="+", type=Path, help="session files or folders of them")
    p.add_argument(
        "--reference",
        type=Path,
        action="append",
        default=None,
        help="session files or folders whose annotations are the truth (an expert's labels, matched by image "
        "sha256): sensitivity and false positives of the reader's labels; repeat for several",
    )
    p.add_argument("--boot", type=int, default=N_BOOT, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "second-look":
        raise ConfigError(
            f"radgaze analyze: expected the analysis 'second-look', got {argv[:1] or 'nothing'}"
        )
    args = build_parser().parse_args(argv[1:])
    from radgaze.capture.store.reader import list_sessions

    paths = [q for p in args.sessions for q in (list_sessions(p) if p.is_dir() else [p])]
    if not paths:
        raise ConfigError(
            f"radgaze analyze second-look: expected session files (*.h5), found none in {args.sessions}"
        )
    reference = None
    if args.reference:
        ref_paths = [q for p in args.reference for q in (list_sessions(p) if p.is_dir() else [p])]
        reference = reference_truth(ref_paths)
        if not reference:
            raise ConfigError(
                f"--reference: expected annotated cases (labels) in {[str(p) for p in args.reference]}, found none"
            )
    outcomes, skipped = session_outcomes(paths, reference)
    if not outcomes:
        raise ConfigError(
            f"radgaze analyze second-look: expected cases with a second look (recorded with --second-look or "
            f"synthesised with synth --second-look), found none in {len(paths)} session file(s)"
        )
    table = trial_table(outcomes, seed=args.seed, n_boot=args.boot)
    if args.json:
        print(json.dumps({**table, "cases": [asdict(c) for c in outcomes], "skipped": skipped}, indent=2))
    else:
        print("\n".join(table_lines(table, skipped)))
    return 0
