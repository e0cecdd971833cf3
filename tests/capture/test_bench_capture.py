"""radgaze bench capture: a short run with an outlet in another process reports real figures."""

from __future__ import annotations

import json

import pytest

from radgaze.capture.bench import capture as bench


@pytest.mark.slow
def test_bench_capture_json_short_run(capsys):
    assert bench.main(["--json", "--duration", "2", "--rate", "500", "--sentences", "6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ingest_sent_samples"] == int(500 * (2 + bench.WARMUP_S)), out
    assert out["ingest_lost_samples"] == 0 and out["ingest_gaps"] == 0, out
    assert out["ingest_rate_hz"] == pytest.approx(500, rel=0.01), out
    assert 0 < out["ingest_latency_p99_ms"] < 1000, out
    for key in ("heatmap_latency_p95_ms", "heatmaps_per_s"):
        assert key in out and (out[key] is not None or key in out["notes"]), out
    if out["heatmap_latency_p95_ms"] is not None:  # the recorder pipeline closed every sentence, with a map
        assert out["heatmap_latency"]["n_sentences"] == out["heatmap_latency"]["n_heatmaps"] == 6
        assert 0 < out["heatmap_latency"]["appended_p95_ms"] <= out["heatmap_latency_p95_ms"]
    if out["heatmaps_per_s"] is not None:
        assert out["heatmaps_per_s"] > 10
    assert out["goals"]["ingest_lost_samples"]["met"] is True


def test_ratios_against_goals():
    r = bench.ratios({"ingest_lost_samples": 0, "ingest_latency_p99_ms": 2.5, "heatmaps_per_s": 500.0})
    assert r["ingest_latency_p99_ms"] == {"goal": "< 5.0", "value": 2.5, "ratio": 0.5, "met": True}
    assert r["heatmaps_per_s"]["met"] is False and r["heatmaps_per_s"]["ratio"] == 0.5
    assert r["heatmap_latency_p95_ms"]["value"] is None and r["heatmap_latency_p95_ms"]["met"] is None
