"""Synthetic readers who make one kind of error, the second look computed on their readings, and the trial on
them through ``radgaze synth`` and ``radgaze analyze second-look``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radgaze.capture.gazemath.second_look import compute_second_look
from radgaze.capture.synth import synth_reading

SIZE = 768


def _second_look(rec, pixels):
    windows = np.c_[rec.sentences.window_start, rec.sentences.window_end]
    return compute_second_look(rec.fixations, windows, (SIZE, SIZE), t_lsl=rec.t_end, pixels=pixels)


@pytest.mark.parametrize("kind", ["search", "decision", "recognition", "complete"])
def test_each_reader_leaves_the_trace_of_its_error_and_the_truth_names_it(kind):
    reading = synth_reading(11, n_cases=3, image_size=SIZE, reader=kind)
    for rec, pixels in zip(reading, reading.images):
        sl = _second_look(rec, pixels)
        truth = rec.attrs.get("reader_error")
        assert rec.attrs["reader"] == kind
        if kind == "complete":
            assert truth is None and sl.empty, sl.status_line()
            continue
        assert truth["kind"] == kind and rec.labels == ["nodule"]
        assert rec.findings[0].sentence_index == -1  # missed: no sentence names it
        assert not any("nodule" in t.lower() for t in rec.sentences.text)
        ppd = float(np.median(rec.fixations["ppd_img"]))
        if kind == "search":
            assert sl.zones_not_viewed == [truth["zone"]] and sl.clusters == [], sl.status_line()
            d = np.hypot(
                rec.fixations["x_img_px"] - truth["x_img_px"], rec.fixations["y_img_px"] - truth["y_img_px"]
            )
            assert d.min() > 2.5 * ppd  # never within the UFOV
        elif kind == "decision":
            (c,) = sl.clusters
            assert np.hypot(c.x_img_px - truth["x_img_px"], c.y_img_px - truth["y_img_px"]) < ppd
            assert c.dwell_s >= 1.0 and not sl.unviewed.any()
        else:  # one brief glance: within the UFOV, far from a decision dwell; nothing to mark
            near = (
                np.hypot(
                    rec.fixations["x_img_px"] - truth["x_img_px"],
                    rec.fixations["y_img_px"] - truth["y_img_px"],
                )
                < ppd
            )
            dwell = (rec.fixations["t_end"] - rec.fixations["t_start"])[near].sum()
            assert 0.05 < dwell < 1.0 and sl.empty, (dwell, sl.status_line())


def test_an_unknown_reader_is_refused_in_one_line():
    with pytest.raises(
        ValueError, match="expected one of default, complete, search, decision, recognition, got 'lazy'"
    ):
        synth_reading(1, n_cases=1, image_size=256, reader="lazy")


def test_the_trial_runs_end_to_end_on_synthetic_readers_and_the_analysis_prints_its_table(tmp_path, capsys):
    from radgaze.capture.analysis.cli import main as analyze
    from radgaze.capture.store.reader import list_sessions
    from radgaze.capture.store.second_look import read_second_looks
    from radgaze.capture.synth.cli import main as synth

    out = tmp_path / "trial"
    args = [str(out), "--cases", "12", "--seed", "4", "--size", str(SIZE), "--reader", "mixed"]
    assert synth([*args, "--second-look", "random", "--second-look-seed", "3", "--respond-p", "1"]) == 0
    stored = {cid: s for p in list_sessions(out) for cid, s in read_second_looks(p).items()}
    assert len(stored) == 12 and {s["assignment"] for s in stored.values()} == {"random"}
    arms = {cid: s["shown"] for cid, s in stored.items()}
    assert 0 < sum(arms.values()) < 12  # both arms drawn
    capsys.readouterr()
    assert analyze(["second-look", str(out), "--boot", "200", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    shown, hidden = got["arms"]
    assert (shown["arm"], hidden["arm"]) == ("shown", "not shown") and shown["cases"] + hidden["cases"] == 12
    assert hidden["findings_added_after"] == 0 and hidden["reported_after_second_look"] == 0  # nothing shown
    cases = {c["case_id"]: c for c in got["cases"]}
    for cid, c in cases.items():
        assert c["shown"] == arms[cid]
        if c["shown"] and c["n_reported_after"]:
            assert c["n_findings_after"] >= 1  # reported after the second look, dictated after Space
    # with respond_p = 1 every search or decision miss in the shown arm is reported after the second look
    assert shown["reported_after_second_look"] >= 1
    lo, hi = shown["sensitivity_ci95"]
    assert lo <= shown["sensitivity"] <= hi
    assert analyze(["second-look", str(out), "--boot", "100"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["arm", "cases", "added"] and table[1].startswith("shown")
    assert table[3].startswith("sensitivity difference (shown - not shown):")


def test_mark_rates_count_cases_whose_overlay_marks_exactly_the_miss():
    from radgaze.capture.synth.trial import mark_rates, overlay_matches_truth

    assert mark_rates({"decision": 3, "recognition": 2}, seed=100, image_size=SIZE) == {
        "decision": (3, 3),
        "recognition": (2, 2),
    }
    reading = synth_reading(100, n_cases=1, image_size=SIZE, reader="decision")
    rec = reading[0]
    sl = _second_look(rec, reading.images[0])
    assert overlay_matches_truth(rec, sl)
    sl.clusters[0] = type(sl.clusters[0])(10.0, 10.0, 5.0, 1.5, 4, 0.0)  # a circle somewhere else
    assert not overlay_matches_truth(rec, sl)


def test_the_readers_labels_are_scored_against_a_reference_readers_labels(tmp_path, capsys):
    """The same synthetic cases in two folders: the trial's (annotated by the reader) and an expert's."""
    from radgaze.capture.analysis.cli import main as analyze
    from radgaze.capture.base.errors import ConfigError
    from radgaze.capture.base.records import CaseAnnotation, LabelChoice
    from radgaze.capture.store.edits import annotate_session_file
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.synth.session import write_synthetic_sessions
    from radgaze.capture.synth.trial import TrialOptions

    trial = write_synthetic_sessions(
        tmp_path / "t", 2, 9, cases_per_file=2, image_size=512, trial=TrialOptions("on")
    )
    ref = write_synthetic_sessions(tmp_path / "r", 2, 9, cases_per_file=2, image_size=512)
    with SessionReader(trial[0]) as r:
        ids = r.case_ids
    given = [
        [("Nodule", 5)],
        [("Nodule", 4), ("Pleural abnormality", 2), ("Atelectasis", 3)],
    ]  # 2: "Unlikely"
    truth = [[("Nodule", 5), ("Consolidation", 4)], [("Nodule", 3)]]
    for cid, mine, theirs in zip(ids, given, truth):
        annotate_session_file(trial[0], cid, CaseAnnotation([LabelChoice(*c) for c in mine]), step="labels")
        annotate_session_file(ref[0], cid, CaseAnnotation([LabelChoice(*c) for c in theirs]), step="labels")
    capsys.readouterr()
    assert (
        analyze(
            ["second-look", str(tmp_path / "t"), "--reference", str(tmp_path / "r"), "--json", "--boot", "50"]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    shown = got["arms"][0]
    # truth 3 labels (Nodule, Consolidation; Nodule); found 2; one false (Atelectasis; "Unlikely" is not given)
    assert (shown["cases"], shown["true_findings"], shown["sensitivity"]) == (2, 3, pytest.approx(2 / 3))
    assert shown["fp_per_image"] == pytest.approx(0.5) and {c["truth"] for c in got["cases"]} == {"reference"}
    capsys.readouterr()
    bare = write_synthetic_sessions(tmp_path / "u", 1, 9, image_size=256)  # nobody annotated these
    with pytest.raises(ConfigError, match="--reference: expected annotated cases"):
        analyze(["second-look", str(tmp_path / "t"), "--reference", str(bare[0])])
