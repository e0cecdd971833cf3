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
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

pytestmark = pytest.mark.slow
NAME = "DOE_JOHN_MRN123456"


def _chest() -> np.ndarray:
    y, x = np.mgrid[0:400, 0:300]
    return (2000 + 1500 * np.exp(-((x - 150) ** 2 / 3000 + (y - 220) ** 2 / 9000))).astype(np.uint16)


def _write_dicom(path: Path, pixels: np.ndarray) -> None:
    """A DX image whose header names the patient (pydicom), as a PACS export would carry it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality, ds.PatientName, ds.PatientID = "DX", "DOE^JOHN", "MRN123456"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(params=["png", "dcm"])
def images(request, tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    if request.param == "png":
        Image.fromarray(_chest()).save(folder / f"{NAME}.png")
    else:
        _write_dicom(folder / f"{NAME}.dcm", _chest())
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
    (image,) = images.iterdir()
    raw = out.read_bytes().replace(f"../images/{image.name}".encode(), b"")  # but the relative reference
    for told in (NAME, "DOE^JOHN", "MRN123456", str(tmp_path)):  # the file's name, its header, the folder
        assert told.encode() not in raw, told
    with SessionReader(out) as r:
        (case_id,) = r.case_ids
        case = r.case(case_id)
        assert r.provenance["tracker"]["stream"]["hostname"] == WITHHELD
        assert r.provenance["recorder"] == "window"
    assert case_id.startswith("case-") and NAME not in case_id and case.gaze.size > 0
    assert case.image.path == f"../images/{image.name}"  # found relative to the session, verified by sha256
    assert describe_session(out)["valid"]


def test_keep_names_and_keep_provenance_paths_in_the_record_window(images: Path, tmp_path: Path):
    out = tmp_path / "reading.h5"
    done = _record_window(images, out, "--keep-names", "--keep-provenance-paths")
    assert done.returncode == 0, done.stderr[-3000:]
    with SessionReader(out) as r:
        (case_id,) = r.case_ids
        case = r.case(case_id)
        assert r.provenance["tracker"]["stream"]["hostname"] != WITHHELD
    (image,) = images.iterdir()
    assert case_id == NAME and case.image.path == str(image.resolve())
