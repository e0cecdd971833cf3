"""radgaze export reflacx: sessions written in REFLACX's layout and read back by the REFLACX importer (round
trips of an imported REFLACX reading and of a recorded, annotated session), and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_import_reflacx import make_reflacx

from radgaze.app.cli import main as radgaze
from radgaze.capture.base.records import GAZE_VALID, Audio, CaseAnnotation, LabelChoice, Shape
from radgaze.capture.exporters.reflacx import export_reflacx, time_origin
from radgaze.capture.importers.reflacx import FIXATION_COLUMNS, import_reflacx
from radgaze.capture.store.privacy import file_digest
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.session import write_synthetic_sessions


def _one_case(path: Path):
    with SessionReader(path) as r:
        return r.case(r.case_ids[0])


def _assert_same_reading(a, b, *, shift_s: float = 0.0) -> None:
    """Two readings of one case agree within REFLACX's rounding (ms times, whole pixels)."""
    fa, fb = a.fixations, b.fixations
    assert fa.size == fb.size > 0
    np.testing.assert_allclose(fb["t_start"], fa["t_start"] - shift_s, atol=6e-4)
    np.testing.assert_allclose(fb["t_end"], fa["t_end"] - shift_s, atol=6e-4)
    np.testing.assert_allclose(fb["x_img_px"], fa["x_img_px"], atol=0.51)
    np.testing.assert_allclose(fb["y_img_px"], fa["y_img_px"], atol=0.51)
    np.testing.assert_allclose(fb["ppd_img"], fa["ppd_img"], rtol=1e-4)
    assert b.words.text == a.words.text
    np.testing.assert_allclose(b.words.t_start, a.words.t_start - shift_s, atol=6e-4)
    assert b.sentences.text == a.sentences.text
    ga, gb = a.gaze, b.gaze
    assert gb.size == ga.size
    np.testing.assert_allclose(gb["t_lsl"], ga["t_lsl"] - shift_s, atol=6e-4)
    valid_a, valid_b = (ga["flags"] & GAZE_VALID) > 0, (gb["flags"] & GAZE_VALID) > 0
    assert np.array_equal(valid_a, valid_b)
    np.testing.assert_allclose(gb["x_img_px"][valid_b], ga["x_img_px"][valid_a], atol=0.51)
    # the view timeline places the image where it was (scale from whole-pixel rectangles)
    assert b.view_events.size == a.view_events.size
    np.testing.assert_allclose(b.view_events["scale"], a.view_events["scale"], rtol=3e-3)


def test_an_imported_reflacx_reading_round_trips_through_export(tmp_path: Path):
    src = make_reflacx(tmp_path / "reflacx")
    first = import_reflacx(src, tmp_path / "s1").written[0]
    result = export_reflacx([first], tmp_path / "export")
    assert result.written == ["P101R000001"] and result.notes == []  # REFLACX's own id is kept
    second = import_reflacx(tmp_path / "export", tmp_path / "s2").written[0]
    a, b = _one_case(first), _one_case(second)
    _assert_same_reading(a, b)
    assert b.annotation == a.annotation and b.annotation.labels == [LabelChoice("Lung nodule or mass", 4)]
    assert b.labels == a.labels == ["lung_nodule_or_mass"]
    assert b.findings[0].box == a.findings[0].box and b.findings[0].location == a.findings[0].location
    assert b.attrs["transcription"] == a.attrs["transcription"]
    # the files are REFLACX's: its column names, CRLF line ends
    fixations = (tmp_path / "export/main_data/P101R000001/fixations.csv").read_bytes()
    header = fixations.split(b"\r\n", 1)[0].decode()
    assert set(header.split(",")) == {*FIXATION_COLUMNS, "pupil_area_normalized"}
    assert fixations.count(b"\r\n") == a.fixations.size + 1 and b"\n" not in fixations.replace(b"\r\n", b"")
    meta = (tmp_path / "export/main_data/metadata_phase_3.csv").read_text()
    assert meta.splitlines()[0].startswith("id,split,eye_tracking_data_discarded,image,dicom_id,subject_id")
    assert "Normal radiograph" not in meta  # REFLACX has no such column
    assert (tmp_path / "export/gaze_data/P101R000001/gaze.csv").is_file()


@pytest.fixture
def annotated_session(tmp_path: Path) -> Path:
    """A synthetic reading (gaze, fixations, words, audio) with the reader's annotation, as recorded."""
    path = write_synthetic_sessions(tmp_path / "synth", 1, seed=4, cases_per_file=1, image_size=512)[0]
    case = _one_case(path)
    w, h = case.image.width, case.image.height
    # the microphone started 0.25 s into the case (synthetic readings carry no audio of their own)
    n = int(16000 * case.duration_s)
    case.audio = Audio(np.zeros(n, np.int16), 16000, np.array([case.t_start + 0.25]), np.array([0]))
    case.annotation = CaseAnnotation(
        labels=[LabelChoice("Consolidation", 4), LabelChoice("Support devices", 5),
                LabelChoice("Other", 2, "azygos lobe")],
        shapes=[Shape("ellipse", 0.1 * w, 0.2 * h, 0.4 * w, 0.5 * h, ("Consolidation",), 4),
                Shape("ellipse", 0.6 * w, 0.1 * h, 0.7 * w, 0.2 * h, ("Other",), 2),
                Shape("box", 0.5 * w, 0.5 * h, 0.6 * w, 0.6 * h, ("Consolidation",), 3)],
        chest_box=(0.05 * w, 0.05 * h, 0.95 * w, 0.9 * h),
        confirmed_steps=["dictate", "labels", "shapes", "chest_box"],
        label_set="reflacx", protocol="reflacx",
    )  # fmt: skip
    out = tmp_path / "recorded.h5"
    with SessionWriter(out) as writer:
        writer.write_case(case)
    return out


def test_a_recorded_annotated_session_round_trips_on_the_audio_clock(annotated_session: Path, tmp_path: Path):
    recorded = _one_case(annotated_session)
    result = export_reflacx([annotated_session], tmp_path / "export")
    assert result.written == ["P300R000001"]
    assert result.notes == ["P300R000001: 1 box shape(s) not written (REFLACX holds ellipses only)"]
    ids = (tmp_path / "export/radgaze_ids.csv").read_text().splitlines()
    digest = file_digest(annotated_session)  # sessions named by content, not path (docs/privacy.md)
    assert ids[1] == f"P300R000001,sha256:{digest},1,"  # case 1 of that file; no second look
    back = _one_case(import_reflacx(tmp_path / "export", tmp_path / "s2").written[0])
    origin = time_origin(recorded)
    assert origin == pytest.approx(recorded.t_start + 0.25)  # REFLACX's clock: the audio start
    _assert_same_reading(recorded, back, shift_s=origin)
    ann = back.annotation
    assert [c.label for c in ann.labels] == ["Consolidation", "Other", "Support devices"]
    assert {c.label: c.certainty for c in ann.labels} == {
        "Consolidation": 4,
        "Other": 2,
        "Support devices": 0,
    }
    assert ann.labels[1].text == "azygos lobe"
    assert [(s.labels, s.certainty) for s in ann.shapes] == [(("Consolidation",), 4), (("Other",), 2)]
    np.testing.assert_allclose(ann.shapes[0].box, recorded.annotation.shapes[0].box, atol=0.05)
    np.testing.assert_allclose(ann.chest_box, recorded.annotation.chest_box, atol=0.05)


def test_export_command_refuses_to_overwrite_and_names_missing_inputs(annotated_session, tmp_path, capsys):
    out = tmp_path / "export"
    assert radgaze(["export", "reflacx", str(annotated_session), str(out)]) == 0
    assert "exported 1 reading(s) from 1 session file(s)" in capsys.readouterr().out
    assert radgaze(["export", "reflacx", str(annotated_session), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.endswith("metadata_phase_3.csv exists; pass --overwrite to replace the export")
        and "\n" not in err
    )
    assert radgaze(["export", "reflacx", str(annotated_session.parent), str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert radgaze(["export", "reflacx", str(tmp_path / "nope.h5"), str(out)]) == 2
    assert "expected a session file or a folder of them, got" in capsys.readouterr().err
