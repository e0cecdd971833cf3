"""Shared importer pieces: strict CSV tables, phrase words, finding-sentence links, all-or-nothing writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.base.errors import ConfigError, ImportFormatError
from radgaze.capture.base.records import DisplayGeometry, Finding
from radgaze.capture.importers.common import (
    display_from_options,
    ellipse_mask,
    link_findings,
    make_words,
    parse_size,
    read_table,
    spread_phrase,
)


def test_read_table_numbers_flags_and_errors(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,flag\n1,2.5,True\n3,,false\n\n")
    tab = read_table(p, ["a", "b"])
    assert tab.n_rows == 2  # the blank line is no row
    assert tab.numbers("a").tolist() == [1.0, 3.0]
    assert np.isnan(tab.numbers("b", allow_nan=True)[1])
    assert tab.flags("flag").tolist() == [True, False]
    with pytest.raises(
        ImportFormatError, match=r"t\.csv: column 'b' row 3: expected a finite number, got ''"
    ):
        tab.numbers("b")
    with pytest.raises(ImportFormatError, match=r"t\.csv: expected a column 'zzz'"):
        tab.numbers("zzz")
    with pytest.raises(
        ImportFormatError, match=r"expected columns \['c'\], got columns \['a', 'b', 'flag'\]"
    ):
        read_table(p, ["a", "c"])
    assert sorted(read_table(p, ["a"], keep=["b"]).columns) == ["a", "b"]


def test_make_words_sorts_and_repairs_ends():
    w = make_words(["b", "a", " "], np.array([2.0, 1.0, 3.0]), np.array([1.5, 1.4, 3.1]), where="x")
    assert w.text == ["a", "b"]  # sorted by start, the blank word dropped
    assert w.t_end.tolist() == [1.4, 2.0]  # an end before its start is set to the start
    with pytest.raises(ImportFormatError, match="x: expected finite word times"):
        make_words(["a"], np.array([np.nan]), np.array([1.0]), where="x")


def test_spread_phrase_shares_the_span_evenly():
    words, t0, t1 = spread_phrase("small left effusion.", 10.0, 11.5)
    assert words == ["small", "left", "effusion."]
    np.testing.assert_allclose(t0, [10.0, 10.5, 11.0])
    np.testing.assert_allclose(t1, [10.5, 11.0, 11.5])
    assert spread_phrase("  ", 0.0, 1.0)[0] == []


def test_link_findings_prefers_a_positive_mention():
    texts = ["No pneumothorax.", "Small left pleural effusion.", "The heart is enlarged.", "Lines and tubes."]
    found = link_findings(
        [
            Finding("pleural_abnormality", "", (0, 0, 1, 1)),
            Finding("enlarged_cardiac_silhouette", "", (0, 0, 1, 1)),
            Finding("pneumothorax", "", (0, 0, 1, 1)),  # only a negated mention: taken, nothing better
            Finding("support_devices", "", (0, 0, 1, 1)),
            Finding("hiatal_hernia", "", (0, 0, 1, 1)),
        ],
        texts,
    )
    assert [f.sentence_index for f in found] == [1, 2, 0, 3, -1]


def test_ellipse_mask_on_the_heatmap_grid():
    m = ellipse_mask((100.0, 200.0, 300.0, 400.0), 1024, 1024)  # grid 512: 2 image px per cell
    assert m.shape == (512, 512)
    assert m[150, 100] and not m[100, 50] and not m[101, 51]
    assert m.sum() == pytest.approx(np.pi * 50 * 50, rel=0.05)


def test_display_options():
    d = DisplayGeometry()
    assert parse_size("1920x1080", "--display") == (1920.0, 1080.0)
    with pytest.raises(ConfigError, match="--display: expected WIDTHxHEIGHT"):
        parse_size("big", "--display")
    same_pitch = display_from_options("3072x4096", None, None, d)
    assert same_pitch.screen_w_mm == pytest.approx(2 * d.screen_w_mm)
    given = display_from_options("1920x1080", "527x296", 600.0, d)
    assert (given.screen_w_px, given.screen_h_mm, given.viewing_distance_mm) == (1920, 296.0, 600.0)
