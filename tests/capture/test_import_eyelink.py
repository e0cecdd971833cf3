"""EyeLink EDF and ASC import on the real recordings the eyelinkio wheel ships (1000 Hz monocular x 2, 500 Hz
binocular), their ASC written by tests/capture/eyelink_asc.py, and radgaze's fixations against EyeLink's parser."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from eyelink_asc import write_asc
from PIL import Image
from test_fixations_live import run_live

from radgaze.app.cli import main as radgaze_main
from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import GAZE_VALID
from radgaze.capture.gazemath.geometry import fit_view
from radgaze.capture.importers.eyelink import (
    PPD_FROM_END_LINES,
    PPD_FROM_OPTIONS,
    PPD_FROM_SAMPLES,
    EyeLinkOptions,
    GeometryOptions,
    eyelink_agreement,
    import_eyelink,
    split_trials,
)
from radgaze.capture.importers.eyelink_files import EVENT_FIXATION, read_asc, read_edf
from radgaze.capture.store.reader import open_session
from radgaze.capture.store.summary import describe_session

if importlib.util.find_spec("eyelinkio") is None:
    pytest.skip(
        "eyelinkio is not installed (the optional extra: pip install 'radgaze[eyelink]'); its wheel carries the "
        "real EDF recordings these tests read",
        allow_module_level=True,
    )
DATA = Path(importlib.util.find_spec("eyelinkio").origin).parent / "tests" / "data"
MONO, MONO2, BINO = DATA / "test_raw.edf", DATA / "test_2_raw.edf", DATA / "test_raw_binocular.edf"


@pytest.fixture(scope="module")
def recordings():
    return {p.name: read_edf(p) for p in (MONO, MONO2, BINO)}


def _cases(path: Path) -> list:
    with open_session(path) as s:
        return [s.case(cid) for cid in s.case_ids]


def test_edf_reads_the_trackers_clock_missing_codes_and_resolution(recordings):
    rec = recordings["test_raw.edf"]
    assert rec.eyes == ("left",) and rec.rate_hz == 1000.0 and rec.screen_px() == (1920, 1080)
    # EyeLink's clock as recorded: two blocks, 48 s apart (eyelinkio's read_edf would re-time them from 0)
    assert rec.t_ms[0] == 415839.0 and rec.t_ms[-1] == 531011.0 and np.diff(rec.t_ms).max() == 48347.0
    assert np.isnan(rec.x_px).any() and not (np.abs(rec.x_px) >= 1e7).any()  # 1e8 / -32768 became NaN
    assert not (rec.x_px == -32768).any()
    assert np.nanmedian(rec.res_ppd[:, 0]) == pytest.approx(36.6, abs=0.05)
    fix = rec.events[rec.events["kind"] == EVENT_FIXATION]
    assert fix.size == 21 and fix["t_start_ms"][0] == 415846.0


def test_edf_import_one_case_per_trial(recordings, tmp_path):
    result = import_eyelink(MONO, tmp_path)
    cases = _cases(result.written[0])
    assert result.n_cases == len(cases) == 20 and not result.skipped and not result.warnings
    rec = recordings["test_raw.edf"]
    trials = split_trials(rec)
    first = cases[0]
    assert first.case_id == "test_raw_trial1" and first.attrs["trial_id"] == "1"
    assert first.t_start == trials[0].t0_ms / 1000.0  # seconds on EyeLink's clock
    sel = (rec.t_ms >= trials[0].t0_ms) & (rec.t_ms < trials[0].t1_ms)
    np.testing.assert_array_equal(first.gaze["t_lsl"], rec.t_ms[sel] / 1000.0)
    valid = (first.gaze["flags"] & GAZE_VALID).astype(bool)
    np.testing.assert_array_equal(valid, np.isfinite(rec.x_px[sel, 0]))
    assert first.attrs["ppd"]["source"] == PPD_FROM_SAMPLES
    assert first.attrs["ppd"]["x"] == pytest.approx(36.6, abs=0.05)
    assert first.image.width == 1920 and first.image.path == ""  # the screen is the image
    # the tracker's calibrations before the trial (two HV5), the last validation's errors (deg)
    assert first.attrs["calibration"] == {
        "CalibrationCount": 2,
        "CalibrationType": "HV5",
        "AverageCalibrationError": 0.29,
        "MaximalCalibrationError": 0.65,
    }
    assert len(first.words) == 0 and len(first.sentences) == 0  # no dictation: a valid case
    assert sum(len(c.attrs["tracker_events"]["fixations"]["t_start"]) for c in cases) >= 17
    summary = describe_session(result.written[0])
    assert summary["valid"], summary.get("errors")


def test_asc_written_from_the_edf_imports_to_the_same_session(recordings, tmp_path):
    for name in ("test_2_raw.edf", "test_raw_binocular.edf"):
        rec = recordings[name]
        asc = write_asc(rec, tmp_path / name.replace(".edf", ".asc"))
        back = read_asc(asc)
        assert back.eyes == rec.eyes and back.rate_hz == rec.rate_hz and back.screen_px() == rec.screen_px()
        np.testing.assert_array_equal(back.t_ms, rec.t_ms)
        np.testing.assert_allclose(back.x_px, rec.x_px, atol=0.051)  # ASC keeps one decimal
        assert np.array_equal(np.isnan(back.x_px), np.isnan(rec.x_px))
        assert back.events.size == rec.events.size
        a = _cases(import_eyelink(DATA / name, tmp_path / "edf").written[0])
        b = _cases(import_eyelink(asc, tmp_path / "asc").written[0])
        assert [c.case_id for c in a] == [c.case_id for c in b]
        for ca, cb in zip(a, b):
            np.testing.assert_array_equal(ca.gaze["flags"], cb.gaze["flags"])
            assert ca.attrs["ppd"] == pytest.approx(cb.attrs["ppd"], abs=0.01) or ca.attrs["ppd"][
                "x"
            ] == pytest.approx(cb.attrs["ppd"]["x"], abs=0.01)
            assert abs(ca.fixations.size - cb.fixations.size) <= 1  # ASC's one decimal may move a threshold
            assert (
                ca.attrs["tracker_events"]["fixations"]["t_start"]
                == cb.attrs["tracker_events"]["fixations"]["t_start"]
            )


def test_asc_px_per_degree_from_end_lines_else_the_options_else_a_clear_refusal(recordings, tmp_path):
    rec = recordings["test_raw.edf"]
    no_res = write_asc(rec, tmp_path / "no_res.asc", res=False)
    case = _cases(import_eyelink(no_res, tmp_path / "a").written[0])[0]
    assert case.attrs["ppd"]["source"] == PPD_FROM_END_LINES and 30 < case.attrs["ppd"]["x"] < 45
    bare = write_asc(rec, tmp_path / "bare.asc", res=False, end_res=False)
    with pytest.raises(ImportFormatError, match="gaze resolution.*--screen-mm"):
        import_eyelink(bare, tmp_path / "b")
    opts = EyeLinkOptions(geometry=GeometryOptions(screen_mm="531x299", distance_mm=600.0))
    case = _cases(import_eyelink(bare, tmp_path / "c", opts=opts).written[0])[0]
    assert case.attrs["ppd"]["source"] == PPD_FROM_OPTIONS
    assert case.attrs["ppd"]["x"] == pytest.approx(1920 / 531 * 2 * 600 * np.tan(np.deg2rad(0.5)), rel=1e-3)


def test_asc_missing_values_are_invalid_samples(tmp_path):
    asc = tmp_path / "tiny.asc"
    lines = ["MSG\t999 GAZE_COORDS 0.00 0.00 1023.00 767.00", "START\t1000 \tLEFT\tSAMPLES\tEVENTS"]
    lines += ["SAMPLES\tGAZE\tLEFT\tRES\tRATE\t 500.00\tTRACKING\tCR\tFILTER\t2"]
    lines += [f"{1000 + 2 * i}\t  512.0\t  384.0\t  900.0\t  30.00\t  30.00\t..." for i in range(50)]
    lines += ["1100\t   .\t   .\t    0.0\t   .\t   .\t..."]  # a blink: edf2asc's missing values
    lines += [f"{1102 + 2 * i}\t  512.0\t  384.0\t  900.0\t  30.00\t  30.00\t..." for i in range(50)]
    lines += ["END\t1200 \tSAMPLES\tEVENTS\tRES\t  30.00\t  30.00"]
    asc.write_text("\n".join(lines) + "\n")
    (case,) = _cases(import_eyelink(asc, tmp_path / "out").written[0])
    valid = (case.gaze["flags"] & GAZE_VALID).astype(bool)
    assert valid.sum() == 100 and not valid[50] and np.isnan(case.gaze["x_screen_px"][50])
    assert case.display.screen_w_px == 1024 and case.fixations.size == 1
    asc.write_text("\n".join(lines[:3] + ["1000\t512.0\tabc\t900\t..."]) + "\n")
    with pytest.raises(ImportFormatError, match=r"tiny.asc line 4"):
        import_eyelink(asc, tmp_path / "bad")


def test_binocular_edf_warns_that_the_eyes_disagree_and_one_eye_can_be_chosen(tmp_path):
    result = import_eyelink(BINO, tmp_path / "both")
    assert result.warnings and all("disagree" in w for w in result.warnings)
    cases = _cases(result.written[0])
    assert cases[0].attrs["eyes"] == ["left", "right"] and cases[0].attrs["warnings"]
    right = _cases(import_eyelink(BINO, tmp_path / "right", opts=EyeLinkOptions(eye="right")).written[0])
    assert right[0].attrs["eyes"] == ["right"] and not right[0].attrs["warnings"]
    assert set(right[0].attrs["tracker_events"]["fixations"]["eye"]) == {"right"}


# radgaze's I-VT (default parameters, px/deg from the recording) against EyeLink's own parser on the whole
# recording; the figures in docs/trackers.md ("EyeLink recordings") come from this test's cases
AGREEMENT_FLOORS = {  # (file, eye): (precision, recall, median centroid distance in px)
    ("test_raw.edf", "left"): (0.95, 0.75, 0.5),
    ("test_2_raw.edf", "left"): (0.95, 0.70, 1.0),
    ("test_raw_binocular.edf", "right"): (0.80, 0.70, 1.0),
}


@pytest.mark.parametrize(("name", "eye"), list(AGREEMENT_FLOORS))
def test_radgaze_fixations_agree_with_eyelinks_parser(recordings, name, eye):
    got = eyelink_agreement(recordings[name], eye, GeometryOptions())
    precision, recall, dist = AGREEMENT_FLOORS[name, eye]
    assert got["precision"] >= precision and got["recall"] >= recall
    assert got["median_centroid_distance"] <= dist


def test_velocity_window_beats_point_to_point_on_the_noisy_500_hz_eye(recordings):
    rec = recordings["test_raw_binocular.edf"]
    window = eyelink_agreement(rec, "right", GeometryOptions())
    p2p = eyelink_agreement(rec, "right", GeometryOptions(), window_s=0.0)
    assert window["precision"] > p2p["precision"] + 0.1 and window["recall"] > p2p["recall"]


def test_live_detector_matches_batch_on_a_real_recording(tmp_path):
    (case, *_) = _cases(import_eyelink(MONO2, tmp_path).written[0])
    view = fit_view(1920, 1080, case.display, t_lsl=case.t_start)
    rng = np.random.default_rng(0)
    live = run_live(case.gaze, view, list(rng.integers(1, 60, case.gaze.size)), display=case.display)
    from radgaze.capture.gazemath.fixations import fixations_from_gaze

    batch = fixations_from_gaze(case.gaze, view, case.display)
    assert batch.size >= 2
    for field in batch.dtype.names:
        np.testing.assert_array_equal(live[field], batch[field], err_msg=field)


def test_cli_imports_an_asc_with_an_image_map(recordings, tmp_path, capsys):
    asc = write_asc(recordings["test_raw.edf"], tmp_path / "reading.asc")
    img = np.zeros((600, 500), np.uint8)
    img[100:500, 100:400] = 180
    Image.fromarray(img).save(tmp_path / "chest.png")
    (tmp_path / "trials.csv").write_text("trial,image\n1,chest.png\n2,chest.png\n")
    rc = radgaze_main(
        ["import", "asc", str(asc), str(tmp_path / "out"), "--image-map", str(tmp_path / "trials.csv")]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "2 case(s)" in out and "skipped 18" in out and "skipped 3: not in --image-map" in out
    cases = _cases(tmp_path / "out" / "reading.h5")
    assert [c.image.width for c in cases] == [500, 500] and cases[0].image.sha256
    scale = cases[0].view_events["scale"][0]
    assert scale == pytest.approx(1080 / 600)  # fitted to the 1920 x 1080 display
    rc = radgaze_main(["import", "asc", str(DATA / "test_raw.edf"), str(tmp_path / "x")])
    assert rc == 2 and "expected a .asc file" in capsys.readouterr().err
