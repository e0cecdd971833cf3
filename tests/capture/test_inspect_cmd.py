"""radgaze inspect: image metadata (text/JSON), session summaries, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.capture.store.inspect_cmd import main

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture()
def png16(tmp_path: Path) -> Path:
    path = tmp_path / "ramp16.png"
    values = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 12).astype(np.uint16)
    Image.fromarray(values).save(path)
    return path


def test_image_json(png16: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(png16), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "image" and info["source_format"] == "png"
    assert (info["width"], info["height"], info["bits_stored"]) == (80, 64, 16)
    assert info["window_center"] is None and info["default_window"]["width"] > 0
    assert info["pixel_max"] == (64 * 80 - 1) * 12 and len(info["sha256"]) == 64
    assert info["identifiers"] == {}


def test_image_text(png16: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(png16)]) == 0
    out = capsys.readouterr().out
    assert (
        "80 x 64 px, 16 bits stored" in out and "default window" in out and "pixel spacing   unknown" in out
    )


def test_real_dicom_text_names_syntax_and_mirrored_window(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "dicom" / "RG1_J2KI.dcm"
    if not path.is_file():
        pytest.skip(f"{path} is absent (real sample data)")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)" in out
    assert "MONOCHROME1" in out
    assert "window (tags)   center 15000, width 30000" in out  # as the tags say (stored values)
    assert "center 17767, width 30000 (in the loaded, inverted values)" in out  # what is drawn, labelled
    assert "CompressedSamples" not in out  # the patient name in that file


def test_several_paths_give_a_json_list_and_bad_ones_exit_2(
    png16: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image\n")
    assert main([str(png16), str(bad), str(png16), "--json"]) == 2
    captured = capsys.readouterr()
    infos = json.loads(captured.out)
    assert [i["kind"] for i in infos] == ["image", "image"]
    assert captured.err.count("\n") == 1 and "notes.txt" in captured.err and "got text" in captured.err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.dcm", b"", "empty file"),
        ("trunc.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "damaged or truncated"),
        ("junk.h5", b"\x89HDF\r\n\x1a\n" + b"\xff" * 300, "session"),
        ("plain.h5", b"hello", "session"),
    ],
)
def test_unreadable_file_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from radgaze.app.cli import main; sys.exit(main())",
            "inspect",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_subprocess_unreadable_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    for path in (bad, tmp_path / "missing.png"):
        proc = _cli(str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == "" and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("radgaze inspect: ") and str(path) in proc.stderr


def test_cli_subprocess_image_json(png16: Path) -> None:
    proc = _cli(str(png16), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["width"] == 80


def _session(tmp_path: Path, *, broken_heatmap: bool = False) -> Path:
    from radgaze.capture.base.records import DisplayGeometry, ImageRef
    from radgaze.capture.gazemath.heatmap import heatmap_grid
    from radgaze.capture.store.writer import SessionWriter

    path = tmp_path / "s.h5"
    with SessionWriter(path, reader_id="r01") as writer:
        writer.begin_case("case-1", ImageRef("img.png", "0" * 64, 640, 512), DisplayGeometry(), t_start=10.0)
        h_hm, w_hm, _ = heatmap_grid(640, 512)
        heatmap = np.full((h_hm, w_hm), 1.0 / (h_hm * w_hm), np.float32) * (2.0 if broken_heatmap else 1.0)
        writer.append_sentence(
            t_start=11.0, t_end=12.0, window_start=10.5, window_end=12.0, text="No effusion.",
            heatmap=heatmap, n_fixations=3,
        )  # fmt: skip
        writer.end_case(13.0)
    return path


def test_session_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    assert main([str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "session" and info["valid"] is True and info["errors"] == []
    assert isinstance(info["schema_version"], int)
    (case,) = info["cases"]
    assert case["case_id"] == "case-1" and case["sentences"] == 1 and case["heatmaps"] == 1
    for key in ("duration_s", "gaze_samples", "fixations", "words"):
        assert key in case


def test_invalid_session_prints_errors_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _session(tmp_path, broken_heatmap=True)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "do not sum to 1" in out
