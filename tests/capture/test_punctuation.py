"""Dictated punctuation and sentence splitting on word lists (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import Words
from radgaze.capture.gazemath.punctuation import (
    PARAGRAPH,
    apply_dictated_punctuation,
    content_span,
    convert_dictated_punctuation,
    ends_sentence,
    is_punctuation,
    join_tokens,
    normalize_token,
    split_sentences,
)


def _texts(rows):
    return [r[2] for r in rows]


def test_commands_become_marks_with_whisper_spacing_and_case():
    tokens = [" No", " pleural", " effusion", " Period.", " Heart", " size", " normal", " full", " stop"]
    rows, n = convert_dictated_punctuation(tokens)
    assert n == len(tokens)
    assert _texts(rows) == ["No", "pleural", "effusion", ".", "Heart", "size", "normal", "."]
    # the two-word command spans both words
    assert rows[-1][:2] == (7, 9)


@pytest.mark.parametrize(
    ("spoken", "mark"),
    [
        (["comma"], ","),
        (["colon"], ":"),
        (["semicolon"], ";"),
        (["question", "mark"], "?"),
        (["new", "paragraph"], PARAGRAPH),
        (["next", "paragraph"], PARAGRAPH),
        (["new", "line"], "\n"),
    ],
)
def test_each_command(spoken, mark):
    rows, _ = convert_dictated_punctuation(["effusion", *spoken, "heart"])
    assert _texts(rows) == ["effusion", mark, "heart"]


def test_dictated_mark_replaces_the_recognisers_own_punctuation_before_it():
    rows, _ = convert_dictated_punctuation([" effusion,", " period.", " 2.5", " cm", " comma"])
    assert _texts(rows) == ["effusion", ".", "2.5", "cm", ","]


def test_period_as_a_noun_is_kept():
    rows, _ = convert_dictated_punctuation(["in", "the", "postoperative", "period", "period"])
    assert _texts(rows) == ["in", "the", "postoperative", "period", "."]


def test_words_that_only_start_a_command_stay_words():
    rows, _ = convert_dictated_punctuation(["new", "opacity", "full", "lung", "expansion"])
    assert _texts(rows) == ["new", "opacity", "full", "lung", "expansion"]


def test_streaming_holds_back_a_possible_command_prefix():
    rows, n = convert_dictated_punctuation(["no", "change", "new"], final=False)
    assert _texts(rows) == ["no", "change"] and n == 2
    # next batch: the held word comes again with what followed
    rows2, n2 = convert_dictated_punctuation(["new", "paragraph", "heart"], final=False)
    assert _texts(rows2) == [PARAGRAPH, "heart"] and n2 == 3
    # at the end of the dictation the prefix is just a word
    rows3, n3 = convert_dictated_punctuation(["no", "change", "new"], final=True)
    assert _texts(rows3) == ["no", "change", "new"] and n3 == 3


def test_apply_on_words_keeps_times_and_spans_two_word_commands():
    w = Words(
        t_start=np.array([10.0, 10.5, 11.0, 11.4]),
        t_end=np.array([10.4, 10.9, 11.3, 11.9]),
        text=[" clear", " full", " stop", " heart"],
        probability=np.array([0.9, 0.8, 0.4, 1.0], np.float32),
    )
    out, n = apply_dictated_punctuation(w)
    assert n == 4
    assert out.text == ["clear", ".", "heart"]
    np.testing.assert_allclose(out.t_start, [10.0, 10.5, 11.4])
    np.testing.assert_allclose(out.t_end, [10.4, 11.3, 11.9])
    np.testing.assert_allclose(out.probability, [0.9, 0.4, 1.0])


def test_split_reflacx_rows():
    # REFLACX keeps "." and "," as their own rows
    tokens = ["no", "focal", "consolidation", ",", "effusion", ".", "heart", "is", "normal", ".", "mild"]
    assert split_sentences(tokens) == [
        (0, 6, "no focal consolidation, effusion."),
        (6, 10, "heart is normal."),
        (10, 11, "mild"),
    ]
    assert split_sentences(tokens, final=False) == split_sentences(tokens)[:2]


def test_split_whisper_attached_punctuation_abbreviations_and_decimals():
    tokens = ["Nodule", "2.", "5", "cm,", "e.g.", "granuloma.", "Stable?", "Yes!", "No", "change"]
    got = split_sentences(tokens)
    assert [g[:2] for g in got] == [(0, 6), (6, 7), (7, 8), (8, 10)]
    assert got[0][2] == "Nodule 2. 5 cm, e.g. granuloma."


def test_paragraph_breaks_end_sentences_and_marks_alone_are_not_sentences():
    tokens = [".", "heart", "normal", PARAGRAPH, PARAGRAPH, ",", "lungs", "clear", "."]
    got = split_sentences(tokens)
    assert [g[2] for g in got] == ["heart normal", ", lungs clear."]
    assert [g[:2] for g in got] == [(1, 4), (5, 9)]


def test_content_span_ignores_mark_rows():
    w = Words(
        np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5]), ["heart", "normal", "."], np.ones(3, np.float32)
    )
    assert content_span(w, 0, 3) == (1.0, 2.5)
    assert all(np.isnan(content_span(w, 2, 3)))


def test_small_helpers():
    assert normalize_token(" Period.") == "period"
    assert is_punctuation(".") and is_punctuation(PARAGRAPH) and not is_punctuation("cm.")
    assert (
        ends_sentence("cm.")
        and not ends_sentence("Dr.")
        and not ends_sentence("3.")
        and ends_sentence(PARAGRAPH)
    )
    assert join_tokens([" no", " effusion", ",", " heart", " normal", "."]) == "no effusion, heart normal."
    assert join_tokens(["clear", ".", PARAGRAPH, "Heart"]) == "clear. Heart"
    assert join_tokens(["clear", ".", PARAGRAPH, "Heart"], keep_breaks=True) == "clear.\n\nHeart"
