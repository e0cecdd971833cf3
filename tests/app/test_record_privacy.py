"""What the record window keeps of names and paths (issue 24, docs/privacy.md), as the headless recorder does
(tests/capture/test_faults_record.py): ``radgaze record`` run as a real process on a simulated tracker (a real
LSL outlet), reading a radiograph whose file is named after a patient."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.capture.store.privacy import WITHHELD
from radgaze.capture.store.session_file import SessionReader, describe_session

pytestmark = pytest.mark.slow
NAME = "DOE_JOHN_MRN123456"


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    y, x = np.mgrid[0:400, 0:300]
    chest = (20000 + 15000 * np.exp(-((x - 150) ** 2 / 3000 + (y - 220) ** 2 / 9000))).astype(np.uint16)
    Image.fromarray(chest).save(folder / f"{NAME}.png")
    return folder


def _record_window(images: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["record", str(out), "--images", str(images), "--sim", "--sim-rate", "120", "--no-audio"]
    args += ["--no-annotate", "--start", "--seconds", "3", "--display", "1366x740", *extra]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_the_record_window_names_no_case_after_the_image_file_by_default(images: Path, tmp_path: Path):
    out = tmp_path / "sessions" / "reading.h5"
    out.parent.mkdir()
    done = _record_window(images, out)
    assert done.returncode == 0, done.stderr[-3000:]
    raw = out.read_bytes()
    assert NAME.encode() not in raw.replace(b"../images/" + NAME.encode(), b"")  # only the relative reference
    assert str(tmp_path).encode() not in raw
    with SessionReader(out) as r:
        (case_id,) = r.case_ids
        case = r.case(case_id)
        assert r.provenance["tracker"]["stream"]["hostname"] == WITHHELD
        assert r.provenance["recorder"] == "window"
    assert case_id.startswith("case-") and NAME not in case_id and case.gaze.size > 0
    assert case.image.path == f"../images/{NAME}.png"  # found relative to the session, verified by sha256
    assert describe_session(out)["valid"]


def test_keep_names_and_keep_provenance_paths_in_the_record_window(images: Path, tmp_path: Path):
    out = tmp_path / "reading.h5"
    done = _record_window(images, out, "--keep-names", "--keep-provenance-paths")
    assert done.returncode == 0, done.stderr[-3000:]
    with SessionReader(out) as r:
        (case_id,) = r.case_ids
        case = r.case(case_id)
        assert r.provenance["tracker"]["stream"]["hostname"] != WITHHELD
    assert case_id == NAME and case.image.path == str((images / f"{NAME}.png").resolve())
