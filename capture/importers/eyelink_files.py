"""EyeLink recordings read as they are: EDF (through ``eyelinkio``, an optional extra) or ASC text (edf2asc).

Both readers return one :class:`EyeLinkRecording`: samples on EyeLink's own clock (ms since the tracker
started, as recorded; never re-timed), gaze in screen pixels per recorded eye, the per-sample gaze resolution
(pixels per degree, where the file holds it), EyeLink's parsed events (fixations, saccades, blinks) and the
messages. Missing values are NaN: EyeLink's ``MISSING_DATA`` (-32768) and its float form (1e8) in EDF, ``.``
in ASC (SR Research, EyeLink 1000 Plus User Manual, "Data file formats"; edf2asc).

EDF is read with the EDF access API that ``eyelinkio`` 0.3.0 bundles (SR Research's library, "all rights
reserved": an optional extra, ``pip install 'radgaze[eyelink]'``), one pass over its elements. eyelinkio's own
``read_edf`` re-times every sample from 0 at the nominal rate and so drops the tracker's clock and the gaps
between recording blocks; radgaze reads the elements itself to keep them.

ASC is read as text: a block runs from ``START`` to ``END``; its ``SAMPLES`` line says which eyes, whether
velocity (``VEL``) and resolution (``RES``) columns follow; sample lines are ``time`` then per eye ``x y
pupil``, then the velocities (per eye), then ``xres yres`` once, then flag characters. Events:
``EFIX eye stime etime dur axp ayp aps [xres yres]``, ``ESACC eye stime etime dur sxp syp exp eyp ampl pv
[xres yres]``, ``EBLINK eye stime etime dur``, ``MSG time text``; ``END time ... RES xres yres`` gives the
block's mean resolution.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError, ImportFormatError

EYELINK_MISSING_INT = -32768.0  # MISSING_DATA (EyeLink SDK, edf_data.h)
EYELINK_MISSING_FLOAT = 1e8  # float sample fields when missing (edfapi; pylink's MISSING_DATA float)
EVENT_FIXATION, EVENT_SACCADE, EVENT_BLINK = 1, 2, 3
EVENT_NAMES = {EVENT_FIXATION: "fixation", EVENT_SACCADE: "saccade", EVENT_BLINK: "blink"}
EYE_NAMES = ("left", "right")
# EyeLink's parsed events, times in ms on the tracker's clock; x/y: fixation mean or saccade start, *_end: the
# saccade's end (NaN for the others)
TRACKER_EVENT_DTYPE = np.dtype(
    [
        ("kind", "u1"),
        ("eye", "u1"),  # 0 left, 1 right
        ("t_start_ms", "f8"),
        ("t_end_ms", "f8"),
        ("x_px", "f4"),
        ("y_px", "f4"),
        ("x_end_px", "f4"),
        ("y_end_px", "f4"),
    ]
)
_COORDS = re.compile(r"^(GAZE_COORDS|DISPLAY_COORDS)\s*=?\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)")
EYELINK_EXTRA_HINT = (
    "reading EDF needs the optional extra: pip install 'radgaze[eyelink]' (eyelinkio 0.3.0, which bundles SR "
    "Research's EDF library); or convert the file with SR Research's edf2asc and import the .asc"
)


@dataclass
class EyeLinkRecording:
    """One EyeLink file: samples (n,) on the tracker's clock, per recorded eye (n, n_eyes), events, messages."""

    path: Path
    t_ms: np.ndarray  # (n,) f8, ms on EyeLink's clock
    x_px: np.ndarray  # (n, n_eyes) f8 screen px, NaN missing
    y_px: np.ndarray
    pupil: np.ndarray  # (n, n_eyes) f8, tracker units (area or diameter), NaN missing
    eyes: tuple[str, ...]  # ("left",), ("right",) or ("left", "right")
    rate_hz: float
    res_ppd: np.ndarray  # (n, 2) px/deg (x, y) from the tracker, NaN where the file holds none
    events: np.ndarray  # TRACKER_EVENT_DTYPE
    msg_t_ms: np.ndarray  # (m,) f8
    msg_text: list[str]
    pupil_unit: str = "area"
    block_res_ppd: list[tuple[float, float]] = field(default_factory=list)  # ASC END lines' mean resolution

    def screen_px(self) -> tuple[int, int] | None:
        """The display in px from ``DISPLAY_COORDS`` (the experiment's), else ``GAZE_COORDS`` (the tracker's)."""
        found: dict[str, tuple[int, int]] = {}
        for text in self.msg_text:
            m = _COORDS.match(text)
            if m:
                x0, y0, x1, y1 = (float(v) for v in m.groups()[1:])
                found.setdefault(m.group(1), (int(round(x1 - x0 + 1)), int(round(y1 - y0 + 1))))
        return found.get("DISPLAY_COORDS") or found.get("GAZE_COORDS")


def _missing_to_nan(values: np.ndarray) -> np.ndarray:
    """EyeLink's missing codes (-32768, 1e8 and anything that far off) as NaN."""
    v = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(v) | (v == EYELINK_MISSING_INT) | (np.abs(v) >= EYELINK_MISSING_FLOAT - 1)
    return np.where(bad, np.nan, v)


# ------------------------------------------------------------------------------------------------ EDF
def _edf_api():
    """eyelinkio's ctypes bindings of SR Research's EDF API, and its element type names."""
    try:
        from eyelinkio.edf import _edf2py as api
        from eyelinkio.edf._defines import event_constants
    except ImportError as exc:
        raise ConfigError(EYELINK_EXTRA_HINT) from exc
    except OSError as exc:  # the bundled library did not load on this platform
        raise ConfigError(
            f"eyelinkio could not load SR Research's EDF library ({exc}); {EYELINK_EXTRA_HINT}"
        ) from exc
    return api, event_constants


class _EdfCollector:
    """Lists filled element by element during the pass over an EDF file."""

    def __init__(self) -> None:
        self.samples: list[tuple] = []
        self.events: list[tuple] = []
        self.msgs: list[tuple[float, str]] = []
        self.rate_hz = 0.0
        self.eye_code = 0  # 1 left, 2 right, 3 binocular (RECORDINGS.eye)
        self.pupil_type = 0

    def sample(self, s) -> None:
        self.samples.append((s.time, s.gx[0], s.gx[1], s.gy[0], s.gy[1], s.pa[0], s.pa[1], s.rx, s.ry))

    def event(self, kind: int, e) -> None:
        if kind == EVENT_FIXATION:
            xy = (e.gavx, e.gavy, np.nan, np.nan)
        elif kind == EVENT_SACCADE:
            xy = (e.gstx, e.gsty, e.genx, e.geny)
        else:
            xy = (np.nan,) * 4
        self.events.append((kind, e.eye, float(e.sttime), float(e.entime), *xy))

    def message(self, e) -> None:
        lstr = e.message.contents
        raw = ctypes.string_at(ctypes.addressof(lstr) + ctypes.sizeof(ctypes.c_short), max(int(lstr.len), 0))
        self.msgs.append((float(e.sttime), raw.split(b"\0")[0].decode("utf-8", "replace").strip()))

    def recording(self, r) -> None:
        if r.state == 1:  # recording started
            self.rate_hz, self.eye_code, self.pupil_type = float(r.sample_rate), int(r.eye), int(r.pupil_type)


_END_KINDS = {"ENDFIX": EVENT_FIXATION, "ENDSACC": EVENT_SACCADE, "ENDBLINK": EVENT_BLINK}


def read_edf(path: str | Path) -> EyeLinkRecording:
    """An EDF file through the EDF API (see the module docstring). ImportFormatError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: expected an EyeLink EDF file, found nothing")
    api, names = _edf_api()
    err = ctypes.c_int(0)
    edf = api.edf_open_file(str(path.resolve()).encode(), 2, 1, 1, ctypes.byref(err))
    if not edf or err.value != 0:
        raise ImportFormatError(f"{path}: expected an EyeLink EDF file, the EDF library could not open it")
    col = _EdfCollector()
    try:
        while (name := names[api.edf_get_next_data(edf)]) != "NO_PENDING_ITEMS":
            if name == "SAMPLE_TYPE":
                col.sample(api.edf_get_float_data(edf).contents.fs)
            elif name in _END_KINDS:
                col.event(_END_KINDS[name], api.edf_get_float_data(edf).contents.fe)
            elif name == "MESSAGEEVENT":
                col.message(api.edf_get_float_data(edf).contents.fe)
            elif name == "RECORDING_INFO":
                col.recording(api.edf_get_float_data(edf).contents.rec)
    finally:
        api.edf_close_file(edf)
    return _edf_recording(path, col)


def _edf_recording(path: Path, col: _EdfCollector) -> EyeLinkRecording:
    if not col.samples or col.eye_code not in (1, 2, 3):
        raise ImportFormatError(f"{path}: expected recorded gaze samples, the EDF file holds none")
    s = np.asarray(col.samples, np.float64)
    eye_idx = {1: [0], 2: [1], 3: [0, 1]}[col.eye_code]
    res = _missing_to_nan(s[:, 7:9])
    with np.errstate(invalid="ignore"):
        res[~(res > 0)] = np.nan
    pupil = _missing_to_nan(s[:, 5:7][:, eye_idx])
    with np.errstate(invalid="ignore"):
        pupil[~(pupil > 0)] = np.nan
    ev = np.array([tuple(e) for e in col.events], TRACKER_EVENT_DTYPE) if col.events else _no_events()
    return EyeLinkRecording(
        path=path,
        t_ms=s[:, 0],
        x_px=_missing_to_nan(s[:, 1:3][:, eye_idx]),
        y_px=_missing_to_nan(s[:, 3:5][:, eye_idx]),
        pupil=pupil,
        eyes=tuple(EYE_NAMES[i] for i in eye_idx),
        rate_hz=col.rate_hz,
        res_ppd=res,
        events=ev,
        msg_t_ms=np.array([t for t, _ in col.msgs], np.float64),
        msg_text=[m for _, m in col.msgs],
        pupil_unit="area" if col.pupil_type == 0 else "diameter",  # PUPIL_AREA = 0 (edf_data.h)
    )


def _no_events() -> np.ndarray:
    return np.zeros(0, TRACKER_EVENT_DTYPE)


# ------------------------------------------------------------------------------------------------ ASC
@dataclass
class _AscLayout:
    """Sample columns of the current block (from its SAMPLES line)."""

    eyes: tuple[str, ...] = ()
    vel: bool = False
    res: bool = False
    rate_hz: float = 0.0


def _asc_number(token: str) -> float:
    return np.nan if token == "." else float(token)


_FLAGS = re.compile(
    r"^[.A-Z]{3,}$"
)  # a sample's flag characters ("...", "C..", "....."); its line ends there


def _leading_numbers(tokens: list[str]) -> list[float]:
    """Numbers (``.`` = missing) up to the flag characters; ValueError on anything else."""
    out = []
    for tok in tokens:
        if _FLAGS.match(tok):
            break
        out.append(_asc_number(tok))
    return out


def _samples_line(tokens: list[str], where: str) -> _AscLayout:
    eyes = tuple(e for e in EYE_NAMES if e.upper() in tokens)
    if not eyes:
        raise ImportFormatError(
            f"{where}: expected LEFT and/or RIGHT in the SAMPLES line, got {' '.join(tokens)}"
        )
    rate = float(tokens[tokens.index("RATE") + 1]) if "RATE" in tokens else 0.0
    return _AscLayout(eyes, "VEL" in tokens, "RES" in tokens, rate)


class _AscCollector:
    def __init__(self) -> None:
        self.layout = _AscLayout()
        self.layouts: set[tuple] = set()
        self.samples: list[list[float]] = []
        self.events: list[tuple] = []
        self.msgs: list[tuple[float, str]] = []
        self.block_res: list[tuple[float, float]] = []
        self.pupil_unit = "area"

    def sample(self, tokens: list[str]) -> None:
        lay, k = self.layout, len(self.layout.eyes)
        n_num = 1 + 3 * k + (2 * k if lay.vel else 0) + (2 if lay.res else 0)
        vals = _leading_numbers(tokens[:n_num])
        if len(vals) < n_num:
            vals += [np.nan] * (n_num - len(vals))  # edf2asc ends a missing sample's line early
        res = vals[n_num - 2 : n_num] if lay.res else [np.nan, np.nan]
        self.samples.append([*vals[: 1 + 3 * k], *res])

    def event(self, kind: int, tokens: list[str]) -> None:
        eye = EYE_NAMES.index("left" if tokens[1] == "L" else "right")
        t0, t1 = float(tokens[2]), float(tokens[3])
        nums = [_asc_number(tok) for tok in tokens[5:9]] + [np.nan] * 4
        if kind == EVENT_FIXATION:
            xy = (nums[0], nums[1], np.nan, np.nan)
        elif kind == EVENT_SACCADE:
            xy = tuple(nums[0:4])
        else:
            xy = (np.nan,) * 4
        self.events.append((kind, eye, t0, t1, *xy))


# a sample line starts at its first character with the sample's time; other digit lines continue a message
_SAMPLE_TIME = re.compile(r"^\d+(\.\d+)?$")
_ASC_EVENTS = {"EFIX": EVENT_FIXATION, "ESACC": EVENT_SACCADE, "EBLINK": EVENT_BLINK}


def _asc_line(col: _AscCollector, line: str, where: str) -> None:
    tokens = line.split()
    head = tokens[0]
    if line[0].isdigit() and _SAMPLE_TIME.match(head):
        if col.layout.eyes:  # before a block's SAMPLES line such a line continues a multi-line message
            col.sample(tokens)
    elif head in _ASC_EVENTS and len(tokens) >= 5:
        col.event(_ASC_EVENTS[head], tokens)
    elif head == "MSG" and len(tokens) >= 2:
        text = line.split(None, 2)[2] if len(tokens) > 2 else ""
        col.msgs.append((float(tokens[1]), text.strip()))
    elif head == "SAMPLES":
        col.layout = _samples_line(tokens, where)
        col.layouts.add((col.layout.eyes, col.layout.vel, col.layout.res))
    elif head == "END" and "RES" in tokens:
        i = tokens.index("RES")
        col.block_res.append((float(tokens[i + 1]), float(tokens[i + 2])))
    elif head == "PUPIL" and len(tokens) > 1:
        col.pupil_unit = tokens[1].lower()


def read_asc(path: str | Path) -> EyeLinkRecording:
    """An ASC file (edf2asc's text; see the module docstring). ImportFormatError naming the line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: expected an EyeLink ASC file, found nothing")
    col = _AscCollector()
    try:
        with path.open(encoding="ascii", errors="replace") as fh:
            for no, line in enumerate(fh, 1):
                if line.strip() and not line.startswith(("*", "#", "/")):
                    _asc_line(col, line.rstrip("\r\n"), f"{path} line {no}")
    except (ValueError, IndexError) as exc:
        raise ImportFormatError(
            f"{path} line {no}: expected an EyeLink ASC line, got {line[:80]!r} ({exc})"
        ) from exc
    return _asc_recording(path, col)


def _asc_recording(path: Path, col: _AscCollector) -> EyeLinkRecording:
    if not col.samples:
        raise ImportFormatError(f"{path}: expected EyeLink samples (START, SAMPLES, sample lines), got none")
    if len({lay[0] for lay in col.layouts}) > 1:
        raise ImportFormatError(f"{path}: expected the same eyes in every block, got {sorted(col.layouts)}")
    k = len(col.layout.eyes)
    s = np.asarray(col.samples, np.float64)
    pupil = s[:, 3 : 1 + 3 * k : 3]
    with np.errstate(invalid="ignore"):
        pupil = np.where(pupil > 0, pupil, np.nan)
    res = s[:, 1 + 3 * k :]
    with np.errstate(invalid="ignore"):
        res = np.where(res > 0, res, np.nan)
    return EyeLinkRecording(
        path=path,
        t_ms=s[:, 0],
        x_px=_missing_to_nan(s[:, 1 : 1 + 3 * k : 3]),
        y_px=_missing_to_nan(s[:, 2 : 2 + 3 * k : 3]),
        pupil=pupil,
        eyes=col.layout.eyes,
        rate_hz=col.layout.rate_hz,
        res_ppd=res,
        events=np.array(col.events, TRACKER_EVENT_DTYPE) if col.events else _no_events(),
        msg_t_ms=np.array([t for t, _ in col.msgs], np.float64),
        msg_text=[m for _, m in col.msgs],
        pupil_unit=col.pupil_unit,
        block_res_ppd=col.block_res,
    )


def read_eyelink(path: str | Path) -> EyeLinkRecording:
    """EDF or ASC by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".edf":
        return read_edf(path)
    if suffix == ".asc":
        return read_asc(path)
    raise ImportFormatError(f"{path}: expected an EyeLink .edf or .asc file, got suffix {suffix!r}")
