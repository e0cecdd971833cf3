"""Finding gaze streams on the LSL network and reading what they say about themselves.

A gaze stream is one whose content type is Gaze or Eyetracker (case-insensitive; the XDF convention says
"Gaze", the Tobii Pro app "Eyetracker" before 2022 and "Gaze" since, the Gazepoint script "gaze"), or one asked
for by name or source id. Resolved stream infos carry no <desc>; the full header (channel labels) comes from an
inlet (:func:`describe_info` on ``inlet.info()``).

Session isolation: liblsl prefixes every resolver predicate with ``session_id='...' and `` (XPath 1.0), so a
predicate with a top-level ``or`` must be parenthesised, or streams of every session match (see
../shared/REFERENCE-NOTES.md, "What the public LSL gaze bridges really publish"). :func:`gaze_predicate`
returns one parenthesised clause, and every listing goes through the resolver (never a session-blind scan).

Choosing the stream without a name: among the gaze-typed streams, those whose header fits a layout (channel
labels, or ScreenX/ScreenY on the screen); never by sample count. The Pupil Capture relay publishes
``pupil_capture_pupillometry_only`` (typed Gaze, eye-camera coordinates) beside ``pupil_capture``: only the
latter fits. When more than one fits, the error lists them with how to choose one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pylsl

from radgaze.capture.base.errors import DeviceError, RadgazeError
from radgaze.capture.live.gaze.layouts import StreamDescription, resolve_layout

GAZE_TYPES = ("gaze", "eyetracker")
AMBIGUITY_WAIT_S = 1.0  # liblsl resolves peers on this machine within ~0.1-0.5 s
_LOWER = "translate({field},'ABCDEFGHIJKLMNOPQRSTUVWXYZ','abcdefghijklmnopqrstuvwxyz')"


def gaze_predicate(name: str | None = None) -> str:
    """XPath 1.0 predicate (liblsl resolver) for gaze streams, or for the stream whose name or source id is
    ``name``; always one parenthesised clause (liblsl prepends ``session_id='...' and ``)."""
    if name is not None:
        if "'" in name:
            raise DeviceError(f"stream name must not contain a single quote, got {name!r}")
        return f"(name='{name}' or source_id='{name}')"
    lowered = _LOWER.format(field="type")
    return "(" + " or ".join(f"{lowered}='{t}'" for t in GAZE_TYPES) + ")"


def is_gaze_info(info: pylsl.StreamInfo) -> bool:
    return info.type().strip().lower() in GAZE_TYPES


def _unique(found: list[pylsl.StreamInfo]) -> list[pylsl.StreamInfo]:
    by_source = {(i.name(), i.source_id(), i.uid()): i for i in found}
    return sorted(by_source.values(), key=lambda i: (i.name(), i.source_id()))


def find_gaze_streams(wait_s: float = 1.0, name: str | None = None) -> list[pylsl.StreamInfo]:
    """All gaze streams (or streams whose name / source id is ``name``) of this LSL session visible within
    ``wait_s`` seconds, sorted by name."""
    found = pylsl.resolve_bypred(gaze_predicate(name), minimum=1_000_000, timeout=wait_s)
    return _unique(found)


def full_description(info: pylsl.StreamInfo, timeout_s: float = 2.0) -> StreamDescription | None:
    """The full header of a resolved stream (channel labels), read through a short-lived inlet; None if the
    stream does not answer within ``timeout_s``."""
    inlet = pylsl.StreamInlet(info, max_buflen=1, recover=False)
    try:
        return describe_info(inlet.info(timeout=timeout_s))
    except (pylsl.util.TimeoutError, pylsl.util.LostError):
        return None
    finally:
        inlet.close_stream()


def _fits(desc: StreamDescription | None, layout, config_path) -> str | None:
    """None when a layout reads the stream, else the one-line reason it does not."""
    if desc is None:
        return "did not answer"
    try:
        resolve_layout(desc, layout, config_path)
    except RadgazeError as exc:
        return str(exc)
    return None


def choose_by_layout(
    infos: list[pylsl.StreamInfo], layout=None, config_path=None
) -> tuple[list[pylsl.StreamInfo], list[str]]:
    """The streams a layout reads, and for the others one line each saying why not."""
    fitting, refused = [], []
    for info in infos:
        why = _fits(full_description(info), layout, config_path)
        if why is None:
            fitting.append(info)
        else:
            refused.append(f"{info.name()!r} (source id {info.source_id()!r}): {why}")
    return fitting, refused


def describe_choice(infos: list[pylsl.StreamInfo]) -> str:
    return ", ".join(
        f"{i.name()!r} (type {i.type()!r}, {i.channel_count()} ch, source id {i.source_id()!r})"
        for i in infos
    )


def resolve_gaze_stream(
    name: str | None = None, timeout_s: float = 5.0, *, layout=None, config_path=None
) -> pylsl.StreamInfo:
    """The one gaze stream to record: the stream whose name or source id is ``name``, or (no name) the one
    gaze-typed stream of this LSL session that a layout reads (``layout`` / ``config_path`` as for
    :func:`radgaze.capture.live.gaze.layouts.resolve_layout`).

    Raises DeviceError when none appears within ``timeout_s``, when several fit (listed, with how to choose
    one: ``--tracker NAME`` or, when names clash, ``--tracker SOURCE_ID``), or when the gaze streams seen fit
    no layout (each with its reason).
    """
    found = pylsl.resolve_bypred(gaze_predicate(name), minimum=1, timeout=timeout_s)
    if not found:
        what = f"an LSL stream named {name!r}" if name else "an LSL gaze stream (type Gaze/Eyetracker)"
        raise DeviceError(
            f"expected {what} within {timeout_s:g} s, found none (is the tracker bridge running?)"
        )
    found = _unique(found)
    if name is None:  # the resolver returns at the first answer: listen a little longer for others
        found = _unique(
            found + pylsl.resolve_bypred(gaze_predicate(None), minimum=1_000_000, timeout=AMBIGUITY_WAIT_S)
        )
    else:  # a name: the streams that answered at once (a clash of names among them is listed)
        if len({i.source_id() for i in found}) > 1:
            raise DeviceError(
                f"expected one stream named {name!r}, found {len(found)}: {describe_choice(found)}; choose one "
                "by its source id (--tracker SOURCE_ID)"
            )
        return found[0]
    fitting, refused = choose_by_layout(found, layout, config_path)
    if not fitting:
        raise DeviceError(f"expected a gaze stream that a layout reads, got: {'; '.join(refused)}")
    if len(fitting) > 1:
        raise DeviceError(
            f"expected one gaze stream, found {len(fitting)} that fit a layout: {describe_choice(fitting)}; "
            "choose one by name (--tracker NAME) or, when names clash, by source id (--tracker SOURCE_ID)"
        )
    return fitting[0]


def describe_info(info: pylsl.StreamInfo) -> StreamDescription:
    """Parse a stream header (full XML, with <desc><channels>) into a StreamDescription."""
    root = ET.fromstring(info.as_xml())

    def text(node: ET.Element | None, tag: str) -> str:
        child = node.find(tag) if node is not None else None
        return (child.text or "").strip() if child is not None else ""

    channels = root.findall("./desc/channels/channel")

    def kind(c: ET.Element) -> str:  # pupil-labs/lsl-relay writes the channel type under <metatype>
        return text(c, "type") or text(c, "metatype")

    desc = root.find("desc")
    manufacturer = text(desc, "manufacturer") or text(
        desc.find("acquisition") if desc is not None else None, "manufacturer"
    )
    rate = float(text(root, "nominal_srate") or 0.0)
    return StreamDescription(
        name=text(root, "name"),
        type=text(root, "type"),
        n_channels=int(text(root, "channel_count") or 0),
        channel_format=text(root, "channel_format"),
        nominal_rate_hz=rate,
        source_id=text(root, "source_id"),
        hostname=text(root, "hostname"),
        labels=tuple(text(c, "label") for c in channels),
        types=tuple(kind(c) for c in channels),
        eyes=tuple(text(c, "eye") for c in channels),
        units=tuple(text(c, "unit") for c in channels),
        manufacturer=manufacturer,
        coordinate_systems=tuple(text(c, "coordinate_system") for c in channels),
    )


def list_gaze_streams(wait_s: float = 1.0) -> list[dict]:
    """Visible gaze streams as plain dicts (name, type, channels, format, rate, source_id, hostname)."""
    return [
        {
            "name": i.name(),
            "type": i.type(),
            "n_channels": i.channel_count(),
            "channel_format": pylsl.lib.fmt2string[i.channel_format()],
            "nominal_rate_hz": i.nominal_srate(),
            "source_id": i.source_id(),
            "hostname": i.hostname(),
        }
        for i in find_gaze_streams(wait_s)
    ]
