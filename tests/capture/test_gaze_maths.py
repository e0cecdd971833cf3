"""Geometry, fixation detection, heatmaps and sentence alignment on hand-built inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    GAZE_DTYPE,
    GAZE_ON_IMAGE,
    GAZE_VALID,
    VIEW_DTYPE,
    DisplayGeometry,
    ImageRef,
    Words,
)
from radgaze.capture.gazemath.align import HeatmapContext, LiveAligner, build_sentences, sentence_heatmap
from radgaze.capture.gazemath.fixations import detect_fixations_idt, detect_fixations_ivt, fixations_from_gaze
from radgaze.capture.gazemath.geometry import (
    fit_view,
    map_gaze_to_image,
    ppd_screen,
    screen_px_to_deg,
    screen_to_image,
    shown_rect,
)
from radgaze.capture.gazemath.heatmap import heatmap_grid, mass_inside, reduce_to_patch_grid, render_heatmap
from radgaze.capture.live.pipeline import LivePipeline
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter

DISPLAY = DisplayGeometry(
    screen_w_px=1000, screen_h_px=1000, screen_w_mm=300, screen_h_mm=300, viewing_distance_mm=600
)


def test_ppd_matches_visual_angle_formula():
    # 1 deg at 600 mm spans 2*600*tan(0.5 deg) = 10.472 mm; pitch 0.3 mm -> 34.9 px/deg
    ppd_x, ppd_y = ppd_screen(DISPLAY)
    assert ppd_x == pytest.approx(10.4721 / 0.3, rel=1e-4) and ppd_x == ppd_y
    x_deg, y_deg = screen_px_to_deg(np.array([500.0, 500 + ppd_x]), np.array([500.0, 500.0]), DISPLAY)
    assert x_deg[0] == 0 and x_deg[1] == pytest.approx(1.0, abs=1e-3) and np.all(y_deg == 0)


def test_screen_to_image_follows_the_view_timeline():
    views = np.zeros(2, VIEW_DTYPE)
    views["t_lsl"] = [10.0, 20.0]
    views["scale"] = [0.5, 2.0]
    views["offset_x"] = [100.0, -200.0]
    views["offset_y"] = [0.0, 50.0]
    x, y, s = screen_to_image([200.0, 200.0, 200.0], [100.0, 100.0, 100.0], [5.0, 15.0, 25.0], views)
    np.testing.assert_allclose(x, [200.0, 200.0, 200.0])  # before the first row uses the first row
    np.testing.assert_allclose(y, [200.0, 200.0, 25.0])
    np.testing.assert_allclose(s, [0.5, 0.5, 2.0])


def test_fit_view_centres_the_image_and_shown_rect_clips():
    v = fit_view(2000, 1000, DISPLAY, t_lsl=0.0)
    assert v["scale"][0] == 0.5 and v["offset_x"][0] == 0 and v["offset_y"][0] == 250
    np.testing.assert_allclose(shown_rect(v, DISPLAY, 2000, 1000)[0], [0, 0, 2000, 1000])
    zoomed = v.copy()
    zoomed["scale"], zoomed["offset_x"], zoomed["offset_y"] = 1.0, -500.0, -250.0
    np.testing.assert_allclose(shown_rect(zoomed, DISPLAY, 2000, 1000)[0], [500, 250, 1500, 1000])


def test_map_gaze_flags_on_image_and_keeps_invalid_samples():
    v = fit_view(2000, 1000, DISPLAY, t_lsl=0.0)
    g = np.zeros(3, GAZE_DTYPE)
    g["t_lsl"] = [1, 2, 3]
    g["x_screen_px"] = [500, 500, 500]
    g["y_screen_px"] = [500, 100, 500]  # 100 is in the letterbox band above the image
    g["flags"] = [GAZE_VALID, GAZE_VALID, 0]
    m = map_gaze_to_image(g, v, DISPLAY, 2000, 1000)
    assert m.size == 3
    assert (m["flags"] & GAZE_ON_IMAGE).astype(bool).tolist() == [True, False, False]
    assert m["x_img_px"][0] == pytest.approx(1000) and m["y_img_px"][0] == pytest.approx(500)


def _scanpath(rate=500.0, seed=0):
    """Three 300 ms fixations at known degrees joined by 40 ms saccades, plus fixational noise and a blink."""
    rng = np.random.default_rng(seed)
    targets = [(-5.0, 0.0), (3.0, 4.0), (6.0, -6.0)]
    t, x, y, phase = [], [], [], []
    t_now = 0.0
    for k, (tx, ty) in enumerate(targets):
        n = int(0.3 * rate)
        t += list(t_now + np.arange(n) / rate)
        x += list(tx + rng.normal(0, 0.03, n))
        y += list(ty + rng.normal(0, 0.03, n))
        phase += [k] * n
        t_now += n / rate
        if k < len(targets) - 1:
            m = int(0.04 * rate)
            nx, ny = targets[k + 1]
            f = np.arange(1, m + 1) / (m + 1)
            t += list(t_now + np.arange(m) / rate)
            x += list(tx + f * (nx - tx))
            y += list(ty + f * (ny - ty))
            phase += [-1] * m
            t_now += m / rate
    return np.array(t), np.array(x), np.array(y), np.array(phase)


@pytest.mark.parametrize("detector", [detect_fixations_ivt, detect_fixations_idt])
def test_detectors_find_the_three_fixations(detector):
    t, x, y, phase = _scanpath()
    valid = np.ones_like(t, bool)
    s, e = detector(t, x, y, valid)
    assert len(s) == 3
    for k in range(3):
        assert set(phase[s[k] : e[k] + 1]) <= {k, -1}
        assert t[e[k]] - t[s[k]] == pytest.approx(0.3, abs=0.05)


def test_ivt_bridges_a_short_dropout_but_not_a_blink():
    t, x, y, _ = _scanpath()
    valid = np.ones_like(t, bool)
    valid[20:30] = False  # 20 ms dropout inside the first fixation: bridged
    s, _ = detect_fixations_ivt(t, x, y, valid)
    assert len(s) == 3
    valid[10:120] = False  # 220 ms blink: the first fixation's remnant is too short to count
    s, _ = detect_fixations_ivt(t, x, y, valid)
    assert len(s) == 2


def test_fixations_from_gaze_maps_centroids_and_ppd_follows_zoom():
    ppd = ppd_screen(DISPLAY)[0]
    t = np.arange(200) / 500.0
    g = np.zeros(t.size, GAZE_DTYPE)
    g["t_lsl"], g["x_screen_px"], g["y_screen_px"], g["flags"] = t, 600.0, 400.0, GAZE_VALID
    views = fit_view(2000, 1000, DISPLAY, t_lsl=0.0)  # scale 0.5
    (f,) = fixations_from_gaze(g, views, DISPLAY)
    assert f["x_img_px"] == pytest.approx(1200) and f["y_img_px"] == pytest.approx(300)
    assert f["ppd_img"] == pytest.approx(ppd / 0.5, rel=1e-4)


def test_render_heatmap_single_fixation_is_a_centred_gaussian():
    grid = (100, 200, 2.0)  # 400x200 image at half resolution
    hm = render_heatmap([101.0], [61.0], [0.3], 8.0, grid=grid)
    assert hm.shape == (100, 200) and hm.dtype == np.float32
    assert hm.sum() == pytest.approx(1.0, abs=1e-5)
    iy, ix = np.unravel_index(np.argmax(hm), hm.shape)
    assert (ix, iy) == (50, 30)  # pixel centre (50.5*2, 30.5*2) = (101, 61)
    yy, xx = np.mgrid[0:100, 0:200]
    cx = ((xx + 0.5) * 2 * hm).sum()
    assert cx == pytest.approx(101.0, abs=0.1)
    sd = np.sqrt((((xx + 0.5) * 2 - cx) ** 2 * hm).sum())
    assert sd == pytest.approx(8.0, rel=0.02)


def test_render_heatmap_weights_durations_and_clips_to_the_shown_part():
    grid = (100, 100, 1.0)
    hm = render_heatmap([25, 75], [50, 50], [0.1, 0.3], 5.0, grid=grid)
    assert hm[:, :50].sum() == pytest.approx(0.25, abs=1e-3)
    clipped = render_heatmap([50], [50], [1.0], 10.0, grid=grid, shown=(50, 0, 100, 100))
    assert clipped[:, :50].sum() == 0 and clipped.sum() == pytest.approx(1.0, abs=1e-5)
    assert render_heatmap([], [], [], 5.0, grid=grid) is None
    assert render_heatmap([50], [50], [0.0], 5.0, grid=grid) is None
    assert (
        render_heatmap([50], [50], [1.0], 5.0, grid=grid, shown=(0, 0, 10, 10)) is None
    )  # far off the shown part


def test_render_heatmap_matches_direct_2d_evaluation():
    rng = np.random.default_rng(1)
    grid = (40, 60, 3.0)
    x, y = rng.uniform(0, 180, 7), rng.uniform(0, 120, 7)
    w, s = rng.uniform(0.05, 0.5, 7), rng.uniform(3, 15, 7)
    hm = render_heatmap(x, y, w, s, grid=grid)
    yy, xx = (np.mgrid[0:40, 0:60] + 0.5) * 3.0
    ref = sum(
        wk / (2 * np.pi * sk**2) * np.exp(-((xx - xk) ** 2 + (yy - yk) ** 2) / (2 * sk**2))
        for xk, yk, wk, sk in zip(x, y, w, s)
    )
    np.testing.assert_allclose(hm, ref / ref.sum(), atol=1e-7)


def test_reduce_to_patch_grid_is_area_exact():
    hm = np.zeros((14, 14))
    hm[0:2, 0:2] = 1.0  # exactly patch (0, 0) of a 7x7 grid
    out = reduce_to_patch_grid(hm, 7)
    assert out[0, 0] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)
    odd = reduce_to_patch_grid(np.ones((10, 10)), 7)
    np.testing.assert_allclose(odd, np.full((7, 7), 1 / 49), rtol=1e-6)
    with pytest.raises(ValueError, match="2-D"):
        reduce_to_patch_grid(np.ones(3), 7)


def _fixations(rows):
    f = np.zeros(len(rows), FIXATION_DTYPE)
    for i, (t0, t1, x, y) in enumerate(rows):
        f[i] = (t0, t1, x, y, 0, 0, 20.0)
    return f


def _words(spec):
    text = [w for w, _, _ in spec]
    return Words(
        np.array([a for _, a, _ in spec], float),
        np.array([b for _, _, b in spec], float),
        text,
        np.ones(len(spec), "f4"),
    )


CTX = HeatmapContext(400, 400, DISPLAY, np.zeros(0, VIEW_DTYPE))


def test_sentence_window_uses_eye_voice_lead_and_overlap_weights():
    fix = _fixations([(0.0, 1.5, 100, 100), (2.0, 2.4, 300, 300), (5.0, 5.4, 50, 350)])
    hm, n = sentence_heatmap(fix, 1.0, 2.2, CTX)  # overlaps: 0.5 s of the first, 0.2 s of the second
    assert n == 2
    left = np.zeros(hm.shape, bool)
    left[:, : hm.shape[1] // 2] = True
    assert mass_inside(hm, left) == pytest.approx(0.5 / 0.7, abs=0.01)
    assert sentence_heatmap(fix, 3.0, 4.0, CTX) == (None, 0)


def test_build_sentences_splits_on_punctuation_and_marks_empty():
    fix = _fixations([(0.5, 1.5, 100, 100)])
    words = _words(
        [
            ("Heart", 1.0, 1.3),
            ("enlarged.", 1.4, 1.9),
            ("No", 10.0, 10.2),
            ("effusion", 10.3, 10.8),
            (".", 10.8, 10.8),
        ]
    )
    sentences, stack = build_sentences(words, fix, CTX, lead_s=1.0)
    assert sentences.text == ["Heart enlarged.", "No effusion ."] or sentences.text[1].startswith(
        "No effusion"
    )
    assert sentences.heatmap_index.tolist() == [0, -1] and stack.shape == (1, *heatmap_grid(400, 400)[:2])
    assert sentences.window_start[0] == pytest.approx(0.0) and sentences.t_end[1] == pytest.approx(10.8)


def test_live_aligner_waits_for_the_fixation_horizon_and_closes_in_order():
    sink = []
    al = LiveAligner(CTX, lambda s: sink.append(s) or len(sink) - 1, lead_s=1.0)
    al.add_fixations(_fixations([(0.5, 1.5, 100, 100)]))
    al.add_words(_words([("Heart", 1.0, 1.3), ("enlarged.", 1.4, 1.9), ("No", 3.0, 3.2)]))
    assert al.poll(1.8) == []  # fixations up to 1.9 s are not known yet
    (s,) = al.poll(2.0)
    assert s.text == "Heart enlarged." and s.heatmap is not None and s.index == 0
    al.add_words(_words([("effusion.", 3.3, 3.8)]))
    (s2,) = al.poll(5.0)
    assert s2.text == "No effusion." and s2.heatmap is None and s2.n_fixations == 0
    al.add_words(_words([("Trailing", 6.0, 6.5)]))
    assert al.poll(9.0) == []  # unterminated: waits for more words
    (s3,) = al.finish()
    assert s3.text == "Trailing" and [x.index for x in sink] == [0, 1, 2]


def test_live_pipeline_writes_a_case_with_sentence_heatmaps(tmp_path):
    image = ImageRef("img.png", "0" * 64, 800, 800)
    view = fit_view(800, 800, DISPLAY, t_lsl=0.0)
    path = tmp_path / "live.h5"
    closed = []
    with SessionWriter(path, live=True) as w:
        p = LivePipeline(
            w, case_id="c1", image=image, display=DISPLAY, initial_view=view, on_sentence=closed.append
        )
        rate = 250.0
        t = np.arange(int(6 * rate)) / rate
        g = np.zeros(t.size, GAZE_DTYPE)
        g["t_lsl"], g["flags"] = t, GAZE_VALID
        # look at the upper-left quarter until 3 s, then the lower-right quarter
        g["x_screen_px"] = np.where(t < 3, 250.0, 750.0)
        g["y_screen_px"] = np.where(t < 3, 250.0, 750.0)
        p.push_words(_words([("Left", 1.5, 1.8), ("upper.", 1.9, 2.4)]))
        for k in range(0, t.size, 25):
            p.push_gaze(g[k : k + 25])
        p.push_words(_words([("Right", 4.5, 4.8), ("lower.", 4.9, 5.4)]))
        p.push_gaze(np.zeros(0, GAZE_DTYPE))
        p.finish()
    assert [s.text for s in closed] == ["Left upper.", "Right lower."]
    with SessionReader(path) as r:
        c = r.case("c1")
    assert c.complete and c.gaze.size == t.size and c.fixations.size == 2
    h, w = c.heatmaps.shape[1:]
    ul = np.zeros((h, w), bool)
    ul[: h // 2, : w // 2] = True
    assert mass_inside(c.sentence_heatmap(0), ul) > 0.95
    assert mass_inside(c.sentence_heatmap(1), ~ul) > 0.95


def test_heatmaps_at_benchmark_size_sum_to_one():
    """The 512x512, 20-fixation case that `radgaze bench capture` times (speed is benchmarked, not asserted)."""
    rng = np.random.default_rng(0)
    grid = (512, 512, 1.0)
    for _ in range(20):
        x, y = rng.uniform(0, 512, 20), rng.uniform(0, 512, 20)
        hm = render_heatmap(x, y, rng.uniform(0.1, 0.4, 20), 30.0, grid=grid)
        assert hm.shape == (512, 512) and hm.sum() == pytest.approx(1.0, abs=1e-4)
