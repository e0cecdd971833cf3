"""Replay shows what the reader saw (issue 10 §3): recorded zoom/pan/W-L/invert, numbered fixations sized by
duration, an adjustable trail, the whole-case heatmap, sentence clicks that seek, REFLACX-style exports, the
video, and the polish (media icons, readable legend, no pyqtgraph "A" button, the panel's title)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from replay_review_sessions import SENTENCES, T0, make_case, phantom, stamp_image_hash

from radgaze.app import replay_export as rx
from radgaze.capture.base.records import VIEW_DTYPE, VIEW_INVERT, VIEW_WINDOW, VIEW_ZOOM
from radgaze.capture.exporters.reflacx import FIXATION_COLUMNS, WORD_COLUMNS

ZOOM_AT_S, WL_AT_S, INVERT_AT_S = 2.0, 4.0, 9.0
ZOOM_SCALE = 7.5  # screen px per image px while zoomed (the fitted view has 3.0)


def _zoomed_case():
    rec = make_case("zoom0", T0)
    v0 = rec.view_events[0]
    rows = np.zeros(4, VIEW_DTYPE)
    rows[0] = v0
    # zoomed onto the heart (image ~ (208, 298)) so that it sits at the middle of the 1536 x 2048 display
    x_c, y_c = 208.0, 298.0
    rows[1] = (
        T0 + ZOOM_AT_S,
        VIEW_ZOOM,
        ZOOM_SCALE,
        768 - x_c * ZOOM_SCALE,
        1024 - y_c * ZOOM_SCALE,
        30000,
        60000,
        0,
    )
    rows[2] = rows[1]
    rows[2]["t_lsl"], rows[2]["kind"] = T0 + WL_AT_S, VIEW_WINDOW
    rows[2]["window_center"], rows[2]["window_width"] = 45000.0, 20000.0
    rows[3] = rows[2]
    rows[3]["t_lsl"], rows[3]["kind"], rows[3]["invert"] = T0 + INVERT_AT_S, VIEW_INVERT, 1
    rec.view_events = rows
    return rec


@pytest.fixture(scope="module")
def zoom_session(tmp_path_factory) -> Path:
    from radgaze.capture.store.writer import SessionWriter

    path = tmp_path_factory.mktemp("replay_zoom") / "zoomed.h5"
    rec = _zoomed_case()
    Image.fromarray(phantom()).save(path.parent / rec.image.path)
    stamp_image_hash(rec, path.parent)
    with SessionWriter(path, reader_id="test-reader", provenance={"source": "test"}) as w:
        w.write_case(rec)
    return path


# ------------------------------------------------------------------------------------------ pure
def test_reader_transform_fits_the_readers_display_into_the_canvas():
    row = np.zeros((), VIEW_DTYPE)
    row["scale"], row["offset_x"], row["offset_y"] = 2.0, 100.0, -50.0
    row["window_center"], row["window_width"], row["invert"] = 300.0, 80.0, 1
    v = rx.reader_transform(row, (1000, 2000), (800.0, 800.0))  # display 1000 x 2000 -> k = 0.4
    assert v.scale == pytest.approx(0.8)
    assert v.offset_x == pytest.approx(100.0 * 0.4 + (800 - 400) / 2) and v.offset_y == pytest.approx(-20.0)
    assert v.window == (300.0, 80.0) and v.invert
    # an image point lands where it was on the reader's screen, scaled: screen (600, 1000) -> canvas
    x_img, y_img = (600.0 - 100.0) / 2.0, (1000.0 + 50.0) / 2.0
    assert x_img * v.scale + v.offset_x == pytest.approx(600 * 0.4 + 200)
    assert y_img * v.scale + v.offset_y == pytest.approx(1000 * 0.4)
    with pytest.raises(ValueError, match="positive"):
        rx.reader_transform(row, (0, 10), (10.0, 10.0))


def test_fixation_discs_grow_with_duration_area_proportional():
    d = rx.fixation_diameters_px(np.array([0.0, 0.0625, 0.25, 1.0, 100.0]))
    assert d[0] == rx.FIXATION_DIAMETER_MIN_PX and d[-1] == rx.FIXATION_DIAMETER_MAX_PX
    assert d[2] == pytest.approx(18.0) and d[3] == pytest.approx(36.0)  # 4x the duration, 2x the diameter
    assert np.all(np.diff(d) >= 0)


def test_case_heatmap_holds_every_fixation_and_sums_to_one():
    rec = _zoomed_case()
    hm = rx.case_heatmap(rec)
    assert hm.shape == rec.heatmaps.shape[1:] and hm.sum() == pytest.approx(1.0, rel=1e-4)
    for _text, (x, y) in SENTENCES:  # every sentence's target is hot in the whole-case map
        iy, ix = int(y / rec.heatmap_scale), int(x / rec.heatmap_scale)
        assert hm[iy, ix] > 0.3 * hm.max()


def test_reflacx_tables(tmp_path):
    rec = _zoomed_case()
    paths = rx.export_case_tables(rec, tmp_path)
    fx = list(csv.DictReader(paths["fixations"].open()))
    assert tuple(fx[0]) == FIXATION_COLUMNS and len(fx) == rec.fixations.size
    f0, f_late = fx[0], fx[-1]
    # REFLACX's clock: s from the audio start (here the case's start), to the millisecond
    assert float(f0["timestamp_start_fixation"]) == pytest.approx(rec.fixations["t_start"][0] - T0, abs=1e-3)
    assert float(f0["x_position"]) == pytest.approx(float(rec.fixations["x_img_px"][0]), abs=0.5)  # whole px
    # REFLACX's README: "the number of image pixels per visual angle in degrees ... [with] the level of zoom"
    ppd_img = float(rec.fixations["ppd_img"][0])
    assert float(f0["angular_resolution_x_pixels_per_degree"]) == pytest.approx(ppd_img, rel=1e-5)
    # pupil from the raw sample; the window as REFLACX writes it: a fraction of the stored range (16 bits)
    assert float(f0["pupil_area_normalized"]) == 3.5 and float(f0["window_level"]) == pytest.approx(
        30000 / 65535, abs=1e-5
    )
    # fitted at the start: the whole image is shown; the last fixation is after the zoom and W/L change
    assert [float(f0[k]) for k in ("xmin_shown_from_image", "xmax_shown_from_image")] == [0.0, 400.0]
    assert float(f_late["window_width"]) == pytest.approx(20000 / 65535, abs=1e-5)
    assert float(f_late["window_level"]) == pytest.approx(45000 / 65535, abs=1e-5)
    shown_w = float(f_late["xmax_shown_from_image"]) - float(f_late["xmin_shown_from_image"])
    assert shown_w == pytest.approx(1536 / ZOOM_SCALE, abs=1.0)  # whole px, as REFLACX writes them
    screen = [float(f_late[k]) for k in ("xmin_in_screen_coordinates", "xmax_in_screen_coordinates")]
    assert screen == pytest.approx([0.0, 1536.0], abs=1e-3)
    words = list(csv.DictReader(paths["words"].open()))
    assert tuple(words[0]) == WORD_COLUMNS and [w["word"] for w in words[:3]] == ["the", "heart", "is"]
    assert float(words[1]["timestamp_start_word"]) == pytest.approx(rec.words.t_start[1] - T0, abs=1e-3)
    sentences = list(csv.DictReader(paths["sentences"].open()))
    assert [s["sentence"] for s in sentences] == [t for t, _ in SENTENCES]
    assert sentences[0]["sentence_number"] == "1" and sentences[0]["heatmap_png"] == "sentence_01_heatmap.png"


# ------------------------------------------------------------------------------------------ window
@pytest.fixture
def zoom_window(qtbot, zoom_session):
    from radgaze.app.replay import ReplayWindow

    win = ReplayWindow(zoom_session, audio=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def _img_to_view(state, x, y):
    return state.transform.image_to_view(x, y)


def test_replay_applies_the_readers_view_and_toggles_to_fitted(zoom_window, qtbot, artifacts_dir):
    win, st = zoom_window, zoom_window.state
    rec = win.case.record
    d = rec.display
    win.seek(T0 + 1.0)  # before the zoom: the reader's fitted view (scale 3 on the display)
    k = min(st.viewport_px[0] / d.screen_w_px, st.viewport_px[1] / d.screen_h_px)
    assert st.transform.scale == pytest.approx(3.0 * k)
    win.seek(T0 + ZOOM_AT_S + 0.5)  # zoomed: 7.5 screen px per image px
    assert st.transform.scale == pytest.approx(ZOOM_SCALE * k) and win.view_index == 1
    cx, cy = _img_to_view(st, 208.0, 298.0)  # the heart is at the middle of the reader's display
    assert cx == pytest.approx(st.viewport_px[0] / 2, abs=1) and cy == pytest.approx(
        st.viewport_px[1] / 2, abs=1
    )
    assert st.window == (30000.0, 60000.0) and not st.invert
    win.seek(T0 + WL_AT_S + 0.5)
    assert st.window == (45000.0, 20000.0) and not st.invert
    assert "W 20000  L 45000" in win.image_view.readout.text()  # the corner says the reader's window
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "replay_readers_view.png"))
    win.seek(T0 + INVERT_AT_S + 0.2)
    assert st.invert and win.controls.invert.isChecked()
    win.seek(T0 + 1.0)  # back before the zoom: back to the reader's fitted view
    assert st.transform.scale == pytest.approx(3.0 * k) and not st.invert
    win.seek(T0 + ZOOM_AT_S + 0.5)
    win.reader_view_box.setChecked(False)  # the toggle: the whole image fitted, default window
    assert st.fitted and st.window == st.default_window and not st.invert
    w, h = st.image_size
    assert st.transform.scale == pytest.approx(min(st.viewport_px[0] / w, st.viewport_px[1] / h))
    win.seek(T0 + INVERT_AT_S + 0.5)  # stays fitted while off
    assert st.fitted and not st.invert
    win.reader_view_box.setChecked(True)
    assert st.transform.scale == pytest.approx(ZOOM_SCALE * k) and st.invert
    win.resize(1100, 800)  # a resized canvas refits the reader's display
    qtbot.waitUntil(lambda: win._applied_viewport == st.viewport_px, timeout=3000)
    k2 = min(st.viewport_px[0] / d.screen_w_px, st.viewport_px[1] / d.screen_h_px)
    assert st.transform.scale == pytest.approx(ZOOM_SCALE * k2)


def test_trail_numbered_sized_adjustable_and_whole_case(zoom_window, qtbot, artifacts_dir):
    win = zoom_window
    win.reader_view_box.setChecked(False)
    rec = win.case.record
    fx = rec.fixations
    t = float(fx["t_start"][5] + 0.2)  # inside the 6th fixation
    win.seek(t)
    in_trail = np.flatnonzero((fx["t_start"] > t - 3.0) & (fx["t_start"] <= t))
    assert win.trail_fixation_numbers() == [int(i) + 1 for i in in_trail]  # numbered in case order
    sizes = [win.trail_dots[j].rect().width() for j in range(win.trail_shown)]
    expected = rx.fixation_diameters_px(np.minimum(fx["t_end"][in_trail], t) - fx["t_start"][in_trail])
    np.testing.assert_allclose(sizes, expected)
    assert sizes[-1] < sizes[0]  # the current fixation has lasted 0.2 s so far, the first its full 0.4 s
    win.trail_box.setValue(60.0)  # the whole reading so far
    assert win.trail_fixation_numbers() == list(range(1, 7))
    win.trail_box.setValue(1.0)
    assert len(win.trail_fixation_numbers()) <= 2
    win.trail_box.setValue(6.0)
    n = len(rec.sentences)
    assert win.sentences.count() == n + 1 and "Whole case" in win.sentences.item(n).text()
    win.follow_sentences = False
    win.sentences.setCurrentRow(n)
    assert win.state.overlay.label == "whole case"
    np.testing.assert_allclose(win.state.overlay.heatmap, rx.case_heatmap(rec), rtol=1e-5)
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "replay_trail_whole_case.png"))


def test_clicking_a_sentence_seeks_to_it(zoom_window, qtbot):
    win = zoom_window
    rec = win.case.record
    win.seek(rec.t_start)
    rect = win.sentences.visualItemRect(win.sentences.item(2))
    from PySide6 import QtCore

    qtbot.mouseClick(win.sentences.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.playback.t == pytest.approx(float(rec.sentences.window_start[2]))
    assert win.state.overlay.label == SENTENCES[2][0] and win.current_sentence == 2


def test_polish_icons_legend_no_a_button_panel_title(zoom_window, qtbot):
    from PySide6 import QtWidgets

    win = zoom_window
    assert "⏸" not in win.play_button.text() and "▶" not in win.play_button.text()
    assert not win.play_button.icon().isNull() and win.play_button.text() == "Play"
    win.shortcuts["Space"].activated.emit()
    assert win.play_button.text() == "Pause" and not win.play_button.icon().isNull()
    win.shortcuts["Space"].activated.emit()
    for plot in (win.timeline.gaze_plot, win.timeline.words_plot):
        assert plot.buttonsHidden and not plot.autoBtn.isVisible()  # no pyqtgraph "A" button, ever
    legend = win.timeline.gaze_plot.legend
    labels = [label.text for _sample, label in legend.items]
    assert labels == ["gaze x", "gaze y"] and legend.opts["labelTextSize"] == "9pt"
    assert legend.opts["brush"].color().alpha() > 200  # on its own dark box, not over the traces
    docks = win.findChildren(QtWidgets.QDockWidget)
    assert [d.windowTitle() for d in docks] == ["Transcript and sentences"]


def test_exports_tables_heatmaps_and_video(zoom_window, tmp_path, qtbot, artifacts_dir):
    av = pytest.importorskip("av")
    win = zoom_window
    out = win.export_tables(tmp_path / "export")
    names = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert names == [
        "case_heatmap.png",
        "fixations.csv",
        "sentence_01_heatmap.png",
        "sentence_02_heatmap.png",
        "sentence_03_heatmap.png",
        "sentences.csv",
        "timestamps_transcription.csv",
    ]
    png = np.asarray(Image.open(out["sentence_01_heatmap"]))
    assert png.shape == (480, 400, 3)
    x, y = SENTENCES[0][1]
    assert png[int(y), int(x), 0] > png[int(y), int(x), 2] + 40  # the hot spot is coloured (inferno: warm)
    Image.open(out["case_heatmap"]).save(artifacts_dir / "replay_export_case_heatmap.png")
    settings = rx.VideoSettings(fps=5.0, height_px=360)
    frame = rx.FrameRenderer(win.case.record, win.case.pixels, win.case.window, settings).render(T0 + 6.0)
    Image.fromarray(frame).save(artifacts_dir / "replay_video_frame.png")
    win.playback.set_speed(4.0)  # a short video: the case at 4x
    path = win.export_video(tmp_path / "case.mp4", show_progress=False)
    n_expected = rx.frame_times(win.case.record, rx.VideoSettings(speed=4.0)).size
    assert win.video_progress == list(range(1, n_expected + 1))  # the progress bar saw every frame
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == n_expected and frames[0].shape[:2] == (720, 960)  # 4:3 beside a portrait film
    assert stream.codec_context.name in ("h264", "libx264")
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1  # the picture moves


def test_replay_cli_exports_unattended(zoom_session, tmp_path, qapp, capsys):
    pytest.importorskip("av")
    from radgaze.app.replay import main

    out = tmp_path / "cli"
    assert (
        main([str(zoom_session), "--fitted", "--export", str(out), "--export-video", str(out / "c.mp4")]) == 0
    )
    printed = capsys.readouterr().out.split()
    assert str(out / "fixations.csv") in printed and str(out / "c.mp4") in printed
    assert (out / "c.mp4").stat().st_size > 1000 and len(list(out.glob("*_heatmap.png"))) == 4


def _real_case(image_path: Path, w: int, h: int, window: tuple[float, float]):
    """A reading of a real radiograph: fitted on the 1536 x 2048 display, then zoomed 2x on the right lower
    zone with a narrower window; fixations there; one sentence with its REFLACX-style heatmap."""
    from radgaze.capture.base.records import (
        FIXATION_DTYPE,
        VIEW_CASE,
        CaseRecord,
        DisplayGeometry,
        ImageRef,
        Sentences,
        Words,
    )
    from radgaze.capture.gazemath.heatmap import heatmap_grid, render_heatmap

    disp = DisplayGeometry()
    fit = min(disp.screen_w_px / w, disp.screen_h_px / h)
    views = np.zeros(2, VIEW_DTYPE)
    views[0] = (T0, VIEW_CASE, fit, (1536 - w * fit) / 2, (2048 - h * fit) / 2, *window, 0)
    zoom, (xc, yc) = 2 * fit, (0.3 * w, 0.65 * h)
    views[1] = (T0 + 2.0, VIEW_ZOOM, zoom, 768 - xc * zoom, 1024 - yc * zoom, window[0], window[1] * 0.6, 0)
    fx = np.zeros(8, FIXATION_DTYPE)
    fx["t_start"] = T0 + 2.5 + np.arange(8) * 0.45
    fx["t_end"] = fx["t_start"] + np.linspace(0.15, 0.4, 8)
    rng = np.random.default_rng(0)
    fx["x_img_px"] = xc + rng.normal(0, 0.03 * w, 8)
    fx["y_img_px"] = yc + rng.normal(0, 0.03 * h, 8)
    fx["ppd_img"] = 40.0 / (zoom / fit)
    grid = heatmap_grid(w, h)
    hm = render_heatmap(fx["x_img_px"], fx["y_img_px"], fx["t_end"] - fx["t_start"], fx["ppd_img"], grid=grid)
    words = "there is an opacity in the right lower zone.".split()
    wt = T0 + 3.0 + np.arange(len(words)) * 0.35
    return CaseRecord(
        case_id="real0",
        image=ImageRef(str(image_path), hashlib.sha256(Path(image_path).read_bytes()).hexdigest(), w, h),
        display=disp,
        t_start=T0,
        t_end=T0 + 7.0,
        fixations=fx,
        view_events=views,
        words=Words(wt, wt + 0.3, words, np.ones(len(words), np.float32)),
        sentences=Sentences(
            wt[:1],
            wt[-1:] + 0.3,
            wt[:1] - 1.0,
            wt[-1:] + 0.3,
            [" ".join(words)],
            np.array([0], np.int32),
            np.array([8], np.int32),
        ),  # fmt: skip
        heatmaps=hm[None].astype(np.float32),
        heatmap_scale=grid[2],
    )


def test_replay_of_a_real_dicom_with_the_readers_zoom(qtbot, tmp_path, shared_data, artifacts_dir):
    from radgaze.app.replay import ReplayWindow
    from radgaze.capture.io.images import default_window, load_image
    from radgaze.capture.store.writer import SessionWriter

    dcm = shared_data / "dicom" / "RG1_J2KI.dcm"
    img = load_image(dcm)
    h, w = img.pixels.shape
    window = default_window(img) or (float(np.median(img.pixels)), float(np.ptp(img.pixels)))
    path = tmp_path / "real.h5"
    with SessionWriter(path, reader_id="test-reader", provenance={"source": "test"}) as wr:
        wr.write_case(_real_case(dcm, w, h, window))
    win = ReplayWindow(path, audio=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    st = win.state
    win.seek(T0 + 1.0)
    fitted_scale = st.transform.scale
    win.seek(T0 + 4.2)
    assert st.transform.scale == pytest.approx(2 * fitted_scale)  # the reader's 2x zoom
    assert st.window[1] == pytest.approx(window[1] * 0.6, rel=1e-5)
    x, y = st.transform.image_to_view(0.3 * w, 0.65 * h)
    assert (x, y) == pytest.approx((st.viewport_px[0] / 2, st.viewport_px[1] / 2), abs=1.5)
    assert win.trail_shown >= 3 and win.state.overlay is not None
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "replay_real_dicom_readers_view.png"))
    win.reader_view_box.setChecked(False)
    qtbot.wait(50)
    assert win.grab().save(str(artifacts_dir / "replay_real_dicom_fitted.png"))
