"""Finding gaze streams on the LSL network and reading what they say about themselves.

A gaze stream is one whose content type is Gaze or Eyetracker (case-insensitive; the XDF convention says
"Gaze", the Tobii Pro bridge says "Eyetracker", the Gazepoint script "gaze"), or one asked for by name.
Resolved stream infos carry no <desc>; the full header (channel labels) comes from an inlet
(:func:`describe_info` on ``inlet.info()``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pylsl

from radgaze.capture.errors import DeviceError
from radgaze.capture.live.gaze.layouts import StreamDescription

GAZE_TYPES = ("gaze", "eyetracker")
AMBIGUITY_WAIT_S = 1.0  # liblsl resolves peers on this machine within ~0.1-0.5 s
_LOWER = "translate({field},'ABCDEFGHIJKLMNOPQRSTUVWXYZ','abcdefghijklmnopqrstuvwxyz')"


def gaze_predicate(name: str | None = None) -> str:
    """XPath 1.0 predicate (liblsl resolver) for gaze streams, or for the stream called ``name``."""
    if name is not None:
        if "'" in name:
            raise DeviceError(f"stream name must not contain a single quote, got {name!r}")
        return f"name='{name}'"
    lowered = _LOWER.format(field="type")
    return " or ".join(f"{lowered}='{t}'" for t in GAZE_TYPES)


def is_gaze_info(info: pylsl.StreamInfo) -> bool:
    return info.type().strip().lower() in GAZE_TYPES


def find_gaze_streams(wait_s: float = 1.0, name: str | None = None) -> list[pylsl.StreamInfo]:
    """All gaze streams (or streams called ``name``) visible within ``wait_s`` seconds, sorted by name."""
    found = pylsl.resolve_streams(wait_time=wait_s)
    keep = [i for i in found if (i.name() == name if name is not None else is_gaze_info(i))]
    return sorted(keep, key=lambda i: (i.name(), i.source_id()))


def resolve_gaze_stream(name: str | None = None, timeout_s: float = 5.0) -> pylsl.StreamInfo:
    """The one gaze stream (or the stream called ``name``); returns as soon as one is seen.

    Raises DeviceError when none appears within ``timeout_s`` or, without a name, when several gaze streams
    are visible (their names are listed so the user can pick one).
    """
    found = pylsl.resolve_bypred(gaze_predicate(name), minimum=1, timeout=timeout_s)
    if not found:
        what = f"an LSL stream named {name!r}" if name else "an LSL gaze stream (type Gaze/Eyetracker)"
        raise DeviceError(
            f"expected {what} within {timeout_s:g} s, found none (is the tracker bridge running?)"
        )
    if name is None:  # the resolver returns at the first answer: listen a little longer for others
        found += pylsl.resolve_bypred(gaze_predicate(None), minimum=1_000_000, timeout=AMBIGUITY_WAIT_S)
        by_source = {(i.name(), i.source_id()): i for i in found}
        if len(by_source) > 1:
            names = ", ".join(sorted(f"{n!r}" for n, _ in by_source))
            raise DeviceError(
                f"expected one gaze stream, found {len(by_source)} ({names}); choose one by name"
            )
    return found[0]


def describe_info(info: pylsl.StreamInfo) -> StreamDescription:
    """Parse a stream header (full XML, with <desc><channels>) into a StreamDescription."""
    root = ET.fromstring(info.as_xml())

    def text(node: ET.Element | None, tag: str) -> str:
        child = node.find(tag) if node is not None else None
        return (child.text or "").strip() if child is not None else ""

    channels = root.findall("./desc/channels/channel")
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
        types=tuple(text(c, "type") for c in channels),
        eyes=tuple(text(c, "eye") for c in channels),
        units=tuple(text(c, "unit") for c in channels),
        manufacturer=manufacturer,
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
