"""Transcript correction: the reader's edits and their times, the case's sentences re-derived with only the
changed sentences' heatmaps recomputed, the correction stored beside the recognised words, and a kill -9 of the
writing process leaving either the transcript before or the whole correction."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from radgaze.capture.base.records import CaseRecord, Words
from radgaze.capture.gazemath.align import sentence_heatmaps, sentence_spans
from radgaze.capture.gazemath.correction import (
    MIN_TYPED_WORD_S,
    Delete,
    Fix,
    Insert,
    Merge,
    apply_edits,
    correct_case,
    edit_from_json,
    edit_to_json,
)
from radgaze.capture.store import inspect_cmd
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.schema import CORRECTION_IN_USE, HEATMAPS_FROM
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.session import write_synthetic_sessions


def _words() -> Words:
    """Four words with gaps of 0.5 s between them, recogniser probabilities 0.8."""
    return Words(
        np.array([0.0, 1.0, 2.0, 3.0]),
        np.array([0.5, 1.5, 2.5, 3.5]),
        ["heart", "normal", "size", "."],
        np.full(4, 0.8, np.float32),
    )


def _rows(w: Words) -> list[tuple[float, float, str]]:
    return [(float(a), float(b), t) for a, b, t in zip(w.t_start, w.t_end, w.text)]


# ----------------------------------------------------------------------------------------- edits and times
def test_a_fix_keeps_its_times_and_untouched_words_keep_theirs_and_probability():
    out = apply_edits(_words(), [Fix(1, "enlarged")])
    assert _rows(out) == [(0.0, 0.5, "heart"), (1.0, 1.5, "enlarged"), (2.0, 2.5, "size"), (3.0, 3.5, ".")]
    assert out.probability.tolist() == [pytest.approx(0.8), 1.0, pytest.approx(0.8), pytest.approx(0.8)]


def test_inserts_share_the_gap_between_their_kept_neighbours_evenly():
    out = apply_edits(_words(), [Insert(1, "is"), Insert(0, "of", after=True), Insert(2, "at")])
    # "is" and "of" both go in the gap before word 1 (0.5 .. 1.0), in the order given
    assert _rows(out)[1:3] == [(0.5, 0.75, "is"), (0.75, 1.0, "of")]
    assert _rows(out)[4] == (1.5, 2.0, "at")
    assert out.probability[[1, 2, 4]].tolist() == [1.0, 1.0, 1.0]
    # a deleted word's time goes to the word typed in its place
    assert _rows(apply_edits(_words(), [Delete(1), Insert(1, "big")]))[1] == (0.5, 2.0, "big")


def test_inserts_at_the_ends_or_in_a_gap_of_zero_get_the_minimum_length_never_zero():
    w = _words()
    w.t_start[2] = 1.5  # "size" starts where "normal" ends
    edits = [Insert(0, "the"), Insert(3, "end", after=True), Insert(2, "x"), Insert(2, "y")]
    out = apply_edits(w, edits)
    m = MIN_TYPED_WORD_S
    assert _rows(out)[0] == pytest.approx((0.0 - m, 0.0, "the"))  # before the first word, ending at it
    assert _rows(out)[3] == pytest.approx((1.5 - m, 1.5, "x"))  # about the gap
    assert _rows(out)[4] == pytest.approx((1.5, 1.5 + m, "y"))
    assert _rows(out)[-1] == pytest.approx((3.5, 3.5 + m, "end"))
    # the case's start and end bound the words typed before the first word and after the last
    out = apply_edits(w, edits, bounds_t_lsl=(-2.0, 5.5))
    assert _rows(out)[0] == pytest.approx((-2.0, 0.0, "the")) and _rows(out)[-1] == pytest.approx(
        (3.5, 5.5, "end")
    )


def test_a_run_of_typed_words_shares_its_time_by_letters_with_a_minimum_each():
    w = _words()
    out = apply_edits(w, [Insert(1, "a"), Insert(1, "pleural"), Insert(1, ".")])  # the gap 0.5 .. 1.0
    d = out.t_end[1:4] - out.t_start[1:4]
    assert out.t_start[1] == pytest.approx(0.5) and out.t_end[3] == pytest.approx(1.0)
    assert np.all(d >= MIN_TYPED_WORD_S - 1e-9) and d[1] > d[0] and d[0] == pytest.approx(d[2])
    assert np.all(out.t_start[2:4] == out.t_end[1:3])  # end to end


def test_delete_drops_a_word_and_merge_spans_first_start_to_last_end():
    assert [t for *_, t in _rows(apply_edits(_words(), [Delete(3)]))] == ["heart", "normal", "size"]
    out = apply_edits(_words(), [Merge(1, 2, "normal-size"), Fix(0, "Heart")])
    assert _rows(out) == [(0.0, 0.5, "Heart"), (1.0, 2.5, "normal-size"), (3.0, 3.5, ".")]
    assert out.probability.tolist()[:2] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([Fix(4, "x")], "edit 0 (fix): expected a word index in 0..3, got 4"),
        ([Delete(-1)], "edit 0 (delete): expected a word index in 0..3, got -1"),
        ([Fix(0, " ")], "edit 0 (fix): expected a non-empty word, got ' '"),
        ([Insert(1, "")], "edit 0 (insert): expected a non-empty word, got ''"),
        ([Merge(2, 2, "x")], "edit 0 (merge): expected last > first, got first=2, last=2"),
        ([Merge(2, 1, "x")], "expected last > first, got first=2, last=1"),
        (
            [Fix(1, "a"), Delete(1)],
            "edit 1 (delete): expected each word edited once, got word 1 edited again",
        ),
        (
            [Merge(0, 2, "x"), Insert(1, "q")],
            "expected a gap outside merged words, got the gap before word 1",
        ),
    ],
)
def test_a_bad_edit_is_refused_in_one_line_naming_what_was_expected(edits, message):
    with pytest.raises(ValueError) as err:
        apply_edits(_words(), edits)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_edits_round_trip_through_json_and_an_unknown_kind_is_refused():
    edits = [Fix(1, "a"), Insert(2, "b", after=True), Delete(0), Merge(1, 3, "c")]
    assert [edit_from_json(edit_to_json(e)) for e in edits] == edits
    with pytest.raises(
        ValueError, match=r"expected a kind in \['delete', 'fix', 'insert', 'merge'\], got 'swap'"
    ):
        edit_from_json({"kind": "swap", "index": 1})


# ----------------------------------------------------------------------------- a real (synthetic) case
@pytest.fixture(scope="module")
def case(tmp_path_factory) -> CaseRecord:
    path = write_synthetic_sessions(
        tmp_path_factory.mktemp("synth"), 1, seed=5, cases_per_file=1, image_size=256
    )
    with SessionReader(path[0]) as r:
        out = r.case(r.case_ids[0])
    assert len(out.sentences) >= 3 and out.heatmaps.shape[0] == len(out.sentences), "need sentences with gaze"
    return out


def _spans(case: CaseRecord) -> list[tuple[int, int]]:
    return [(i0, i1) for i0, i1, *_ in sentence_spans(case.words)]


def test_fixing_a_word_of_sentence_k_recomputes_only_sentence_k(case: CaseRecord):
    k = 1
    i0, _ = _spans(case)[k]
    out = correct_case(case, [Fix(i0, "Abnormal")])
    assert out.correction is not None and out.correction.recomputed == [k]
    assert out.sentences.text[k].startswith("Abnormal") and out.sentences.text[k] != case.sentences.text[k]
    for i in range(len(case.sentences)):
        if i != k:  # the very same maps, not recomputed look-alikes
            assert np.array_equal(out.sentence_heatmap(i), case.sentence_heatmap(i))
    fresh_sentences, fresh_maps = sentence_heatmaps(out)
    assert fresh_sentences.text == out.sentences.text
    np.testing.assert_allclose(out.sentence_heatmap(k), fresh_maps[k], atol=1e-6)
    assert out.recognised_words is case.words and case.correction is None  # the input is untouched
    assert out.words.text[i0] == "Abnormal" and case.words.text[i0] != "Abnormal"


def test_deleting_a_sentence_final_full_stop_merges_two_sentences(case: CaseRecord):
    k = 1
    _, i1 = _spans(case)[k]
    assert case.words.text[i1 - 1] == "."
    out = correct_case(case, [Delete(i1 - 1)])
    assert len(out.sentences) == len(case.sentences) - 1
    assert out.correction is not None and out.correction.recomputed == [k]
    assert out.sentences.t_start[k] == case.sentences.t_start[k]
    assert out.sentences.t_end[k] == case.sentences.t_end[k + 1]
    assert np.array_equal(out.sentence_heatmap(k + 1), case.sentence_heatmap(k + 2))
    # an inserted full stop splits them again (the merged sentence's halves are recomputed)
    again = correct_case(out, [Insert(i1 - 2, ".", after=True)])
    assert again.sentences.text == case.sentences.text and again.correction.recomputed == [k, k + 1]
    assert again.recognised_words is case.words and len(again.correction.edits) == 2


def test_findings_follow_their_sentence_when_a_correction_merges_or_deletes_sentences(
    case: CaseRecord, tmp_path: Path
):
    from dataclasses import replace

    from radgaze.capture.base.records import Finding

    spans = _spans(case)
    assert len(spans) >= 4 and case.findings, "need findings named by sentences"
    base = case.findings[0]
    case = copy.copy(case)
    case.findings = [replace(base, sentence_index=k) for k in (0, 1, 2, 3)] + [
        replace(base, sentence_index=-1)
    ]
    _, i1 = spans[1]
    deleted = list(range(*spans[3]))  # every word of sentence 4: nothing of it is left
    out = correct_case(case, [Delete(i1 - 1), *(Delete(i) for i in deleted)])  # 2 and 3 merge; 4 goes
    assert [f.sentence_index for f in out.findings] == [0, 1, 1, -1, -1]
    assert all(isinstance(f, Finding) for f in out.findings)
    assert [f.sentence_index for f in case.findings] == [0, 1, 2, 3, -1]  # the input is untouched
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(case)
        w.write_correction(out)
    with SessionReader(path) as r:
        back = r.case(case.case_id)
    assert [f.sentence_index for f in back.findings] == [0, 1, 1, -1, -1]  # read against the corrected ones
    assert back.sentences.text[1] == out.sentences.text[1]


def test_a_case_still_incomplete_is_not_corrected(case: CaseRecord):
    broken = correct_case(case, [])
    broken.complete = False
    with pytest.raises(ValueError, match="expected a closed case to correct"):
        correct_case(broken, [Fix(0, "x")])


# ------------------------------------------------------------------------------------------------ storage
def test_a_stored_correction_reads_back_beside_the_recognised_words(case: CaseRecord, tmp_path: Path, capsys):
    k = 2
    i0, _ = _spans(case)[k]
    fixed = correct_case(case, [Fix(i0, "Both"), Insert(i0, "Also")])
    path = tmp_path / "s.h5"
    with SessionWriter(path, live=True) as w:
        w.write_case(case)
        assert w.write_correction(fixed) == 1
    with SessionReader(path) as r:
        back = r.case(case.case_id)
    assert back.words.text == fixed.words.text and np.array_equal(back.words.t_start, fixed.words.t_start)
    assert back.recognised_words is not None and back.recognised_words.text == case.words.text
    assert np.array_equal(back.recognised_words.t_end, case.words.t_end)
    assert back.sentences.text == fixed.sentences.text
    np.testing.assert_allclose(back.heatmaps, fixed.heatmaps, atol=float(fixed.heatmaps.max()) / 65535)
    assert back.correction.edits == fixed.correction.edits and back.correction.recomputed == [k]
    assert back.correction.saved_utc
    with h5py.File(path, "r") as f:
        g = f["cases"][case.case_id]
        assert g.attrs[HEATMAPS_FROM] == "corrected" and g.attrs[CORRECTION_IN_USE] == "correction_1"
        assert g["words"].shape[0] == len(case.words)  # the recognised words stay as recorded
    summary = describe_session(path)
    assert summary["valid"], summary["errors"]
    c = summary["cases"][0]
    assert c["heatmaps_from"] == "corrected" and c["words"] == len(fixed.words)
    assert c["transcript_correction"]["edits"] == 2 and c["transcript_correction"]["recomputed_heatmaps"] == 1
    assert inspect_cmd.main([str(path)]) == 0
    assert "transcript corrected: 2 edit(s) in 1 save(s)" in capsys.readouterr().out


def test_a_second_correction_is_stored_anew_and_the_recognised_words_stay(case: CaseRecord, tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(case)
        first = correct_case(case, [Fix(0, "One")])
        w.write_correction(first)
        assert w.write_correction(correct_case(first, [Fix(0, "Two")])) == 2
    with SessionReader(path) as r:
        back = r.case(case.case_id)
    assert back.words.text[0] == "Two" and back.recognised_words.text == case.words.text
    assert [b[0]["text"] for b in back.correction.edits] == ["One", "Two"] and back.correction.n_edits == 2


def test_correcting_the_case_being_recorded_or_other_words_is_refused(case: CaseRecord, tmp_path: Path):
    fixed = correct_case(case, [Fix(0, "x")])
    with SessionWriter(tmp_path / "s.h5", live=True) as w:
        w.begin_case(case.case_id, case.image, case.display, t_start=case.t_start)
        with pytest.raises(RuntimeError, match="still being recorded; correct it after end_case"):
            w.write_correction(fixed)
        w.end_case(case.t_end)  # no words stored: the correction's recognised words are not these
        with pytest.raises(ValueError, match="expected recognised words equal to the stored 0 words"):
            w.write_correction(fixed)
        with pytest.raises(ValueError, match="expected a corrected case"):
            w.write_correction(case)
        with pytest.raises(ValueError, match="expected an uncorrected case"):
            w.write_case(fixed)


def test_a_file_without_correction_reads_the_recognised_words(case: CaseRecord, tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(case)
    with h5py.File(path, "a") as f:  # what a schema-2 writer left: no heatmaps_from attribute at all
        f.attrs["schema_version"] = 2
        del f["cases"][case.case_id].attrs[HEATMAPS_FROM]
    with SessionReader(path) as r:
        back = r.case(case.case_id)
    assert back.recognised_words is None and back.correction is None and back.words.text == case.words.text
    c = describe_session(path)["cases"][0]
    assert c["heatmaps_from"] == "recognised" and c["transcript_correction"] is None


WRITER = r"""
import sys
from radgaze.capture.gazemath.correction import Fix, correct_case
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter
with SessionReader(sys.argv[1]) as r:
    case = r.case(r.case_ids[0])
w = SessionWriter(sys.argv[2], live=True)
w.write_case(case)
print("saved 0", flush=True)
for k in range(1, 100000):  # the reader saves a correction of the first word again and again
    print("saved", w.write_correction(correct_case(case, [Fix(0, f"v{k}")])), flush=True)
"""


@pytest.mark.parametrize("trial", range(3))
def test_kill_minus_9_while_storing_a_correction_keeps_the_words_before_or_the_whole_one(
    case: CaseRecord, tmp_path: Path, trial: int
):
    source, path = tmp_path / "source.h5", tmp_path / "s.h5"
    with SessionWriter(source) as w:
        w.write_case(case)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    saved, deadline = -1, time.monotonic() + 120
    while saved < 2 * trial and time.monotonic() < deadline:  # trial 0: killed right after the case closed
        line = proc.stdout.readline()
        if not line:
            break
        saved = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert saved >= 2 * trial, f"the writer saved only {saved} corrections before it ended"
    with SessionReader(path) as r:
        back = r.case(case.case_id)
    assert back.complete and back.gaze.size == case.gaze.size
    if back.correction is None:  # killed before the first correction switched on
        assert saved == 0 and back.recognised_words is None and back.words.text == case.words.text
        assert back.sentences.text == case.sentences.text
        return
    n = int(back.correction.edits[-1][0]["text"][1:])
    assert n >= saved, f"correction {saved} was acknowledged, {n} is in use"
    assert back.recognised_words.text == case.words.text  # the recogniser's words never change
    whole = correct_case(case, [Fix(0, f"v{n}")])  # what correction n wrote, all of it
    assert back.words.text == whole.words.text and back.sentences.text == whole.sentences.text
    assert back.heatmaps.shape == whole.heatmaps.shape
    np.testing.assert_allclose(back.heatmaps, whole.heatmaps, atol=float(whole.heatmaps.max()) / 65535)
    summary = describe_session(path)
    assert summary["valid"], summary["errors"]


def test_edits_from_the_text_the_reader_typed_are_fixes_merges_inserts_and_deletes():
    from radgaze.capture.gazemath.correction import edits_from_text

    words = ["the", "heart", "is", "in", "large", "d", "."]
    assert edits_from_text(words, "the heart is in large d .") == []
    assert edits_from_text(words, "the hart is in large d .") == [Fix(1, "hart")]
    assert edits_from_text(words, "the heart is enlarged .") == [Merge(3, 5, "enlarged")]
    assert edits_from_text(words, "the heart is not in large d .") == [Insert(3, "not")]
    assert edits_from_text(words, "the heart is in large d . !") == [Insert(6, "!", after=True)]
    assert edits_from_text(words, "heart is in large d .") == [Delete(0)]


def test_a_typed_sentence_is_inserted_whole_where_the_diff_could_split_it_at_a_repeated_word():
    from radgaze.capture.gazemath.correction import edits_from_text

    words = ["The", "heart", "is", "normal.", "The", "bones", "are", "intact."]
    typed = "The heart is normal. The lungs are clear. The bones are intact."
    # a plain word diff keeps the second "The" for the typed sentence's and inserts "lungs are clear. The"
    assert edits_from_text(words, typed) == [Insert(4, t) for t in ["The", "lungs", "are", "clear."]]
    assert edits_from_text(words[:4], typed.rsplit(" The bones", 1)[0]) == [
        Insert(3, t, after=True) for t in ["The", "lungs", "are", "clear."]
    ]


def test_words_typed_into_no_recognised_words_at_all_fill_the_case():
    from radgaze.capture.gazemath.correction import edits_from_text

    edits = edits_from_text([], "No acute findings.")
    assert edits == [Insert(0, "No"), Insert(0, "acute"), Insert(0, "findings.")]
    out = apply_edits(Words.empty(), edits, bounds_t_lsl=(10.0, 14.0), speech_t_lsl=np.array([[11.0, 12.5]]))
    assert out.text == ["No", "acute", "findings."]
    assert out.t_start[0] == pytest.approx(11.0) and out.t_end[-1] == pytest.approx(12.5)  # the speech
    assert np.all(out.t_end - out.t_start >= MIN_TYPED_WORD_S)


def test_a_run_too_long_for_its_gap_keeps_its_order_between_the_neighbours_starts():
    w = _words()
    w.t_start[2] = 1.5  # no gap between "normal" (1.0-1.5) and "size" (1.5-2.5)
    out = apply_edits(w, [Insert(2, "a"), Insert(2, "b"), Insert(2, "c")])  # 0.45 s of words, no gap
    assert np.all(np.diff(out.t_start) >= 0) and out.t_start[2] >= 1.0 and out.t_start[4] <= 1.5
    assert np.all(out.t_end[2:5] - out.t_start[2:5] >= MIN_TYPED_WORD_S - 1e-9)
