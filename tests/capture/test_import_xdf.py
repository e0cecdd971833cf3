"""radgaze import xdf: minimal XDF files written here (chunk by chunk, as LabRecorder does), read by pyxdf."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest

from radgaze.capture.base.errors import ConfigError, ImportFormatError
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.heatmap import mass_inside
from radgaze.capture.importers.common import ellipse_mask
from radgaze.capture.importers.xdf import MAX_WORD_S, import_xdf, parse_word_samples
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

W_IMG, H_IMG = 800, 1000
DISPLAY = DisplayGeometry(1920, 1080, 527.0, 296.0, 650.0)
SCALE = 1080 / H_IMG
OFFSET_X = (1920 - W_IMG * SCALE) / 2
HEART, NODULE = (380.0, 600.0), (600.0, 850.0)
MARKER_CLOCK_OFFSET_S = 0.5  # the word sender's clock is 0.5 s behind the recorder's


# ------------------------------------------------------------------------------------------------ XDF writer
def _varlen(n: int) -> bytes:
    return b"\x01" + struct.pack("<B", n) if n < 256 else b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    body = struct.pack("<H", tag) + content
    return _varlen(len(body)) + body


def _header_xml(name, stype, fmt, channels: list[dict], srate: float) -> bytes:
    chans = "".join(
        "<channel>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in c.items()) + "</channel>"
        for c in channels
    )
    xml = (
        f'<?xml version="1.0"?><info><name>{name}</name><type>{stype}</type>'
        f"<channel_count>{max(len(channels), 1)}</channel_count><nominal_srate>{srate}</nominal_srate>"
        f"<channel_format>{fmt}</channel_format><source_id>{name}-1</source_id><version>1.1</version>"
        f"<created_at>1000.0</created_at><uid>{name}-uid</uid><session_id>default</session_id>"
        f"<hostname>testhost</hostname><desc><channels>{chans}</channels></desc></info>"
    )
    return xml.encode()


def _samples(sid: int, t: np.ndarray, values, fmt: str) -> bytes:
    out = struct.pack("<I", sid) + b"\x04" + struct.pack("<I", len(t))
    for k, ts in enumerate(t):
        out += b"\x08" + struct.pack("<d", ts)
        if fmt == "string":
            for cell in values[k]:
                raw = cell.encode()
                out += b"\x04" + struct.pack("<I", len(raw)) + raw
        else:
            out += np.asarray(values[k], {"float32": "<f4", "double64": "<f8"}[fmt]).tobytes()
    return out


def write_xdf(path: Path, streams: list[dict]) -> Path:
    """streams: dicts with name, type, format, channels (list of dicts), srate, t (n,), values, clock_offset."""
    data = b"XDF:" + _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        xml = _header_xml(s["name"], s["type"], s["format"], s["channels"], s["srate"])
        data += _chunk(2, struct.pack("<I", sid) + xml)
    for sid, s in enumerate(streams, start=1):
        t = np.asarray(s["t"], float)
        for lo in range(0, len(t), 500):  # several sample chunks, as LabRecorder writes them
            data += _chunk(3, _samples(sid, t[lo : lo + 500], s["values"][lo : lo + 500], s["format"]))
        for tc in s.get("clock_times") or (t[0] if len(t) else 0.0, t[-1] if len(t) else 1.0):
            data += _chunk(4, struct.pack("<Idd", sid, tc, s.get("clock_offset", 0.0)))
    for sid, s in enumerate(streams, start=1):
        t = s["t"]
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{t[0] if len(t) else 0}</first_timestamp>'
            f"<last_timestamp>{t[-1] if len(t) else 0}</last_timestamp><sample_count>{len(t)}</sample_count>"
            "</info>"
        )
        data += _chunk(6, struct.pack("<I", sid) + footer.encode())
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------------ test data
def _norm(x_img: float, y_img: float) -> tuple[float, float]:
    return (x_img * SCALE + OFFSET_X) / 1920, (y_img * SCALE) / 1080


def _gaze_xy(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Normalized screen gaze: the heart until 104.5 s, the nodule until 109 s, the heart again."""
    on_nodule = (t >= 104.5) & (t < 109.0)
    x = np.where(on_nodule, NODULE[0], HEART[0]) + rng.normal(0, 4, t.size)
    y = np.where(on_nodule, NODULE[1], HEART[1]) + rng.normal(0, 4, t.size)
    return (x * SCALE + OFFSET_X) / 1920, y * SCALE / 1080


def tobii_stream(rng: np.random.Generator) -> dict:
    t = 100.0 + np.arange(0, 12.0, 1 / 120)
    x, y = _gaze_xy(t, rng)
    vals = np.stack([x, y, np.full(t.size, 3.1), x, y, np.full(t.size, 3.3)], 1).astype(np.float32)
    vals[300:310, :] = np.nan  # a blink
    labels = ["left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil"]
    return {
        "name": "Tobii",
        "type": "Eyetracker",
        "format": "float32",
        "srate": 120.0,
        "channels": [{"label": lab} for lab in labels],
        "t": t,
        "values": vals,
    }


def generic_stream(rng: np.random.Generator) -> dict:
    """XDF Gaze meta-data: a combined point in pixels, unknown labels, a device name no layout knows."""
    t = 100.0 + np.arange(0, 12.0, 1 / 60)
    x, y = _gaze_xy(t, rng)
    vals = np.stack([x * 1920, y * 1080, np.ones(t.size)], 1)
    chans = [
        {"label": "gx", "type": "ScreenX", "unit": "pixels", "eye": "both"},
        {"label": "gy", "type": "ScreenY", "unit": "pixels", "eye": "both"},
        {"label": "conf", "type": "Confidence", "unit": "normalized"},
    ]
    return {"name": "LabTracker", "type": "Gaze", "format": "double64", "srate": 60.0, "channels": chans,
            "t": t, "values": vals}  # fmt: skip


def word_stream() -> dict:
    """Sentence 1 as plain words (one per sample, "period" dictated); sentence 2 as JSON with start/end on the
    sender's clock (0.5 s behind the recorder)."""
    plain = [("heart", 102.0), ("size", 102.4), ("is", 102.8), ("normal", 103.0), ("period", 103.5)]
    spoken = ["there", "is", "a", "nodule", "in", "the", "left", "lower", "lung", "period"]
    off = MARKER_CLOCK_OFFSET_S
    t, vals = [w[1] - off for w in plain], [[w[0]] for w in plain]
    for k, w in enumerate(spoken):
        start = 105.5 + 0.3 * k - off
        t.append(start + 0.3)  # sent once the word is final
        vals.append([json.dumps({"word": w, "start": start, "end": start + 0.25})])
    return {"name": "radgaze-words", "type": "Markers", "format": "string", "srate": 0.0,
            "channels": [{"label": "word"}], "t": np.array(t), "values": vals, "clock_offset": off}  # fmt: skip


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "chest.png"
    Image.fromarray(np.full((H_IMG, W_IMG), 25000, np.uint16)).save(path)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _nodule_mask() -> np.ndarray:
    x, y = NODULE
    return ellipse_mask((x - 120, y - 120, x + 120, y + 120), W_IMG, H_IMG)


# ------------------------------------------------------------------------------------------------ tests
def test_parse_word_samples_plain_and_json():
    values = [["heart"], ['{"word": "size", "start": 10.0, "end": 10.3}'], ["is"], ["normal"]]
    t = np.array([9.5, 10.4, 10.5, 20.0])
    words = parse_word_samples(values, t + 1.0, t, where="w")  # synced = raw + 1 s
    assert words.text == ["heart", "size", "is", "normal"]
    np.testing.assert_allclose(words.t_start, [10.5, 11.0, 11.5, 21.0])
    # a plain word ends at the next start, capped at MAX_WORD_S; JSON words keep their own end (moved by 1 s)
    np.testing.assert_allclose(words.t_end, [11.0, 11.3, 11.5 + MAX_WORD_S, 21.0 + MAX_WORD_S])
    with pytest.raises(ImportFormatError, match=r"w sample 0: expected a word or JSON"):
        parse_word_samples([['{"word": "x", "start": "soon"}']], np.zeros(1), np.zeros(1), where="w")


def test_written_xdf_reads_back_with_pyxdf(tmp_path: Path):
    import pyxdf

    rng = np.random.default_rng(0)
    path = write_xdf(tmp_path / "r.xdf", [tobii_stream(rng), word_stream()])
    streams, header = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=True)
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert by_name["Tobii"]["time_series"].shape == (1440, 6)
    assert by_name["radgaze-words"]["time_series"][0] == ["heart"]
    assert by_name["radgaze-words"]["time_stamps"][0] == pytest.approx(102.0)  # clock offset applied


@pytest.mark.parametrize("stream", [tobii_stream, generic_stream])
def test_import_xdf(tmp_path: Path, image: Path, stream):
    rng = np.random.default_rng(1)
    path = write_xdf(tmp_path / "reading-01.xdf", [word_stream(), stream(rng)])
    out = tmp_path / "out"
    result = import_xdf(path, out, image=image, display=DISPLAY, keep_names=True)  # named after the file
    assert result.n_cases == 1 and _files(out) == ["reading-01.h5"]
    assert describe_session(out / "reading-01.h5")["valid"]
    with SessionReader(out / "reading-01.h5") as r:
        case = r.case("reading-01")
        assert r.provenance["tracker_layout"] == ("tobii" if stream is tobii_stream else "generic")
    assert case.attrs["gaze_stream"] == ("Tobii" if stream is tobii_stream else "LabTracker")
    assert case.view_events.size == 1 and case.view_events["scale"][0] == pytest.approx(SCALE)
    # gaze decoded by the layout, mapped to the image; the blink is kept invalid
    valid = (case.gaze["flags"] & GAZE_VALID).astype(bool)
    if stream is tobii_stream:
        assert case.gaze.size == 1440 and (~valid).sum() == 10
        assert np.nanmean(case.gaze["pupil"]) == pytest.approx(3.2, abs=1e-3)
    heart = np.hypot(case.gaze["x_img_px"][valid] - HEART[0], case.gaze["y_img_px"][valid] - HEART[1]) < 30
    assert heart.mean() > 0.4
    # words: dictated "period" -> "."; JSON times moved onto the recorder's clock
    assert case.sentences.text == ["heart size is normal.", "there is a nodule in the left lower lung."]
    assert case.words.t_start[case.words.text.index("there")] == pytest.approx(105.5)
    assert case.sentences.t_start[0] == pytest.approx(102.0)
    # fixations from I-VT; the nodule sentence's heatmap mass sits on the nodule, the heart sentence's does not
    assert case.fixations.size >= 3
    assert mass_inside(case.sentence_heatmap(1), _nodule_mask()) > 0.6
    assert mass_inside(case.sentence_heatmap(0), _nodule_mask()) < 0.05
    assert len(case.image.sha256) == 64 and Path(case.image.path).is_absolute()


def _good_xdf_bytes() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return write_xdf(
            Path(d) / "g.xdf", [tobii_stream(np.random.default_rng(0)), word_stream()]
        ).read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not xdf at all"), "expected an XDF file"),
        (lambda p: p.write_bytes(_good_xdf_bytes()[:700]), "could not read it"),  # cut inside a header
        (lambda p: p.write_bytes(_good_xdf_bytes()[:-4000]), "damaged or truncated"),  # cut inside samples
        (lambda p: write_xdf(p, [word_stream()]), "expected a numeric gaze stream"),
        (
            lambda p: write_xdf(p, [tobii_stream(np.random.default_rng(0))]),
            "expected one string stream of words",
        ),
        (
            lambda p: write_xdf(
                p,
                [
                    {
                        **tobii_stream(np.random.default_rng(0)),
                        "name": "Mystery",
                        "channels": [{"label": f"c{i}"} for i in range(6)],
                    },
                    word_stream(),
                ],
            ),
            "matches no layout",
        ),
        (
            lambda p: write_xdf(
                p,
                [
                    tobii_stream(np.random.default_rng(0)),
                    {**word_stream(), "values": [['{"word": "x", "start": "soon"}']] * 15},
                ],
            ),
            r"stream 'radgaze-words' sample 0: expected a word or JSON",
        ),
    ],
)
def test_import_xdf_broken(tmp_path: Path, image: Path, make, message: str):
    path = tmp_path / "bad.xdf"
    make(path)
    with pytest.raises(ImportFormatError, match=message):
        import_xdf(path, tmp_path / "out", image=image, display=DISPLAY)
    assert _files(tmp_path / "out") == []


def test_import_xdf_needs_a_readable_image(tmp_path: Path):
    path = write_xdf(tmp_path / "r.xdf", [tobii_stream(np.random.default_rng(0)), word_stream()])
    (tmp_path / "not-an-image.png").write_text("hello")
    with pytest.raises(ConfigError, match="--image"):
        import_xdf(path, tmp_path / "out", image=tmp_path / "not-an-image.png")


def test_cli_import_xdf(tmp_path: Path, image: Path):
    path = write_xdf(tmp_path / "r.xdf", [tobii_stream(np.random.default_rng(0)), word_stream()])
    out = tmp_path / "out"
    base = [sys.executable, "-m", "radgaze.app.cli", "import", "xdf", str(path), str(out)]
    done = subprocess.run(
        [*base, "--image", str(image), "--display", "1920x1080", "--screen-mm", "527x296", "--case-id", "c1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with SessionReader(out / "c1.h5") as r:
        case = r.case("c1")
    assert case.display.screen_w_px == 1920 and case.display.screen_w_mm == pytest.approx(527.0)
    assert len(case.sentences) == 2
    missing = subprocess.run(base, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2 and "--image" in missing.stderr
    bad = subprocess.run(
        [*base, "--image", str(image), "--display", "wide"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "--display: expected WIDTHxHEIGHT" in bad.stderr
