"""radgaze export bids: recorded, imported and synthetic sessions as a BIDS 1.11 eye-tracking dataset, checked
by the real BIDS schema validator (PyPI bids-validator-deno) with 0 errors, and read back against the session."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.app.cli import main as radgaze_main
from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import GAZE_VALID
from radgaze.capture.exporters.bids import export_bids
from radgaze.capture.importers.eyelink import import_eyelink
from radgaze.capture.store.reader import SessionReader

VALIDATOR = shutil.which("bids-validator-deno") or (
    str(Path(sys.executable).parent / "bids-validator-deno")
    if (Path(sys.executable).parent / "bids-validator-deno").is_file()
    else None
)


def validate(root: Path) -> list[dict]:
    """The BIDS validator's issues for ``root`` (every severity)."""
    if VALIDATOR is None:
        pytest.skip("bids-validator-deno is not installed (the test extra: pip install -e '.[test]')")
    run = subprocess.run([VALIDATOR, str(root), "--json"], capture_output=True, text=True, timeout=300)
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout)["issues"]["issues"]


def errors_of(issues: list[dict]) -> list[str]:
    return [
        f"{i['code']} {i.get('subCode', '')} {i.get('location', '')}"
        for i in issues
        if i["severity"] == "error"
    ]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert radgaze_main(["synth", str(out), "--cases", "2", "--seed", "4", "--cases-per-file", "2"]) == 0
    (path,) = sorted(out.glob("*.h5"))
    return path


def _tiny_asc(path: Path) -> Path:
    """An EyeLink ASC recording (edf2asc's layout) of two trials: fixations, a blink, EyeLink's own events."""
    lines = ["MSG\t999 GAZE_COORDS 0.00 0.00 1919.00 1079.00", "START\t1000 \tLEFT\tSAMPLES\tEVENTS"]
    lines += ["PUPIL\tAREA", "SAMPLES\tGAZE\tLEFT\tRES\tRATE\t 500.00\tTRACKING\tCR\tFILTER\t2"]
    for trial, t0 in ((1, 1000), (2, 3000)):
        lines.append(f"MSG\t{t0} TRIALID {trial}")
        for i in range(1000):
            t = t0 + 2 * i
            x = 600.0 if i < 500 else 1200.0
            if 480 <= i < 520:
                lines.append(f"{t}\t   .\t   .\t    0.0\t   .\t   .\t...")
            else:
                lines.append(f"{t}\t{x:7.1f}\t  500.0\t 1000.0\t  36.00\t  36.00\t...")
        lines.append(f"EFIX L   {t0}\t{t0 + 958}\t960\t  600.0\t  500.0\t   1000")
        lines.append(f"EBLINK L {t0 + 960}\t{t0 + 1038}\t80")
    lines.append("END\t5000 \tSAMPLES\tEVENTS\tRES\t  36.00\t  36.00")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("imported")
    return import_eyelink(_tiny_asc(tmp / "reading.asc"), tmp / "out").written[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A real headless recording: the simulated tracker over LSL, no microphone, 3 s."""
    tmp = tmp_path_factory.mktemp("recorded")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 65535, (600, 500), dtype=np.uint16)).save(tmp / "cxr.png")
    run = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--sim", "--no-audio", "--image",
         str(tmp / "cxr.png"), "--out", str(tmp / "out"), "--case-id", "c1", "--duration", "3"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (path,) = (tmp / "out").glob("*.h5")
    return path


def _physio(path: Path) -> np.ndarray:
    with gzip.open(path, "rt") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh]
    return np.array([[np.nan if v == "n/a" else float(v) for v in r] for r in rows])


@pytest.mark.parametrize("kind", ["synthetic", "imported", "recorded"])
def test_export_passes_the_bids_validator_with_no_errors(kind, request, tmp_path):
    session = request.getfixturevalue(kind)
    result = export_bids([session], tmp_path / "bids")
    assert result.runs
    issues = validate(tmp_path / "bids")
    assert not errors_of(issues), errors_of(issues)
    with SessionReader(session) as reader:
        case = reader.case(reader.case_ids[0])
    beh = next((tmp_path / "bids").glob("sub-*/ses-*/beh"))
    prefix = result.runs[0]
    physio = _physio(beh / f"{prefix}_recording-eye1_physio.tsv.gz")
    side = json.loads((beh / f"{prefix}_recording-eye1_physio.json").read_text())
    assert side["PhysioType"] == "eyetrack" and side["Columns"][:3] == [
        "timestamp",
        "x_coordinate",
        "y_coordinate",
    ]
    assert physio.shape[0] == case.gaze.size
    np.testing.assert_allclose(physio[:, 0], case.gaze["t_lsl"], atol=1e-6)
    valid = (case.gaze["flags"] & GAZE_VALID).astype(bool)
    np.testing.assert_array_equal(np.isfinite(physio[:, 1]), valid)
    np.testing.assert_allclose(physio[valid, 1], case.gaze["x_screen_px"][valid], atol=0.006)
    assert side["StartTime"] == pytest.approx(case.gaze["t_lsl"][0] - case.t_start, abs=1e-6)
    events = json.loads((beh / f"{prefix}_events.json").read_text())["StimulusPresentation"]
    assert events["ScreenResolution"] == [case.display.screen_w_px, case.display.screen_h_px]
    assert events["ScreenDistance"] == pytest.approx(case.display.viewing_distance_mm / 1000, abs=1e-4)
    with gzip.open(beh / f"{prefix}_recording-eye1_physioevents.tsv.gz", "rt") as fh:
        kinds = [line.split("\t")[2] for line in fh]
    assert kinds.count("fixation") == case.fixations.size
    assert kinds.count("word") == len(case.words) and kinds.count("sentence") == len(case.sentences)
    if kind == "imported":  # EyeLink's own parsed events travel beside radgaze's
        assert kinds.count("tracker_fixation") == 1 and kinds.count("tracker_blink") == 1
        assert side["RecordedEye"] == "left"
    deriv = next(
        (tmp_path / "bids" / "derivatives" / "radgaze").glob(
            f"sub-*/ses-*/beh/{prefix}_desc-image_fixations.tsv"
        )
    )
    assert len(deriv.read_text().splitlines()) == case.fixations.size + 1


def test_all_three_kinds_in_one_dataset_and_the_cli(synthetic, imported, recorded, tmp_path, capsys):
    out = tmp_path / "bids"
    rc = radgaze_main(["export", "bids", str(synthetic), str(imported), str(recorded), str(out)])
    assert rc == 0 and "(BIDS 1.11)" in capsys.readouterr().out
    assert not errors_of(validate(out))
    assert len(list(out.glob("sub-*/ses-*/beh/*_physio.tsv.gz"))) == 2 + 2 + 1
    with pytest.raises(ConfigError, match="not empty; pass --overwrite"):
        export_bids([synthetic], out)


def test_names_are_content_hashes_unless_kept(recorded, tmp_path):
    res = export_bids([recorded], tmp_path / "a")
    (events,) = (tmp_path / "a").glob("sub-*/ses-*/beh/*_events.tsv")
    assert events.read_text().splitlines()[1].split("\t")[3].startswith("sha256:")
    assert recorded.stem.replace("_", "") not in res.runs[0]
    res = export_bids([recorded], tmp_path / "b", keep_names=True)
    (events,) = (tmp_path / "b").glob("sub-*/ses-*/beh/*_events.tsv")
    assert events.read_text().splitlines()[1].split("\t")[3] == "cxr.png"
    assert f"ses-{recorded.stem.replace('_', '').replace('-', '')}" in res.runs[0]
