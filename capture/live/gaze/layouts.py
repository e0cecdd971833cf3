"""Channel layouts of LSL eye-tracker streams: which channel is what; chunks into gaze records.

Built-in layouts follow the public LSL bridges (see REFERENCE-NOTES.md, "Lab Streaming Layer
eye-tracker bridges"): Tobii Pro, Pupil Capture relay, Gazepoint, EyeLink. Any other tracker is read through
the XDF Gaze meta-data convention (channel ``type`` ScreenX / ScreenY / Confidence / Diameter, ``eye``
left / right / both, ``unit`` normalized / pixels), or through a user TOML/JSON file naming the channels.

Everything here is pure (numpy + the standard library): no pylsl, no threads. Screen coordinates out are
pixels of the display, origin top-left, y down (capture/records.py). Binocular samples combine by validity:
the mean of the valid eyes, else the one valid eye, else the sample is invalid (coordinates NaN, the row kept,
``GAZE_VALID`` unset).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgaze.capture.errors import ConfigError, StreamLayoutError
from radgaze.capture.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry

NORMALIZED, PIXELS = "normalized", "pixels"
_UNIT_ALIASES = {
    "normalized": NORMALIZED,
    "normalised": NORMALIZED,
    "norm": NORMALIZED,
    "pixels": PIXELS,
    "pixel": PIXELS,
    "px": PIXELS,
}
NUMERIC_FORMATS = ("float32", "double64")  # LSL channel formats a gaze layout accepts

# Pupil Labs' default minimum data confidence (Pupil Capture/Player setting "min_data_confidence" = 0.6).
PUPIL_CONFIDENCE_MIN = 0.6
# A Confidence channel of the XDF Gaze meta-data has no threshold convention; half of its [0, 1] range is the
# neutral choice (overridable in a layout config file).
GENERIC_CONFIDENCE_MIN = 0.5
# EyeLink marks missing data with MISSING_DATA = -32768 (EyeLink SDK, eye_data.h) and pylink's float fields
# with 1e8 (MISSING_DATA float); anything this far off any screen is not a gaze position.
EYELINK_MISSING = -32768.0
FAR_OFF_SCREEN_PX = 1e7


@dataclass(frozen=True)
class EyeChannels:
    """Channel indices (0-based) of one eye, or of a combined "both eyes" point."""

    x: int
    y: int
    pupil: int | None = None
    eye: str = "both"  # left / right / both


@dataclass(frozen=True)
class GazeLayout:
    """How to read one kind of gaze stream.

    ``eyes`` lists the (x, y[, pupil]) channel groups combined by validity; ``pupil_channels`` are extra pupil
    channels (averaged over finite positive values) used when the eyes carry none. A sample's eye is valid
    when its x and y are finite, not a sentinel, the ``confidence`` channel (if any) is >= ``confidence_min``
    and the ``valid_channel`` (if any) is >= 0.5.
    """

    name: str
    labels: tuple[str, ...]  # channel labels in order (what the bridge publishes)
    eyes: tuple[EyeChannels, ...]
    unit: str = NORMALIZED
    y_up: bool = False  # True when y grows upwards (Pupil's norm_pos)
    confidence: int | None = None
    confidence_min: float = 0.0
    valid_channel: int | None = None
    pupil_channels: tuple[int, ...] = ()
    sentinels: tuple[float, ...] = ()
    # published metadata per channel (sim-tracker); types/units follow the XDF Gaze meta-data convention
    channel_types: tuple[str, ...] = field(default=())
    channel_eyes: tuple[str, ...] = field(default=())
    channel_units: tuple[str, ...] = field(default=())
    stream_name: str = "radgaze-gaze"
    stream_type: str = "Gaze"
    channel_format: str = "float32"
    manufacturer: str = ""

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    def describe(self) -> str:
        return f"{self.name!r} ({self.n_channels} channels: {', '.join(self.labels)})"


def _meta(n: int, types: dict[int, str], eyes: dict[int, str], units: dict[int, str]):
    return (
        tuple(types.get(i, "Misc") for i in range(n)),
        tuple(eyes.get(i, "both") for i in range(n)),
        tuple(units.get(i, "") for i in range(n)),
    )


def _tobii() -> GazeLayout:
    labels = ("left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil")
    types, eyes, units = _meta(
        6,
        {0: "ScreenX", 1: "ScreenY", 2: "Diameter", 3: "ScreenX", 4: "ScreenY", 5: "Diameter"},
        {0: "left", 1: "left", 2: "left", 3: "right", 4: "right", 5: "right"},
        {0: NORMALIZED, 1: NORMALIZED, 2: "mm", 3: NORMALIZED, 4: NORMALIZED, 5: "mm"},
    )
    return GazeLayout(
        "tobii",
        labels,
        (EyeChannels(0, 1, 2, "left"), EyeChannels(3, 4, 5, "right")),
        channel_types=types,
        channel_eyes=eyes,
        channel_units=units,
        stream_name="Tobii",
        stream_type="Eyetracker",
        channel_format="float32",
        manufacturer="Tobii",
    )


def _pupil() -> GazeLayout:
    labels = (
        "confidence", "norm_pos_x", "norm_pos_y",
        "gaze_point_3d_x", "gaze_point_3d_y", "gaze_point_3d_z",
        "eye_center0_3d_x", "eye_center0_3d_y", "eye_center0_3d_z",
        "eye_center1_3d_x", "eye_center1_3d_y", "eye_center1_3d_z",
        "gaze_normal0_x", "gaze_normal0_y", "gaze_normal0_z",
        "gaze_normal1_x", "gaze_normal1_y", "gaze_normal1_z",
        "diameter0_2d", "diameter1_2d", "diameter0_3d", "diameter1_3d",
    )  # fmt: skip
    types, eyes, units = _meta(
        22,
        {
            0: "Confidence",
            1: "ScreenX",
            2: "ScreenY",
            18: "Diameter",
            19: "Diameter",
            20: "Diameter",
            21: "Diameter",
        },
        {18: "right", 19: "left", 20: "right", 21: "left"},  # Pupil: eye0 = right, eye1 = left
        {0: "normalized", 1: NORMALIZED, 2: NORMALIZED, 18: "pixels", 19: "pixels", 20: "mm", 21: "mm"},
    )
    return GazeLayout(
        "pupil",
        labels,
        (EyeChannels(1, 2, None, "both"),),
        y_up=True,  # Pupil's normalized coordinates have their origin bottom-left
        confidence=0,
        confidence_min=PUPIL_CONFIDENCE_MIN,
        pupil_channels=(20, 21),
        channel_types=types,
        channel_eyes=eyes,
        channel_units=units,
        stream_name="pupil_capture",
        stream_type="Gaze",
        channel_format="double64",
        manufacturer="Pupil Labs",
    )


def _gazepoint() -> GazeLayout:
    labels = ("FPOGX", "FPOGY", "FPOGS", "FPOGD", "FPOGID", "FPOGV")
    types, eyes, units = _meta(
        6,
        {0: "ScreenX", 1: "ScreenY", 2: "FixationStart", 3: "FixationDuration", 4: "FixationId", 5: "Valid"},
        {},
        {0: NORMALIZED, 1: NORMALIZED, 2: "s", 3: "s"},
    )
    return GazeLayout(
        "gazepoint",
        labels,
        (EyeChannels(0, 1, None, "both"),),
        valid_channel=5,
        channel_types=types,
        channel_eyes=eyes,
        channel_units=units,
        stream_name="GazepointEyeTracker",
        stream_type="gaze",
        channel_format="float32",
        manufacturer="Gazepoint",
    )


def _eyelink() -> GazeLayout:
    labels = (
        "leftEyeX", "leftEyeY", "rightEyeX", "rightEyeY", "leftPupilArea", "rightPupilArea",
        "pixelsPerDegreeX", "pixelsPerDegreeY", "eyelink_timestamp", "LSL_timestamp",
    )  # fmt: skip
    types, eyes, units = _meta(
        10,
        {0: "ScreenX", 1: "ScreenY", 2: "ScreenX", 3: "ScreenY", 4: "Area", 5: "Area", 6: "PPD", 7: "PPD"},
        {0: "left", 1: "left", 2: "right", 3: "right", 4: "left", 5: "right"},
        {0: PIXELS, 1: PIXELS, 2: PIXELS, 3: PIXELS, 4: "a.u.", 5: "a.u.", 8: "ms", 9: "s"},
    )
    return GazeLayout(
        "eyelink",
        labels,
        (EyeChannels(0, 1, 4, "left"), EyeChannels(2, 3, 5, "right")),
        unit=PIXELS,
        sentinels=(EYELINK_MISSING,),
        channel_types=types,
        channel_eyes=eyes,
        channel_units=units,
        stream_name="EyeLink",
        stream_type="Gaze",
        channel_format="double64",
        manufacturer="SR Research",
    )


def _generic_published() -> GazeLayout:
    """The generic layout sim-tracker publishes: XDF Gaze meta-data, binocular, normalized."""
    labels = ("LeftX", "LeftY", "LeftDiameter", "RightX", "RightY", "RightDiameter", "Confidence")
    types = ("ScreenX", "ScreenY", "Diameter", "ScreenX", "ScreenY", "Diameter", "Confidence")
    eyes = ("left", "left", "left", "right", "right", "right", "both")
    units = (NORMALIZED, NORMALIZED, "mm", NORMALIZED, NORMALIZED, "mm", NORMALIZED)
    return GazeLayout(
        "generic",
        labels,
        (EyeChannels(0, 1, 2, "left"), EyeChannels(3, 4, 5, "right")),
        confidence=6,
        confidence_min=GENERIC_CONFIDENCE_MIN,
        channel_types=types,
        channel_eyes=eyes,
        channel_units=units,
        stream_name="radgaze-gaze",
        stream_type="Gaze",
        channel_format="float32",
        manufacturer="radgaze",
    )


BUILTIN_LAYOUTS: dict[str, GazeLayout] = {
    lay.name: lay for lay in (_tobii(), _pupil(), _gazepoint(), _eyelink(), _generic_published())
}
LAYOUT_NAMES = tuple(BUILTIN_LAYOUTS)
# names of stream (lower case substrings) that identify a bridge when the stream carries no channel labels
_NAME_HINTS = {"tobii": "tobii", "pupil": "pupil", "gazepoint": "gazepoint", "eyelink": "eyelink"}


@dataclass(frozen=True)
class StreamDescription:
    """What a stream says about itself (from its XML header): enough to choose a layout."""

    name: str
    type: str
    n_channels: int
    channel_format: str  # "float32", "double64", "string", "int32", ...
    nominal_rate_hz: float = 0.0
    source_id: str = ""
    hostname: str = ""
    labels: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    eyes: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    manufacturer: str = ""


# ---------------------------------------------------------------------------------------------------------
# choosing a layout


def _check_shape(layout: GazeLayout, desc: StreamDescription, why: str) -> None:
    if desc.channel_format not in NUMERIC_FORMATS:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: expected channel format float32 or double64 ({why} {layout.name}), "
            f"got {desc.channel_format}"
        )
    if desc.n_channels != layout.n_channels:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: layout {layout.describe()} ({why}) expects {layout.n_channels} "
            f"channels, the stream has {desc.n_channels}"
            + (f" ({', '.join(desc.labels)})" if any(desc.labels) else "")
        )


def _labels_match(layout: GazeLayout, labels: tuple[str, ...]) -> bool:
    return len(labels) == layout.n_channels and all(
        a.strip().lower() == b.lower() for a, b in zip(labels, layout.labels)
    )


def resolve_layout(
    desc: StreamDescription,
    forced: str | GazeLayout | None = None,
    config_path: str | Path | None = None,
) -> GazeLayout:
    """Choose the layout of a stream: forced > config file > channel labels > XDF types > stream name.

    Raises StreamLayoutError when the stream fits none (naming what the layouts expect and what came) or
    does not fit the forced/configured layout; ConfigError for a bad config file.
    """
    if config_path is not None:
        layout = load_layout_config(config_path, desc)
        _check_shape(layout, desc, f"configured in {config_path}")
        return layout
    if isinstance(forced, GazeLayout):
        _check_shape(forced, desc, "forced")
        return forced
    if forced is not None:
        if forced not in BUILTIN_LAYOUTS:
            raise ConfigError(f"unknown gaze layout {forced!r}; expected one of {', '.join(LAYOUT_NAMES)}")
        if forced == "generic":
            layout = generic_layout_from_types(desc)
            if layout is None:
                raise StreamLayoutError(
                    f"gaze stream {desc.name!r}: layout 'generic' needs channels of type ScreenX and ScreenY "
                    f"(XDF Gaze meta-data), got types {list(desc.types) or 'none'}"
                )
            return layout
        _check_shape(BUILTIN_LAYOUTS[forced], desc, "forced")
        return BUILTIN_LAYOUTS[forced]
    for layout in BUILTIN_LAYOUTS.values():
        if _labels_match(layout, desc.labels):
            _check_shape(layout, desc, "by channel labels")
            return layout
    generic = generic_layout_from_types(desc)
    if generic is not None:
        _check_shape(generic, desc, "by channel types")
        return generic
    lowered = desc.name.lower()
    for name, hint in _NAME_HINTS.items():
        if hint in lowered:
            _check_shape(BUILTIN_LAYOUTS[name], desc, f"by stream name {desc.name!r}")
            return BUILTIN_LAYOUTS[name]
    expected = "; ".join(lay.describe() for lay in BUILTIN_LAYOUTS.values() if lay.name != "generic")
    raise StreamLayoutError(
        f"gaze stream {desc.name!r} (type {desc.type!r}, {desc.n_channels} x {desc.channel_format}, labels "
        f"{list(desc.labels) or 'none'}) matches no layout; expected one of: {expected}; or channels typed "
        f"ScreenX/ScreenY (XDF Gaze meta-data); or a layout config file"
    )


def _unit(value: str, where: str) -> str:
    unit = _UNIT_ALIASES.get(value.strip().lower()) if value else NORMALIZED
    if unit is None:
        raise StreamLayoutError(f"{where}: expected unit normalized or pixels, got {value!r}")
    return unit


def generic_layout_from_types(desc: StreamDescription) -> GazeLayout | None:
    """A layout from XDF Gaze meta-data channel types (ScreenX/ScreenY per eye, Confidence, Diameter).

    Returns None when the stream has no ScreenX/ScreenY channels. A missing unit means normalized.
    """
    types = [t.strip().lower() for t in desc.types] + [""] * (desc.n_channels - len(desc.types))
    eyes = [e.strip().lower() or "both" for e in desc.eyes] + ["both"] * (desc.n_channels - len(desc.eyes))
    units = list(desc.units) + [""] * (desc.n_channels - len(desc.units))
    groups: list[EyeChannels] = []
    for eye in ("left", "right", "both"):
        xs = [i for i, t in enumerate(types) if t == "screenx" and eyes[i] == eye]
        ys = [i for i, t in enumerate(types) if t == "screeny" and eyes[i] == eye]
        if xs and ys:
            ds = [i for i, t in enumerate(types) if t == "diameter" and eyes[i] == eye]
            groups.append(EyeChannels(xs[0], ys[0], ds[0] if ds else None, eye))
    if not groups:
        return None
    if len(groups) == 3:  # prefer the two eyes when a combined point is there too
        groups = groups[:2]
    unit_set = {_unit(units[g.x], f"gaze stream {desc.name!r} channel {g.x}") for g in groups}
    if len(unit_set) != 1:
        raise StreamLayoutError(f"gaze stream {desc.name!r}: ScreenX channels mix units {sorted(unit_set)}")
    conf = [i for i, t in enumerate(types) if t == "confidence"]
    labels = (
        tuple(desc.labels)
        if len(desc.labels) == desc.n_channels
        else tuple(f"ch{i}" for i in range(desc.n_channels))
    )
    return GazeLayout(
        "generic",
        labels,
        tuple(groups),
        unit=unit_set.pop(),
        confidence=conf[0] if conf else None,
        confidence_min=GENERIC_CONFIDENCE_MIN if conf else 0.0,
    )


_ROLES = ("x", "y", "pupil", "left_x", "left_y", "left_pupil", "right_x", "right_y", "right_pupil")


def load_layout_config(path: str | Path, desc: StreamDescription) -> GazeLayout:
    """A user layout from TOML or JSON, channels named by label or 0-based index.

    Example (TOML)::

        [gaze_layout]
        unit = "pixels"            # or "normalized" (default)
        y_up = false
        confidence_min = 0.6       # with a "confidence" channel
        [gaze_layout.channels]     # roles: x y pupil left_x left_y left_pupil right_x right_y right_pupil
        left_x = "GazeLeftX"       #        confidence valid
        left_y = 1
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"gaze layout config {path}: cannot read it as TOML/JSON ({exc})") from exc
    cfg = data.get("gaze_layout", data)
    channels = cfg.get("channels")
    if not isinstance(channels, dict) or not channels:
        raise ConfigError(
            f"gaze layout config {path}: expected a [gaze_layout.channels] table, got {channels!r}"
        )
    lower_labels = [lab.strip().lower() for lab in desc.labels]

    def index(role: str) -> int | None:
        ref = channels.get(role)
        if ref is None:
            return None
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref < desc.n_channels:
                raise StreamLayoutError(
                    f"gaze layout config {path}: {role} = channel {ref}, "
                    f"the stream has {desc.n_channels} channels"
                )
            return ref
        if isinstance(ref, str) and ref.strip().lower() in lower_labels:
            return lower_labels.index(ref.strip().lower())
        raise StreamLayoutError(
            f"gaze layout config {path}: {role} = {ref!r} is not a channel of stream {desc.name!r} "
            f"(labels {list(desc.labels) or 'none'})"
        )

    unknown = set(channels) - set(_ROLES) - {"confidence", "valid"}
    if unknown:
        raise ConfigError(f"gaze layout config {path}: unknown roles {sorted(unknown)}; expected {_ROLES}")
    groups = []
    for prefix, eye in (("left_", "left"), ("right_", "right"), ("", "both")):
        x, y = index(prefix + "x"), index(prefix + "y")
        if (x is None) != (y is None):
            raise ConfigError(f"gaze layout config {path}: {prefix}x and {prefix}y must be given together")
        if x is not None:
            groups.append(EyeChannels(x, y, index(prefix + "pupil"), eye))
    if not groups:
        raise ConfigError(f"gaze layout config {path}: expected x/y or left_x/left_y or right_x/right_y")
    labels = (
        tuple(desc.labels)
        if len(desc.labels) == desc.n_channels
        else tuple(f"ch{i}" for i in range(desc.n_channels))
    )
    return GazeLayout(
        "config",
        labels,
        tuple(groups),
        unit=_unit(str(cfg.get("unit", NORMALIZED)), f"gaze layout config {path}"),
        y_up=bool(cfg.get("y_up", False)),
        confidence=index("confidence"),
        confidence_min=float(cfg.get("confidence_min", GENERIC_CONFIDENCE_MIN)),
        valid_channel=index("valid"),
    )


# ---------------------------------------------------------------------------------------------------------
# decoding / encoding


def decode_samples(
    layout: GazeLayout, data: np.ndarray, display: DisplayGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw channels (n, n_channels) -> (x_screen_px, y_screen_px, pupil, valid), each (n,).

    Eyes combine by validity (mean of valid eyes, else the valid one). Invalid samples: x, y, pupil NaN.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != layout.n_channels:
        raise StreamLayoutError(
            f"layout {layout.describe()}: expected samples of shape (n, {layout.n_channels}), "
            f"got {data.shape}"
        )
    xs = data[:, [e.x for e in layout.eyes]]  # (n, n_eyes)
    ys = data[:, [e.y for e in layout.eyes]]
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(xs)
            & np.isfinite(ys)
            & (np.abs(xs) < FAR_OFF_SCREEN_PX)
            & (np.abs(ys) < FAR_OFF_SCREEN_PX)
        )
        for s in layout.sentinels:
            ok &= (xs != s) & (ys != s)
        if layout.confidence is not None:
            ok &= (data[:, layout.confidence] >= layout.confidence_min)[:, None]
        if layout.valid_channel is not None:
            ok &= (data[:, layout.valid_channel] >= 0.5)[:, None]
    n_ok = ok.sum(axis=1)
    valid = n_ok > 0
    denom = np.maximum(n_ok, 1)
    x = np.where(valid, np.where(ok, xs, 0.0).sum(axis=1) / denom, np.nan)
    y = np.where(valid, np.where(ok, ys, 0.0).sum(axis=1) / denom, np.nan)
    if layout.unit == NORMALIZED:
        y = 1.0 - y if layout.y_up else y
        x, y = x * display.screen_w_px, y * display.screen_h_px
    elif layout.y_up:
        y = display.screen_h_px - y
    pupil = _decode_pupil(layout, data, ok)
    pupil[~valid] = np.nan
    return x.astype(np.float32), y.astype(np.float32), pupil.astype(np.float32), valid


def _decode_pupil(layout: GazeLayout, data: np.ndarray, eye_ok: np.ndarray) -> np.ndarray:
    """Mean of the finite positive pupil values (of valid eyes when the eyes carry pupils); NaN if none."""
    eye_pupils = [e.pupil for e in layout.eyes]
    if all(p is not None for p in eye_pupils):
        values, use = data[:, eye_pupils], eye_ok
    elif layout.pupil_channels:
        values, use = data[:, list(layout.pupil_channels)], np.ones((data.shape[0], 1), bool)
    else:
        return np.full(data.shape[0], np.nan)
    with np.errstate(invalid="ignore"):
        use = use & np.isfinite(values) & (values > 0)
    n = use.sum(axis=1)
    return np.where(n > 0, np.where(use, values, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def to_gaze_records(
    layout: GazeLayout, data: np.ndarray, t_lsl: np.ndarray, display: DisplayGeometry
) -> np.ndarray:
    """Raw channels (n, c) with times (n,) -> GAZE_DTYPE rows (x_img/y_img NaN: the aligner maps them)."""
    x, y, pupil, valid = decode_samples(layout, data, display)
    out = np.empty(len(t_lsl), GAZE_DTYPE)
    out["t_lsl"] = t_lsl
    out["x_screen_px"], out["y_screen_px"], out["pupil"] = x, y, pupil
    out["x_img_px"] = np.nan
    out["y_img_px"] = np.nan
    out["flags"] = np.where(valid, GAZE_VALID, 0).astype(np.uint8)
    return out


def encode_samples(
    layout: GazeLayout,
    x_screen_px: np.ndarray,
    y_screen_px: np.ndarray,
    pupil: np.ndarray,
    valid: np.ndarray,
    display: DisplayGeometry,
) -> np.ndarray:
    """Screen gaze (n,) -> raw channels (n, n_channels) as the layout's bridge would send them.

    Both eyes get the same point; an invalid sample is written the way the bridge marks it (NaN, confidence
    0, FPOGV 0, EyeLink MISSING_DATA). Used by sim-tracker.
    """
    n = len(x_screen_px)
    x = np.asarray(x_screen_px, np.float64)
    y = np.asarray(y_screen_px, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(x) & np.isfinite(y)
    if layout.unit == NORMALIZED:
        x, y = x / display.screen_w_px, y / display.screen_h_px
        y = 1.0 - y if layout.y_up else y
    elif layout.y_up:
        y = display.screen_h_px - y
    p = np.where(np.isfinite(pupil), pupil, 3.0)
    out = np.zeros((n, layout.n_channels))
    bad = EYELINK_MISSING if layout.sentinels else np.nan
    for eye in layout.eyes:
        out[:, eye.x] = np.where(valid, x, bad)
        out[:, eye.y] = np.where(valid, y, bad)
        if eye.pupil is not None:
            out[:, eye.pupil] = np.where(valid, p, 0.0 if layout.sentinels else np.nan)
    for ch in layout.pupil_channels:
        out[:, ch] = np.where(valid, p, 0.0)
    if layout.confidence is not None:
        out[:, layout.confidence] = np.where(valid, 1.0, 0.0)
    if layout.valid_channel is not None:
        out[:, layout.valid_channel] = valid.astype(np.float64)
    if layout.name == "eyelink":  # pixels per degree at the screen centre, as the EyeLink bridge sends them
        out[:, 6], out[:, 7] = _ppd_centre(display)
    return out


def _ppd_centre(display: DisplayGeometry) -> tuple[float, float]:
    """Screen px per degree of visual angle at the screen centre: px/mm * distance * tan(1 deg)."""
    mm_per_deg = display.viewing_distance_mm * np.tan(np.deg2rad(1.0))
    return (
        display.screen_w_px / display.screen_w_mm * mm_per_deg,
        display.screen_h_px / display.screen_h_mm * mm_per_deg,
    )
