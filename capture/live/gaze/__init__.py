"""Gaze from any LSL eye tracker: layouts (pure), discovery, and the inlet thread."""

from radgaze.capture.live.gaze.layouts import (
    BUILTIN_LAYOUTS,
    LAYOUT_NAMES,
    GazeLayout,
    StreamDescription,
    decode_samples,
    encode_samples,
    resolve_layout,
    to_gaze_records,
)

__all__ = [
    "BUILTIN_LAYOUTS",
    "LAYOUT_NAMES",
    "GazeLayout",
    "StreamDescription",
    "decode_samples",
    "encode_samples",
    "resolve_layout",
    "to_gaze_records",
]
