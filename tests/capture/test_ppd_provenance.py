"""Pixels per degree have a recorded source in every new session: the tracker's own (EyeLink app channels via
XDF, EyeLink files), the screen's physical size and distance given, or a stated assumption; inspect shows it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from bridges import plans_for
from PIL import Image
from test_bridges import write_bridge_xdf

from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.importers.xdf import PPD_FROM_TRACKER, import_xdf
from radgaze.capture.io.display import (
    DISTANCE_ASSUMED,
    SCREEN_MM_ASSUMED,
    display_from_options,
    options_ppd_source,
    ppd_record,
    ppd_screen,
)
from radgaze.capture.live.record import PPD_FROM_TRACKER_LIVE
from radgaze.capture.store.reader import SessionReader

DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 600.0)


def test_ppd_record_and_its_source():
    rec = ppd_record(DISPLAY, options_ppd_source("531x299", 600.0))
    one_deg_mm = 2 * 600 * np.tan(np.deg2rad(0.5))
    assert rec["x"] == pytest.approx(1920 / 531 * one_deg_mm, abs=1e-3)
    assert rec["source"] == "screen size: --screen-mm; viewing distance: --distance-mm"
    assumed = options_ppd_source(None, None)
    assert SCREEN_MM_ASSUMED in assumed and DISTANCE_ASSUMED in assumed and "assumed" in assumed


@pytest.fixture()
def image(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "cxr.png"
    Image.fromarray(rng.integers(0, 65535, (600, 500), dtype=np.uint16)).save(path)
    return path


def _record(tmp_path, image, *extra: str):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--sim", "--no-audio", "--image",
         str(image), "--out", str(out), "--case-id", "c1", "--duration", "1", *extra],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (path,) = out.glob("*.h5")
    return path


def test_headless_record_records_where_px_per_degree_came_from(tmp_path, image):
    path = _record(
        tmp_path, image, "--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "600"
    )
    with SessionReader(path) as r:
        case, prov = r.case("c1"), r.provenance
    expected = ppd_record(
        display_from_options("1920x1080", "531x299", 600.0), options_ppd_source("531x299", 600.0)
    )
    assert case.attrs["ppd"] == expected and prov["ppd"] == expected
    shown = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "inspect", str(path)], capture_output=True, text=True
    ).stdout
    assert (
        f"px/deg {expected['x']:.2f} x {expected['y']:.2f} (screen size: --screen-mm; viewing distance:"
        in shown
    )
    default = _record(tmp_path / "d", image)
    with SessionReader(default) as r:
        assert "assumed" in r.case("c1").attrs["ppd"]["source"]


def test_xdf_import_takes_the_eyelink_apps_own_px_per_degree(tmp_path, image):
    xdf = tmp_path / "eyelink.xdf"
    write_bridge_xdf(xdf, "eyelink")
    res = import_xdf(xdf, tmp_path / "out", image=image, display=DISPLAY, case_id="c1")
    with SessionReader(res.written[0]) as r:
        case = r.case("c1")
    rows = plans_for("eyelink", 1.0)[0].rows
    assert case.attrs["ppd"]["source"] == PPD_FROM_TRACKER
    assert (case.attrs["ppd"]["x"], case.attrs["ppd"]["y"]) == pytest.approx(
        (rows[0][6], rows[0][7]), abs=1e-3
    )
    other = tmp_path / "tobii.xdf"
    write_bridge_xdf(other, "tobii")
    res = import_xdf(other, tmp_path / "out2", image=image, display=DISPLAY, case_id="c1")
    with SessionReader(res.written[0]) as r:
        assert "assumed" in r.case("c1").attrs["ppd"]["source"]  # the API default: the display as given


def test_live_record_takes_the_px_per_degree_the_eyelink_app_sends(tmp_path, image):
    """A simulated EyeLink app (its pixelsPerDegreeX/Y channels from a 1920 x 1080 screen of the default pitch)
    and a recorder told another screen: the tracker's own px/deg win, and the session says so."""
    name = f"EL-ppd-{tmp_path.name}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", "sim-tracker", "--layout", "eyelink", "--rate", "200",
         "--duration", "60", "--name", name, "--display", "1920x1080"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert sim.stdout.readline().startswith(f"publishing '{name}'")
        out = tmp_path / "out"
        run = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--tracker", name, "--no-audio",
             "--image", str(image), "--out", str(out), "--case-id", "c1", "--duration", "1",
             "--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "600"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        sim.terminate()
        sim.wait(10)
        sim.stdout.close()
    assert run.returncode == 0, run.stderr
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case, prov = r.case("c1"), r.provenance
    sent = ppd_screen(display_from_options("1920x1080"))  # what the simulated EyeLink app sends
    assert case.attrs["ppd"]["source"] == PPD_FROM_TRACKER_LIVE == prov["ppd"]["source"]
    assert (case.attrs["ppd"]["x"], case.attrs["ppd"]["y"]) == pytest.approx(sent, abs=1e-2)
    assert ppd_screen(case.display) == pytest.approx(sent, abs=1e-2)  # fixations and heatmaps use it
    assert prov["tracker"]["stats"]["tracker_ppd_x"] == pytest.approx(sent[0], abs=1e-3)


def test_synthetic_sessions_record_their_px_per_degree(tmp_path):
    from radgaze.app.cli import main as radgaze_main
    from radgaze.capture.synth.session import SYNTHETIC_PPD_SOURCE

    assert radgaze_main(["synth", str(tmp_path), "--cases", "1", "--seed", "2"]) == 0
    (path,) = tmp_path.glob("*.h5")
    with SessionReader(path) as r:
        case = r.case(r.case_ids[0])
    assert case.attrs["ppd"] == ppd_record(case.display, SYNTHETIC_PPD_SOURCE)


def _inspect_ppd_lines(capsys, path) -> list[str]:
    from radgaze.app.cli import main

    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    return [ln.strip() for ln in capsys.readouterr().out.splitlines() if "px/deg" in ln]


def test_reflacx_import_records_reflacxs_own_px_per_degree_and_inspect_shows_it(tmp_path, capsys):
    from test_import_reflacx import make_reflacx

    from radgaze.app.cli import main
    from radgaze.capture.importers.reflacx import REFLACX_PPD_SOURCE

    src = make_reflacx(tmp_path / "reflacx")
    assert main(["import", "reflacx", str(src), str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").glob("*.h5")
    with SessionReader(path) as r:
        case, prov = r.case(r.case_ids[0]), r.provenance
    assert case.attrs["ppd"]["source"] == REFLACX_PPD_SOURCE == prov["ppd"]["source"]
    assert case.attrs["display_inferred"]  # its size set so that the recorded px/deg come out
    assert case.attrs["ppd"]["x"] == pytest.approx(ppd_screen(case.display)[0], abs=1e-3)
    (line,) = _inspect_ppd_lines(capsys, path)
    assert "angular_resolution" in line and "not recorded" not in line
    # with the screen given, that is the source (and the assumed distance is said to be one)
    assert main(["import", "reflacx", str(src), str(tmp_path / "out2"), "--display", "1920x1080",
                 "--screen-mm", "531x299"]) == 0  # fmt: skip
    (line,) = _inspect_ppd_lines(capsys, next((tmp_path / "out2").glob("*.h5")))
    assert "screen size: --screen-mm; viewing distance: assumed: the default 650 mm" in line


def test_egd_import_records_its_assumed_display_with_the_reason_and_inspect_shows_it(tmp_path, capsys):
    from test_import_egd import _images, make_egd

    from radgaze.app.cli import main
    from radgaze.capture.importers.egd import EGD_DISPLAY, EGD_SCREEN_ASSUMED

    src = make_egd(tmp_path / "egd")
    images = _images(tmp_path / "img")
    assert main(["import", "egd", str(src), str(tmp_path / "out"), "--images", str(images)]) == 0
    paths = sorted((tmp_path / "out").glob("*.h5"))
    assert paths
    with SessionReader(paths[0]) as r:
        case, prov = r.case(r.case_ids[0]), r.provenance
    assert case.attrs["ppd"]["source"] == prov["ppd"]["source"]
    assert (
        EGD_SCREEN_ASSUMED in case.attrs["ppd"]["source"] and "does not state" in case.attrs["ppd"]["source"]
    )
    assert case.attrs["ppd"]["x"] == pytest.approx(ppd_screen(EGD_DISPLAY)[0], abs=1e-3)
    lines = _inspect_ppd_lines(capsys, paths[0])
    assert lines and all("Karargyris" in ln and "not recorded" not in ln for ln in lines)
    assert main(["import", "egd", str(src), str(tmp_path / "out2"), "--images", str(images),
                 "--screen-mm", "600x340", "--distance-mm", "700"]) == 0  # fmt: skip
    lines = _inspect_ppd_lines(capsys, sorted((tmp_path / "out2").glob("*.h5"))[0])
    assert all("screen size: --screen-mm; viewing distance: --distance-mm" in ln for ln in lines)
