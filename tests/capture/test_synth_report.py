"""Dictated reports: findings named with their place, normal statements only where nothing is found, a natural
pace, dictation tokens as Whisper (attached marks) or a radiologist (spoken "period") yields them."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.synth.phantom import Anatomy, place_findings
from radgaze.capture.synth.report import compose_report, dictation_tokens, time_report


def _specs(choices, seed=0):
    return place_findings(np.random.default_rng(seed), Anatomy(), choices)[1]


def test_each_finding_has_one_sentence_naming_it_and_its_place():
    specs = _specs(
        [
            ("consolidation", "right", "lower"),
            ("nodule", "left", "upper"),
            ("pleural_effusion", "left", "lower"),
        ]
    )
    for seed in range(30):
        report = compose_report(np.random.default_rng(seed), specs)
        named = [s for s in report if s.finding_index >= 0]
        assert sorted(s.finding_index for s in named) == [0, 1, 2]
        for s in named:
            spec = specs[s.finding_index]
            text = s.text.lower()
            assert spec.side in text
            if spec.label in ("consolidation", "nodule"):
                assert f"{spec.zone} zone" in text
            assert any(
                w in text
                for w in {
                    "consolidation": ("consolidation", "opac"),
                    "nodule": ("nodul",),
                    "pleural_effusion": ("effusion",),
                }[spec.label]
            )
        normals = " ".join(s.text.lower() for s in report if s.finding_index < 0)
        assert "pleural effusion" not in normals and "lungs are clear" not in normals
        assert any(s.target == "heart" for s in report)  # no cardiomegaly: heart size is stated normal


def test_a_normal_study_is_all_normal_statements():
    report = compose_report(np.random.default_rng(1), [])
    targets = [s.target for s in report]
    assert all(s.finding_index == -1 for s in report)
    assert {"heart", "lungs", "costophrenic_angles", "apices"} <= set(targets)
    assert all(s.text.endswith(".") for s in report)


def test_cardiomegaly_replaces_the_normal_heart_statement():
    specs = _specs([("cardiomegaly", "", "")])
    for seed in range(10):
        report = compose_report(np.random.default_rng(seed), specs)
        assert [s.target for s in report].count("heart") == 0
        assert any(
            "cardi" in s.text.lower() or "heart" in s.text.lower() for s in report if s.finding_index == 0
        )


@pytest.mark.parametrize("spoken", [False, True])
def test_word_times_have_a_natural_pace_and_pauses(spoken):
    specs = _specs([("consolidation", "right", "lower"), ("pneumothorax", "left", "upper")])
    rng = np.random.default_rng(4)
    report = compose_report(rng, specs)
    words, timed = time_report(rng, report, 100.0, spoken_punctuation=spoken)
    assert words.t_start[0] == 100.0
    assert np.all(words.t_end > words.t_start)
    assert np.all(words.t_start[1:] >= words.t_end[:-1])
    for ts in timed:
        i0, i1 = ts.word_slice
        n_spoken = sum(1 for w in words.text[i0:i1] if w != "period")
        assert 1.7 <= n_spoken / (ts.t_end - ts.t_start) <= 3.6
    pauses = [b.t_start - a.t_end for a, b in zip(timed, timed[1:])]
    assert min(pauses) >= 0.5 and max(pauses) <= 3.5
    if spoken:
        assert words.text.count("period") == len(report)
        assert not any(w.endswith(".") for w in words.text)
    else:
        assert sum(w.endswith(".") for w in words.text) == len(report)


def test_dictation_tokens_attach_or_speak_punctuation():
    assert dictation_tokens("No pneumothorax.", spoken_punctuation=False) == ["No", "pneumothorax."]
    assert dictation_tokens("Consolidation, likely pneumonia.", spoken_punctuation=True) == [
        "Consolidation",
        "comma",
        "likely",
        "pneumonia",
        "period",
    ]


def test_class_prompt_reports_describe_one_study_of_the_class_in_the_reports_phrasing():
    from radgaze.capture.synth.report import _FINDING_TEMPLATES, _NORMAL_TEMPLATES, class_prompt_reports

    finding_sentences = {lab: {t.split("{")[0][:12] for t in ts} for lab, ts in _FINDING_TEMPLATES.items()}
    normal_sentences = {t for ts in _NORMAL_TEMPLATES.values() for t in ts}
    for label in ("normal", "consolidation", "pleural_effusion", "cardiomegaly", "pneumothorax", "nodule"):
        reports = class_prompt_reports(label, 12, seed=5)
        assert len(reports) == 12 and reports == class_prompt_reports(label, 12, seed=5)  # by seed
        assert reports != class_prompt_reports(label, 12, seed=6)
        for rep in reports:
            abnormal = [s for s in rep if s not in normal_sentences]
            if label == "normal":
                assert abnormal == [] and len(rep) >= 4
                continue
            (finding,) = abnormal  # one study, one finding, named once; the rest normal statements
            assert any(finding.startswith(p) for p in finding_sentences[label]), finding
            if label != "cardiomegaly":
                assert "right" in finding.lower() or "left" in finding.lower()  # its place
    sides = {"right" in r[0].lower() for r in class_prompt_reports("nodule", 20, seed=1)}
    assert sides == {True, False}, "the place varies"
    with pytest.raises(ValueError, match="label"):
        class_prompt_reports("fracture", 1)
