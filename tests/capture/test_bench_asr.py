"""radgaze bench asr: real speech fed as one case through the live streamer and its case pass, beside the same
model's whole-file decode (tiny.en from its wheel, jfk.flac from ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radgaze.capture.bench import asr as bench

JFK = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio" / "jfk.flac"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.mark.slow
def test_bench_asr_reports_the_stored_streamed_and_whole_file_words_of_a_case(capsys):
    from radgaze.capture.live.whisper_models import INSTALL_HINT, installed_wheel_models

    if "tiny.en" not in installed_wheel_models():
        pytest.skip(f"the tiny.en wheel is not installed ({INSTALL_HINT})")
    if not JFK.is_file():
        pytest.skip(f"real speech clip absent: {JFK}")
    argv = ["--whisper", "tiny.en", "--threads", "1", "--no-reports", "--speed", "8", "--json"]
    assert bench.main([*argv, "--clip", str(JFK), "--clip-text", JFK_TEXT]) == 0
    out = json.loads(capsys.readouterr().out)
    (clip,) = out["clips"]
    # what the recording stores is the case pass: the whole-file decode of the case's audio
    assert clip["stored_text"] != "" and clip["wer_stored"] == clip["wer_whole_file"] <= 0.05, clip
    assert out["wer_gap_max"] == 0.0 and out["goals"]["wer_gap_max"]["met"] is True
    assert clip["streamed_text"] != "" and clip["sentences_stored"] == 1
    assert clip["case_pass_latency_s"] is not None and clip["case_pass_latency_s"] > 0
    assert out["invented_beyond_whole_file"] == 0
    assert "load_average_1min" in out["machine"]


def test_summary_gap_is_the_stored_words_against_the_whole_file():
    rows = [
        {"wer_stored": 0.3, "wer_streamed": 0.5, "wer_whole_file": 0.3, "invented_beyond_whole_file": 0,
         "rtf_live": 0.5, "commit_latency_s": [2.0], "case_pass_latency_s": 1.0, "sentences_stored": 2,
         "sentences_streamed": 3, "sentences_spoken": 2, "onset_error_stored_s": [0.1, 0.2]},
        {"wer_stored": 0.1, "wer_streamed": 0.1, "wer_whole_file": 0.05, "invented_beyond_whole_file": 0,
         "rtf_live": 0.5, "commit_latency_s": [], "case_pass_latency_s": None, "sentences_stored": 1,
         "sentences_streamed": 1},
    ]  # fmt: skip
    s = bench.summarise(rows)
    assert s["wer_gap_max"] == 0.05 and s["wer_gap_streamed_max"] == 0.2
    assert s["sentences_exact_fraction"] == 1.0 and s["sentences_exact_fraction_streamed"] == 0.0
    assert s["sentence_onset_error_p95_s"] == pytest.approx(0.195) and s["case_pass_latency_p50_s"] == 1.0
