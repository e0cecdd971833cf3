"""Load a chest radiograph (DICOM, PNG, JPEG) as one 2-D array of pixel values, and window it for display.

Pixel values after loading are in *presentation* orientation: higher = brighter. For DICOM that means the
modality LUT (rescale slope/intercept or a Modality LUT Sequence) is applied and MONOCHROME1 images are
inverted, with their window centre (and VOI LUT) mapped into the inverted values, so the drawing code never
needs to know the photometric interpretation. What a person reads stays in the file's own terms:
:func:`file_value` / :func:`file_window` map a loaded value or window back to the file's values (for
MONOCHROME1 ``x_file = lo + hi - x``), so the viewer's readout and W/L say what the tags say.
Patient identifiers are dropped unless the caller opts in.

Every failure to read an image, whatever the decoder underneath raised, is an :class:`ImageLoadError`
whose one-line message says what was expected and what came.

Window/level uses the DICOM ``LINEAR_EXACT`` VOI function (PS3.3 C.11.2.1.3.2):
``y = clip((x - c) / w + 0.5, 0, 1)``, i.e. ``clip((x - (c - w/2)) / w, 0, 1)``. The default DICOM ``LINEAR``
function (C.11.2.1.2.1) differs from it by half a stored unit of centre and one unit of width, invisible for
radiograph windows (hundreds to tens of thousands of units wide); ``LINEAR_EXACT`` works for any width > 0
(float pixels included) and makes the MONOCHROME1 mapping exact (``c' = lo + hi - c``).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ImageLoadError

# Refuse images above this many pixels before decoding. The largest flat-panel chest detectors are 43 x 43 cm
# at ~100 um pitch, i.e. ~4300 x 4300 = 18.5 Mpx (e.g. vendor DR detector data sheets); 64 Mpx leaves 3x room
# and keeps a forged header from asking for gigabytes.
MAX_PIXELS = 64 * 1024 * 1024

# Percentiles for a default window when a file carries none (robust to burnt-in labels and collimator edges).
WINDOW_PERCENTILES = (0.5, 99.5)

# DICOM keywords that identify a patient, study or place (PS3.15 Annex E basic profile, the subset radiograph
# headers commonly carry). Kept in ImageMeta.identifiers only with keep_identifiers=True.
IDENTIFIER_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "OperatorsName",
    "StationName",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionDateTime",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_FOREIGN_MAGICS = (  # for a helpful "got ..." in the error message
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a session file? radgaze inspect reads those)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"II*\x00", "a TIFF image (not supported; convert to PNG)"),
    (b"MM\x00*", "a TIFF image (not supported; convert to PNG)"),
    (b"GIF8", "a GIF image (not supported)"),
    (b"BM", "a BMP image (not supported)"),
    (b"RIFF", "a RIFF container (WAV/WebP; not supported)"),
    (b"fLaC", "a FLAC audio file"),
)


@dataclass(frozen=True)
class VoiLut:
    """A DICOM VOI LUT, already mapped into the loaded pixel values (MONOCHROME1 inversion applied).

    ``brightness = lut_01[clip(round(x - first_mapped), 0, n - 1)]`` for a pixel value ``x``; ``lut_01`` is
    float32 (n,) in [0, 1], 1 = white.
    """

    first_mapped: float
    lut_01: np.ndarray
    explanation: str = ""


@dataclass
class ImageMeta:
    """What a loaded image is. ``window_*`` come from the file's tags (None when it has none; see
    :func:`default_window`), in loaded pixel units: for MONOCHROME1 the centre is mapped through the
    inversion.
    ``pixel_spacing_mm`` is (row spacing, column spacing), from PixelSpacing else ImagerPixelSpacing.
    ``photometric`` is the file's own interpretation (pixels are always higher = brighter)."""

    width: int
    height: int
    bits_stored: int
    photometric: str
    window_center: float | None
    window_width: float | None
    pixel_spacing_mm: tuple[float, float] | None
    modality: str | None
    source_format: str  # "dicom" | "png" | "jpeg"
    transfer_syntax: str | None  # DICOM transfer syntax UID
    sha256: str  # of the file's bytes
    identifiers: dict = field(default_factory=dict)  # empty unless keep_identifiers=True
    voi_lut: VoiLut | None = None
    notes: list[str] = field(default_factory=list)  # decoder warnings, inversion, ignored tags
    # MONOCHROME1 / INVERSE: loaded = file_mirror - file value (lo + hi of the modality range); None: same
    file_mirror: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (the VOI LUT summarised, not dumped)."""
        out = asdict(self)
        out["voi_lut"] = (
            None
            if self.voi_lut is None
            else {
                "first_mapped": self.voi_lut.first_mapped,
                "entries": int(self.voi_lut.lut_01.size),
                "explanation": self.voi_lut.explanation,
            }
        )
        out["transfer_syntax_name"] = _uid_name(self.transfer_syntax) if self.transfer_syntax else None
        return out


@dataclass
class LoadedImage:
    """``pixels``: (height, width), uint16 when all values are integers in 0..65535, else float32."""

    pixels: np.ndarray
    meta: ImageMeta


# ----------------------------------------------------------------------------------------------- loading
def load_image(path: str | os.PathLike, *, keep_identifiers: bool = False) -> LoadedImage:
    """Load one single-frame grayscale radiograph from a DICOM, PNG or JPEG file.

    Raises :class:`ImageLoadError` for anything that is not such an image (missing, empty, truncated,
    foreign, multi-frame, colour, undecodable transfer syntax, too large).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"{path}: expected a readable image file, got {exc.strerror or exc}") from exc
    if not data:
        raise ImageLoadError(f"{path}: expected a DICOM, PNG or JPEG image, got an empty file (0 bytes)")
    kind = _sniff(data, path)
    sha256 = hashlib.sha256(data).hexdigest()
    # Decoders warn about dubious headers; keep those as notes instead of letting them escape.
    # (catch_warnings is process-global before Python 3.14; loads are short and warnings only get recorded.)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if kind.startswith("dicom"):
                pixels, meta = _load_dicom(data, sha256, keep_identifiers, force=kind == "dicom-raw")
            else:
                pixels, meta = _load_raster(data, sha256, keep_identifiers)
        except ImageLoadError as exc:
            said = f"; the reader warned: {_one_line(str(caught[0].message), 160)}" if caught else ""
            raise ImageLoadError(f"{path}: {exc}{said}") from exc
        except MemoryError as exc:
            raise ImageLoadError(
                f"{path}: expected an image that fits in memory, got one that does not"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - decoders raise a zoo of types on corrupt bytes
            raise ImageLoadError(
                f"{path}: expected a readable {kind.split('-')[0].upper()} image, but it is damaged or "
                f"truncated: {type(exc).__name__}: {_one_line(str(exc))}"
            ) from exc
    meta.notes += [_one_line(str(w.message)) for w in caught]
    return LoadedImage(pixels=_as_pixels(pixels), meta=meta)


def _sniff(data: bytes, path: Path) -> str:
    """'dicom' (DICM preamble), 'dicom-raw' (no preamble), 'png' or 'jpeg'; ImageLoadError otherwise."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    # DICOM written without the 128-byte preamble starts with a group 0002 or 0008 tag (little endian).
    if len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00") and data[3:4] == b"\x00":
        return "dicom-raw"
    got = next((what for magic, what in _FOREIGN_MAGICS if data.startswith(magic)), None)
    if got is None:
        head = data[:64]
        printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        got = "text" if printable else f"unrecognised bytes starting 0x{data[:8].hex()}"
    raise ImageLoadError(f"{path}: expected a DICOM, PNG or JPEG image, got {got} ({len(data)} bytes)")


def _as_pixels(values: np.ndarray) -> np.ndarray:
    """uint16 when every value is an integer in 0..65535, else float32; always C-contiguous 2-D."""
    if values.dtype == np.uint16:
        return np.ascontiguousarray(values)
    if values.size and np.issubdtype(values.dtype, np.integer):
        if values.min() >= 0 and values.max() <= 65535:
            return np.ascontiguousarray(values, dtype=np.uint16)
    elif values.size and np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 65535:
        if np.array_equal(values, np.round(values)):
            return np.ascontiguousarray(values, dtype=np.uint16)
    return np.ascontiguousarray(values, dtype=np.float32)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"expected an image of at least 1 x 1 pixels, got {width} x {height}")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"expected at most {MAX_PIXELS} pixels, got {width} x {height} = {width * height} "
            "(damaged header?)"
        )


# ------------------------------------------------------------------------------------------------ DICOM
def _load_dicom(
    data: bytes, sha256: str, keep_identifiers: bool, *, force: bool
) -> tuple[np.ndarray, ImageMeta]:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(io.BytesIO(data), force=force)
    ts_uid = _transfer_syntax(ds)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = _uid_name(str(ds.get("SOPClassUID", ""))) or "unknown SOP class"
        raise ImageLoadError(
            f"expected a DICOM image with pixel data, got a DICOM object without any ({sop})"
        )
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames != 1:
        raise ImageLoadError(
            f"expected a single-frame radiograph, got a multi-frame DICOM with {n_frames} frames"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageLoadError(
            f"expected a grayscale DICOM (MONOCHROME1/2, 1 sample per pixel), got {photometric or 'no'} "
            f"photometric interpretation with {samples} samples per pixel"
        )
    _check_size(int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
    _check_decoder(ts_uid)
    stored = ds.pixel_array
    if stored.ndim != 2:
        raise ImageLoadError(f"expected a single 2-D frame, got pixel data of shape {stored.shape}")
    values = np.asarray(apply_modality_lut(stored, ds))
    lo, hi = _modality_range(ds, stored, values)
    notes: list[str] = []
    invert = photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if invert:
        values = (lo + hi) - values.astype(np.float64)
        notes.append(f"{photometric} inverted to higher = brighter as lo + hi - x with lo={lo:g}, hi={hi:g}")
    center, width = _window_tags(ds, notes)
    if center is not None and invert:
        center = lo + hi - center  # LINEAR_EXACT is symmetric: the mirrored window shows the same picture
    meta = ImageMeta(
        width=int(stored.shape[1]),
        height=int(stored.shape[0]),
        bits_stored=int(ds.get("BitsStored", stored.dtype.itemsize * 8) or 0),
        photometric=photometric,
        window_center=center,
        window_width=width,
        pixel_spacing_mm=_pixel_spacing(ds),
        modality=str(ds.Modality) if ds.get("Modality") else None,
        source_format="dicom",
        transfer_syntax=ts_uid,
        sha256=sha256,
        identifiers=_dicom_identifiers(ds) if keep_identifiers else {},
        voi_lut=_voi_lut_or_note(ds, lo + hi if invert else None, notes),
        notes=notes,
        file_mirror=float(lo + hi) if invert else None,
    )
    return values, meta


def _voi_lut_or_note(ds, mirror_sum: float | None, notes: list[str]) -> VoiLut | None:
    """A damaged VOI LUT costs the LUT (noted), not the image: the window tags or percentiles still work."""
    try:
        return _voi_lut(ds, mirror_sum)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        notes.append(f"ignored unreadable VOI LUT Sequence: {type(exc).__name__}: {_one_line(str(exc), 120)}")
        return None


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(uid) if uid else "1.2.840.10008.1.2"  # no file meta: implicit VR little endian (PS3.5 A.1)


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name if name and name != uid else ""


def _check_decoder(ts_uid: str) -> None:
    """Name the transfer syntax when no installed decoder can read it."""
    from pydicom.pixels import get_decoder

    label = f"{_uid_name(ts_uid) or 'unknown transfer syntax'} ({ts_uid})"
    try:
        decoder = get_decoder(ts_uid)
    except NotImplementedError as exc:
        raise ImageLoadError(
            f"expected a transfer syntax radgaze can decode (native, RLE, JPEG, JPEG-LS, JPEG 2000), "
            f"got unsupported transfer syntax {label}"
        ) from exc
    if not decoder.is_available:
        raise ImageLoadError(
            f"expected a decodable transfer syntax, got {label} with no decoder installed "
            "(pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg)"
        )


def _modality_range(ds, stored: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(lo, hi): the values the modality LUT can produce from the stored bit range (PS3.3 C.7.6.3.1)."""
    from pydicom.pixels import apply_modality_lut

    bits = int(ds.get("BitsStored", 0) or 0)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if not np.issubdtype(stored.dtype, np.integer) or not 1 <= bits <= 16:
        return float(np.min(values)), float(np.max(values))
    s_lo, s_hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    domain = np.arange(s_lo, s_hi + 1, dtype=np.int32 if signed else np.uint32)
    mapped = np.asarray(apply_modality_lut(domain.astype(stored.dtype), ds), dtype=np.float64)
    return float(mapped.min()), float(mapped.max())


def _first_number(value) -> float | None:
    """First value of a (possibly multi-valued) DS tag, or None when absent or not a finite number."""
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or hasattr(value, "__getitem__") and not isinstance(value, str):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _window_tags(ds, notes: list[str]) -> tuple[float | None, float | None]:
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is None or width is None:
        return None, None
    if width <= 0:
        notes.append(f"ignored WindowWidth {width:g} (must be > 0)")
        return None, None
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function == "SIGMOID":
        notes.append("VOILUTFunction SIGMOID shown as a linear window of the same centre/width")
    return center, width


def _pixel_spacing(ds) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row_mm, col_mm = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row_mm > 0 and col_mm > 0 and np.isfinite(row_mm) and np.isfinite(col_mm):
            return row_mm, col_mm
    return None


def _voi_lut(ds, mirror_sum: float | None) -> VoiLut | None:
    """The first VOI LUT Sequence item as a brightness table over loaded pixel values (PS3.3 C.11.2)."""
    from pydicom.pixels import apply_voi

    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[0]
    n_entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
    n_entries = n_entries or 65536  # PS3.3 C.11.2.1.1: 0 means 2^16 entries
    domain = np.arange(first_mapped, first_mapped + n_entries, dtype=np.int64)
    out = np.asarray(apply_voi(domain.astype(np.float64), ds, index=0), dtype=np.float64)
    lut_01 = np.clip(out / float(2**bits - 1), 0.0, 1.0).astype(np.float32)
    explanation = str(item.get("LUTExplanation", ""))
    if mirror_sum is None:
        return VoiLut(float(first_mapped), lut_01, explanation)
    # x' = S - x; the table over x' runs backwards, and MONOCHROME1 output means darker, so flip it too.
    return VoiLut(
        float(mirror_sum - (first_mapped + n_entries - 1)), (1.0 - lut_01[::-1]).copy(), explanation
    )


def _dicom_identifiers(ds) -> dict:
    return {k: str(ds.get(k)) for k in IDENTIFIER_KEYWORDS if ds.get(k) not in (None, "")}


# ------------------------------------------------------------------------------------------- PNG / JPEG
def _load_raster(data: bytes, sha256: str, keep_identifiers: bool) -> tuple[np.ndarray, ImageMeta]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        fmt = (im.format or "").lower()
        if fmt not in ("png", "jpeg"):
            raise ImageLoadError(f"expected a PNG or JPEG image, got {im.format or 'an unknown format'}")
        _check_size(*im.size)
        n_frames = int(getattr(im, "n_frames", 1))
        if n_frames != 1:
            raise ImageLoadError(
                f"expected a single-frame image, got an animated {im.format} with {n_frames} frames"
            )
        im.load()
        values, bits = _gray_values(im)
        info = {k: v for k, v in im.info.items() if isinstance(v, str)}
    meta = ImageMeta(
        width=int(values.shape[1]),
        height=int(values.shape[0]),
        bits_stored=bits,
        photometric="MONOCHROME2",
        window_center=None,
        window_width=None,
        pixel_spacing_mm=None,
        modality=None,
        source_format=fmt,
        transfer_syntax=None,
        sha256=sha256,
        identifiers=info if keep_identifiers else {},
    )
    return values, meta


# Colour images whose channels differ by more than this are refused as colour; JPEG chroma subsampling of a
# gray picture leaves differences of a level or two.
_GRAY_TOLERANCE = 2


def _gray_values(im) -> tuple[np.ndarray, int]:
    """(values (h, w), bits stored) of a Pillow image that must be grayscale (gray-as-RGB accepted)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageLoadError(f"expected 8- or 16-bit gray values, got {mode} values outside 0..65535")
        return values.astype(np.uint16), 16
    if mode in ("L", "LA", "1"):
        return np.asarray(im.getchannel(0).convert("L")), 1 if mode == "1" else 8
    if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
        spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max()) if rgb.size else 0
        if spread > _GRAY_TOLERANCE:
            raise ImageLoadError(
                f"expected a grayscale radiograph, got a colour {mode} image "
                f"(channels differ by up to {spread})"
            )
        return np.asarray(im.convert("RGB").convert("L")), 8
    raise ImageLoadError(f"expected an 8- or 16-bit grayscale image, got Pillow mode {mode}")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------- windowing
def default_window(img: LoadedImage) -> tuple[float, float]:
    """(center, width) in loaded pixel units: the file's window tags; else the span of its VOI LUT; else the
    0.5th..99.5th percentile range of the pixels (:func:`percentile_window`), 8-bit PNG/JPEG included: their
    full 0..255 range leaves most chest films dull (the Hannover CR/DX PNGs span ~85..225)."""
    meta = img.meta
    if meta.window_center is not None and meta.window_width is not None:
        return float(meta.window_center), float(meta.window_width)
    if meta.voi_lut is not None:
        n = meta.voi_lut.lut_01.size
        return meta.voi_lut.first_mapped + (n - 1) / 2.0, float(max(n - 1, 1))
    return percentile_window(img.pixels, WINDOW_PERCENTILES)


def histogram_sample(pixels: np.ndarray, max_samples: int = 1 << 20) -> np.ndarray:
    """A strided float64 sample of the pixels without those stuck at the image's minimum or maximum value
    (collimator, unexposed or burnt-in regions: a leg film is ~40 % unexposed white); all of them when
    nothing else is left."""
    stride = max(1, int(np.sqrt(pixels.size / max_samples)))
    sample = np.asarray(pixels[::stride, ::stride], dtype=np.float64).reshape(-1)
    if sample.size == 0:
        return sample
    inner = sample[(sample > sample.min()) & (sample < sample.max())]
    return inner if inner.size >= max(16, sample.size // 100) else sample


def percentile_window(pixels: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """(center, width) spanning the (lo, hi) percentiles of :func:`histogram_sample`: whole numbers (width
    >= 1) for integer pixels, as window tags are written; width > 0 for float pixels."""
    lo, hi = (float(v) for v in np.percentile(histogram_sample(pixels), percentiles))
    if np.issubdtype(np.asarray(pixels).dtype, np.integer):
        return float(round((lo + hi) / 2.0)), float(max(round(hi - lo), 1))
    return (lo + hi) / 2.0, max(hi - lo, 1e-6 * max(abs(hi), 1.0))


@dataclass(frozen=True)
class WindowPreset:
    """A named window of assets/wl_presets.toml: percentiles (lo, hi) of the image's histogram."""

    name: str
    label: str
    key: str
    percentiles: tuple[float, float]
    tooltip: str = ""


def window_presets() -> dict[str, WindowPreset]:
    """The packaged presets (assets/wl_presets.toml), in file order."""
    import tomllib

    from radgaze.assets import asset_text

    table = tomllib.loads(asset_text("wl_presets.toml"))
    out = {}
    for name, spec in table.items():
        lo, hi = (float(v) for v in spec["percentiles"])
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"wl_presets.toml [{name}]: expected 0 <= lo < hi <= 100, got {lo}, {hi}")
        out[name] = WindowPreset(
            name, spec.get("label", name), spec.get("key", ""), (lo, hi), spec.get("tooltip", "")
        )
    return out


def preset_window(pixels: np.ndarray, preset: WindowPreset) -> tuple[float, float]:
    """(center, width) of a preset on this image (loaded pixel units)."""
    return percentile_window(pixels, preset.percentiles)


def file_value(meta: ImageMeta | None, value: float) -> float:
    """A loaded pixel value in the file's own terms (MONOCHROME1: lo + hi - x; otherwise unchanged)."""
    mirror = getattr(meta, "file_mirror", None)
    return value if mirror is None else mirror - value


def file_window(meta: ImageMeta | None, center: float, width: float) -> tuple[float, float]:
    """A window over loaded values as the file's tags would say it (MONOCHROME1: centre mirrored; the
    width is the same: LINEAR_EXACT is symmetric)."""
    return file_value(meta, center), width


def loaded_window(meta: ImageMeta | None, center_file: float, width: float) -> tuple[float, float]:
    """The inverse of :func:`file_window` (the mirror is its own inverse)."""
    return file_value(meta, center_file), width


def pixel_type_label(pixels: np.ndarray, meta: ImageMeta | None) -> str:
    """What the file holds, as a PACS user reads it: "uint8" for 8-bit PNG/JPEG (loaded as uint16), "15-bit"
    for a DICOM storing 15 of 16 bits, "float32" for float pixels."""
    if pixels.dtype.kind == "f":
        return str(pixels.dtype)
    bits = int(getattr(meta, "bits_stored", 0) or 0)
    if meta is None or bits <= 0:
        return str(pixels.dtype)
    if bits <= 8 and getattr(meta, "source_format", "dicom") != "dicom":
        return "uint8"
    return f"{bits}-bit"


def _window_01(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM LINEAR_EXACT (PS3.3 C.11.2.1.3.2) scaled to [0, 1]: clip((x - c) / w + 0.5, 0, 1)."""
    return np.clip((x - center) / width + 0.5, 0.0, 1.0)


def _check_window(center: float, width: float) -> None:
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ValueError(
            f"window: expected a finite center and a width > 0, got center={center}, width={width}"
        )


def _to_uint8(y01: np.ndarray, invert: bool) -> np.ndarray:
    out = np.floor(y01 * 255.0 + 0.5).astype(np.uint8)
    return 255 - out if invert else out


def window_lut(center: float, width: float, *, invert: bool = False, n_levels: int = 65536) -> np.ndarray:
    """uint8 (n_levels,) display values for the integer pixel values 0..n_levels-1 (LINEAR_EXACT window);
    ``invert`` gives 255 - y."""
    _check_window(center, width)
    if n_levels < 1:
        raise ValueError(f"window_lut: expected n_levels >= 1, got {n_levels}")
    return _to_uint8(_window_01(np.arange(n_levels, dtype=np.float64), center, width), invert)


def apply_window(pixels: np.ndarray, center: float, width: float, *, invert: bool = False) -> np.ndarray:
    """uint8 image of the same shape: integer pixels through :func:`window_lut`, float pixels computed
    directly (same formula, same rounding)."""
    _check_window(center, width)
    pixels = np.asarray(pixels)
    if pixels.dtype in (np.uint8, np.uint16):
        return window_lut(center, width, invert=invert, n_levels=256 if pixels.dtype == np.uint8 else 65536)[
            pixels
        ]
    return _to_uint8(_window_01(pixels.astype(np.float64), center, width), invert)


def windowed01(img: LoadedImage) -> np.ndarray:
    """A loaded radiograph as the model sees it (training, ``radgaze eval``, review): float32 (H, W) in [0, 1]
    through its default window (:func:`default_window`)."""
    center, width = default_window(img)
    return apply_window(img.pixels, center, width).astype(np.float32) / 255.0


def apply_voi_lut(pixels: np.ndarray, voi: VoiLut, *, invert: bool = False) -> np.ndarray:
    """uint8 image of the same shape through a file's VOI LUT (values outside the table take its ends)."""
    idx = np.clip(np.rint(np.asarray(pixels, dtype=np.float64) - voi.first_mapped), 0, voi.lut_01.size - 1)
    return _to_uint8(voi.lut_01[idx.astype(np.intp)].astype(np.float64), invert)
