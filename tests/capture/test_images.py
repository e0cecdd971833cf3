"""radgaze.capture.io.images: real files, generated DICOM/PNG/JPEG with known answers, broken input, windowing, fuzz."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    MPEG2MPML,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from radgaze.capture.base.errors import ImageLoadError
from radgaze.capture.io.images import (
    MAX_PIXELS,
    LoadedImage,
    apply_voi_lut,
    apply_window,
    default_window,
    load_image,
    window_lut,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _files(sub: str, pattern: str) -> list:
    folder = DATA / sub
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{folder} is absent (real sample data)"))]
    return sorted(folder.glob(pattern))


CXR_PNGS = _files("cxr", "*.png")
DICOMS = _files("dicom", "*.dcm")

IDENTIFIERS = {
    "PatientName": "Doe^Jane",
    "PatientID": "PID-12345",
    "PatientBirthDate": "19600101",
    "AccessionNumber": "ACC-999",
    "InstitutionName": "St Example Hospital",
    "StudyDate": "20240102",
}


# --------------------------------------------------------------------------------------------- builders
def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: tuple[int, int, np.ndarray] | None = None,  # (first_mapped, bits, data)
    frames: int = 1,
    spacing: tuple[str, list[float]] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    pixel_data: bool = True,
    identifiers: dict | None = None,
) -> Path:
    """An uncompressed single- or multi-frame grayscale DICOM built with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    for key, value in (identifiers or IDENTIFIERS).items():
        setattr(ds, key, value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames != 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        first, bits, data = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(data), first, bits]
        item.add_new(0x00283006, "US", [int(v) for v in data])  # LUTData (US or OW; US here)
        item.LUTExplanation = "test LUT"
        ds.VOILUTSequence = [item]
    if spacing is not None:
        setattr(ds, spacing[0], spacing[1])
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(stored, dtype=np.uint16).tobytes()
    if transfer_syntax != ExplicitVRLittleEndian:
        if transfer_syntax in (RLELossless, JPEG2000Lossless):
            ds.compress(transfer_syntax)
        else:  # a syntax nothing decodes: just relabel it
            meta.TransferSyntaxUID = transfer_syntax
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\x00" * 64])
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=preamble)
    return path


def ramp16(h: int = 64, w: int = 64, top: int = 4095) -> np.ndarray:
    """(h, w) uint16 ramp 0..top with every value distinct-ish, deterministic."""
    return (np.arange(h * w, dtype=np.float64).reshape(h, w) / (h * w - 1) * top).round().astype(np.uint16)


def write_png(path: Path, values: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(values, mode=mode).save(path)
    return path


# ----------------------------------------------------------------------------------------- real files
@pytest.mark.parametrize("path", CXR_PNGS, ids=lambda p: getattr(p, "name", "absent"))
def test_real_png_loads_with_exact_values_and_a_histogram_window(path: Path) -> None:
    img = load_image(path)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("L"))
    assert img.pixels.dtype == np.uint16 and img.pixels.flags.c_contiguous
    np.testing.assert_array_equal(img.pixels, expected)
    m = img.meta
    assert (m.height, m.width) == expected.shape
    assert (m.source_format, m.bits_stored, m.photometric) == ("png", 8, "MONOCHROME2")
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.identifiers == {} and m.window_center is None and m.transfer_syntax is None
    # 8-bit PNGs open with a window over their own histogram (0.5..99.5 %), not the dull 0..255 identity
    center, width = default_window(img)
    lo, hi = center - width / 2, center + width / 2
    assert 0 <= lo < hi <= 255 and width < 255
    shown = apply_window(img.pixels, center, width)
    assert shown.std() > expected.std()  # more contrast than the raw values
    assert 0.002 < (shown == 255).mean() < 0.05  # about the brightest 0.5 % saturate, not a third


@pytest.mark.parametrize("path", DICOMS, ids=lambda p: getattr(p, "name", "absent"))
def test_real_dicom_is_inverted_and_keeps_its_window(path: Path) -> None:
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(np.int64)
    img = load_image(path)
    m = img.meta
    assert m.transfer_syntax == str(ds.file_meta.TransferSyntaxUID)
    assert m.transfer_syntax.startswith("1.2.840.10008.1.2.4.9")  # JPEG 2000 (lossy .91 / lossless .90)
    assert (m.height, m.width) == raw.shape and m.source_format == "dicom"
    assert m.photometric == "MONOCHROME1" and m.bits_stored == int(ds.BitsStored)
    full = 2 ** int(ds.BitsStored) - 1
    np.testing.assert_array_equal(img.pixels, full - raw)  # MONOCHROME1: higher = brighter after loading
    assert m.window_center == pytest.approx(full - float(ds.WindowCenter))
    assert m.window_width == pytest.approx(float(ds.WindowWidth))
    assert default_window(img) == (m.window_center, m.window_width)
    # The mirrored window shows exactly what the original window shows on MONOCHROME1 (up to rounding ties).
    shown = apply_window(img.pixels, m.window_center, m.window_width).astype(int)
    original = 255 - apply_window(
        raw.astype(np.float64), float(ds.WindowCenter), float(ds.WindowWidth)
    ).astype(int)
    assert np.abs(shown - original).max() <= 1
    assert m.identifiers == {} and "PatientName" in ds
    assert str(ds.PatientName) not in json.dumps(m.to_dict())
    kept = load_image(path, keep_identifiers=True).meta.identifiers
    assert kept["PatientName"] == str(ds.PatientName) and kept["PatientID"] == str(ds.PatientID)


def test_real_lossy_dicom_has_the_documented_window() -> None:
    path = DATA / "dicom" / "RG1_J2KI.dcm"
    if not path.is_file():
        pytest.skip(f"{path} is absent (real sample data)")
    m = load_image(path).meta
    assert (m.window_center, m.window_width) == (32767 - 15000, 30000)
    assert m.transfer_syntax == "1.2.840.10008.1.2.4.91" and m.modality == "CR"
    assert m.pixel_spacing_mm is None  # the file says 0 x 0 mm, which is no spacing


# ---------------------------------------------------------------------------------- generated DICOM
def test_monochrome2_rescale_applied(tmp_path: Path) -> None:
    raw = ramp16(top=4000) + 60
    path = write_dicom(tmp_path / "a.dcm", raw, slope=2, intercept=-100, window=(3000, 2000))
    img = load_image(path)
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, raw.astype(np.int64) * 2 - 100)
    assert (img.meta.window_center, img.meta.window_width) == (3000.0, 2000.0)
    assert img.meta.photometric == "MONOCHROME2" and img.meta.notes == []


def test_negative_or_fractional_values_come_as_float32(tmp_path: Path) -> None:
    raw = ramp16()
    neg = load_image(write_dicom(tmp_path / "n.dcm", raw, slope=1, intercept=-1024))
    assert neg.pixels.dtype == np.float32
    np.testing.assert_array_equal(neg.pixels, raw.astype(np.float32) - 1024)
    frac = load_image(write_dicom(tmp_path / "f.dcm", raw, slope=0.5, intercept=0))
    assert frac.pixels.dtype == np.float32
    np.testing.assert_allclose(frac.pixels, raw * 0.5)


def test_monochrome1_inverted_over_the_rescaled_range_and_window_mirrored(tmp_path: Path) -> None:
    raw = ramp16(top=4095)
    path = write_dicom(
        tmp_path / "m1.dcm",
        raw,
        photometric="MONOCHROME1",
        bits_stored=12,
        slope=2,
        intercept=10,
        window=(3000, 1000),
    )
    img = load_image(path)
    lo, hi = 10, 2 * 4095 + 10
    np.testing.assert_array_equal(img.pixels, lo + hi - (2 * raw.astype(np.int64) + 10))
    assert img.meta.window_center == lo + hi - 3000 and img.meta.window_width == 1000
    rescaled = 2 * raw.astype(np.float64) + 10
    expected = 255 - apply_window(rescaled, 3000, 1000).astype(int)
    got = apply_window(img.pixels, img.meta.window_center, img.meta.window_width).astype(int)
    assert np.abs(got - expected).max() <= 1
    assert any("MONOCHROME1" in n for n in img.meta.notes)


def _voi_table(n: int = 256, bits: int = 8) -> np.ndarray:
    """A non-linear (gamma 0.5) VOI LUT with outputs 0..2^bits-1."""
    return np.round(np.sqrt(np.linspace(0.0, 1.0, n)) * (2**bits - 1)).astype(np.uint16)


def test_voi_lut_sequence_read_and_applied(tmp_path: Path) -> None:
    raw = ramp16(top=4095)
    table = _voi_table()
    img = load_image(write_dicom(tmp_path / "v.dcm", raw, voi_lut=(1000, 8, table)))
    voi = img.meta.voi_lut
    assert voi is not None and voi.first_mapped == 1000 and voi.lut_01.size == 256
    np.testing.assert_allclose(voi.lut_01, table / 255.0, atol=1e-6)
    idx = np.clip(raw.astype(int) - 1000, 0, 255)
    np.testing.assert_array_equal(apply_voi_lut(img.pixels, voi), table[idx].astype(np.uint8))
    assert default_window(img) == (1000 + 127.5, 255.0)  # no window tags: the LUT's span
    assert img.meta.to_dict()["voi_lut"]["entries"] == 256


def test_voi_lut_mirrored_for_monochrome1(tmp_path: Path) -> None:
    raw = ramp16(top=4095)
    table = _voi_table()
    img = load_image(
        write_dicom(tmp_path / "v1.dcm", raw, photometric="MONOCHROME1", voi_lut=(1000, 8, table))
    )
    original = 255 - table[np.clip(raw.astype(int) - 1000, 0, 255)].astype(int)  # MONOCHROME1: high = dark
    got = apply_voi_lut(img.pixels, img.meta.voi_lut).astype(int)
    np.testing.assert_array_equal(got, original)


def test_damaged_voi_lut_is_noted_and_the_window_kept(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "bad-voi.dcm", ramp16(), window=(2000, 1000), voi_lut=(0, 8, _voi_table()))
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence[0].LUTDescriptor = [256, 0]  # two values instead of three
    ds.save_as(path)
    img = load_image(path)
    assert img.meta.voi_lut is None and any("VOI LUT" in n for n in img.meta.notes)
    assert default_window(img) == (2000.0, 1000.0)


def test_identifiers_dropped_unless_asked(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "id.dcm", ramp16())
    plain = load_image(path).meta
    assert plain.identifiers == {}
    text = json.dumps(plain.to_dict())
    assert all(value not in text for value in IDENTIFIERS.values())
    kept = load_image(path, keep_identifiers=True).meta.identifiers
    assert {k: kept[k] for k in IDENTIFIERS} == IDENTIFIERS


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        (("PixelSpacing", [0.139, 0.143]), (0.139, 0.143)),
        (("ImagerPixelSpacing", [0.2, 0.2]), (0.2, 0.2)),
        (("PixelSpacing", [0.0, 0.0]), None),
        (None, None),
    ],
)
def test_pixel_spacing(tmp_path: Path, spacing, expected) -> None:
    meta = load_image(write_dicom(tmp_path / "s.dcm", ramp16(), spacing=spacing)).meta
    assert meta.pixel_spacing_mm == (pytest.approx(expected) if expected else None)


def test_dicom_without_preamble_loads(tmp_path: Path) -> None:
    raw = ramp16()
    path = write_dicom(tmp_path / "raw.dcm", raw, preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(load_image(path).pixels, raw)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k-lossless"])
def test_compressed_lossless_dicom_round_trips(tmp_path: Path, syntax: UID) -> None:
    raw = ramp16(top=4095)
    img = load_image(write_dicom(tmp_path / "c.dcm", raw, transfer_syntax=syntax))
    assert img.meta.transfer_syntax == syntax
    np.testing.assert_array_equal(img.pixels, raw)


def test_jpeg_baseline_dicom_decodes(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate

    gray = (ramp16(top=255)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG", quality=95)
    path = write_dicom(tmp_path / "j.dcm", gray.astype(np.uint16), bits_stored=8, pixel_data=False)
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    img = load_image(path)
    assert img.meta.transfer_syntax == JPEGBaseline8Bit and img.meta.bits_stored == 8
    assert np.abs(img.pixels.astype(int) - gray.astype(int)).max() <= 4  # lossy at quality 95


# ----------------------------------------------------------------------------------- broken DICOM
def test_multiframe_rejected(tmp_path: Path) -> None:
    stack = np.stack([ramp16()] * 3)
    with pytest.raises(ImageLoadError, match="single-frame.*multi-frame DICOM with 3 frames"):
        load_image(write_dicom(tmp_path / "mf.dcm", stack, frames=3))


def test_unsupported_transfer_syntax_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ImageLoadError, match=r"unsupported transfer syntax MPEG2.*1\.2\.840\.10008\.1\.2\.4\.100"
    ):
        load_image(write_dicom(tmp_path / "mpeg.dcm", ramp16(), transfer_syntax=MPEG2MPML))


def test_colour_dicom_rejected(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "rgb.dcm", ramp16())
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "RGB", 3
    ds.save_as(path)
    with pytest.raises(ImageLoadError, match="grayscale DICOM.*got RGB"):
        load_image(path)


def test_dicom_without_pixels_rejected(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="without any"):
        load_image(write_dicom(tmp_path / "np.dcm", ramp16(), pixel_data=False))


@pytest.mark.parametrize(("rows", "cols"), [(0, 64), (64, 0), (40000, 40000)])
def test_zero_or_huge_size_rejected_before_decoding(tmp_path: Path, rows: int, cols: int) -> None:
    path = write_dicom(tmp_path / "z.dcm", ramp16())
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = rows, cols
    ds.save_as(path)
    with pytest.raises(ImageLoadError, match=r"at least 1 x 1|at most \d+ pixels"):
        load_image(path)
    assert rows * cols == 0 or rows * cols > MAX_PIXELS


@pytest.mark.parametrize(
    ("syntax", "message"),
    [
        (ExplicitVRLittleEndian, "damaged or truncated.*pixel data is less than expected"),
        (RLELossless, "without any.*End of file reached"),  # pydicom stops at the cut, with a warning
    ],
    ids=["native", "rle"],
)
def test_truncated_dicom_rejected(tmp_path: Path, syntax: UID, message: str) -> None:
    path = write_dicom(tmp_path / "t.dcm", ramp16(), transfer_syntax=syntax)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ImageLoadError, match=message):
        load_image(path)


# ------------------------------------------------------------------------------------- PNG / JPEG
def test_png_16bit_exact(tmp_path: Path) -> None:
    values = ramp16(top=65535)
    img = load_image(write_png(tmp_path / "16.png", values))
    assert img.pixels.dtype == np.uint16 and img.meta.bits_stored == 16
    np.testing.assert_array_equal(img.pixels, values)
    c, w = default_window(img)  # percentiles of the ramp
    assert c == pytest.approx(65535 / 2, rel=1e-3) and w == pytest.approx(0.99 * 65535, rel=1e-2)


def test_png_8bit_and_gray_rgb_accepted_colour_rejected(tmp_path: Path) -> None:
    gray = ramp16(top=255).astype(np.uint8)
    np.testing.assert_array_equal(load_image(write_png(tmp_path / "8.png", gray)).pixels, gray)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(load_image(write_png(tmp_path / "rgb.png", rgb)).pixels, gray)
    rgb[10, 10] = (255, 0, 0)
    with pytest.raises(ImageLoadError, match="grayscale radiograph, got a colour RGB image"):
        load_image(write_png(tmp_path / "colour.png", rgb))


def test_jpeg_8bit(tmp_path: Path) -> None:
    gray = ramp16(top=255).astype(np.uint8)
    path = tmp_path / "a.jpg"
    Image.fromarray(gray).save(path, quality=95)
    img = load_image(path)
    assert img.meta.source_format == "jpeg" and img.meta.bits_stored == 8
    assert np.abs(img.pixels.astype(int) - gray.astype(int)).max() <= 4


def test_animated_png_rejected(tmp_path: Path) -> None:
    frames = [
        Image.fromarray(ramp16(top=255).astype(np.uint8)),
        Image.fromarray(np.zeros((64, 64), np.uint8)),
    ]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageLoadError, match="single-frame image, got an animated PNG with 2 frames"):
        load_image(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello, this is text\n" * 5, "got text"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "HDF5"),
        (b"\x00\x01\x02\x03" * 10, "unrecognised bytes starting 0x00010203"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "damaged or truncated"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, "damaged or truncated"),
    ],
)
def test_not_an_image(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="readable image file"):
        load_image(tmp_path / "nope.dcm")
    with pytest.raises(ImageLoadError, match="readable image file"):
        load_image(tmp_path)


def test_truncated_png_rejected(tmp_path: Path) -> None:
    path = write_png(tmp_path / "t.png", ramp16(top=65535))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        load_image(path)


# ------------------------------------------------------------------------------------------ windowing
def test_window_lut_known_values() -> None:
    lut = window_lut(100.0, 200.0, n_levels=300)
    assert lut.dtype == np.uint8 and lut.shape == (300,)
    # LINEAR_EXACT: y = clip((x - c)/w + 0.5): 0 -> 0, 50 -> 0.25, 100 -> 0.5, 200 -> 1, beyond clipped
    assert (lut[0], lut[50], lut[100], lut[150], lut[200], lut[299]) == (0, 64, 128, 191, 255, 255)
    assert np.all(np.diff(lut.astype(int)) >= 0)
    np.testing.assert_array_equal(window_lut(100.0, 200.0, invert=True, n_levels=300), 255 - lut)
    np.testing.assert_array_equal(window_lut(127.5, 255.0, n_levels=256), np.arange(256))  # 8-bit identity


def test_apply_window_integer_and_float_paths_agree() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, size=(64, 80)).astype(np.uint16)
    for center, width, invert in ((30000.0, 20000.0, False), (1000.5, 3.0, True), (0.0, 0.25, False)):
        a = apply_window(pixels, center, width, invert=invert)
        b = apply_window(pixels.astype(np.float32), center, width, invert=invert)
        assert a.dtype == np.uint8 and a.shape == pixels.shape
        np.testing.assert_array_equal(a, b)
        x = pixels.astype(np.float64)
        y = np.floor(np.clip((x - (center - width / 2)) / width, 0, 1) * 255 + 0.5)  # the contract's formula
        np.testing.assert_array_equal(a, (255 - y) if invert else y)


@pytest.mark.parametrize(
    ("center", "width"), [(0.0, 0.0), (0.0, -5.0), (float("nan"), 10.0), (0.0, float("inf"))]
)
def test_bad_window_rejected(center: float, width: float) -> None:
    with pytest.raises(ValueError, match="width > 0"):
        window_lut(center, width)
    with pytest.raises(ValueError, match="width > 0"):
        apply_window(np.zeros((2, 2), np.uint16), center, width)


def test_default_window_on_a_flat_16bit_image_is_usable(tmp_path: Path) -> None:
    img = load_image(write_png(tmp_path / "flat.png", np.full((8, 8), 1234, np.uint16)))
    c, w = default_window(img)
    assert c == 1234 and w == 1.0
    assert isinstance(img, LoadedImage) and apply_window(img.pixels, c, w).shape == (8, 8)


# -------------------------------------------------------------------------------------------- fuzzing
def fuzz(n_examples: int) -> settings:
    return settings(
        max_examples=n_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _load_bytes(data: bytes, suffix: str = ".img") -> None:
    """load_image on these bytes: it may succeed, or raise ImageLoadError, nothing else."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            img = load_image(path)
        except ImageLoadError as exc:
            assert "\n" not in str(exc)
            return
        assert img.pixels.ndim == 2 and img.pixels.dtype in (np.uint16, np.float32)
        assert img.pixels.shape == (img.meta.height, img.meta.width)


def _seed_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        raw = ramp16(top=4095)
        out = {
            "dicom": write_dicom(folder / "a.dcm", raw, window=(2000, 4000)).read_bytes(),
            "dicom-m1-voi": write_dicom(
                folder / "b.dcm", raw, photometric="MONOCHROME1", voi_lut=(0, 8, _voi_table())
            ).read_bytes(),
            "dicom-rle": write_dicom(folder / "c.dcm", raw, transfer_syntax=RLELossless).read_bytes(),
            "dicom-j2k": write_dicom(folder / "d.dcm", raw, transfer_syntax=JPEG2000Lossless).read_bytes(),
            "png16": write_png(folder / "e.png", raw * 16).read_bytes(),
            "png8": write_png(folder / "f.png", (raw // 16).astype(np.uint8)).read_bytes(),
        }
        buf = io.BytesIO()
        Image.fromarray((raw // 16).astype(np.uint8)).save(buf, format="JPEG")
        out["jpeg"] = buf.getvalue()
    return out


SEEDS = _seed_files()
MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"\0" * 128 + b"DICM",
    b"\x08\x00\x05\x00",
    b"\x02\x00\x00\x00",
]


@fuzz(300)
@given(prefix=st.sampled_from(MAGICS), body=st.binary(max_size=600))
def test_fuzz_random_bytes(prefix: bytes, body: bytes) -> None:
    _load_bytes(prefix + body)


@fuzz(250)
@given(name=st.sampled_from(sorted(SEEDS)), cut=st.floats(0.0, 1.0))
def test_fuzz_truncations(name: str, cut: float) -> None:
    data = SEEDS[name]
    _load_bytes(data[: int(cut * len(data))])


@fuzz(300)
@given(
    name=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8
    ),
)
def test_fuzz_byte_flips(name: str, flips: list[tuple[float, int]]) -> None:
    data = bytearray(SEEDS[name])
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    _load_bytes(bytes(data))


@pytest.mark.slow
@fuzz(40)
@given(
    index=st.integers(0, 1000),
    mode=st.sampled_from(["truncate", "flip"]),
    where=st.floats(0.0, 1.0, exclude_max=True),
    xor=st.integers(1, 255),
)
def test_fuzz_real_files(index: int, mode: str, where: float, xor: int) -> None:
    files = sorted((DATA / "dicom").glob("*.dcm")) + sorted((DATA / "cxr").glob("*.png"))[:4]
    if not files:
        pytest.skip(f"{DATA} is absent (real sample data)")
    data = bytearray(files[index % len(files)].read_bytes())
    if mode == "truncate":
        _load_bytes(bytes(data[: int(where * len(data))]))
    else:
        data[int(where * len(data))] ^= xor
        _load_bytes(bytes(data))
