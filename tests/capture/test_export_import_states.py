"""Every case state round-trips through ``radgaze export reflacx`` -> ``radgaze import reflacx`` (issue 20): never
read, annotated without dictation, dictated only, partly and fully annotated, corrected by the reader and
retranscribed by another model. An unread case is marked so, never exported as a normal read; a refused import
leaves nothing behind."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from radgaze.app.cli import main as radgaze
from radgaze.capture.base.records import Audio, CaseAnnotation, LabelChoice, Sentences, Shape, Words
from radgaze.capture.gazemath.correction import correct_case, edits_from_text
from radgaze.capture.live.retranscribe import retranscribed_case
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.session import write_synthetic_sessions

ALL_STEPS = ["dictate", "labels", "shapes", "chest_box", "transcript"]
STATES = ("unread", "annotated_undictated", "dictated", "partly", "fully", "corrected", "retranscribed")


def _annotation(
    w: int, h: int, steps: list[str], *, shapes: bool = True, chest: bool = True
) -> CaseAnnotation:
    return CaseAnnotation(
        labels=[LabelChoice("Consolidation", 4), LabelChoice("Support devices", 5)],
        shapes=[Shape("ellipse", 0.1 * w, 0.2 * h, 0.4 * w, 0.5 * h, ("Consolidation",), 4)] if shapes else [],
        chest_box=(0.05 * w, 0.05 * h, 0.95 * w, 0.9 * h) if chest else None,
        confirmed_steps=steps, label_set="reflacx", protocol="reflacx",
    )  # fmt: skip


def _undictated(case):
    h, w = case.heatmaps.shape[1:]
    return dataclasses.replace(
        case, words=Words.empty(), sentences=Sentences.empty(), heatmaps=np.zeros((0, h, w), np.float32),
        findings=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> tuple[Path, dict]:
    """One session file holding a case in each state (as the recorder, annotate and retranscribe store them)."""
    tmp = tmp_path_factory.mktemp("states")
    src = write_synthetic_sessions(tmp / "synth", 1, seed=4, cases_per_file=1, image_size=512)[0]
    with SessionReader(src) as r:
        base = r.case(r.case_ids[0])
    n = int(16000 * base.duration_s)
    base.audio = Audio(np.zeros(n, np.int16), 16000, np.array([base.t_start + 0.25]), np.array([0]))
    w, h = base.image.width, base.image.height
    cases = {
        "unread": _undictated(base),
        "annotated_undictated": dataclasses.replace(
            _undictated(base), annotation=_annotation(w, h, ["labels", "shapes"], chest=False)
        ),
        "dictated": base,
        "partly": dataclasses.replace(
            base, annotation=_annotation(w, h, ["dictate", "labels"], shapes=False, chest=False)
        ),  # fmt: skip
        "fully": dataclasses.replace(base, annotation=_annotation(w, h, ALL_STEPS)),
        "corrected": base,
        "retranscribed": base,
    }
    cases = {k: dataclasses.replace(c, case_id=k) for k, c in cases.items()}
    typed = " ".join(base.words.text[:-1] + ["effusion."])
    fixed = correct_case(cases["corrected"], edits_from_text(list(base.words.text), typed))
    other_words = Words(base.words.t_start + 0.01, base.words.t_end + 0.01, ["model"] * len(base.words),
                        base.words.probability)  # fmt: skip
    redone = retranscribed_case(cases["retranscribed"], other_words, {"model": "tiny.en", "beam_size": 1})
    path = tmp / "states.h5"
    with SessionWriter(path) as writer:
        for c in cases.values():
            writer.write_case(c)
        writer.write_correction(fixed)
        writer.write_correction(redone)
    with SessionReader(path) as r:
        stored = {k: r.case(k) for k in STATES}
    return path, stored


@pytest.fixture(scope="module")
def round_trip(states, tmp_path_factory):
    path, stored = states
    tmp = tmp_path_factory.mktemp("round_trip")
    export, back = tmp / "export", tmp / "back"
    assert radgaze(["export", "reflacx", str(path), str(export)]) == 0
    ids = {row["case_id"]: row["id"] for row in csv.DictReader((export / "radgaze_ids.csv").open(newline=""))}
    by_state = {STATES[int(k) - 1]: rid for k, rid in ids.items()}  # cases numbered in file order
    assert radgaze(["import", "reflacx", str(export), str(back)]) == 0
    imported = {}
    for state, rid in by_state.items():
        if (back / f"{rid}.h5").is_file():
            with SessionReader(back / f"{rid}.h5") as r:
                imported[state] = r.case(r.case_ids[0])
    return export, by_state, imported


def test_an_unread_case_is_marked_unread_not_read(round_trip, capsys):
    export, by_state, imported = round_trip
    meta = {r["id"]: r for r in csv.DictReader((export / "main_data/metadata_phase_3.csv").open(newline=""))}
    assert meta[by_state["unread"]]["eye_tracking_data_discarded"] == "True"
    assert all(meta[by_state[s]]["eye_tracking_data_discarded"] == "False" for s in STATES if s != "unread")
    state = (export / "main_data" / by_state["unread"] / "radgaze.json").read_text()
    assert '"read": "unread"' in state
    assert "unread" not in imported  # not imported as a reading, and said so
    assert set(imported) == set(STATES) - {"unread"}


def test_the_import_says_which_case_was_never_read(round_trip, tmp_path, capsys):
    export, by_state, _ = round_trip
    assert radgaze(["import", "reflacx", str(export), str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert f"warning: {by_state['unread']}: never read (no dictation, no annotation" in out


@pytest.mark.parametrize("state", [s for s in STATES if s != "unread"])
def test_each_case_state_round_trips(states, round_trip, state):
    _, stored = states
    _, _, imported = round_trip
    a, b = stored[state], imported[state]
    assert list(b.words.text) == list(a.words.text)  # the words in use: corrected / retranscribed ones
    if len(a.words):
        origin = float(a.audio.block_t_lsl[0])
        np.testing.assert_allclose(b.words.t_start, a.words.t_start - origin, atol=6e-4)
    assert b.sentences.text == a.sentences.text
    assert b.fixations.size == a.fixations.size
    if a.annotation is None:
        assert b.annotation is None
    else:
        ann, want = b.annotation, a.annotation
        assert ann.confirmed_steps == want.confirmed_steps
        assert {c.label: c.certainty for c in ann.labels} == {
            c.label: (0 if c.label == "Support devices" else c.certainty) for c in want.labels
        }  # REFLACX gives "Support devices" no certainty
        assert [(s.labels, s.certainty) for s in ann.shapes] == [(s.labels, s.certainty) for s in want.shapes]
        assert (ann.chest_box is None) == (want.chest_box is None)
    expected = {"corrected": "corrected", "retranscribed": "retranscribed"}.get(state, "recognised")
    assert b.attrs["transcript"] == expected


def test_a_refused_import_leaves_nothing_behind(round_trip, tmp_path, capsys):
    export, by_state, _ = round_trip
    broken = shutil.copytree(export, tmp_path / "broken")
    fixations = broken / "main_data" / by_state["fully"] / "fixations.csv"
    lines = fixations.read_bytes().split(b"\r\n")
    lines[1] = b"abc," + lines[1].split(b",", 1)[1]  # not a time
    fixations.write_bytes(b"\r\n".join(lines))
    out = tmp_path / "never_made"
    assert radgaze(["import", "reflacx", str(broken), str(out)]) != 0
    assert "fixations.csv" in capsys.readouterr().err
    assert not out.exists()  # the readings before the broken one are gone with the folder the import made
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert radgaze(["import", "reflacx", str(broken), str(existing)]) != 0
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def test_a_reflacx_reading_keeps_its_transcript_step(tmp_path):
    from test_import_reflacx import make_reflacx

    from radgaze.capture.importers.reflacx import import_reflacx

    src = make_reflacx(tmp_path / "reflacx")
    (first,) = import_reflacx(src, tmp_path / "s").written[:1]
    with SessionReader(first) as r:
        case = r.case(r.case_ids[0])
    assert case.annotation.confirmed_steps[-1] == "transcript"  # REFLACX's last step: the report's text
