"""The second look's maths on hand-built fixations whose answer is known, the trial's arm draw, and the stored
part of a session file read back."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import FIXATION_DTYPE
from radgaze.capture.gazemath.second_look import (
    ZONE_NAMES,
    SecondLookLog,
    SecondLookParams,
    compute_second_look,
    covered_by_windows,
    dwelt_not_dictated,
    lung_zones_from_box,
    second_look_arm,
    second_look_from_stored,
    shown_at,
)

PPD = 40.0  # image px per degree: UFOV radius 100 px, cluster radius 40 px
W = H = 1024
BOX = (100.0, 100.0, 924.0, 924.0)


def fixations(points, t0: float = 10.0, dur_s: float = 0.3, ppd: float = PPD) -> np.ndarray:
    """One fixation per (x, y), back to back from t0 (LSL s), each ``dur_s`` long."""
    pts = np.asarray(points, float).reshape(-1, 2)
    fx = np.zeros(len(pts), FIXATION_DTYPE)
    fx["t_start"] = t0 + np.arange(len(pts)) * (dur_s + 0.05)
    fx["t_end"] = fx["t_start"] + dur_s
    fx["x_img_px"], fx["y_img_px"] = pts[:, 0], pts[:, 1]
    fx["ppd_img"] = ppd
    return fx


def lung_grid_points(skip: str | None = None, spacing_px: float = 60.0) -> np.ndarray:
    """Fixation places on a fine grid over every lung zone of BOX (none in zone ``skip``)."""
    zones = lung_zones_from_box(BOX, (128, 128), W / 128)
    xs = np.arange(0, W, spacing_px)
    pts = [(x, y) for y in xs for x in xs if zones[int(y // 8), int(x // 8)] > 0]
    if skip is not None:
        k = ZONE_NAMES.index(skip) + 1
        pts = [p for p in pts if zones[int(p[1] // 8), int(p[0] // 8)] != k]
    return np.asarray(pts)


def test_a_fixation_is_covered_when_it_overlaps_a_sentence_window():
    t_start, t_end = np.array([1.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0])
    got = covered_by_windows(t_start, t_end, np.array([[1.5, 2.5], [5.9, 7.0]]))
    assert got.tolist() == [True, False, True]
    assert covered_by_windows(t_start, t_end, np.zeros((0, 2))).tolist() == [False] * 3


def test_a_dwell_of_1_2_s_not_looked_at_while_dictating_is_one_circle_where_it_was():
    params = SecondLookParams()
    dwell = fixations([(500, 500), (510, 495), (495, 505), (505, 500)])  # 4 x 0.3 s = 1.2 s within 10 px
    (c,) = dwelt_not_dictated(dwell, np.zeros((0, 2)), params)
    assert c.dwell_s == pytest.approx(1.2) and c.n_fixations == 4
    assert abs(c.x_img_px - 502.5) < 1 and abs(c.y_img_px - 500) < 1 and PPD < c.radius_px < PPD + 20
    assert dwelt_not_dictated(dwell[:3], np.zeros((0, 2)), params) == []  # 0.9 s: below the dwell
    # dictating while looking 2 deg away (inside the 2.5 deg UFOV) covers it; 3 deg away does not
    for dx_deg, covered in ((2.0, True), (3.0, False)):
        talk = fixations([(500 + dx_deg * PPD, 500)], t0=20.0)
        both = np.concatenate([dwell, talk])
        got = dwelt_not_dictated(both, np.array([[19.5, 21.0]]), params)
        assert (got == []) is covered, dx_deg
    assert dwelt_not_dictated(dwell, np.zeros((0, 2)), SecondLookParams(dwell_s=1.5)) == []


def test_lung_zones_inside_a_chest_box_are_named_from_the_patients_side():
    zones = lung_zones_from_box(BOX, (128, 128), 8.0)

    def at(x: float, y: float) -> str:
        k = zones[int(y // 8), int(x // 8)]
        return ZONE_NAMES[k - 1] if k else ""

    assert at(320, 250) == "right upper"  # image left = the patient's right (PA film)
    assert at(320, 520) == "right mid" and at(320, 800) == "right lower"
    assert at(700, 250) == "left upper" and at(700, 800) == "left lower"
    assert at(512, 520) == ""  # the mediastinum
    assert at(50, 520) == ""  # outside the chest box
    with pytest.raises(ValueError, match="expected x0 < x1"):
        lung_zones_from_box((500, 100, 400, 900), (128, 128), 8.0)


def test_a_reading_that_viewed_every_zone_gets_no_mark_and_a_skipped_zone_is_named_and_shaded():
    full = compute_second_look(
        fixations(lung_grid_points()), np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX
    )
    assert full.empty and full.zones_not_viewed == [] and full.status_line().startswith("no marks:")
    assert full.lung_source == "chest box"
    skipped = compute_second_look(
        fixations(lung_grid_points("right lower")), np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX
    )
    assert skipped.zones_not_viewed == ["right lower"]
    assert "right lower zone not viewed" in skipped.status_line() and skipped.clusters == []
    rows, cols = np.nonzero(skipped.unviewed)
    zones = lung_zones_from_box(BOX, skipped.unviewed.shape, skipped.grid_scale)
    assert rows.size > 0 and set(zones[rows, cols]) == {ZONE_NAMES.index("right lower") + 1}


def test_the_useful_field_of_view_follows_each_fixations_pixels_per_degree():
    """One fixation in a lung: its viewed disc is 2.5 deg, twice as wide in image px when zoomed in 2x."""
    one = fixations([(320, 520)])
    fit = compute_second_look(one, np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX)
    zoomed = compute_second_look(
        fixations([(320, 520)], ppd=2 * PPD), np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX
    )
    lung = lung_zones_from_box(BOX, fit.unviewed.shape, fit.grid_scale) > 0
    seen_fit = int((lung & ~fit.unviewed).sum())
    seen_zoom = int((lung & ~zoomed.unviewed).sum())
    # viewed area: pi r^2 in cells (8 px per cell), about 4x when r doubles (slivers at the edge shaded off)
    assert np.pi * (100 / 8) ** 2 * 0.8 < seen_fit < np.pi * (100 / 8) ** 2 * 2.0
    assert seen_zoom > 3 * seen_fit


def test_model_attention_where_the_reader_never_looked_is_marked_and_nowhere_else():
    att = np.zeros((32, 32))
    att[24:28, 6:10] = 1.0  # image (192..320, 768..896): right lower zone
    looked = fixations(lung_grid_points("right lower"))
    sl = compute_second_look(looked, np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX, attention=att)
    rows, cols = np.nonzero(sl.model)
    assert rows.size and 740 < rows.mean() * sl.grid_scale < 920 and 180 < cols.mean() * sl.grid_scale < 330
    looked_there = fixations(lung_grid_points())
    sl2 = compute_second_look(looked_there, np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX, attention=att)
    assert not sl2.model.any() and "model" not in sl2.status_line()
    with pytest.raises(ValueError, match="finite 2-D map"):
        compute_second_look(looked, np.zeros((0, 2)), (W, H), t_lsl=0.0, chest_box=BOX, attention=np.ones(5))


def test_the_arm_is_a_seeded_coin_per_case_and_on_off_are_constant():
    ids = [f"case{k:03d}" for k in range(200)]
    arms = [second_look_arm("random", 7, c) for c in ids]
    assert arms == [second_look_arm("random", 7, c) for c in ids]  # the same draw every time
    assert 70 < sum(arms) < 130  # a fair coin: 100 +- 30 (p < 1e-5 to fail by chance)
    assert arms != [second_look_arm("random", 8, c) for c in ids]
    assert all(second_look_arm("on", 7, c) for c in ids[:5]) and not any(
        second_look_arm("off", 7, c) for c in ids[:5]
    )
    with pytest.raises(ValueError, match="expected one of on, off, random, got 'sometimes'"):
        second_look_arm("sometimes", 7, "case000")


def test_a_second_look_is_stored_once_in_a_closed_case_and_read_back(tmp_path):
    from radgaze.capture.base.records import VIEW_DTYPE, DisplayGeometry, ImageRef
    from radgaze.capture.store.second_look import read_second_looks
    from radgaze.capture.store.writer import SessionWriter

    writer = SessionWriter(tmp_path / "s.h5", live=True)
    writer.begin_case("c1", ImageRef("c1.png", "", W, H), DisplayGeometry(), t_start=0.0)
    writer.append_view_events(np.zeros(1, VIEW_DTYPE))
    looked = fixations(lung_grid_points("left upper"), t0=1.0)
    first = compute_second_look(looked, np.zeros((0, 2)), (W, H), t_lsl=30.0, chest_box=BOX)
    later = compute_second_look(
        fixations(lung_grid_points(), t0=1.0), np.zeros((0, 2)), (W, H), t_lsl=33.0, chest_box=BOX
    )
    log = SecondLookLog("c1", True, "random", 7, 30.0, [first, later])
    for t, kind in (
        (30.0, "computed"),
        (30.05, "shown"),
        (31.0, "hidden"),
        (31.5, "updated"),  # late words while hidden: stays hidden
        (32.0, "shown"),
        (33.0, "updated"),
        (35.0, "signed_off"),
    ):
        log.add_event(t, kind)
    with pytest.raises(RuntimeError, match="still being recorded"):
        writer.write_second_look("c1", *log.payload())
    writer.end_case(36.0)
    writer.write_second_look("c1", *log.payload())
    with pytest.raises(ValueError, match="already stored"):
        writer.write_second_look("c1", *log.payload())
    writer.close()
    stored = read_second_looks(tmp_path / "s.h5")["c1"]
    assert stored["shown"] and stored["assignment"] == "random" and stored["seed"] == 7
    back = second_look_from_stored(stored, 0)
    assert back.zones_not_viewed == ["left upper"] and np.array_equal(back.unviewed, first.unviewed)
    assert second_look_from_stored(stored).zones_not_viewed == []  # the last version: what was up at sign-off
    # replay: what the reader saw at each moment
    assert shown_at(stored, 29.0) is None and shown_at(stored, 30.5).zones_not_viewed == ["left upper"]
    assert shown_at(stored, 31.2) is None and shown_at(stored, 31.7) is None  # hidden (H), updated meanwhile
    assert shown_at(stored, 32.5).zones_not_viewed == ["left upper"]
    assert shown_at(stored, 34.0).zones_not_viewed == [] and shown_at(stored, 35.5) is None
