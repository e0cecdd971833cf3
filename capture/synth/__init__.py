"""Synthetic reading sessions: phantom chest radiographs with findings, dictated reports and eye-tracker gaze.

Real radiologist gaze cannot be bundled, so radgaze draws readings realistic enough to drive the demo, the
tests, the benchmarks and the does-gaze-help experiment, deterministic by seed:

- :mod:`radgaze.capture.synth.phantom`: the radiograph (16-bit) and each finding's ground-truth mask;
- :mod:`radgaze.capture.synth.report`: the dictated sentences and their word times;
- :mod:`radgaze.capture.synth.reading`: gaze samples (search, eye-voice lead, saccades, noise, blinks, dropouts);
- :mod:`radgaze.capture.synth.session`: CaseRecords and session files (``radgaze synth``: :mod:`radgaze.capture.synth.cli`);
- :mod:`radgaze.capture.synth.preview`: a picture of a case for a person to judge.
"""

from __future__ import annotations

import importlib

__all__ = ["SynthOptions", "SynthReading", "synth_case", "synth_reading", "write_synthetic_sessions"]


def __getattr__(name: str) -> object:
    """Lazy re-exports from radgaze.capture.synth.session (so the phantom and report modules import on their own)."""
    if name in __all__:
        return getattr(importlib.import_module("radgaze.capture.synth.session"), name)
    raise AttributeError(f"module 'radgaze.capture.synth' has no attribute {name!r}")
