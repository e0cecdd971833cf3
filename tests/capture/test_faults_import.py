"""Impossible values at every boundary (issue 24, items 1, 2, 8): the live layouts and every importer judge
positions in pixels after scaling and units against the data; an importer refuses in one line naming the file,
the column and the value, and writes nothing; ``--skip-broken`` catches every error of a reading. Each case
here was stored as valid gaze (or raised a traceback) before."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_import_egd import _images, make_egd
from test_import_reflacx import CASE, make_reflacx
from test_import_xdf import image, tobii_stream, word_stream, write_xdf  # noqa: F401 (image: a fixture)

from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.importers.egd import import_egd
from radgaze.capture.importers.reflacx import import_reflacx
from radgaze.capture.importers.xdf import import_xdf
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS, to_gaze_records
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

DISPLAY = DisplayGeometry(1920, 1080, 527.0, 296.0, 650.0)


def _edit_column(path: Path, column: str, edit, rows: slice = slice(None)) -> None:
    """Rewrite one column of a CSV file: ``edit(value) -> value`` on the data rows ``rows``."""
    table = list(csv.reader(path.open(newline="")))
    k = table[0].index(column)
    for row in table[1:][rows]:
        row[k] = str(edit(float(row[k])))
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(table)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------------------------------ live
def test_a_normalised_5e6_is_no_gaze_once_scaled_to_pixels():
    lay = BUILTIN_LAYOUTS["tobii"]
    raw = np.array(
        [
            [0.5, 0.5, 3, 0.5, 0.5, 3],
            [5e6, 0.5, 3, 5e6, 0.5, 3],  # 7.7e9 px: stored valid before (the far-off test ran before scaling)
            [-5e6, -5e6, 3, -5e6, -5e6, 3],
            [1.2, 0.5, 3, 1.2, 0.5, 3],  # a little off the screen's edge: real gaze, kept
            [5e6, 0.5, 3, 0.5, 0.5, 3],  # one eye impossible: the other eye alone
        ]
    )
    rows = to_gaze_records(lay, raw, np.arange(5) / 100.0, DISPLAY)
    valid = (rows["flags"] & GAZE_VALID) != 0
    assert valid.tolist() == [True, False, False, True, True]
    assert np.isnan(rows["x_screen_px"][1:3]).all()
    assert np.nanmax(np.abs(rows["x_screen_px"])) < 3 * DISPLAY.screen_w_px


# ------------------------------------------------------------------------------------------------ REFLACX
REFLACX_BAD = {
    "times in ms": (
        lambda p: [
            _edit_column(p / CASE / "fixations.csv", c, lambda v: v * 1000)
            for c in ("timestamp_start_fixation", "timestamp_end_fixation")
        ],
        r"fixations\.csv column timestamp_end_fixation: expected seconds .* got a median fixation of 2\d\d",
    ),
    "gaze times in ms": (
        lambda p: _edit_column(p / "gaze_data/P101R000001/gaze.csv", "timestamp_sample", lambda v: v * 1000),
        r"gaze\.csv column timestamp_sample: expected seconds",
    ),
    "1e30 px fixation": (
        lambda p: _edit_column(p / CASE / "fixations.csv", "x_position", lambda v: 1e30, slice(3, 4)),
        r"fixations\.csv row 5 column x_position: expected a position on the \d+ x 1080 px screen .* got 1e\+30",
    ),
    "1e30 px gaze": (
        lambda p: _edit_column(
            p / "gaze_data/P101R000001/gaze.csv", "y_position", lambda v: -1e30, slice(7, 8)
        ),
        r"gaze\.csv row 9 column y_position: expected a position .* got -1e\+30",
    ),
    "image width 1e8": (
        lambda p: _edit_column(p / "main_data/metadata_phase_1.csv", "image_size_x", lambda v: int(1e8)),
        r"metadata_phase_1\.csv row 2 column image_size_x: expected an image side of 1\.\.20000 px, got 1e\+08",
    ),
    "certainty 9": (
        lambda p: _edit_column(p / CASE / "anomaly_location_ellipses.csv", "certainty", lambda v: 9),
        r"anomaly_location_ellipses\.csv row 2 column certainty: expected a REFLACX certainty 1\.\.5, got 9",
    ),
    "40x duplicated gaze rows": (
        lambda p: _duplicate_rows(p / "gaze_data/P101R000001/gaze.csv", 40),
        r"gaze\.csv: expected one row per sample, got 98% of the rows repeating",
    ),
    "ellipse 3 px outside the image": (
        lambda p: _edit_column(p / CASE / "anomaly_location_ellipses.csv", "xmax", lambda v: 1000 + 3),
        r"REFLACX reading P101R000001: .*annotation",
    ),
    "inverted box": (
        lambda p: _edit_column(p / CASE / "chest_bounding_box.csv", "xmin", lambda v: 990),
        r"REFLACX reading P101R000001: ",
    ),
    "ppd 1e30": (
        lambda p: _edit_column(
            p / CASE / "fixations.csv", "angular_resolution_x_pixels_per_degree", lambda v: 1e30
        ),
        r"REFLACX reading P101R000001: ",
    ),
}


def _duplicate_rows(path: Path, times: int) -> None:
    table = list(csv.reader(path.open(newline="")))
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([table[0], *(row for row in table[1:] for _ in range(times))])


@pytest.mark.parametrize("name", sorted(REFLACX_BAD))
def test_reflacx_impossible_values_are_one_line_and_nothing_is_written(tmp_path: Path, name: str):
    src = make_reflacx(tmp_path / "reflacx")
    edit, message = REFLACX_BAD[name]
    edit(src)
    out = tmp_path / "out"
    with pytest.raises(ImportFormatError, match=message) as err:
        import_reflacx(src, out)
    assert "\n" not in str(err.value)
    assert _files(out) == []


@pytest.mark.parametrize("name", sorted(REFLACX_BAD))
def test_reflacx_skip_broken_catches_every_error_of_a_reading(tmp_path: Path, name: str):
    src = make_reflacx(tmp_path / "reflacx")
    meta = src / "main_data/metadata_phase_1.csv"
    table = list(csv.reader(meta.open(newline="")))
    with meta.open("w", newline="") as fh:  # a second, good reading after the broken one
        csv.writer(fh).writerows([*table, ["P101R000003", *table[1][1:]]])
    shutil.copytree(src / CASE, src / "main_data/P101R000003")
    shutil.copytree(src / "gaze_data/P101R000001", src / "gaze_data/P101R000003")
    REFLACX_BAD[name][0](src)
    if name == "image width 1e8":  # a metadata row of its own: break only the first reading's
        _edit_column(meta, "image_size_x", lambda v: 1000, slice(2, 3))
    result = import_reflacx(src, tmp_path / "out", skip_broken=True)
    assert [c for c, _ in result.skipped] == ["P101R000001"] and result.n_cases == 1
    assert _files(tmp_path / "out") == ["P101R000003.h5"]


def test_reflacx_reading_without_a_gaze_file_is_flagged_not_silent(tmp_path: Path):
    src = make_reflacx(tmp_path / "reflacx")
    (src / "gaze_data/P101R000001/gaze.csv").unlink()
    result = import_reflacx(src, tmp_path / "out")
    assert result.warnings == [
        "P101R000001: no gaze.csv found; imported from fixations.csv only (no raw gaze)"
    ]
    with SessionReader(tmp_path / "out/P101R000001.h5") as r:
        case = r.case("P101R000001")
    assert case.gaze.size == 0 and case.attrs["gaze_file"] == "missing"


# ------------------------------------------------------------------------------------------------ EGD-CXR
EGD_BAD = {
    "FPOGX 50": (
        lambda p: _edit_column(p / "eye_gaze.csv", "FPOGX", lambda v: 50.0, slice(5, 6)),
        r"eye_gaze\.csv row 7 column FPOGX: expected a fraction of the screen, 0\.\.1 .* got 50",
    ),
    "FPOGY 1e30": (
        lambda p: _edit_column(p / "fixations.csv", "FPOGY", lambda v: 1e30, slice(2, 3)),
        r"fixations\.csv row 4 column FPOGY: expected a fraction of the screen.* got 1e\+30",
    ),
    "times in ms": (
        lambda p: [_edit_column(p / n, "Time (in secs)", lambda v: v * 1000) for n in ("eye_gaze.csv",)],
        r"eye_gaze\.csv column Time \(in secs\): expected seconds",
    ),
    "fixation durations in ms": (
        lambda p: _edit_column(p / "fixations.csv", "FPOGD", lambda v: v * 1000),
        r"fixations\.csv column FPOGD: expected seconds",
    ),
    "a transcript nested 100000 deep (RecursionError)": (
        lambda p: (p / "audio_segmentation_transcripts/d2/transcript.json").write_text(
            "[" * 100000 + "]" * 100000
        ),
        r"d2/transcript\.json: expected JSON .*RecursionError",
    ),
}


@pytest.mark.parametrize("name", sorted(EGD_BAD))
def test_egd_impossible_values_are_one_line_and_skip_broken_goes_on(tmp_path: Path, name: str):
    src = make_egd(tmp_path / "egd")
    edit, message = EGD_BAD[name]
    edit(src)
    images = _images(tmp_path / "img")
    with pytest.raises(ImportFormatError, match=message) as err:
        import_egd(src, tmp_path / "out", images=images)
    assert "\n" not in str(err.value) and _files(tmp_path / "out") == []
    result = import_egd(src, tmp_path / "out", images=images, skip_broken=True)
    assert result.skipped and all("\n" not in why for _, why in result.skipped)


# ------------------------------------------------------------------------------------------------ XDF
def test_xdf_with_a_clock_offset_of_1e9_is_refused_in_one_line(tmp_path: Path, image: Path):  # noqa: F811
    gaze = tobii_stream(np.random.default_rng(1))
    gaze["clock_offset"] = 1e9
    path = write_xdf(tmp_path / "r.xdf", [word_stream(), gaze])
    with pytest.raises(
        ImportFormatError, match=r"stream 'Tobii' column time_stamps: .*clock offset: 1e\+09 s"
    ):
        import_xdf(path, tmp_path / "out", image=image, display=DISPLAY)
    assert _files(tmp_path / "out") == []


@pytest.mark.parametrize("step_s", [10.0, -5.0])
def test_xdf_clock_step_loses_no_sample_and_is_stored_as_a_clock_event(
    tmp_path: Path,
    image: Path,  # noqa: F811
    step_s: float,
):
    gaze = tobii_stream(np.random.default_rng(1))
    true_t = gaze["t"].copy()
    gaze["t"] = true_t + np.where(np.arange(true_t.size) >= 600, step_s, 0.0)  # the tracker's clock stepped
    gaze["clock_times"] = [true_t[0], true_t[-1]]  # the recorder's own measurements span the real recording
    path = write_xdf(tmp_path / "r.xdf", [word_stream(), gaze])
    (target,) = import_xdf(path, tmp_path / "out", image=image, display=DISPLAY).written
    info = describe_session(target)
    assert info["valid"] and info["cases"][0]["clock_events"] == 1  # inspect --json counts it
    with SessionReader(target) as r:
        case = r.case(r.case_ids[0])
    assert case.gaze.size == true_t.size  # none dropped, none doubled
    np.testing.assert_allclose(case.gaze["t_lsl"], true_t, atol=1e-6)
    assert case.clock_events.size == 1 and abs(case.clock_events["step_s"][0] - step_s) < 0.02
    assert json.loads(json.dumps(case.clock_events.tolist()))  # plain numbers


XDF_SMALL_STEPS = {  # (first sample, first sample after, step s): stamps moved by step_s in between
    "0.5 s back": [(600, None, -0.5)],
    "20 samples 0.3 s ahead": [(600, 620, 0.3)],
    "20 samples 0.3 s behind": [(600, 620, -0.3)],
    "a burst of 4 jumps": [(600, 601, 0.25), (601, 602, -0.15), (602, 603, 0.2)],
}


@pytest.mark.parametrize("name", list(XDF_SMALL_STEPS))
def test_xdf_clock_steps_under_a_second_lose_nothing_and_keep_the_true_times(
    tmp_path: Path,
    image: Path,  # noqa: F811
    name: str,
):
    """Before, steps under 1 s were not steps: the import sorted the stamps, interleaving the samples before and
    after a step back (or a burst) out of their order."""
    gaze = tobii_stream(np.random.default_rng(1))
    true_t = gaze["t"].copy()
    index = np.arange(true_t.size)
    gaze["t"] = true_t.copy()
    for first, after, step_s in XDF_SMALL_STEPS[name]:
        gaze["t"] += np.where((index >= first) & (index < (after or true_t.size)), step_s, 0.0)
    gaze["clock_times"] = [true_t[0], true_t[-1]]
    path = write_xdf(tmp_path / "r.xdf", [word_stream(), gaze])
    (target,) = import_xdf(path, tmp_path / "out", image=image, display=DISPLAY).written
    with SessionReader(target) as r:
        case = r.case(r.case_ids[0])
    assert case.gaze.size == true_t.size
    np.testing.assert_allclose(case.gaze["t_lsl"], true_t, atol=1e-6)
    assert (
        case.clock_events.size >= 1
        and abs(case.clock_events["step_s"].sum() - (name == "0.5 s back") * -0.5) < 0.02
    )


def test_xdf_import_names_nothing_after_its_files_unless_asked(tmp_path: Path, image: Path):  # noqa: F811
    path = write_xdf(
        tmp_path / "DOE_JOHN_MRN123456.xdf", [word_stream(), tobii_stream(np.random.default_rng(1))]
    )
    (target,) = import_xdf(path, tmp_path / "out", image=image, display=DISPLAY).written
    assert target.name.startswith("xdf-") and "DOE" not in target.name
    raw = target.read_bytes()
    assert b"DOE_JOHN" not in raw and str(tmp_path).encode() not in raw
    with SessionReader(target) as r:
        case = r.case(r.case_ids[0])
    assert not Path(case.image.path).is_absolute() and case.attrs["xdf_file"].startswith("sha256:")


def test_an_eyelink_sample_5e6_px_away_is_kept_invalid_not_stored_as_gaze(tmp_path: Path):
    from radgaze.capture.importers.eyelink import import_eyelink

    asc = tmp_path / "far.asc"
    lines = ["MSG\t999 GAZE_COORDS 0.00 0.00 1023.00 767.00", "START\t1000 \tLEFT\tSAMPLES\tEVENTS"]
    lines += ["SAMPLES\tGAZE\tLEFT\tRES\tRATE\t 500.00\tTRACKING\tCR\tFILTER\t2"]
    lines += [f"{1000 + 2 * i}\t  512.0\t  384.0\t  900.0\t  30.00\t  30.00\t..." for i in range(50)]
    lines += ["1100\t5000000.0\t  384.0\t  900.0\t  30.00\t  30.00\t..."]  # below EyeLink's 1e8 missing code
    lines += [f"{1102 + 2 * i}\t  512.0\t  384.0\t  900.0\t  30.00\t  30.00\t..." for i in range(50)]
    lines += ["END\t1200 \tSAMPLES\tEVENTS\tRES\t  30.00\t  30.00"]
    asc.write_text("\n".join(lines) + "\n")
    (target,) = import_eyelink(asc, tmp_path / "out").written
    with SessionReader(target) as r:
        case = r.case(r.case_ids[0])
    valid = (case.gaze["flags"] & GAZE_VALID).astype(bool)
    assert valid.sum() == 100 and not valid[50] and np.isnan(case.gaze["x_screen_px"][50])
    assert np.nanmax(case.gaze["x_screen_px"]) < 2000
