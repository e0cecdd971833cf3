"""`radgaze bench viewer --json` prints the figures the issue asks for."""

from __future__ import annotations

import json

from radgaze.app.bench_viewer import main, phantom_uint16


def test_bench_viewer_json_has_the_figures(capsys):
    assert main(["--json", "--no-asr", "--repeats", "6", "--frame-seconds", "0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["image"] == "2048x2048 uint16"
    for key in ("wl_update_median_ms", "gaze_overlay_hz", "frame_ms_idle"):
        assert out[key] > 0, key
    assert out["frame_ms_during_asr"] is None and out["goals"]["during_over_idle"]["met"] is None
    assert out["goals"]["wl_update_median_ms"]["value"] == out["wl_update_median_ms"]
    assert out["machine"]["cpu_count"] >= 1 and "load_average_1min" in out["machine"]


def test_phantom_is_contiguous_uint16():
    img = phantom_uint16(256)
    assert img.dtype.name == "uint16" and img.flags["C_CONTIGUOUS"] and img.std() > 100
