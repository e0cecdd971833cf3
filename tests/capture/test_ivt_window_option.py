"""The I-VT velocity window as an option (--ivt-window-ms) wherever fixations are computed, recorded with them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_bridges import write_bridge_xdf

from radgaze.app.cli import main
from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.fixations import (
    IVT_WINDOW_S,
    fixation_params,
    fixation_settings,
    fixations_from_gaze,
)
from radgaze.capture.store.reader import SessionReader


def test_the_option_is_checked_in_one_line():
    assert fixation_params("ivt", None) == {}
    assert fixation_params("ivt", 40) == {"window_s": 0.04}
    assert fixation_params("ivt", 0) == {"window_s": 0.0}  # sample to sample
    with pytest.raises(
        ConfigError, match=r"--ivt-window-ms: expected 0 to 200 ms \(Tobii's I-VT filter: 20\), got -5"
    ):
        fixation_params("ivt", -5)
    with pytest.raises(ConfigError, match="got 500"):
        fixation_params("ivt", 500)
    with pytest.raises(ConfigError, match="applies to I-VT fixations, got the 'idt' detector"):
        fixation_params("idt", 20)
    assert fixation_settings("ivt", {})["window_s"] == IVT_WINDOW_S


@pytest.fixture()
def xdf(tmp_path):
    path = tmp_path / "tobii.xdf"
    write_bridge_xdf(path, "tobii")
    image = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(image)
    return path, image


def _import(tmp_path, xdf, *extra) -> tuple:
    path, image = xdf
    out = tmp_path / f"out{len(extra)}"
    assert main(["import", "xdf", str(path), str(out), "--image", str(image), "--display", "1920x1080",
                 "--case-id", "c1", *extra]) == 0  # fmt: skip
    with SessionReader(out / "c1.h5") as r:
        return r.case("c1")


def test_xdf_import_detects_with_the_window_asked_for_and_records_it(tmp_path, xdf):
    default = _import(tmp_path, xdf)
    assert default.attrs["fixations"]["window_s"] == pytest.approx(IVT_WINDOW_S)
    wide = _import(tmp_path, xdf, "--ivt-window-ms", "150")
    assert wide.attrs["fixations"] == {**default.attrs["fixations"], "window_s": 0.15}
    again = fixations_from_gaze(wide.gaze, wide.view_events, wide.display, window_s=0.15)
    np.testing.assert_array_equal(wide.fixations, again)  # the option reached the detector ...
    assert not np.array_equal(wide.fixations, default.fixations)  # ... and changed what it found


def test_a_bad_window_is_refused_before_anything_is_written(tmp_path, xdf, capsys):
    path, image = xdf
    out = tmp_path / "bad"
    assert main(["import", "xdf", str(path), str(out), "--image", str(image), "--ivt-window-ms", "900"]) == 2
    assert "--ivt-window-ms: expected 0 to 200 ms" in capsys.readouterr().err
    assert not list(out.glob("*.h5"))
    assert main(["import", "xdf", str(path), str(out), "--image", str(image), "--fixations", "idt",
                 "--ivt-window-ms", "20"]) == 2  # fmt: skip
    assert "applies to I-VT fixations" in capsys.readouterr().err


def test_egd_import_of_raw_gaze_records_the_window(tmp_path):
    from test_import_egd import _images, make_egd

    src = make_egd(tmp_path / "egd", fixations=False)
    images = _images(tmp_path / "img")
    assert main(["import", "egd", str(src), str(tmp_path / "out"), "--images", str(images),
                 "--ivt-window-ms", "40"]) == 0  # fmt: skip
    (path,) = sorted((tmp_path / "out").glob("*.h5"))[:1]
    with SessionReader(path) as r:
        case = r.case(r.case_ids[0])
    assert case.attrs["fixations"]["from"] == "radgaze I-VT on eye_gaze.csv"
    assert case.attrs["fixations"]["window_s"] == pytest.approx(0.04)
    again = fixations_from_gaze(case.gaze, case.view_events, case.display, window_s=0.04)
    np.testing.assert_array_equal(case.fixations, again)


def test_synth_detects_with_the_window_asked_for_and_records_it(tmp_path):
    assert main(["synth", str(tmp_path / "s"), "--cases", "1", "--ivt-window-ms", "0"]) == 0
    (path,) = (tmp_path / "s").glob("*.h5")
    with SessionReader(path) as r:
        case = r.case(r.case_ids[0])
    assert case.attrs["fixations"]["window_s"] == 0.0 and case.attrs["fixations"]["method"] == "ivt"
    np.testing.assert_array_equal(
        case.fixations, fixations_from_gaze(case.gaze, case.view_events, case.display, window_s=0.0)
    )
    assert main(["synth", str(tmp_path / "bad"), "--cases", "1", "--ivt-window-ms", "-1"]) == 2


def _record_headless(tmp_path, *extra):
    import subprocess
    import sys

    image = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(image)
    out = tmp_path / "rec"
    run = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--sim", "--no-audio", "--image",
         str(image), "--out", str(out), "--case-id", "c1", "--duration", "2", *extra],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return run, out


def test_headless_record_detects_with_the_window_asked_for_and_records_it(tmp_path):
    run, out = _record_headless(tmp_path, "--ivt-window-ms", "0")
    assert run.returncode == 0, run.stderr
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case = r.case("c1")
    assert case.attrs["fixations"] == fixation_settings("ivt", {"window_s": 0.0})
    again = fixations_from_gaze(case.gaze, case.view_events, case.display, window_s=0.0)
    assert case.fixations.size > 0
    np.testing.assert_array_equal(case.fixations, again)  # live = batch, with the window asked for


def test_headless_record_refuses_a_bad_window_before_recording(tmp_path):
    run, out = _record_headless(tmp_path, "--ivt-window-ms", "900")
    assert run.returncode == 2
    assert "--ivt-window-ms: expected 0 to 200 ms" in run.stderr and "Traceback" not in run.stderr
    assert not list(out.glob("*.h5")) if out.exists() else True


def test_both_recorders_offer_the_window():
    import subprocess
    import sys

    for mode in ([], ["--headless"]):
        text = subprocess.run([sys.executable, "-m", "radgaze.app.cli", "record", *mode, "--help"],
                              capture_output=True, text=True, timeout=120).stdout  # fmt: skip
        assert "--ivt-window-ms" in text, mode
