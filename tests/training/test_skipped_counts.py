"""``radgaze train``'s "skipped files" counts files and "skipped cases" cases (issue 23, item 15: two skipped
cases of one readable file were reported as "skipped files 2")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))  # the replay/review session builder
from replay_review_sessions import write_session  # noqa: E402

from radgaze.training.data import build_index, skipped_counts  # noqa: E402


def test_skipped_counts_tell_files_from_cases():
    skipped = [
        {"file": "a.h5", "case_id": None, "error": "OSError: truncated"},
        {"file": "b.h5", "case_id": "b0", "error": "case has no dictated sentences"},
        {"file": "b.h5", "case_id": "b1", "error": "image b1.png not found"},
    ]
    assert skipped_counts(skipped) == (1, 2)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sessions"
    write_session(folder / "good.h5", 3, prefix="g")
    write_session(folder / "two_bad.h5", 3, prefix="m")
    for name in ("m0.png", "m1.png"):  # two cases of a readable file lose their image
        (folder / name).unlink()
    (folder / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature, nothing else
    return folder


def test_index_report_counts_one_unreadable_file_and_two_cases(tmp_path):
    report = build_index(_folder(tmp_path)).report()
    assert (report["n_skipped_files"], report["n_skipped_cases"], report["n_skipped"]) == (1, 2, 3)


@pytest.mark.slow
def test_radgaze_train_says_skipped_files_and_cases(tmp_path):
    folder = _folder(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "train", str(folder), "--out", str(tmp_path / "run"),
         "--config", "tiny", "--epochs", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[-1] for line in proc.stdout.splitlines()
            if line.strip().startswith("skipped ")}  # fmt: skip
    assert rows == {"skipped files": "1", "skipped cases": "2"}, proc.stdout
