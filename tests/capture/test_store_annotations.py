"""The annotation part of a session (schema 3; checksummed bytes since schema 5): revisions appended per confirmed
step, read back whole, refused when wrong, skipped with a note when damaged, a flipped bit named by inspect, older
variable-length logs still read and carried over, and kept through a kill -9 of the writing process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from radgaze.capture.annotation.check import annotation_problems, missing_localisations
from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.base.records import (
    GAZE_DTYPE,
    GAZE_VALID,
    CaseAnnotation,
    CaseRecord,
    DisplayGeometry,
    ImageRef,
    LabelChoice,
    Shape,
    Words,
)
from radgaze.capture.store import inspect_cmd
from radgaze.capture.store.annotations import (
    ANNOTATION_LOG,
    ANNOTATION_LOG_VLEN,
    annotation_to_json,
    revision_steps,
)
from radgaze.capture.store.integrity import stamp_digest
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.schema import SCHEMA_VERSION
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter

IMAGE = ImageRef(path="img.png", sha256="ab" * 32, width=2000, height=1600)


def _annotation(**changes) -> CaseAnnotation:
    base = CaseAnnotation(
        labels=[LabelChoice("Enlarged cardiac silhouette", 5), LabelChoice("Other", 2, "azygos lobe")],
        shapes=[Shape("ellipse", 700.0, 800.0, 1300.0, 1400.0, ("Enlarged cardiac silhouette",), 5)],
        chest_box=(150.0, 100.0, 1850.0, 1550.0),
        confirmed_steps=["dictate", "labels", "shapes", "chest_box"],
        label_set="reflacx",
        protocol="reflacx",
    )
    for k, v in changes.items():
        setattr(base, k, v)
    return base


def _dictated_case(w: SessionWriter, case_id: str = "c1") -> None:
    w.begin_case(case_id, IMAGE, DisplayGeometry(), t_start=10.0)
    g = np.zeros(500, GAZE_DTYPE)
    g["t_lsl"] = 10.0 + np.arange(500) / 500.0
    g["flags"] = GAZE_VALID
    w.append_gaze(g)
    w.append_words(Words(np.array([10.2, 10.6]), np.array([10.5, 10.9]), ["Heart", "enlarged."], np.ones(2)))
    w.end_case(11.0)


def test_each_confirmed_step_is_a_revision_and_the_latest_is_read(tmp_path: Path, capsys):
    path = tmp_path / "s.h5"
    with SessionWriter(path, live=True) as w:
        _dictated_case(w)
        labels_only = _annotation(shapes=[], chest_box=None, confirmed_steps=["dictate", "labels"])
        assert w.write_annotation("c1", labels_only, step="labels") == 1
        assert w.write_annotation("c1", _annotation(), step="chest_box") == 2
    with SessionReader(path) as r:
        assert r.schema_version == SCHEMA_VERSION == 5
        case = r.case("c1")
        with h5py.File(path, "r") as f:
            assert revision_steps(f["cases/c1"]) == ["labels", "chest_box"]
    assert case.annotation == _annotation()  # labels, certainties, free text, shapes, chest box, steps
    assert case.words.text == ["Heart", "enlarged."] and case.gaze.size == 500
    summary = describe_session(path)
    assert summary["valid"], summary["errors"]
    ann = summary["cases"][0]["annotation"]
    assert ann["labels"] == ["Enlarged cardiac silhouette (5)", "Other (2)"]
    assert ann["shapes"] == 1 and ann["chest_box"] and ann["confirmed_steps"][-1] == "chest_box"
    assert inspect_cmd.main([str(path)]) == 0
    assert (
        "annotation: labels Enlarged cardiac silhouette (5), Other (2); 1 shape(s); chest box yes; "
        "steps dictate > labels > shapes > chest_box" in capsys.readouterr().out
    )


def test_a_case_never_annotated_reads_none_and_a_schema_2_file_still_reads(tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        _dictated_case(w)
    with h5py.File(path, "a") as f:  # what a schema-2 writer left: the same case layout, no annotation_log
        f.attrs["schema_version"] = 2
        assert ANNOTATION_LOG not in f["cases/c1"]
    with SessionReader(path) as r:
        assert r.schema_version == 2
        case = r.case("c1")
    assert case.annotation is None and case.read_problems == [] and case.words.text == ["Heart", "enlarged."]
    assert describe_session(path)["cases"][0]["annotation"] is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"shapes": [Shape("ellipse", 1900.0, 100.0, 2300.0, 400.0, ("Other",), 2)]},
            "inside the 2000 × 1600 px",
        ),
        ({"chest_box": (500.0, 500.0, 500.0, 900.0)}, "chest box: expected a box at least 2 px wide"),
        (
            {"shapes": [Shape("circle", 1.0, 1.0, 50.0, 50.0)]},
            "expected a kind in ['ellipse', 'box'], got 'circle'",
        ),
        ({"shapes": [Shape("box", float("nan"), 1.0, 50.0, 50.0)]}, "expected finite coordinates"),
        ({"confirmed_steps": ["dictate", "coffee"]}, "got ['coffee']"),
        (
            {"labels": [LabelChoice("Other", 2, "x"), LabelChoice("Other", 3, "y")]},
            "expected each label once",
        ),
    ],
)
def test_a_wrong_annotation_is_refused_in_one_line_and_nothing_is_lost(
    tmp_path: Path, bad: dict, message: str
):
    path = tmp_path / "s.h5"
    with SessionWriter(path, live=True) as w:
        _dictated_case(w)
        w.write_annotation("c1", _annotation(), step="chest_box")
        with pytest.raises(ValueError, match="case c1: annotation not stored") as err:
            w.write_annotation("c1", _annotation(**bad), step="shapes")
        assert message in str(err.value) and "\n" not in str(err.value)
    with SessionReader(path) as r:
        assert r.case("c1").annotation == _annotation()  # the revision before the refused one, untouched
    assert describe_session(path)["valid"]


def test_annotating_the_case_being_recorded_or_an_unknown_case_is_refused(tmp_path: Path):
    with SessionWriter(tmp_path / "s.h5", live=True) as w:
        w.begin_case("c1", IMAGE, DisplayGeometry(), t_start=0.0)
        with pytest.raises(RuntimeError, match="still being recorded; annotate it after end_case"):
            w.write_annotation("c1", _annotation(), step="labels")
        w.end_case(1.0)
        with pytest.raises(ValueError, match=r"expected a case of s.h5 \(\['c1'\]\), got 'c9'"):
            w.write_annotation("c9", _annotation(), step="labels")


def test_a_damaged_revision_is_skipped_with_a_note_and_the_one_before_is_used(tmp_path: Path, capsys):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        _dictated_case(w)
        w.write_annotation("c1", _annotation(), step="chest_box")
    with h5py.File(path, "a") as f:  # a later revision that is not one: half a JSON document
        log = f["cases/c1"][ANNOTATION_LOG]
        half = np.frombuffer(b'{"revision": 2, "labels": [{"label": "Pneumo', np.uint8)
        n = log.shape[0]
        log.resize(n + half.size, axis=0)
        log[n:] = half
    with SessionReader(path) as r:
        case = r.case("c1")
    assert case.annotation == _annotation() and case.gaze.size == 500
    assert len(case.read_problems) == 1
    assert case.read_problems[0].startswith(
        "case c1: annotation revision 2 of 2: expected an annotation revision"
    )
    assert case.read_problems[0].endswith("the one before it is used")
    summary = describe_session(path)
    assert not summary["valid"] and any("annotation revision 2 of 2" in e for e in summary["errors"])
    assert inspect_cmd.main([str(path)]) == 1
    assert "annotation revision 2 of 2" in capsys.readouterr().out


def test_write_case_carries_an_imported_annotation(tmp_path: Path):
    record = CaseRecord("r1", IMAGE, DisplayGeometry(), 0.0, 5.0, annotation=_annotation())
    with SessionWriter(tmp_path / "s.h5") as w:
        w.write_case(record)
    with SessionReader(tmp_path / "s.h5") as r:
        assert r.case("r1").annotation == _annotation()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert revision_steps(f["cases/r1"]) == ["import"]


def test_label_set_checks_name_each_problem():
    reflacx = load_label_set()
    assert annotation_problems(_annotation(), IMAGE.width, IMAGE.height, reflacx) == []
    wrong = _annotation(
        labels=[LabelChoice("Normal radiograph", 5), LabelChoice("Pneumothorax", 7), LabelChoice("Other", 2)]
    )
    problems = annotation_problems(wrong, IMAGE.width, IMAGE.height, reflacx)
    assert "label 'Pneumothorax': expected a certainty level in [1, 2, 3, 4, 5], got 7" in problems
    assert "label 'Other': expected the reader's text, got none" in problems
    assert any(p.startswith("label 'Normal radiograph' is chosen alone") for p in problems)
    assert "ellipse 1: expected labels chosen for the case, got ['Enlarged cardiac silhouette']" in problems
    stranger = _annotation(labels=[LabelChoice("Cardiomegaly", 5)])
    assert "label set 'reflacx': expected one of its labels, got 'Cardiomegaly'" in annotation_problems(
        stranger, IMAGE.width, IMAGE.height, reflacx
    )
    unshaped = _annotation(labels=[*_annotation().labels, LabelChoice("Pneumothorax", 3)])
    assert missing_localisations(unshaped, reflacx) == [
        "Pneumothorax"
    ]  # "Other" with no shape: localise=false


WRITER = r"""
import sys, time
import numpy as np
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, CaseAnnotation, DisplayGeometry, ImageRef, LabelChoice, Shape, Words
from radgaze.capture.store.writer import SessionWriter
image = ImageRef(path="img.png", sha256="ab" * 32, width=2000, height=1600)
w = SessionWriter(sys.argv[1], live=True)
w.begin_case("c1", image, DisplayGeometry(), t_start=10.0)
g = np.zeros(500, GAZE_DTYPE); g["t_lsl"] = 10.0 + np.arange(500) / 500.0; g["flags"] = GAZE_VALID
w.append_gaze(g)
w.append_words(Words(np.array([10.2]), np.array([10.5]), ["Heart."], np.ones(1)))
w.end_case(11.0)
ann = CaseAnnotation(labels=[LabelChoice("Pneumothorax", 4)], confirmed_steps=["dictate", "labels"], label_set="reflacx")
print("revision", w.write_annotation("c1", ann, step="labels"), flush=True)
# the ellipse step: every finished ellipse is saved at once, as fast as the reader could ever draw
for k in range(100000):
    ann.shapes.append(Shape("ellipse", 100.0 + k % 500, 200.0, 900.0, 800.0, ("Pneumothorax",), 4))
    print("revision", w.write_annotation("c1", ann, step="shapes"), flush=True)
    time.sleep(0.002)
"""


@pytest.mark.parametrize("trial", range(3))
def test_kill_minus_9_during_the_ellipse_step_keeps_the_dictation_and_every_saved_step(tmp_path: Path, trial):
    path = tmp_path / "s.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 120
    while acknowledged < 5 + 7 * trial and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert acknowledged >= 5 + 7 * trial, f"the writer saved only {acknowledged} revisions before it ended"
    with SessionReader(path) as r:
        case = r.case("c1")
    assert case.complete and case.gaze.size == 500 and case.words.text == ["Heart."]
    ann = case.annotation
    assert ann is not None and ann.label_names() == ["Pneumothorax"] and ann.confirmed_steps[-1] == "labels"
    # every revision the writer flushed is there (it may have flushed one more before it died)
    assert len(ann.shapes) >= acknowledged - 1
    assert all(s.labels == ("Pneumothorax",) for s in ann.shapes)
    summary = describe_session(path)
    assert summary["valid"] or all("annotation revision" in e for e in summary["errors"]), summary["errors"]
    assert json.dumps(summary)  # the summary of a crashed file is still JSON


def test_the_log_is_checksummed_bytes_and_a_line_a_crash_left_unfinished_stays_its_own(tmp_path: Path):
    from radgaze.capture.store.edits import annotate_session_file

    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        _dictated_case(w)
        w.write_annotation("c1", _annotation(), step="chest_box")
    with h5py.File(path, "a") as f:  # what a kill -9 between resize and write leaves: zeros, no newline
        log = f["cases/c1"][ANNOTATION_LOG]
        assert log.dtype == np.uint8 and log.fletcher32 and ANNOTATION_LOG_VLEN not in f["cases/c1"]
        log.resize(log.shape[0] + 40, axis=0)
    later = _annotation(chest_box=(160.0, 100.0, 1850.0, 1550.0))
    assert annotate_session_file(path, "c1", later, step="chest_box") == 3
    with SessionReader(path) as r:
        case = r.case("c1")
    assert case.annotation == later
    assert case.read_problems == []  # the latest revision parses: the damaged one before it is not needed
    with h5py.File(path, "r") as f:
        assert revision_steps(f["cases/c1"]) == ["chest_box", "?", "chest_box"]


def _schema_4_log(path: Path, revisions: list[CaseAnnotation]) -> None:
    """What a schema-3/4 writer left: the revisions as a variable-length string dataset ``annotation_log``."""
    with h5py.File(path, "a") as f:
        g = f["cases/c1"]
        if ANNOTATION_LOG in g:
            del g[ANNOTATION_LOG]
        rows = [annotation_to_json(a, revision=k + 1, step="labels") for k, a in enumerate(revisions)]
        g.create_dataset(ANNOTATION_LOG_VLEN, data=rows, dtype=h5py.string_dtype("utf-8"), maxshape=(None,))
        f.attrs["schema_version"] = 4
        stamp_digest(f)  # as its writer closed it


def test_a_schema_4_variable_length_log_is_read_and_carried_into_the_checksummed_one(tmp_path: Path):
    from radgaze.capture.store.edits import annotate_session_file

    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        _dictated_case(w)
    first = _annotation(shapes=[], chest_box=None, confirmed_steps=["dictate", "labels"])
    _schema_4_log(path, [first])
    with SessionReader(path) as r:
        assert r.schema_version == 4 and r.case("c1").annotation == first
    assert annotate_session_file(path, "c1", _annotation(), step="chest_box") == 2
    with h5py.File(path, "r") as f:
        g = f["cases/c1"]
        assert ANNOTATION_LOG_VLEN not in g and g[ANNOTATION_LOG].fletcher32
        assert revision_steps(g) == ["labels", "chest_box"] and f.attrs["schema_version"] == SCHEMA_VERSION
    with SessionReader(path) as r:
        assert r.case("c1").annotation == _annotation()
    summary = describe_session(path)
    assert summary["valid"], summary["errors"]


def test_annotating_a_schema_1_file_keeps_its_heatmaps_readable(tmp_path: Path):
    """Before, annotating raised a schema-1 file's version, and its float32 heatmaps were then read as schema 2's
    (no heatmap_peak: 'case c1 is damaged')."""
    import gzip
    import shutil

    from radgaze.capture.store.edits import annotate_session_file

    path = tmp_path / "v1.h5"
    with gzip.open(Path(__file__).parent / "data" / "session_v1.h5.gz", "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    labels = _annotation(shapes=[], chest_box=None, confirmed_steps=["dictate", "labels"])
    annotate_session_file(path, "c1", labels, step="labels")
    with SessionReader(path) as r:
        assert r.schema_version == 1
        case = r.case("c1")
    assert case.annotation == labels and case.sentence_heatmap(0).dtype == np.float32
    assert describe_session(path)["valid"]
