"""What a reader tripped over in review (issue 23, item 8): the model's attention drawn with a transparent low end
as the reader's map is (not a purple veil over the whole film), and "Hit" / "In shapes" are "n/a" for a sentence
that names no finding even when its gaze lies in one of the reader's ellipses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6 import QtGui
from replay_review_sessions import write_session
from test_review_mode import run_dir  # noqa: F401 (fixture)

from radgaze.capture.base.records import CaseAnnotation, Shape
from radgaze.model.agreement import case_rows, display_map, names_no_finding


@pytest.mark.parametrize(
    ("text", "none"),
    [
        ("the right lung is clear.", True),
        ("No pneumothorax.", True),
        ("the cardiomediastinal silhouette is normal.", True),
        ("the heart is enlarged.", False),
        ("there is a left pleural effusion.", False),
    ],
)
def test_names_no_finding(text, none):
    assert names_no_finding(text) is none


def test_hit_is_not_scored_for_a_sentence_naming_no_finding(tmp_path):
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(write_session(tmp_path / "s.h5", 1)) as r:
        rec = r.case("case0")
    # an ellipse around the right lung, where the reader looked while saying "the right lung is clear."
    rec.annotation = CaseAnnotation(
        shapes=[
            Shape("ellipse", 160.0, 260.0, 240.0, 340.0, ("Enlarged cardiac silhouette",), 5),
            Shape("ellipse", 70.0, 140.0, 150.0, 220.0, ("Other",), 3),
        ]
    )
    heart, _, clear = case_rows(rec, rec.heatmaps.copy())
    assert heart.ellipse_hit == 1.0
    assert math.isnan(clear.ellipse_hit) and math.isnan(clear.ellipse_mass)


def test_display_map_gives_a_diffuse_attention_map_a_transparent_low_end():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:50]
    diffuse = 0.6 + 0.1 * rng.random((60, 50)) + np.exp(-((yy - 20) ** 2 + (xx - 30) ** 2) / 50.0)
    shown = display_map(diffuse)
    assert shown.max() == pytest.approx(1.0) and np.mean(shown == 0.0) >= 0.5  # half of it is not drawn
    gaze = np.exp(-((yy - 40) ** 2 + (xx - 10) ** 2) / 20.0)  # a reader's map: zero almost everywhere
    np.testing.assert_allclose(display_map(gaze), (gaze - gaze.min()) / np.ptp(gaze), atol=1e-4)


def _tinted_fraction(pane, image_rect) -> float:
    """Share of the film's pixels in ``pane``'s grab whose colour is not grey (the overlay tints them)."""
    img = pane.canvas.viewport().grab().toImage()
    x0, y0, x1, y1 = image_rect
    tinted = total = 0
    for y in range(y0, y1, 4):
        for x in range(x0, x1, 4):
            c = QtGui.QColor(img.pixel(x, y))
            tinted += max(c.red(), c.green(), c.blue()) - min(c.red(), c.green(), c.blue()) > 25
            total += 1
    return tinted / total


def test_review_draws_the_model_attention_with_a_transparent_low_end(qtbot, run_dir, tmp_path, artifacts_dir):  # noqa: F811
    from radgaze.app.review import COLUMNS, ReviewWindow

    write_session(tmp_path / "annotated" / "r.h5", 1, prefix="r", annotated=True)
    win = ReviewWindow(run_dir, tmp_path / "annotated")
    qtbot.addWidget(win)
    win.resize(1366, 740)
    with qtbot.waitSignal(win.rows_ready, timeout=60_000):
        win.show()
    qtbot.wait(50)
    state = win.model_state
    h, w = state.pixels.shape[:2]
    x0, y0 = (round(v) for v in state.transform.image_to_view(0, 0))
    x1, y1 = (round(v) for v in state.transform.image_to_view(w, h))
    tinted = _tinted_fraction(win.model_view, (max(x0, 0), max(y0, 0), x1, y1))
    assert tinted < 0.6, f"{tinted:.0%} of the film tinted by the model's attention"
    assert np.mean(state.overlay.heatmap == 0.0) >= 0.45
    hit_col = COLUMNS.index("Hit")
    shown = {win.table.item(r, COLUMNS.index("Sentence")).text(): win.table.item(r, hit_col).text()
             for r in range(win.table.rowCount())}  # fmt: skip
    assert shown["the right lung is clear."] == "n/a"
    assert win.grab().save(str(artifacts_dir / "review_model_attention.png"))
    win.close()
