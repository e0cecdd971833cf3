"""What leaves the building (issue 24, items 7, 8): ``export reflacx`` writes no path and no name taken from a
file name unless ``--keep-names``; a session's provenance keeps no host name or absolute path unless asked; a
damaged session file stops nothing else and leaves no partial reading; a read-only OUT is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from faults import read_only_folder

from radgaze.capture.base.records import DisplayGeometry, ImageRef
from radgaze.capture.exporters.reflacx import export_reflacx
from radgaze.capture.store.privacy import WITHHELD
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.session import write_synthetic_sessions

NAME = "DOE_JOHN_MRN123456"


def _named_session(tmp_path: Path) -> Path:
    """A session as radgaze wrote them before issue 24: case id and image path from a DICOM's file name."""
    (src,) = write_synthetic_sessions(tmp_path / "synth", 1, seed=5, cases_per_file=1, image_size=256)
    with SessionReader(src) as r:
        case = r.case(r.case_ids[0])
    case.case_id = NAME
    case.image = ImageRef(
        str(tmp_path / "pacs" / f"{NAME}.dcm"), case.image.sha256, case.image.width, case.image.height
    )
    path = tmp_path / "sessions" / f"20261207T101010Z_{NAME}.h5"
    with SessionWriter(
        path, provenance={"host": "rr3-workstation", "audio_source": f"/home/dr/{NAME}.wav"}
    ) as w:
        w.write_case(case)
    return path


def _tree_text(folder: Path) -> str:
    return "\n".join(
        f"{p.relative_to(folder)}\n{p.read_text(errors='replace')}" for p in folder.rglob("*") if p.is_file()
    )


def test_an_export_carries_no_path_and_no_file_name_unless_asked(tmp_path: Path):
    session = _named_session(tmp_path)
    export_reflacx([session], tmp_path / "export")
    text = _tree_text(tmp_path / "export")
    assert NAME not in text and "DOE" not in text and "MRN" not in text
    assert str(tmp_path) not in text and "/pacs/" not in text
    assert "sha256:" in (tmp_path / "export/main_data/metadata_phase_3.csv").read_text()
    export_reflacx([session], tmp_path / "named", keep_names=True)
    named = _tree_text(tmp_path / "named")
    assert NAME in named and str(session) in named


def test_a_session_keeps_no_host_name_or_audio_path_unless_asked(tmp_path: Path):
    with SessionReader(_named_session(tmp_path)) as r:
        assert r.provenance["host"] == WITHHELD and r.provenance["audio_source"] == WITHHELD
    kept = tmp_path / "kept.h5"
    with SessionWriter(
        kept, provenance={"host": "rr3", "audio_source": "/a/b.wav"}, keep_provenance_paths=True
    ):
        pass
    with SessionReader(kept) as r:
        assert r.provenance == {"host": "rr3", "audio_source": "/a/b.wav"}


DAMAGE = {  # what becomes of the first of two session files
    "4 kB zeroed mid-file": lambda data: data[: len(data) // 2] + bytes(4096) + data[len(data) // 2 + 4096 :],
    # before: h5py's OSError opening it was taken for the output folder's ("cannot write the export"), exit 2,
    # the second file never exported and the first's readings left half-written
    "cut in half": lambda data: data[: len(data) // 2],
    "not HDF5 at all": lambda data: b"radgaze? no." * 400,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_one_damaged_file_stops_nothing_else_and_leaves_no_partial_reading(tmp_path: Path, damage: str):
    first, second = write_synthetic_sessions(tmp_path / "s", 4, seed=2, cases_per_file=2, image_size=256)
    first.write_bytes(DAMAGE[damage](first.read_bytes()))
    done = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "export", "reflacx", str(first), str(second), str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # done, but not all of it: said, and not 0
    assert "Traceback" not in done.stderr and "skipped:" in done.stdout
    rows = (tmp_path / "x/main_data/metadata_phase_3.csv").read_text().splitlines()
    readings = sorted(p.name for p in (tmp_path / "x/main_data").iterdir() if p.is_dir())
    assert len(rows) - 1 == len(readings) >= 2  # every reading listed is there whole, nothing else
    for rid in readings:
        assert (tmp_path / "x/main_data" / rid / "fixations.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "x/gaze_data").iterdir()) == readings


def test_a_second_look_analysis_of_a_file_cut_in_half_is_one_line_naming_it(tmp_path: Path):
    """Before: "radgaze analyze: cannot write: Unable to synchronously open file" (h5py's OSError)."""
    (first,) = write_synthetic_sessions(tmp_path / "s", 1, seed=2, cases_per_file=1, image_size=256)
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    done = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "analyze", "second-look", str(first)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert f"{first}: expected an HDF5 session file" in done.stderr and "cannot write" not in done.stderr


def test_export_into_a_read_only_folder_is_one_line(tmp_path: Path):
    (session,) = write_synthetic_sessions(tmp_path / "s", 1, seed=2, cases_per_file=1, image_size=256)
    with read_only_folder(tmp_path / "ro") as ro:
        done = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "export", "reflacx", str(session), str(ro / "x")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot write the export" in done.stderr


def test_a_session_writer_into_a_folder_it_cannot_create_is_one_line(tmp_path: Path):
    import pytest

    from radgaze.capture.base.errors import StoreWriteError

    with read_only_folder(tmp_path / "ro") as ro, pytest.raises(StoreWriteError) as err:
        SessionWriter(ro / "deeper" / "s.h5").begin_case(
            "c", ImageRef("i.png", "", 4, 4), DisplayGeometry(), t_start=0.0
        )
    assert "\n" not in str(err.value)
