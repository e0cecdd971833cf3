"""Review: agreement maths on hand-built maps, checkpoint resolution, and the review window with a tiny model."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from replay_review_sessions import write_session

from radgaze.app.retrain import POINTER_NAME, resolve_checkpoint, write_pointer
from radgaze.capture.base.errors import CheckpointError
from radgaze.capture.base.records import FIXATION_DTYPE
from radgaze.model.agreement import (
    METRICS,
    SentenceAgreement,
    agreement,
    case_rows,
    csv_text,
    fixation_mask,
    reader_shapes_mask,
    sort_by_disagreement,
    summarise_cases,
)


# ------------------------------------------------------------------------------------------ pure
def _blob(shape, cy, cx, sigma=3.0):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return m / m.sum()


def test_fixation_mask_takes_fixations_overlapping_the_window_on_the_grid():
    fx = np.zeros(3, FIXATION_DTYPE)
    fx["t_start"], fx["t_end"] = [0.0, 1.0, 5.0], [0.5, 1.5, 5.5]
    fx["x_img_px"], fx["y_img_px"] = [10.0, 41.0, 20.0], [4.0, 9.0, 20.0]
    m = fixation_mask(fx, 0.4, 2.0, (8, 16), scale=4.0)  # image px -> cell: floor(x / 4)
    assert m.sum() == 2 and m[1, 2] and m[2, 10]
    assert not fixation_mask(fx, 10.0, 11.0, (8, 16), 4.0).any()


def test_agreement_identical_vs_disjoint_maps():
    a = _blob((32, 32), 10, 10)
    mask = np.zeros((32, 32), bool)
    mask[10, 10] = True
    same = agreement(a, a, mask)
    assert same["cc"] == pytest.approx(1.0) and same["sim"] == pytest.approx(1.0)
    assert same["kld"] == pytest.approx(0.0, abs=1e-9) and same["auc_judd"] > 0.99 and same["nss"] > 3
    far = agreement(_blob((32, 32), 25, 25), a, mask)
    assert far["cc"] < 0.05 and far["sim"] < 0.05 and far["kld"] > 5 and far["nss"] < 0
    assert far["auc_judd"] < same["auc_judd"] - 0.2
    assert math.isnan(agreement(a, a, None)["nss"]) and math.isnan(
        agreement(a, a, np.zeros_like(mask))["auc_judd"]
    )


def test_pointing_game_and_mass_inside_the_readers_shapes():
    inside = np.zeros((32, 32), bool)
    inside[2:19, 2:19] = True  # +-8 cells around the blob at (10, 10), sigma 3
    on = agreement(_blob((32, 32), 10, 10), _blob((32, 32), 10, 10), None, inside)
    assert on["ellipse_hit"] == 1.0 and on["ellipse_mass"] > 0.9
    off = agreement(_blob((32, 32), 25, 25), _blob((32, 32), 10, 10), None, inside)
    assert off["ellipse_hit"] == 0.0 and off["ellipse_mass"] < 0.01
    unlocalised = agreement(_blob((32, 32), 10, 10), _blob((32, 32), 10, 10), None, None)
    assert math.isnan(unlocalised["ellipse_hit"]) and math.isnan(unlocalised["ellipse_mass"])


def test_case_rows_score_the_model_against_the_readers_ellipse_tied_to_the_sentence(tmp_path):
    from radgaze.capture.base.records import CaseAnnotation, Shape
    from radgaze.capture.store.reader import SessionReader

    with SessionReader(write_session(tmp_path / "s.h5", 1)) as r:
        rec = r.case("case0")
    assert math.isnan(case_rows(rec, rec.heatmaps.copy())[0].ellipse_hit)  # not localised: undefined
    # the reader's ellipse around the heart (sentence 1's target, image px 200, 300)
    rec.annotation = CaseAnnotation(
        shapes=[Shape("ellipse", 160.0, 260.0, 240.0, 340.0, ("Enlarged heart",), 5)]
    )
    mask = reader_shapes_mask(rec, rec.sentence_heatmap(0))  # sentence 0 ("the heart ...") looked inside it
    assert mask is not None and mask.sum() == pytest.approx(np.pi * 40 * 40 / rec.heatmap_scale**2, rel=0.1)
    assert reader_shapes_mask(rec, rec.sentence_heatmap(1)) is None  # the effusion's gaze lies outside it
    rows = case_rows(rec, rec.heatmaps.copy())  # a model looking where the reader looked
    heart, effusion = rows[0], rows[1]
    assert heart.ellipse_hit == 1.0 and heart.ellipse_mass > 0.9
    # the heart's ellipse is not the effusion sentence's target: no pointing game for it (not a miss)
    assert math.isnan(effusion.ellipse_hit) and math.isnan(effusion.ellipse_mass)
    heart_model = np.repeat(
        rec.heatmaps[1:2], 3, axis=0
    )  # a model pointing at the effusion for every sentence
    assert case_rows(rec, heart_model)[0].ellipse_hit == 0.0
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert (
        parsed[0]["ellipse_hit"] == "1" and parsed[1]["ellipse_hit"] == "" and parsed[-1]["session"] == "mean"
    )


def test_a_shape_belongs_to_a_sentence_holding_half_its_gaze():
    from radgaze.capture.base.records import CaseAnnotation, CaseRecord, DisplayGeometry, ImageRef, Shape

    hm = np.zeros((2, 10, 10), np.float32)
    hm[0, 2, 2], hm[0, 7, 7] = 0.5, 0.5  # half of sentence 0's gaze in each corner
    hm[1, 2, 2], hm[1, 7, 7] = 0.4, 0.6
    rec = CaseRecord("c", ImageRef("x.png", "0" * 64, 40, 40), DisplayGeometry(), 0.0, 2.0, heatmap_scale=4.0)
    rec.annotation = CaseAnnotation(shapes=[Shape("box", 0.0, 0.0, 16.0, 16.0, ("Other",), 5)])  # cells 0..3
    assert reader_shapes_mask(rec, hm[0]).sum() == 16  # exactly half: it belongs
    assert reader_shapes_mask(rec, hm[1]) is None  # 40 %: it does not


def _row(case, i, cc, nss=1.0):
    return SentenceAgreement("s.h5", case, i, f"sentence {i}", 2, cc, nss, 1.0, 0.5, 0.8)


def test_summary_sort_and_csv():
    rows = [_row("a", 0, 0.9), _row("a", 1, 0.1, math.nan), _row("b", 0, -0.2), _row("b", 1, math.nan)]
    assert [r.cc for r in sort_by_disagreement(rows)][:3] == [-0.2, 0.1, 0.9]
    assert math.isnan(sort_by_disagreement(rows)[-1].cc)
    summary = {c.case_id: c for c in summarise_cases(rows)}
    assert summary["a"].cc == pytest.approx(0.5) and summary["a"].nss == pytest.approx(1.0)
    assert summary["b"].cc == pytest.approx(-0.2) and summary["b"].n_sentences == 2
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert [p["cc"] for p in parsed] == ["0.9", "0.1", "-0.2", "", "0.266667"]  # the mean row last
    assert [p["sentence"] for p in parsed] == ["1", "2", "1", "2", ""]  # numbered from 1, as in the table
    assert parsed[-1]["session"] == "mean" and parsed[-1]["n_fixations"] == "8"
    assert parsed[2]["disagreement"] == "1.2" and parsed[1]["nss"] == ""
    assert parsed[-1]["nss"] == "1" and parsed[-1]["disagreement"] == "0.733333"
    assert "mean" not in csv_text(rows, mean_row=False)
    assert set(METRICS) <= set(parsed[0])


def test_case_rows_match_the_sentences_with_heatmaps(tmp_path):
    from radgaze.capture.store.reader import SessionReader

    path = write_session(tmp_path / "s.h5", 1)
    with SessionReader(path) as r:
        rec = r.case("case0")
    maps = rec.heatmaps.copy()  # a "model" that looks exactly where the reader looked
    rows = case_rows(rec, maps, session="s.h5")
    assert [r.sentence_index for r in rows] == [0, 1, 2]
    assert all(r.cc == pytest.approx(1.0) and r.auc_judd > 0.95 for r in rows)
    with pytest.raises(ValueError, match="expected 3 model maps"):
        case_rows(rec, maps[:2])


def _save_tiny_checkpoint(directory: Path, seed: int) -> Path:
    import torch

    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(seed)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), directory)
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    _save_tiny_checkpoint(run / "checkpoints" / "last", seed=0)
    return run


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review_sessions")
    write_session(folder / "a.h5", 2, prefix="a")
    write_session(folder / "b.h5", 1, prefix="b")
    return folder


def test_resolve_checkpoint_prefers_pointer_then_best_then_last(tmp_path, run_dir):
    assert resolve_checkpoint(run_dir) == run_dir / "checkpoints" / "last"
    assert resolve_checkpoint(run_dir / "checkpoints" / "last") == run_dir / "checkpoints" / "last"
    run = tmp_path / "run"
    import shutil

    shutil.copytree(run_dir / "checkpoints" / "last", run / "checkpoints" / "last")
    shutil.copytree(run_dir / "checkpoints" / "last", run / "checkpoints" / "best")
    assert resolve_checkpoint(run) == run / "checkpoints" / "best"
    other = shutil.copytree(run_dir / "checkpoints" / "last", tmp_path / "elsewhere")
    write_pointer(run, other, source_run="x")
    assert resolve_checkpoint(run) == other.resolve()
    (run / POINTER_NAME).write_text(json.dumps({"checkpoint": str(tmp_path / "gone")}))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resolve_checkpoint(run)
    with pytest.raises(CheckpointError, match="expected a run directory"):
        resolve_checkpoint(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ window
@pytest.fixture
def review(qtbot, run_dir, sessions):
    from radgaze.app.review import ReviewWindow

    win = ReviewWindow(run_dir, sessions)
    qtbot.addWidget(win)
    win.resize(1400, 950)
    with qtbot.waitSignal(win.rows_ready, timeout=60_000):
        win.show()
    yield win
    win.close()


def _column(table, col):
    return [table.item(r, col).value for r in range(table.rowCount())]


def test_metrics_table_filled_and_sorted_by_disagreement(review):
    from radgaze.app.review import COL_DISAGREEMENT, COLUMNS

    assert review.table.rowCount() == 9 == len(review.rows)  # 3 cases x 3 sentences
    d = _column(review.table, COL_DISAGREEMENT)
    assert d == sorted(d, reverse=True) and all(0.0 <= v <= 2.0 for v in d)
    cc_col = COLUMNS.index("CC")
    np.testing.assert_allclose(d, [1.0 - v for v in _column(review.table, cc_col)], atol=1e-3)
    assert review.case_table.rowCount() == 3
    # sort by another column through the header
    review.table.sortItems(cc_col)
    cc = _column(review.table, cc_col)
    assert cc == sorted(cc)
    # the first row (most disagreeing) was shown on both panes
    assert review.current is not None


def test_selecting_a_row_shows_both_maps_on_the_same_grid(review):
    from PySide6 import QtCore

    from radgaze.app.review import COLUMNS

    review.table.sortItems(COLUMNS.index("SIM"))  # selection follows the sorted table
    review.table.selectRow(3)
    key = review.table.item(3, 0).data(QtCore.Qt.ItemDataRole.UserRole)
    ci, si = review.current
    case = review.cases[ci]
    assert (case.session.name, case.record.case_id, si) == tuple(key)
    reader, model = review.reader_state.overlay, review.model_state.overlay
    assert reader.shape == model.shape == case.record.heatmaps.shape[1:]
    # both on the same footing: min-max normalised (low end transparent), the raw maps kept for the metrics
    from radgaze.model.agreement import display_map

    np.testing.assert_allclose(reader.heatmap, display_map(case.record.sentence_heatmap(si)), atol=1e-6)
    np.testing.assert_allclose(model.heatmap, display_map(case.model_maps[si]), atol=1e-6)
    for o in (reader, model):
        assert o.heatmap.min() == pytest.approx(0.0, abs=1e-6) and o.heatmap.max() == pytest.approx(1.0)
    np.testing.assert_allclose(review.shown_maps[1], case.model_maps[si])
    assert case.model_maps[si].sum() == pytest.approx(1.0, rel=1e-4)
    assert review.reader_state.pixels is review.model_state.pixels or np.array_equal(
        review.reader_state.pixels, review.model_state.pixels
    )
    assert case.record.sentences.text[si] in review.sentence_label.text()
    assert "CC" in review.metrics_label.text()


def test_typed_text_changes_the_model_map(review, qtbot):
    before = review.model_state.overlay.heatmap.copy()
    review.query_edit.setText("large heart")
    review.ask("large heart")
    qtbot.waitUntil(lambda: review.query_text == "large heart", timeout=20_000)
    after = review.model_state.overlay
    assert after.label == "large heart" and after.shape == before.shape
    assert not np.allclose(after.heatmap, before)
    assert "typed text" in review.metrics_label.text()


def test_zoom_and_window_are_linked(review):
    review.reader_state.zoom_at(2.0, 100.0, 100.0)
    assert review.model_state.transform == review.reader_state.transform
    review.model_state.set_window(12345.0, 2000.0)
    assert review.reader_state.window == (12345.0, 2000.0)
    review.controls.opacity.setValue(30)
    assert review.model_state.overlay.opacity == pytest.approx(0.3)


def test_panes_never_desync_fit_zoom_and_case_change(review, qtbot, artifacts_dir):
    r, m = review.reader_state, review.model_state
    assert r.transform == m.transform and r.fitted and m.fitted
    r.zoom_at(2.0, 100.0, 100.0)  # wheel on the reader pane
    assert m.transform == r.transform and not m.fitted
    m.pan_by(-35.0, 20.0)  # drag on the model pane
    assert r.transform == m.transform
    review.controls.fit_button.click()  # Fit refits both, not only the reader's pane
    assert r.fitted and m.fitted and r.transform == m.transform
    assert r.transform.scale == pytest.approx(
        min(r.viewport_px[0] / r.image_size[0], r.viewport_px[1] / r.image_size[1])
    )
    m.wheel(3, 200.0, 150.0)
    assert r.transform == m.transform
    other = 1 if review.current[0] == 0 else 0
    review.select(other, 0)  # another case: both refit, identically
    assert r.fitted and m.fitted and r.transform == m.transform
    r.wheel(2, 120.0, 160.0)
    qtbot.wait(30)
    assert r.transform == m.transform
    full = QtWidgets.QGraphicsView.ViewportUpdateMode.FullViewportUpdate
    assert all(v.canvas.viewportUpdateMode() == full for v in (review.reader_view, review.model_view))
    # the two panes show the same pixels where the image is (the overlays differ): compare their image items
    ri, mi = review.reader_view.image_item, review.model_view.image_item
    assert ri.sceneTransform() == mi.sceneTransform() or (
        ri.mapToScene(0, 0) == mi.mapToScene(0, 0) and ri.mapToScene(100, 100) == mi.mapToScene(100, 100)
    )
    assert [b.colormap for b in review.colour_bars] == ["inferno", "inferno"]
    assert review.grab().save(str(artifacts_dir / "review_after_fit_and_zoom.png"))
    review.controls.fit_button.click()


def test_viewing_keys_in_review_fit_both_panes_even_from_the_table(review, qtbot):
    r, m = review.reader_state, review.model_state
    r.zoom_at(2.0, 100.0, 100.0)
    assert not r.fitted
    review.table.setFocus()
    row_before = review.table.currentRow()
    qtbot.keyClick(review.table, QtCore.Qt.Key.Key_F)  # in the table: a shortcut, not a keyboard search
    assert r.fitted and m.fitted and r.transform == m.transform
    assert review.table.currentRow() == row_before
    invert = r.invert
    qtbot.keyClick(review.table, QtCore.Qt.Key.Key_I)
    assert r.invert is (not invert) and m.invert is r.invert
    assert "F" in review.shortcuts and "1" in review.shortcuts


def test_export_csv_and_figure(review, tmp_path, artifacts_dir):
    out = review.export_csv(tmp_path / "agreement.csv")
    parsed = list(csv.DictReader(out.open()))
    assert len(parsed) == 10 and parsed[-1]["session"] == "mean"  # 9 sentences and the mean row
    shown = review.table_rows_in_view_order()
    from radgaze.app.review import COLUMNS

    numbers_in_table = [int(review.table.item(i, COLUMNS.index("#")).text()) for i in range(9)]
    assert [(p["case_id"], int(p["sentence"])) for p in parsed[:-1]] == [
        (r.case_id, n) for r, n in zip(shown, numbers_in_table, strict=True)
    ]  # numbered as the table shows them (from 1)
    assert float(parsed[0]["cc"]) == pytest.approx(shown[0].cc, abs=1e-5)
    assert float(parsed[-1]["cc"]) == pytest.approx(np.mean([r.cc for r in shown]), abs=1e-5)
    assert int(parsed[-1]["n_fixations"]) == sum(r.n_fixations for r in shown)
    cases = list(csv.DictReader((tmp_path / "agreement_cases.csv").open()))
    assert {c["case_id"] for c in cases} == {"a0", "a1", "b0", ""} and cases[-1]["session"] == "mean"
    review.table.selectRow(0)
    review.reader_state.zoom_at(1.6, 200.0, 200.0)
    png = review.export_figure(artifacts_dir / "review_figure.png")
    svg = review.export_figure(artifacts_dir / "review_figure.svg")
    pdf = review.export_figure(artifacts_dir / "review_figure.pdf")
    from PySide6 import QtGui, QtPdf, QtSvg

    img = QtGui.QImage(str(png))
    assert img.width() > 1500 and img.height() > 600
    # the live pixel readout is not in it: the figure is drawn, not grabbed (no monospace "C … W …" label)
    import xml.etree.ElementTree as ET

    texts = "".join(e.text or "" for e in ET.parse(svg).iter() if e.tag.endswith("text"))
    ci, si = review.current
    assert (
        "Radiologist" in texts and "Model" in texts and "AUC-Judd" in texts and f"sentence {si + 1}" in texts
    )
    assert "W " not in texts and "%" not in texts
    renderer = QtSvg.QSvgRenderer(str(svg))
    assert renderer.isValid() and renderer.defaultSize().width() > 800
    svg_png = QtGui.QImage(renderer.defaultSize(), QtGui.QImage.Format.Format_ARGB32)
    svg_png.fill(0xFFFFFFFF)
    painter = QtGui.QPainter(svg_png)
    renderer.render(painter)
    painter.end()
    svg_png.save(str(artifacts_dir / "review_figure_svg_rendered.png"))
    doc = QtPdf.QPdfDocument()
    assert doc.load(str(pdf)) == QtPdf.QPdfDocument.Error.None_ and doc.pageCount() == 1
    page = doc.render(0, QtCore.QSize(1200, 520))
    assert not page.isNull()
    page.save(str(artifacts_dir / "review_figure_pdf_rendered.png"))
    assert "Radiologist" in doc.getAllText(0).text()
    review.controls.fit_button.click()
    with pytest.raises(Exception, match="ending in .png, .svg, .pdf"):
        review.export_figure(tmp_path / "figure.bmp")
    assert review.grab().save(str(artifacts_dir / "review.png"))


def test_new_checkpoint_is_loaded_and_metrics_recomputed(review, qtbot, tmp_path):
    first = {(r.case_id, r.sentence_index): r.cc for r in review.rows}
    new = _save_tiny_checkpoint(tmp_path / "new_ckpt", seed=1)
    with qtbot.waitSignal(review.rows_ready, timeout=60_000):
        review.load_model_and_compute(new)
    assert review.checkpoint == new
    second = {(r.case_id, r.sentence_index): r.cc for r in review.rows}
    assert second.keys() == first.keys() and second != first


def test_review_cli_exports_and_errors(run_dir, sessions, tmp_path, qapp):
    from radgaze.app.review import main

    csv_path, shot = tmp_path / "t.csv", tmp_path / "w.png"
    pdf = tmp_path / "f.pdf"
    args = [str(run_dir), str(sessions), "--export-csv", str(csv_path), "--screenshot", str(shot)]
    assert main([*args, "--export-figure", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes().rstrip().endswith(b"%%EOF")
    assert len(list(csv.DictReader(csv_path.open()))) == 9 + 1 and shot.stat().st_size > 10_000  # + mean
    with pytest.raises(CheckpointError):
        main([str(tmp_path / "norun"), str(sessions), "--export-csv", str(csv_path)])


def test_unloadable_checkpoint_is_reported_not_raised(qtbot, tmp_path, sessions):
    from radgaze.app.review import ReviewWindow

    run = tmp_path / "run"
    ckpt = _save_tiny_checkpoint(run / "checkpoints" / "last", seed=0)
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    win = ReviewWindow(run, sessions)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.failed, timeout=60_000) as sig:
        win.show()
    assert sig.args[0] and not win.busy and win.table.rowCount() == 0
    assert "error" in win.statusBar().currentMessage()
    win.close()


@pytest.mark.slow
def test_review_of_synthetic_readings(qtbot, tmp_path, run_dir, artifacts_dir):
    synth = pytest.importorskip("radgaze.capture.synth", reason="radgaze.capture.synth is not available")
    from radgaze.app.review import ReviewWindow

    synth.write_synthetic_sessions(tmp_path, n_cases=2, seed=5, image_size=768)
    win = ReviewWindow(run_dir, tmp_path)
    qtbot.addWidget(win)
    win.resize(1500, 1000)
    with qtbot.waitSignal(win.rows_ready, timeout=120_000):
        win.show()
    n_with_heatmaps = sum(len(c.model_maps) for c in win.cases)
    assert len(win.cases) == 2 and win.table.rowCount() == len(win.rows) == n_with_heatmaps > 2
    ci, si = win.current
    assert win.model_state.overlay.shape == win.cases[ci].record.heatmaps.shape[1:]
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "review_synth.png"))
    win.close()


def test_retrain_dialog_result_reloads_the_review(review, qtbot, tmp_path):
    dialog = review.open_retrain()
    assert dialog.isVisible() and dialog.panel.run_dir == review.run_dir
    new = _save_tiny_checkpoint(tmp_path / "retrained", seed=2)
    with qtbot.waitSignal(review.rows_ready, timeout=60_000):
        dialog.panel.checkpoint_changed.emit(str(new))  # what a finished retrain emits
    assert review.checkpoint == new
    dialog.close()


def test_review_scores_and_draws_the_readers_ellipses(qtbot, run_dir, tmp_path, artifacts_dir):
    from radgaze.app.review import COLUMNS, ReviewWindow

    write_session(tmp_path / "annotated" / "r.h5", 1, prefix="r", annotated=True)
    win = ReviewWindow(run_dir, tmp_path / "annotated")
    qtbot.addWidget(win)
    win.resize(1366, 740)
    with qtbot.waitSignal(win.rows_ready, timeout=60_000):
        win.show()
    for overlay in win.overlays:  # the same shapes over the reader's heatmap and the model's map
        assert overlay.captions == ["Enlarged cardiac silhouette 5/5", "Pleural abnormality 4/5", "chest"]
    # a shape scores a sentence that spent at least half its gaze inside it: the heart's and the effusion's
    # sentences have one, "the right lung is clear." none (NaN: no target, not a miss)
    tied = {r.text: r for r in win.rows}
    for text in ("the heart is enlarged.", "there is a left pleural effusion."):
        assert tied[text].ellipse_hit in (0.0, 1.0) and 0.0 <= tied[text].ellipse_mass <= 1.0
    clear = tied["the right lung is clear."]
    assert math.isnan(clear.ellipse_hit) and math.isnan(clear.ellipse_mass)
    hit_col, mass_col = COLUMNS.index("Hit"), COLUMNS.index("In shapes")
    shown = [win.table.item(r, c).text() for r in range(win.table.rowCount()) for c in (hit_col, mass_col)]
    assert shown.count("n/a") == 2  # the clear lung's Hit and In shapes: not applicable, not 0
    assert "Hit" in win.metrics_label.text() and "In shapes" in win.metrics_label.text()
    assert win.grab().save(str(artifacts_dir / "review_annotation.png"))
    win.close()


def test_review_finds_moved_images_with_images_dir(run_dir, tmp_path, qapp, monkeypatch):
    """A session moved away from its images: one line naming the image without --images; found and verified
    by its sha256 with --images DIR (issue 20 item 5)."""
    from radgaze.app.review import main
    from radgaze.capture.store.case_image import IMAGES_ENV

    monkeypatch.setenv(IMAGES_ENV, "")  # restored after the test (--images writes it for the process)
    recorded = write_session(tmp_path / "recorded" / "m.h5", 1, prefix="m")
    moved = tmp_path / "moved"
    moved.mkdir()
    recorded.rename(moved / recorded.name)
    csv_path = tmp_path / "m.csv"
    with pytest.raises(Exception, match=r"nothing to review: .*image m0\.png not found"):
        main([str(run_dir), str(moved), "--export-csv", str(csv_path)])
    assert (
        main([str(run_dir), str(moved), "--export-csv", str(csv_path), "--images", str(recorded.parent)]) == 0
    )
    assert len(list(csv.DictReader(csv_path.open()))) == 3 + 1  # 3 sentences and the mean row
