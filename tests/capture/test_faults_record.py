"""The headless recorder under faults and for privacy (issue 24, items 3, 7, 8), as a real process with a
simulated tracker on a real LSL outlet: a disk that fills while recording, a read-only folder, and what a
session keeps of names and paths by default (docs/privacy.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import fill_disk, read_only_folder, small_disk
from PIL import Image

from radgaze.capture.store.integrity import DISK_RESERVE_BYTES, lock_path
from radgaze.capture.store.privacy import WITHHELD
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

NAME = "DOE_JOHN_MRN123456"


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "images" / f"{NAME}.png"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 65535, (600, 500), dtype=np.uint16)).save(path)
    return path


def _record(image: Path, out: Path, *extra: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    args = ["record", "--headless", "--sim", "--no-audio", "--image", str(image), "--out", str(out), *extra]
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args], capture_output=True, text=True, timeout=timeout_s
    )


def test_a_recording_keeps_no_file_name_host_or_absolute_path_by_default(image: Path, tmp_path: Path):
    done = _record(image, tmp_path / "out", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"free space in {tmp_path}: ")  # checked and shown first (out: not yet)
    (session,) = (tmp_path / "out").glob("*.h5")
    assert NAME not in session.name
    raw = session.read_bytes()
    assert NAME.encode() not in raw.replace(b"../images/" + NAME.encode(), b"")  # only the relative reference
    assert str(tmp_path).encode() not in raw
    with SessionReader(session) as r:
        case = r.case(r.case_ids[0])
        assert r.provenance["tracker"]["stream"]["hostname"] == WITHHELD
    assert case.case_id.startswith("case-") and NAME not in case.case_id
    assert case.image.path == f"../images/{NAME}.png"  # found relative to the session, verified by sha256
    assert describe_session(session)["valid"]


def test_keep_names_and_keep_provenance_paths_keep_them(image: Path, tmp_path: Path):
    done = _record(image, tmp_path / "out", "--duration", "1", "--keep-names", "--keep-provenance-paths")
    assert done.returncode == 0, done.stderr
    (session,) = (tmp_path / "out").glob("*.h5")
    assert NAME in session.name
    with SessionReader(session) as r:
        case = r.case(r.case_ids[0])
        assert r.provenance["tracker"]["stream"]["hostname"] != WITHHELD
    assert case.case_id == NAME and case.image.path == str(image.resolve())


@pytest.mark.slow
def test_a_disk_filling_while_recording_stops_cleanly_with_one_line_and_a_valid_file(
    image: Path, tmp_path: Path
):
    disk = tmp_path / "disk"
    with small_disk(disk, 3072):
        fill_disk(disk, DISK_RESERVE_BYTES + 150_000)
        done = _record(image, disk, "--duration", "60", "--expect-minutes", "0")
        assert done.returncode == 2, done.stdout + done.stderr
        lines = [ln for ln in done.stderr.splitlines() if "INFO|" not in ln]  # liblsl's own log lines aside
        assert len(lines) == 1 and "disk full" in lines[0] and "Traceback" not in done.stderr
        assert lines[0].startswith("radgaze record: ") and "what was written before is kept" in lines[0]
        (session,) = disk.glob("*.h5")
        info = describe_session(session)
        assert info["valid"], info["errors"]
        assert info["cases"][0]["gaze_samples"] > 0  # what was flushed before the disk filled
        assert not lock_path(session).exists()


def test_too_little_room_for_the_expected_minutes_is_refused_before_recording(image: Path, tmp_path: Path):
    disk = tmp_path / "disk"
    with small_disk(disk, 4096):
        done = _record(image, disk, "--duration", "1", "--expect-minutes", "30")
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert re.search(r"MB, room for ~\d min of recording; expected room for at least 30 min", done.stderr)
        assert list(disk.iterdir()) == []


def test_a_read_only_folder_is_one_line_before_anything_starts(image: Path, tmp_path: Path):
    with read_only_folder(tmp_path / "ro") as ro:
        done = _record(image, ro, "--duration", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "expected a folder radgaze can write in, got a read-only one" in done.stderr
