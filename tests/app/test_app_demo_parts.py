"""The demo's pure parts: gaze re-placed on this screen, one timeline for all cases, the dictation script."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radgaze.app.demo import (
    ASR_LATENCY_S,
    CASE_GAP_S,
    LEAD_IN_S,
    ScriptedDictation,
    demo_timeline,
    dictation_script,
)
from radgaze.capture.base.records import (
    GAZE_DTYPE,
    GAZE_VALID,
    VIEW_DTYPE,
    CaseRecord,
    DisplayGeometry,
    ImageRef,
    Words,
)


def _record(case_id: str, t_start: float, dur_s: float) -> CaseRecord:
    n = int(dur_s * 10)
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t_start + np.arange(n) / 10.0
    g["x_img_px"], g["y_img_px"] = 100.0, 50.0
    g["flags"] = GAZE_VALID
    g["flags"][3] = 0  # a blink
    g["x_img_px"][3] = np.nan
    words = Words(
        t_start + np.array([1.0, 1.4, 1.8]),
        t_start + np.array([1.3, 1.7, 2.0]),
        ["no", "effusion", "period"],
        np.ones(3, np.float32),
    )
    return CaseRecord(
        case_id,
        ImageRef("x.png", "", 200, 100),
        DisplayGeometry(),
        t_start,
        t_start + dur_s,
        gaze=g,
        words=words,
    )


def test_timeline_places_cases_back_to_back_on_this_screen():
    recs = [_record("a", 1000.0, 3.0), _record("b", 1010.0, 2.0)]
    row = np.zeros((), VIEW_DTYPE)
    row["scale"], row["offset_x"], row["offset_y"] = 2.0, 30.0, 5.0
    gaze, cases = demo_timeline(recs, [row, row])
    assert [c.t_offset_s for c in cases] == pytest.approx([LEAD_IN_S, LEAD_IN_S + 3.0 + CASE_GAP_S])
    assert np.all(np.diff(gaze["t_lsl"]) >= 0) and gaze["t_lsl"][0] == 0.0
    valid = (gaze["flags"] & GAZE_VALID) != 0
    assert np.allclose(gaze["x_screen_px"][valid], 100.0 * 2 + 30) and np.allclose(
        gaze["y_screen_px"][valid], 105
    )
    assert np.isnan(gaze["x_screen_px"][~valid]).all() and (~valid).sum() == 2  # one blink per case


def test_dictation_script_converts_punctuation_and_adds_latency():
    recs = [_record("a", 1000.0, 3.0)]
    row = np.zeros((), VIEW_DTYPE)
    row["scale"] = 1.0
    _, cases = demo_timeline(recs, [row])
    script = dictation_script(recs, cases, t0_lsl=500.0)
    texts = [w.text[0] for _, w in script]
    assert texts == ["no", "effusion", "."]  # "period" dictated -> a full stop, as the ASR delivers it
    t_release, first = script[0]
    assert first.t_start[0] == pytest.approx(500.0 + LEAD_IN_S + 1.0)
    assert t_release == pytest.approx(first.t_end[0] + ASR_LATENCY_S)


def test_scripted_dictation_releases_words_when_due():
    now = {"t": 0.0}
    got = []
    script = [
        (0.1, Words(np.array([0.0]), np.array([0.05]), ["a"], np.ones(1, np.float32))),
        (5.0, Words(np.array([0.2]), np.array([0.3]), ["b"], np.ones(1, np.float32))),
    ]
    d = ScriptedDictation(script, got.append, lambda: now["t"]).start()
    now["t"] = 1.0
    deadline = time.monotonic() + 2
    while len(got) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    d.stop()
    assert [w.text for w in got] == [["a"]]  # "b" is not due yet
    assert d.latest_preview.tentative_text == "b"  # spoken, not final


def test_no_display_is_a_clear_error(monkeypatch):
    from radgaze.app.qtapp import ensure_qapp, has_display
    from radgaze.capture.base.errors import ConfigError

    assert not has_display({}, "linux")
    assert has_display({"DISPLAY": ":0"}, "linux") and has_display({}, "darwin")
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="xvfb-run"):
        ensure_qapp("radgaze demo")
