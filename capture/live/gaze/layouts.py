"""Channel layouts of LSL eye-tracker streams: which channel is what; chunks into gaze records.

Built-in layouts follow the public LSL bridges, one data file each under ``assets/trackers/*.toml`` (loaded with
:func:`radgaze.assets.asset_text`; each file cites the bridge's source it was written from, see
REFERENCE-NOTES.md, "What the public LSL gaze bridges really publish"): Tobii Pro app, Pupil Capture
relay, Pupil Labs Neon/Invisible relay, Gazepoint (6 and 36 channels), EyeLink. Any other tracker is read
through the XDF Gaze meta-data convention (channel ``type`` ScreenX / ScreenY / Confidence / Diameter, ``eye``
left / right / both, ``unit`` normalized / pixels), or through a user TOML/JSON file naming the channels.

Everything here is pure (numpy + the standard library): no pylsl, no threads. Screen coordinates out are
pixels of the display, origin top-left, y down (capture/base/records.py). Binocular samples combine by validity:
the mean of the valid eyes, else the one valid eye corrected by half the eyes' last offset (no jump when an eye
drops out; capture/gazemath/binocular.py), else the sample is invalid (coordinates NaN, the row kept,
``GAZE_VALID`` unset). An eye is absent (never averaged in) when its point is NaN, a bridge's missing-value
code, far off any screen, exactly (0, 0) for bridges that fill unrecorded eyes with zeros, or flagged by the
bridge's confidence / validity channel.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgaze.assets import asset_text
from radgaze.capture.base.errors import ConfigError, StreamLayoutError
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.binocular import BinocularCombiner
from radgaze.capture.gazemath.plausible import on_screen
from radgaze.capture.io.display import ppd_screen

NORMALIZED, PIXELS = "normalized", "pixels"
# Units the bridges really write for screen coordinates: Tobii's app "screencoords" (its display-area
# coordinates, 0-1), Gazepoint's "percent" (a 0-1 fraction of the screen in its Open Gaze API), the XDF Gaze
# meta-data's "normalized" and "pixels".
_UNIT_ALIASES = {
    "normalized": NORMALIZED,
    "normalised": NORMALIZED,
    "norm": NORMALIZED,
    "screencoords": NORMALIZED,
    "screen_coords": NORMALIZED,
    "percent": NORMALIZED,
    "fraction": NORMALIZED,
    "pixels": PIXELS,
    "pixel": PIXELS,
    "px": PIXELS,
}
NUMERIC_FORMATS = ("float32", "double64")  # LSL channel formats a gaze layout accepts
TRACKER_FILES = ("tobii", "pupil", "neon", "gazepoint", "gazepoint36", "eyelink", "generic")

# Pupil Labs' default minimum data confidence (Pupil Capture/Player setting "min_data_confidence" = 0.6).
PUPIL_CONFIDENCE_MIN = 0.6
# A Confidence channel of the XDF Gaze meta-data has no threshold convention; half of its [0, 1] range is the
# neutral choice (overridable in a layout config file).
GENERIC_CONFIDENCE_MIN = 0.5
# EyeLink marks missing data with MISSING_DATA = -32768 (EyeLink SDK, eye_data.h) and pylink's float fields
# with 1e8 (MISSING_DATA float); anything this far off any screen is not a gaze position.
EYELINK_MISSING = -32768.0
FAR_OFF_SCREEN_PX = 1e7
# Coordinate systems (XDF Gaze meta-data ``coordinate_system``) that are not the screen / scene: Pupil's
# pupillometry outlet publishes norm_pos "ScreenX/Y" in eye-camera coordinates ("eye", "eye0", "eye1").
_NOT_SCREEN_PREFIX = "eye"


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
    when its x and y are finite, not a sentinel, not (0, 0) when ``zero_is_missing``, the ``confidence``
    channel (if any) is >= ``confidence_min`` and the ``valid_channel`` (if any) is not below 0.5 (a NaN
    validity says nothing: the coordinates decide).
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
    channel_coords: tuple[str, ...] = field(default=())
    nominal_rate_hz: float = 0.0
    zero_is_missing: bool = False  # an eye at exactly (0, 0) is absent (EyeLink app, 36-channel Gazepoint)
    stamps: str = "device"  # device | host-read: both kept as stamped (no dejitter), recorded in provenance
    type_key: str = "type"  # the channel key that carries ScreenX/... ("metatype" in pupil-labs/lsl-relay)
    bridge: str = ""  # the public source the layout was written from

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    def describe(self) -> str:
        return f"{self.name!r} ({self.n_channels} channels: {', '.join(self.labels)})"


def _tracker_index(labels: list[str], ref: object, where: str) -> int:
    if not isinstance(ref, str) or ref not in labels:
        raise ConfigError(f"{where}: expected a channel label of {labels}, got {ref!r}")
    return labels.index(ref)


def layout_from_tracker_file(data: dict, where: str) -> GazeLayout:
    """A built-in layout from its data file (``assets/trackers/<name>.toml``: stream facts, channels, roles)."""
    chans = data["channels"]
    labels = [c["label"] for c in chans]
    roles = data.get("roles", {})

    def idx(role: str) -> int | None:
        return _tracker_index(labels, roles[role], f"{where} roles.{role}") if role in roles else None

    eyes = []
    for prefix, eye in (("left_", "left"), ("right_", "right"), ("", "both")):
        if prefix + "x" in roles:
            eyes.append(EyeChannels(idx(prefix + "x"), idx(prefix + "y"), idx(prefix + "pupil"), eye))
    if not eyes:
        raise ConfigError(f"{where}: expected roles x/y or left_x/left_y or right_x/right_y")
    return GazeLayout(
        name=str(data["name"]),
        labels=tuple(labels),
        eyes=tuple(eyes),
        unit=_unit(str(data.get("unit", NORMALIZED)), where),
        y_up=bool(data.get("y_up", False)),
        confidence=idx("confidence"),
        confidence_min=float(data.get("confidence_min", 0.0)),
        valid_channel=idx("valid"),
        pupil_channels=tuple(_tracker_index(labels, r, where) for r in roles.get("pupil_channels", [])),
        sentinels=tuple(float(v) for v in data.get("sentinels", [])),
        channel_types=tuple(c.get("type", "") for c in chans),
        channel_eyes=tuple(c.get("eye", "") for c in chans),
        channel_units=tuple(c.get("unit", "") for c in chans),
        channel_coords=tuple(c.get("coordinate_system", "") for c in chans),
        stream_name=str(data["stream_name"]),
        stream_type=str(data["stream_type"]),
        channel_format=str(data["channel_format"]),
        manufacturer=str(data.get("manufacturer", "")),
        nominal_rate_hz=float(data.get("nominal_rate_hz", 0.0)),
        zero_is_missing=bool(data.get("zero_is_missing", False)),
        stamps=str(data.get("stamps", "device")),
        type_key=str(data.get("type_key", "type")),
        bridge=str(data.get("bridge", "")),
    )


def _load_builtin_layouts() -> dict[str, GazeLayout]:
    out = {}
    for name in TRACKER_FILES:
        where = f"assets/trackers/{name}.toml"
        out[name] = layout_from_tracker_file(tomllib.loads(asset_text("trackers", f"{name}.toml")), where)
    return out


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
    types: tuple[str, ...] = ()  # channel <type>, or <metatype> where a bridge writes that instead
    eyes: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    manufacturer: str = ""
    coordinate_systems: tuple[str, ...] = ()

    def summary(self) -> str:
        labels = list(self.labels) if any(self.labels) else "none"
        return (
            f"{self.name!r} (type {self.type!r}, {self.n_channels} x {self.channel_format}, "
            f"{self.nominal_rate_hz:g} Hz, labels {labels})"
        )


# ---------------------------------------------------------------------------------------------------------
# choosing a layout


def suggest_config_line(desc: StreamDescription) -> str:
    """The ``--layout-config`` file (one TOML line) that would read this stream: x/y guessed from its labels."""
    labels = [lab.strip() for lab in desc.labels] if len(desc.labels) == desc.n_channels else []

    def pick(axis: str, fallback: int) -> str:
        for lab in labels:
            low = lab.lower()
            if low.endswith(axis) or low.endswith(axis + "_px") or f"pog{axis}" in low:
                return json.dumps(lab)
        return str(min(fallback, max(desc.n_channels - 1, 0)))

    unit = next((_UNIT_ALIASES.get(u.strip().lower()) for u in desc.units if u.strip()), None) or NORMALIZED
    return (
        f'--layout-config FILE holding the line: gaze_layout = {{ unit = "{unit}", channels = '
        f"{{ x = {pick('x', 0)}, y = {pick('y', 1)} }} }}"
    )


def _check_shape(layout: GazeLayout, desc: StreamDescription, why: str) -> None:
    if desc.channel_format not in NUMERIC_FORMATS:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: expected channel format float32 or double64 ({why} {layout.name}), "
            f"got {desc.channel_format}"
        )
    if desc.n_channels != layout.n_channels:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: layout {layout.describe()} ({why}) expects {layout.n_channels} "
            f"channels, got {desc.n_channels}"
            + (f" ({', '.join(desc.labels)})" if any(desc.labels) else "")
            + f"; to read it anyway: {suggest_config_line(desc)}"
        )


def check_stream_shape(desc: StreamDescription) -> None:
    """Refuse what no layout can read: no channels, or channels that are not numbers (one line each)."""
    if desc.n_channels <= 0:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: expected channels of gaze coordinates, got 0 channels"
        )
    if desc.channel_format not in NUMERIC_FORMATS:
        raise StreamLayoutError(
            f"gaze stream {desc.name!r}: expected float32 or double64 channels, got {desc.channel_format} "
            f"({desc.n_channels} channels)"
        )


def _labels_match(layout: GazeLayout, labels: tuple[str, ...]) -> bool:
    return len(labels) == layout.n_channels and all(
        a.strip().lower() == b.lower() for a, b in zip(labels, layout.labels)
    )


def _resolve_forced(desc: StreamDescription, forced: str) -> GazeLayout:
    if forced not in BUILTIN_LAYOUTS:
        raise ConfigError(f"unknown gaze layout {forced!r}; expected one of {', '.join(LAYOUT_NAMES)}")
    if forced == "generic":
        layout = generic_layout_from_types(desc)
        if layout is None:
            raise StreamLayoutError(
                f"gaze stream {desc.name!r}: layout 'generic' needs channels of type ScreenX and ScreenY "
                f"(XDF Gaze meta-data) on the screen, got types {list(desc.types) or 'none'}; to read it "
                f"anyway: {suggest_config_line(desc)}"
            )
        return layout
    _check_shape(BUILTIN_LAYOUTS[forced], desc, "forced")
    return BUILTIN_LAYOUTS[forced]


def resolve_layout(
    desc: StreamDescription,
    forced: str | GazeLayout | None = None,
    config_path: str | Path | None = None,
) -> GazeLayout:
    """Choose the layout of a stream: config file > forced > channel labels > XDF types > name and count.

    Raises StreamLayoutError when the stream fits none (naming what the layouts expect, what came, and the
    ``--layout-config`` line that would read it), does not fit the forced/configured layout, or sends gaze in a
    head-mounted tracker's scene-camera image (:func:`scene_camera_refusal`); ConfigError for a bad config
    file. A stream name chooses only for a stream without labels, and only with the bridge's channel count (the
    6- and 36-channel Gazepoint scripts share one name).
    """
    layout = _choose_layout(desc, forced, config_path)
    refusal = scene_camera_refusal(layout, desc)
    if refusal:
        raise StreamLayoutError(refusal)
    return layout


# Coordinate systems of a head-mounted tracker's scene camera (XDF Gaze meta-data; the Pupil Capture relay and
# the Neon/Invisible relay write "world" on their gaze channels)
SCENE_COORDINATE_SYSTEMS = frozenset({"world", "scene", "scene_camera", "scene-camera"})


def scene_camera_refusal(layout: GazeLayout, desc: StreamDescription) -> str | None:
    """Why a stream's gaze cannot be stored as screen gaze, when its x/y channels are in a scene camera's image
    (one line: what came, why it is wrong, what to do); None for screen gaze."""
    coords = layout.channel_coords if layout.channel_coords else desc.coordinate_systems
    xs = [e.x for e in layout.eyes]
    scene = [i for i in xs if i < len(coords) and coords[i].strip().lower() in SCENE_COORDINATE_SYSTEMS]
    if not scene:
        return None
    label = layout.labels[scene[0]] if scene[0] < len(layout.labels) else f"channel {scene[0]}"
    return (
        f"gaze stream {desc.name!r} sends gaze in a head-mounted tracker's scene-camera image ({label!r}, "
        f"coordinate system {coords[scene[0]].strip()!r}), not on the screen: it moves with the head and the "
        "monitor fills only part of that image, so it cannot be stored as screen gaze; map it to the screen first "
        "with AprilTag markers on the monitor (Pupil Core: `radgaze record --scene-markers` and `radgaze pupil-bridge`, which publishes screen gaze; "
        "Neon: `radgaze neon-bridge`) and send screen coordinates, or use a screen-based tracker"
    )


def _choose_layout(
    desc: StreamDescription, forced: str | GazeLayout | None, config_path: str | Path | None
) -> GazeLayout:
    check_stream_shape(desc)
    if config_path is not None:
        layout = load_layout_config(config_path, desc)
        _check_shape(layout, desc, f"configured in {config_path}")
        return layout
    if isinstance(forced, GazeLayout):
        _check_shape(forced, desc, "forced")
        return forced
    if forced is not None:
        return _resolve_forced(desc, forced)
    for layout in BUILTIN_LAYOUTS.values():
        if _labels_match(layout, desc.labels):
            return layout
    generic = generic_layout_from_types(desc)
    if generic is not None:
        return generic
    by_name = _layout_by_name(desc)
    if by_name is not None:
        return by_name
    raise StreamLayoutError(no_layout_message(desc))


def _layout_by_name(desc: StreamDescription) -> GazeLayout | None:
    """For a stream without channel labels: the built-in layout whose bridge's stream name it carries and
    whose channel count it has (the 6- and 36-channel Gazepoint scripts share a name, not a count)."""
    if any(lab.strip() for lab in desc.labels):
        return None
    name = desc.name.lower()
    named = [
        lay
        for lay in BUILTIN_LAYOUTS.values()
        if lay.name != "generic" and lay.stream_name.lower().split("_")[0] in name
    ]
    hits = [lay for lay in named if lay.n_channels == desc.n_channels]
    if len(hits) == 1:
        return hits[0]
    if named and not hits:
        _check_shape(named[0], desc, f"by stream name {desc.name!r}")  # raises: names expected vs got
    return None


def no_layout_message(desc: StreamDescription) -> str:
    expected = "; ".join(
        f"{lay.name} = {lay.n_channels} channels {', '.join(lay.labels[:4])}{', ...' if lay.n_channels > 4 else ''}"
        for lay in BUILTIN_LAYOUTS.values()
        if lay.name != "generic"
    )
    eye_only = _has_screen_types(desc) and not _screen_groups(desc)
    why = (
        " (its ScreenX/ScreenY channels are in eye-camera coordinates, not on the screen)" if eye_only else ""
    )
    return (
        f"gaze stream {desc.summary()} matches no layout{why}; expected the channel labels of one of: "
        f"{expected}; or channels typed ScreenX/ScreenY on the screen (XDF Gaze meta-data); to read it "
        f"anyway: {suggest_config_line(desc)}"
    )


def _unit(value: str, where: str) -> str:
    unit = _UNIT_ALIASES.get(value.strip().lower()) if value else NORMALIZED
    if unit is None:
        raise StreamLayoutError(
            f"{where}: expected unit normalized / screencoords / percent or pixels, got {value!r}"
        )
    return unit


def _padded(values: tuple[str, ...], n: int, fill: str = "") -> list[str]:
    return [v.strip().lower() for v in values][:n] + [fill] * (n - len(values))


def _has_screen_types(desc: StreamDescription) -> bool:
    return "screenx" in _padded(desc.types, desc.n_channels)


def _screen_groups(desc: StreamDescription) -> list[EyeChannels]:
    """ScreenX/ScreenY (+ Diameter) channel groups per eye, skipping eye-camera coordinate systems."""
    n = desc.n_channels
    types = _padded(desc.types, n)
    eyes = [e or "both" for e in _padded(desc.eyes, n, "both")]
    coords = _padded(desc.coordinate_systems, n)
    on_screen = [not c.startswith(_NOT_SCREEN_PREFIX) for c in coords]
    groups: list[EyeChannels] = []
    for eye in ("left", "right", "both"):
        xs = [i for i, t in enumerate(types) if t == "screenx" and eyes[i] == eye and on_screen[i]]
        ys = [i for i, t in enumerate(types) if t == "screeny" and eyes[i] == eye and on_screen[i]]
        if xs and ys:
            ds = [i for i, t in enumerate(types) if t in ("diameter", "pupilsize") and eyes[i] == eye]
            groups.append(EyeChannels(xs[0], ys[0], ds[0] if ds else None, eye))
    if len(groups) == 3:  # prefer the two eyes when a combined point is there too
        groups = groups[:2]
    return groups


def generic_layout_from_types(desc: StreamDescription) -> GazeLayout | None:
    """A layout from XDF Gaze meta-data channel types (ScreenX/ScreenY per eye, Confidence, Diameter).

    Returns None when the stream has no ScreenX/ScreenY channels on the screen (eye-camera coordinates do not
    count). A missing unit means normalized; Tobii's "screencoords" and Gazepoint's "percent" are normalized.
    """
    groups = _screen_groups(desc)
    if not groups:
        return None
    units = list(desc.units) + [""] * (desc.n_channels - len(desc.units))
    unit_set = {_unit(units[g.x], f"gaze stream {desc.name!r} channel {g.x}") for g in groups}
    if len(unit_set) != 1:
        raise StreamLayoutError(f"gaze stream {desc.name!r}: ScreenX channels mix units {sorted(unit_set)}")
    conf = [i for i, t in enumerate(_padded(desc.types, desc.n_channels)) if t == "confidence"]
    labels = _channel_labels(desc)
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
        zero_is_missing = false    # true: an eye at exactly (0, 0) is absent (bridges that zero-fill)
        missing_values = [-32768]  # the bridge's missing-value codes
        [gaze_layout.channels]     # roles: x y pupil left_x left_y left_pupil right_x right_y right_pupil
        left_x = "GazeLeftX"       #        confidence valid
        left_y = 1
    """
    path = Path(path)
    cfg = _read_config(path)
    index = _config_indexer(cfg["channels"], desc, path)
    groups = []
    for prefix, eye in (("left_", "left"), ("right_", "right"), ("", "both")):
        x, y = index(prefix + "x"), index(prefix + "y")
        if (x is None) != (y is None):
            raise ConfigError(f"gaze layout config {path}: {prefix}x and {prefix}y must be given together")
        if x is not None:
            groups.append(EyeChannels(x, y, index(prefix + "pupil"), eye))
    if not groups:
        raise ConfigError(f"gaze layout config {path}: expected x/y or left_x/left_y or right_x/right_y")
    labels = _channel_labels(desc)
    return GazeLayout(
        "config",
        labels,
        tuple(groups),
        unit=_unit(str(cfg.get("unit", NORMALIZED)), f"gaze layout config {path}"),
        y_up=bool(cfg.get("y_up", False)),
        confidence=index("confidence"),
        confidence_min=_config_number(cfg, "confidence_min", GENERIC_CONFIDENCE_MIN, path),
        valid_channel=index("valid"),
        sentinels=tuple(float(v) for v in cfg.get("missing_values", [])),
        zero_is_missing=bool(cfg.get("zero_is_missing", False)),
    )


def _config_number(cfg: dict, key: str, default: float, path: Path) -> float:
    """A number of a layout config file, or one ConfigError line (``confidence_min = "high"``)."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        # (nan made every sample invalid without a word: no comparison with nan holds)
        raise ConfigError(f"gaze layout config {path}: {key}: expected a finite number, got {value!r}")
    return float(value)


def _read_config(path: Path) -> dict:
    """The ``gaze_layout`` table of a TOML/JSON file, with a non-empty ``channels`` table of known roles."""
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
    unknown = set(channels) - set(_ROLES) - {"confidence", "valid"}
    if unknown:
        raise ConfigError(f"gaze layout config {path}: unknown roles {sorted(unknown)}; expected {_ROLES}")
    return cfg


def _config_indexer(channels: dict, desc: StreamDescription, path: Path):
    """role -> channel index (by label, case-insensitive, or 0-based index); None when the role is absent."""
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

    return index


# ---------------------------------------------------------------------------------------------------------
# decoding / encoding


def decode_samples(
    layout: GazeLayout,
    data: np.ndarray,
    display: DisplayGeometry,
    combiner: BinocularCombiner | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw channels (n, n_channels) -> (x_screen_px, y_screen_px, pupil, valid), each (n,).

    Eyes combine by validity: a left and a right eye through ``combiner`` (mean of both; one eye alone corrected
    by half the eyes' last offset; pass one combiner per stream to carry that offset across chunks), other
    groups as the mean of the valid ones. Invalid samples: x, y, pupil NaN.
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
        if layout.zero_is_missing:
            ok &= ~((xs == 0.0) & (ys == 0.0))
        if layout.confidence is not None:
            ok &= (data[:, layout.confidence] >= layout.confidence_min)[:, None]
        if layout.valid_channel is not None:
            ok &= ~(data[:, layout.valid_channel] < 0.5)[:, None]  # NaN validity: the coordinates decide
    ok &= _eyes_on_screen(layout, xs, ys, display)
    xs, ys = _to_screen_px(layout, xs, ys, display)  # eyes combined in px: their offset is a screen distance
    x, y, valid = _combine_eyes(layout, xs, ys, ok, combiner)
    pupil = _decode_pupil(layout, data, ok)
    pupil[~valid] = np.nan
    return x.astype(np.float32), y.astype(np.float32), pupil.astype(np.float32), valid


def _to_screen_px(
    layout: GazeLayout, xs: np.ndarray, ys: np.ndarray, display: DisplayGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """Each eye's point in screen px, origin top-left, y down."""
    if layout.unit == NORMALIZED:
        ys = 1.0 - ys if layout.y_up else ys
        return xs * display.screen_w_px, ys * display.screen_h_px
    return xs, (display.screen_h_px - ys if layout.y_up else ys)


def _eyes_on_screen(
    layout: GazeLayout, xs: np.ndarray, ys: np.ndarray, display: DisplayGeometry
) -> np.ndarray:
    """(n, n_eyes) bool: each eye's point, scaled to screen pixels, lies on the screen plus a margin
    (gazemath.plausible): judged after scaling, so a normalised 5e6 (7.7e9 px) is no gaze (issue 24)."""
    if layout.unit == NORMALIZED:
        xs, ys = xs * display.screen_w_px, ys * display.screen_h_px
    return on_screen(xs, ys, display)


def _combine_eyes(
    layout: GazeLayout, xs: np.ndarray, ys: np.ndarray, ok: np.ndarray, combiner: BinocularCombiner | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if tuple(e.eye for e in layout.eyes) == ("left", "right"):
        return (combiner or BinocularCombiner()).combine(xs, ys, ok)
    n_ok = ok.sum(axis=1)
    valid = n_ok > 0
    denom = np.maximum(n_ok, 1)
    x = np.where(valid, np.where(ok, xs, 0.0).sum(axis=1) / denom, np.nan)
    y = np.where(valid, np.where(ok, ys, 0.0).sum(axis=1) / denom, np.nan)
    return x, y, valid


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
    layout: GazeLayout,
    data: np.ndarray,
    t_lsl: np.ndarray,
    display: DisplayGeometry,
    combiner: BinocularCombiner | None = None,
) -> np.ndarray:
    """Raw channels (n, c) with times (n,) -> GAZE_DTYPE rows (x_img/y_img NaN: the aligner maps them)."""
    x, y, pupil, valid = decode_samples(layout, data, display, combiner)
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
    0, FPOGV 0, EyeLink MISSING_DATA, (0, 0) where the bridge zero-fills). Used by sim-tracker.
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
    bad = layout.sentinels[0] if layout.sentinels else (0.0 if layout.zero_is_missing else np.nan)
    for eye in layout.eyes:
        out[:, eye.x] = np.where(valid, x, bad)
        out[:, eye.y] = np.where(valid, y, bad)
        if eye.pupil is not None:
            out[:, eye.pupil] = np.where(valid, p, 0.0 if layout.zero_is_missing else np.nan)
    for ch in layout.pupil_channels:
        out[:, ch] = np.where(valid, p, 0.0)
    if layout.confidence is not None:
        out[:, layout.confidence] = np.where(valid, 1.0, 0.0)
    if layout.valid_channel is not None:
        out[:, layout.valid_channel] = valid.astype(np.float64)
    if all(
        c in layout.labels for c in PPD_CHANNELS
    ):  # px per degree at the screen centre, as the EyeLink app sends
        ppd_x, ppd_y = ppd_screen(display)
        out[:, layout.labels.index(PPD_CHANNELS[0])], out[:, layout.labels.index(PPD_CHANNELS[1])] = (
            ppd_x,
            ppd_y,
        )
    return out


PPD_CHANNELS = ("pixelsPerDegreeX", "pixelsPerDegreeY")  # the EyeLink app's px/deg at the gaze point


def tracker_ppd(layout: GazeLayout, data: np.ndarray) -> tuple[float, float] | None:
    """The median px/deg (x, y) a stream sends in its own channels (the EyeLink app), or None."""
    if not all(c in layout.labels for c in PPD_CHANNELS):
        return None
    cols = np.asarray(data, np.float64)[:, [layout.labels.index(c) for c in PPD_CHANNELS]]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(cols).all(axis=1) & (cols > 0).all(axis=1) & (cols < 1e4).all(axis=1)
    if not ok.any():
        return None
    ppd_x, ppd_y = np.median(cols[ok], axis=0)
    return float(ppd_x), float(ppd_y)


BUILTIN_LAYOUTS: dict[str, GazeLayout] = _load_builtin_layouts()
LAYOUT_NAMES = tuple(BUILTIN_LAYOUTS)


def _channel_labels(desc) -> tuple[str, ...]:
    """The stream's channel labels, or ch0, ch1, ... when it declares none (or not one per channel)."""
    if len(desc.labels) == desc.n_channels:
        return tuple(desc.labels)
    return tuple(f"ch{i}" for i in range(desc.n_channels))
