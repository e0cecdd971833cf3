"""XDF recordings (LabRecorder) -> a radgaze session file: one gaze stream + one word/marker stream + an image.

The file is read with ``pyxdf.load_xdf(path, synchronize_clocks=True, dejitter_timestamps=False)``: clock
offsets applied, so every time is on the recording computer's LSL clock, and the stamps otherwise kept as
recorded (a line fitted through them would move exact device stamps; ../shared/DESIGN.md, "One clock").

- Gaze stream: ``--gaze-stream NAME`` (a stream name or source id), else the one stream of content type Gaze /
  Eyetracker (any case) whose header a layout reads: chosen by layout match on channel labels / metadata, never
  by sample count (the Pupil Capture relay records ``pupil_capture``, ``pupil_capture_pupillometry_only`` —
  also typed Gaze, eye-camera coordinates, twice the rate — and ``pupil_capture_fixations``; only the first is
  screen gaze). When several fit, the error lists them with how to choose one. The layout is any that
  ``radgaze.capture.live.gaze.layouts`` knows (the bridges' labels; XDF Gaze meta-data by channel types; or
  ``--layout`` / ``--layout-config``).
- Word stream: ``--words-stream NAME``, else the string stream of type Markers / Words / Speech / Transcript.
  A sample is either one word (its time stamp is the word's start; it ends at the next word's start, at most
  :data:`MAX_WORD_S` later) or a JSON object ``{"word", "start", "end"[, "probability"]}`` whose times are on the
  sender's LSL clock (moved onto the recording clock by the same offset as the sample's time stamp). Spoken
  punctuation ("period", "new paragraph") is converted as in live dictation.
- Geometry: ``--image`` gives the image (size, hash, default window); the view is the image fitted to the
  display (``--display WxH``, ``--screen-mm``, ``--distance-mm``; defaults: radgaze's DisplayGeometry), fixed
  for the whole recording. Fixations are detected with radgaze's I-VT (or ``--fixations idt``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError, ImageLoadError, ImportFormatError, StreamLayoutError
from radgaze.capture.base.records import CaseRecord, DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.clock import steps_beyond_span
from radgaze.capture.gazemath.fixations import fixation_settings, fixations_from_gaze
from radgaze.capture.gazemath.geometry import fit_view, map_gaze_to_image
from radgaze.capture.gazemath.punctuation import apply_dictated_punctuation
from radgaze.capture.importers.common import (
    ImportResult,
    add_sentences,
    check_output,
    safe_name,
    write_session_file,
)
from radgaze.capture.io.display import display_for_ppd, options_ppd_source, ppd_record
from radgaze.capture.live.gaze.layouts import (
    GazeLayout,
    StreamDescription,
    resolve_layout,
    to_gaze_records,
    tracker_ppd,
)
from radgaze.capture.store.case_image import stored_image_path
from radgaze.capture.store.privacy import file_digest

GAZE_TYPES = frozenset({"gaze", "eyetracker", "eye-tracker", "eyetracking", "eye_tracker"})
WORD_TYPES = frozenset({"markers", "marker", "words", "word", "speech", "transcript", "asr", "dictation"})
NUMERIC = frozenset({"float32", "double64", "int32", "int16", "int8", "int64"})
# A dictated word lasts ~0.2-0.6 s (dictation runs at ~2-3 words/s); a word sample without an end time ends at
# the next word's start, capped here so a pause is not counted as speech.
# Gaze and words of one recording overlap; words more than this outside the gaze's span are on another clock.
MAX_CLOCK_APART_S = 60.0
MAX_WORD_S = 0.8


def _first(info: dict, key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return default if value is None or isinstance(value, (dict, list)) else str(value).strip()


def _channels(info: dict) -> list[dict]:
    desc = info.get("desc")
    desc = desc[0] if isinstance(desc, list) and desc else None
    if not isinstance(desc, dict):
        return []
    chans = desc.get("channels")
    chans = chans[0] if isinstance(chans, list) and chans else None
    if not isinstance(chans, dict):
        return []
    items = chans.get("channel") or []
    return [c for c in items if isinstance(c, dict)]


def describe_stream(stream: dict) -> StreamDescription:
    """What an XDF stream says about itself, in the form ``radgaze.capture.live.gaze.layouts`` chooses layouts from."""
    info = stream["info"]
    chans = _channels(info)
    try:
        n = int(_first(info, "channel_count", "0"))
        rate = float(_first(info, "nominal_srate", "0") or 0)
    except ValueError:
        n, rate = 0, 0.0
    desc = info.get("desc")
    manufacturer = ""
    if isinstance(desc, list) and desc and isinstance(desc[0], dict):
        manufacturer = _first(desc[0], "manufacturer")
        acq = desc[0].get("acquisition")
        if not manufacturer and isinstance(acq, list) and acq and isinstance(acq[0], dict):
            manufacturer = _first(acq[0], "manufacturer")
    return StreamDescription(
        name=_first(info, "name"),
        type=_first(info, "type"),
        n_channels=n,
        channel_format=_first(info, "channel_format"),
        nominal_rate_hz=rate,
        source_id=_first(info, "source_id"),
        hostname=_first(info, "hostname"),
        labels=tuple(_first(c, "label") for c in chans),
        types=tuple(_first(c, "type") or _first(c, "metatype") for c in chans),
        eyes=tuple(_first(c, "eye") for c in chans),
        units=tuple(_first(c, "unit") for c in chans),
        manufacturer=manufacturer,
        coordinate_systems=tuple(_first(c, "coordinate_system") for c in chans),
    )


def load_streams(path: Path, *, synchronize: bool = True, select: list[int] | None = None) -> list[dict]:
    """``pyxdf.load_xdf`` with clock sync and dejitter; any failure becomes an ImportFormatError."""
    import pyxdf

    if not path.is_file():
        raise ImportFormatError(f"{path}: expected an XDF file, found nothing")
    if path.stat().st_size == 0:
        raise ImportFormatError(f"{path}: expected an XDF file, got an empty file")
    log = logging.getLogger("pyxdf.pyxdf")
    errors = _ErrorLog()
    log.addHandler(errors)
    propagate, log.propagate = log.propagate, False  # its messages become our one error, not log noise
    try:
        streams, _ = pyxdf.load_xdf(
            str(path),
            synchronize_clocks=synchronize,
            dejitter_timestamps=False,  # the recorded stamps are kept (DESIGN.md, "One clock")
            select_streams=select,
        )
    except Exception as exc:  # pyxdf raises IOError, struct.error, ParseError, KeyError ... on bad files
        raise ImportFormatError(
            f"{path}: expected an XDF file (XDF: magic, chunks), could not read it: {exc}"
        ) from exc
    finally:
        log.removeHandler(errors)
        log.propagate = propagate
    if errors.messages:  # pyxdf skipped damaged chunks and went on: a truncated or corrupted recording
        raise ImportFormatError(f"{path}: the XDF file is damaged or truncated ({errors.messages[0]})")
    return streams


class _ErrorLog(logging.Handler):
    """Collects the error messages pyxdf logs when it skips damaged chunks."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _listing(streams: list[dict]) -> str:
    parts = []
    for s in streams:
        d = describe_stream(s)
        parts.append(f"{d.name!r} (type {d.type!r}, {d.n_channels} x {d.channel_format})")
    return ", ".join(parts) or "none"


def _by_name(streams: list[dict], name: str, path: Path) -> dict:
    hits = [s for s in streams if name in (describe_stream(s).name, describe_stream(s).source_id)]
    if not hits:
        raise ImportFormatError(f"{path}: expected a stream named {name!r}, got streams {_listing(streams)}")
    if len(hits) > 1:
        raise ImportFormatError(
            f"{path}: expected one stream named {name!r}, got {len(hits)}: {_choices(hits)}; choose one by its "
            "source id (--gaze-stream SOURCE_ID)"
        )
    return hits[0]


def _choices(streams: list[dict]) -> str:
    return ", ".join(
        f"{d.name!r} (type {d.type!r}, {d.n_channels} ch, source id {d.source_id!r})"
        for d in map(describe_stream, streams)
    )


def _layout_refusal(stream: dict, layout: str | None, layout_config) -> str | None:
    """None when a layout reads the stream's header, else why not (one line)."""
    try:
        resolve_layout(describe_stream(stream), forced=layout, config_path=layout_config)
    except (StreamLayoutError, ConfigError) as exc:
        return str(exc)
    return None


def pick_gaze_stream(
    streams: list[dict],
    name: str | None,
    path: Path,
    layout: str | None = None,
    layout_config: str | Path | None = None,
) -> dict:
    """The gaze stream: by name / source id, else the one Gaze/Eyetracker-typed stream a layout reads."""
    if name is not None:
        return _by_name(streams, name, path)
    typed = [s for s in streams if describe_stream(s).type.casefold() in GAZE_TYPES]
    fitting = [s for s in typed if _layout_refusal(s, layout, layout_config) is None]
    if len(fitting) == 1:
        return fitting[0]
    if len(fitting) > 1:
        raise ImportFormatError(
            f"{path}: expected one gaze stream, got {len(fitting)} that fit a layout: {_choices(fitting)}; "
            "choose one with --gaze-stream NAME (or --gaze-stream SOURCE_ID when names clash)"
        )
    if typed:
        reasons = "; ".join(_layout_refusal(s, layout, layout_config) or "" for s in typed)
        raise ImportFormatError(f"{path}: expected a gaze stream that a layout reads, got: {reasons}")
    raise ImportFormatError(
        f"{path}: expected a numeric gaze stream (type Gaze or Eyetracker), got streams {_listing(streams)}"
    )


def pick_word_stream(streams: list[dict], name: str | None, path: Path) -> dict:
    """The word / marker stream: by name, else a string stream of a word-like type, else the only string one."""
    if name is not None:
        hits = [s for s in streams if describe_stream(s).name == name]
        if not hits:
            raise ImportFormatError(
                f"{path}: expected a stream named {name!r}, got streams {_listing(streams)}"
            )
        return hits[0]
    strings = [s for s in streams if describe_stream(s).channel_format == "string"]
    typed = [s for s in strings if describe_stream(s).type.casefold() in WORD_TYPES]
    if typed:
        return typed[0]
    if len(strings) == 1:
        return strings[0]
    raise ImportFormatError(
        f"{path}: expected one string stream of words (type Markers / Words), got streams {_listing(streams)}"
    )


def parse_word_samples(
    values: list[list[str]], t_stamp: np.ndarray, t_raw: np.ndarray, *, where: str
) -> Words:
    """Marker samples -> Words on the recording clock (plain words or JSON objects, see the module doc).

    ``t_stamp`` are the synchronised time stamps, ``t_raw`` the sender's own (JSON times move by their
    difference)."""
    starts, ends, texts, probs = [], [], [], []
    for k, sample in enumerate(values):
        cell = (sample[0] if sample else "") or ""
        cell = cell.strip()
        if not cell:
            continue
        cell_plain = not cell.startswith("{")
        if not cell_plain:
            try:
                obj = json.loads(cell)
                word = str(obj["word"])
                shift = float(t_stamp[k] - t_raw[k])
                t0 = float(obj.get("start", t_raw[k])) + shift
                t1 = float(obj.get("end", obj.get("start", t_raw[k]))) + shift
                p = float(obj.get("probability", 1.0))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ImportFormatError(
                    f'{where} sample {k}: expected a word or JSON {{"word", "start", "end"}}, got {cell[:80]!r}'
                ) from exc
        else:
            word, t0, t1, p = cell, float(t_stamp[k]), float("nan"), 1.0
        if not np.isfinite(t0) or (np.isinf(t1) or (np.isnan(t1) and not cell_plain)):
            raise ImportFormatError(f"{where} sample {k}: expected finite word times, got {t0}, {t1}")
        starts.append(t0)
        ends.append(t1)
        texts.append(word)
        probs.append(p)
    t0 = np.asarray(starts, np.float64)
    t1 = np.asarray(ends, np.float64)
    order = np.argsort(t0, kind="stable")
    t0, t1 = t0[order], t1[order]
    texts = [texts[i] for i in order]
    prob = np.asarray(probs, np.float32)[order]
    nxt = np.append(t0[1:], np.inf)
    t1 = np.where(np.isnan(t1), np.minimum(nxt, t0 + MAX_WORD_S), np.maximum(t1, t0))
    return Words(t0, t1, texts, prob)


def read_gaze(
    path: Path,
    stream: dict,
    display: DisplayGeometry,
    layout: str | None,
    layout_config: str | Path | None,
    span_s: tuple[float, float] | None = None,
) -> tuple[StreamDescription, GazeLayout, np.ndarray, np.ndarray]:
    """The gaze stream's description, layout, GAZE_DTYPE rows (sorted by time, screen coordinates) and the
    clock steps found in its stamps against the recording's span ``span_s`` (gazemath.clock; the rows are on
    the corrected timeline: a step never reorders or drops samples)."""
    gdesc = describe_stream(stream)
    try:
        lay = resolve_layout(gdesc, forced=layout, config_path=layout_config)
    except StreamLayoutError as exc:
        raise ImportFormatError(f"{path}: {exc}") from exc
    data = np.asarray(stream["time_series"], np.float64)
    t_gaze = np.asarray(stream["time_stamps"], np.float64)
    if data.size == 0 or t_gaze.size == 0:
        raise ImportFormatError(f"{path}: gaze stream {gdesc.name!r} holds no samples")
    if not np.all(np.isfinite(t_gaze)):
        raise ImportFormatError(f"{path}: gaze stream {gdesc.name!r} has non-finite time stamps")
    rate = gdesc.nominal_rate_hz
    t_gaze, clock_events = steps_beyond_span(t_gaze, span_s, period_s=1.0 / rate if rate > 0 else 0.0)
    order = np.argsort(t_gaze, kind="stable")
    try:
        gaze = to_gaze_records(lay, data[order], t_gaze[order], display)
    except StreamLayoutError as exc:
        raise ImportFormatError(f"{path}: {exc}") from exc
    return gdesc, lay, gaze, clock_events


def recording_span(streams: list[dict]) -> tuple[float, float] | None:
    """(first, last) time of the recording computer's clock while it recorded: every stream's clock-offset
    measurements (LabRecorder takes one every 5 s; collection time + offset is the recorder's clock)."""
    times = [
        np.asarray(s["clock_times"], float) + np.asarray(s["clock_values"], float)
        for s in streams
        if len(s.get("clock_times", ())) and len(s["clock_times"]) == len(s.get("clock_values", ()))
    ]
    t = np.concatenate(times) if times else np.zeros(0)
    t = t[np.isfinite(t)]
    return (float(t.min()), float(t.max())) if t.size else None


def refuse_disjoint_clocks(path: Path, stream: dict, gaze: np.ndarray, words: Words) -> None:
    """One line when the gaze and the words lie on clocks that do not meet (a clock offset of 1e9 s made a
    recording whose sentences hold no gaze): the words must fall within the gaze's span, give or take
    :data:`MAX_CLOCK_APART_S`."""
    if not len(words) or not gaze.size:
        return
    g0, g1 = float(gaze["t_lsl"][0]), float(gaze["t_lsl"][-1])
    w0, w1 = float(np.min(words.t_start)), float(np.max(words.t_end))
    if w0 <= g1 + MAX_CLOCK_APART_S and w1 >= g0 - MAX_CLOCK_APART_S:
        return
    offsets = np.asarray(stream.get("clock_values", []), float)
    offset = f"{float(np.median(offsets)):g} s" if offsets.size else "none recorded"
    raise ImportFormatError(
        f"{path} stream {describe_stream(stream).name!r} column time_stamps: expected times on the recording's "
        f"clock within {MAX_CLOCK_APART_S:g} s of the words ({w0:g}..{w1:g} s), got {g0:g}..{g1:g} s "
        f"(its clock offset: {offset})"
    )


def read_words(path: Path, stream: dict) -> Words:
    """The word stream's words on the recording clock (JSON times moved by the stream's clock offset)."""
    raw = load_streams(path, synchronize=False, select=[int(stream["info"]["stream_id"])])
    t_sync = np.asarray(stream["time_stamps"], np.float64)
    t_raw = np.asarray(raw[0]["time_stamps"], np.float64) if raw else t_sync
    if (
        t_raw.shape != t_sync.shape
    ):  # cannot pair them: JSON times are taken as already on the recording clock
        t_raw = t_sync
    where = f"{path} stream {describe_stream(stream).name!r}"
    words, _ = apply_dictated_punctuation(
        parse_word_samples(stream["time_series"], t_sync, t_raw, where=where)
    )
    return words


def _load_image(image: str | Path):
    from radgaze.capture.io.images import load_image

    try:
        return load_image(image)
    except ImageLoadError as exc:
        raise ConfigError(f"--image: {exc}") from exc


def build_case(
    name: str,
    image: str | Path,
    img,
    display: DisplayGeometry,
    gaze: np.ndarray,
    words: Words,
    method: str,
    *,
    stored_path: str | None = None,
    fixation_params: dict | None = None,
) -> CaseRecord:
    """One case: the image fitted to the display for the whole recording, gaze mapped, fixations detected.
    ``stored_path``: the image path the session keeps (default: absolute)."""
    from radgaze.capture.io.images import default_window

    t_start = float(gaze["t_lsl"][0])
    if len(words):
        t_start = min(t_start, float(words.t_start[0]))
    t_end = max(float(gaze["t_lsl"][-1]), float(words.t_end.max()) if len(words) else -np.inf)
    meta = img.meta
    view = fit_view(meta.width, meta.height, display, t_lsl=t_start, window=default_window(img))
    gaze = map_gaze_to_image(gaze, view, display, meta.width, meta.height)
    ref = ImageRef(
        stored_path or str(Path(image).resolve()),
        meta.sha256,
        meta.width,
        meta.height,
        meta.bits_stored,
        meta.photometric,
    )
    return CaseRecord(
        case_id=name,
        image=ref,
        display=display,
        t_start=t_start,
        t_end=t_end,
        gaze=gaze,
        fixations=fixations_from_gaze(gaze, view, display, method=method, **(fixation_params or {})),
        view_events=view,
        words=words,
    )


PPD_FROM_TRACKER = "tracker: the EyeLink app's pixelsPerDegreeX/Y channels (median over the recording)"


def xdf_display(
    stream: dict, lay: GazeLayout, display: DisplayGeometry, source: str | None
) -> tuple[DisplayGeometry, dict]:
    """The display and its px/deg record: the tracker's own px/deg where its stream sends them (the EyeLink app),
    else the display as given (``source`` says how)."""
    ppd = tracker_ppd(lay, np.asarray(stream["time_series"], np.float64))
    if ppd is not None:
        display = display_for_ppd(
            display.screen_w_px, display.screen_h_px, ppd[0], ppd[1], display.viewing_distance_mm
        )
        return display, ppd_record(display, PPD_FROM_TRACKER)
    return display, ppd_record(display, source or options_ppd_source(None, None))


def import_xdf(
    path: str | Path,
    out: str | Path,
    *,
    image: str | Path,
    display: DisplayGeometry | None = None,
    gaze_stream: str | None = None,
    words_stream: str | None = None,
    layout: str | None = None,
    layout_config: str | Path | None = None,
    fixation_method: str = "ivt",
    case_id: str | None = None,
    lead_s: float = EYE_VOICE_LEAD_S,
    overwrite: bool = False,
    ppd_source: str | None = None,
    keep_names: bool = False,
    fixation_params: dict | None = None,
) -> ImportResult:
    """Import one XDF recording as ``out/<name>.h5`` with one case (see the module docstring). ``ppd_source``
    says where the display's size and distance came from (the CLI's options; default: assumed). The case and
    file are named ``xdf-`` + the recording's content hash, its file and the image by hash or by a path
    relative to the session, unless ``keep_names`` (docs/privacy.md)."""
    path, out = Path(path), Path(out)
    display = display or DisplayGeometry()
    digest = file_digest(path)[:16] if path.is_file() else "none"  # a missing file is refused below
    source = str(path) if keep_names else f"sha256:{digest}"
    name = safe_name(case_id or (path.stem if keep_names else f"xdf-{digest[:12]}"))
    target = out / f"{name}.h5"
    check_output(target, overwrite)
    img = _load_image(image)
    streams = load_streams(path)
    if not streams:
        raise ImportFormatError(
            f"{path}: expected a gaze stream and a word stream, the file holds no streams"
        )
    gs = pick_gaze_stream(streams, gaze_stream, path, layout, layout_config)
    ws = pick_word_stream(streams, words_stream, path)
    gdesc, lay, gaze, clock_events = read_gaze(
        path, gs, display, layout, layout_config, span_s=recording_span(streams)
    )
    words = read_words(path, ws)
    refuse_disjoint_clocks(path, gs, gaze, words)
    display, ppd = xdf_display(gs, lay, display, ppd_source)
    stored = stored_image_path(Path(image), target, keep=keep_names)
    record = build_case(name, image, img, display, gaze, words, fixation_method, stored_path=stored,
                        fixation_params=fixation_params)  # fmt: skip
    record.clock_events = clock_events
    fixations = fixation_settings(fixation_method, fixation_params or {})
    record.attrs = _case_attrs(source, gdesc, lay, describe_stream(ws).name, fixations, ppd)
    add_sentences(record, lead_s=lead_s)
    provenance = _provenance(source, gdesc, lay, ppd, lead_s)
    write_session_file(target, [record], provenance=provenance)
    return ImportResult(written=[target], n_cases=1)


def _case_attrs(source: str, gdesc, lay: GazeLayout, words_stream: str, fixations: dict, ppd: dict) -> dict:
    return {
        "source": "xdf",
        "xdf_file": source,
        "gaze_stream": gdesc.name,
        "gaze_source_id": gdesc.source_id,
        "gaze_layout": lay.name,
        "words_stream": words_stream,
        "fixation_method": fixations["method"],
        "fixations": fixations,
        "view": "image fitted to the display for the whole recording",
        "ppd": ppd,
    }


def _provenance(source: str, gdesc, lay: GazeLayout, ppd: dict, lead_s: float) -> dict:
    return {
        "importer": "xdf",
        "source": source,
        "tracker": gdesc.name,
        "tracker_layout": lay.name,
        "tracker_layout_source": lay.bridge,
        "tracker_rate_hz": gdesc.nominal_rate_hz,
        "timestamps": "the recording's stamps, clock offsets applied (pyxdf synchronize_clocks; no dejitter)",
        "ppd_source": ppd["source"],
        "eye_voice_lead_s": lead_s,
    }
