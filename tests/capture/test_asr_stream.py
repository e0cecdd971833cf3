"""Streaming ASR logic with a fake, deterministic transcriber: LocalAgreement-2, time sanitising, LSL mapping.

The fake "hears" a fixed script. The audio fed to the worker encodes its own position (each sample holds the
centisecond it was recorded at), so the fake knows which part of the dictation a buffer covers, as a real
recogniser would from the sound.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radgaze.capture.base.records import Words
from radgaze.capture.live.asr import (
    AsrConfig,
    AsrWord,
    LocalAgreement,
    StreamingTranscriber,
    concat_words,
    sanitize_word_times,
    streaming_from_config,
    transcribe_audio,
)
from radgaze.capture.live.audio import blocks_to_audio

RATE = 16000
BLOCK = 1600  # 0.1 s
T_LSL0 = 5000.0

# (word, start_s, end_s) from the start of the audio
SCRIPT = [
    ("No", 0.5, 0.8),
    ("pleural", 0.9, 1.3),
    ("effusion", 1.35, 1.9),
    ("period", 2.0, 2.4),
    ("Heart", 3.0, 3.3),
    ("size", 3.35, 3.7),
    ("is", 3.75, 3.85),
    ("normal", 3.9, 4.4),
    ("new", 4.6, 4.8),
    ("paragraph", 4.85, 5.4),
    ("Lungs", 6.0, 6.4),
    ("clear", 6.5, 7.0),
    ("full", 7.2, 7.4),
    ("stop", 7.45, 7.8),
]
EXPECTED_TEXT = [
    "No",
    "pleural",
    "effusion",
    ".",
    "Heart",
    "size",
    "is",
    "normal",
    "\n\n",
    "Lungs",
    "clear",
    ".",
]
# times of the expected rows: a mark spans the words that dictated it
EXPECTED_SPANS = [(0.5, 0.8), (0.9, 1.3), (1.35, 1.9), (2.0, 2.4), (3.0, 3.3), (3.35, 3.7), (3.75, 3.85)]
EXPECTED_SPANS += [(3.9, 4.4), (4.6, 5.4), (6.0, 6.4), (6.5, 7.0), (7.2, 7.8)]


def encoded_audio(duration_s: float) -> np.ndarray:
    """int16 samples whose value is the centisecond they belong to."""
    return (np.arange(round(duration_s * RATE)) // (RATE // 100)).astype(np.int16)


class ScriptTranscriber:
    """Recognises SCRIPT words heard completely (and ``settle_s`` before the end of the buffer); the word
    still being spoken comes out garbled and different at every call, as an unstable hypothesis does."""

    def __init__(
        self, script=SCRIPT, *, settle_s: float = 0.25, early_first_s: float = 0.0, delay_s: float = 0.0
    ):
        self.script = script
        self.settle_s = settle_s
        self.early_first_s = early_first_s
        self.delay_s = delay_s
        self.calls = 0
        self.buffer_durations_s: list[float] = []
        self.prompts: list[str] = []

    def __call__(self, audio: np.ndarray, prompt: str) -> list[AsrWord]:
        time.sleep(self.delay_s)
        self.calls += 1
        self.prompts.append(prompt)
        t0 = round(float(audio[0]) * 32768) / 100.0 if audio.size else 0.0
        t1 = t0 + audio.size / RATE
        self.buffer_durations_s.append(audio.size / RATE)
        out = []
        for text, s, e in self.script:
            if s >= t0 - 0.05 and e <= t1 - self.settle_s:
                out.append(AsrWord(s - t0, e - t0, " " + text, 0.9))
            elif s < t1 and e > t1 - self.settle_s:
                out.append(AsrWord(s - t0, t1 - t0, f" {text[:2]}~{self.calls}", 0.3))
                break
        if out and self.early_first_s:
            out[0] = out[0]._replace(start_s=out[0].start_s - self.early_first_s)
        return out


def run_stream(transcriber, duration_s: float, *, wait_each_decode: bool = True, **kwargs):
    """Feed ``duration_s`` of encoded audio in 0.1 s blocks; return (streamer, batches before stop,
    previews)."""
    previews = []
    streamer = StreamingTranscriber(transcriber, on_preview=previews.append, **kwargs).start()
    audio = encoded_audio(duration_s)
    n_blocks = audio.size // BLOCK
    for k in range(n_blocks):
        streamer.feed(T_LSL0 + k * 0.1, audio[k * BLOCK : (k + 1) * BLOCK])
        if wait_each_decode and (k + 1) % 10 == 0:  # as in real time: the worker keeps up
            deadline = time.monotonic() + 5
            while streamer.n_decodes < (k + 1) // 10 and time.monotonic() < deadline:
                time.sleep(0.002)
    before_stop = []
    while True:
        try:
            before_stop.append(streamer.words.get_nowait())
        except queue.Empty:
            break
    streamer.stop(timeout_s=10)
    return streamer, before_stop, previews


def drain_words(streamer) -> tuple[list[Words], list[BaseException]]:
    batches, errors = [], []
    while True:
        item = streamer.words.get(timeout=5)
        if item is None:
            return batches, errors
        (errors if isinstance(item, BaseException) else batches).append(item)


def test_stream_commits_agreed_words_live_with_punctuation_and_lsl_times():
    fake = ScriptTranscriber()
    streamer, before_stop, previews = run_stream(fake, 9.0)
    rest, errors = drain_words(streamer)
    assert not errors
    words = concat_words(before_stop + rest)
    assert words.text == EXPECTED_TEXT
    np.testing.assert_allclose(words.t_start, [T_LSL0 + s for s, _ in EXPECTED_SPANS], atol=0.02)
    np.testing.assert_allclose(words.t_end, [T_LSL0 + e for _, e in EXPECTED_SPANS], atol=0.02)
    assert streamer.final_words().text == EXPECTED_TEXT
    # committed while dictating, not only at the end; a held "new" waited for its "paragraph"
    live = concat_words(before_stop).text
    assert live[:4] == ["No", "pleural", "effusion", "."] and "\n\n" in live
    # unstable hypotheses were never committed, only shown
    assert all("~" not in t for t in words.text)
    assert any("~" in p.tentative_text for p in previews)
    committed = [p.committed_text for p in previews]
    assert all(b.startswith(a) for a, b in zip(committed, committed[1:]))
    # the preview shows dictated punctuation converted
    assert previews[-1].committed_text == "No pleural effusion. Heart size is normal\n\nLungs clear."
    assert previews[-1].tentative_text == "" and previews[-1].t_lsl == pytest.approx(T_LSL0 + 9.0)
    # text whose audio is still in the decoded buffer is not also given as prompt (whisper_streaming's rule)
    assert all(p == "" for p in fake.prompts)


def test_streaming_from_config_takes_its_chunking():
    st = streaming_from_config(AsrConfig(chunk_s=0.5, max_buffer_s=4.0), transcriber=ScriptTranscriber())
    assert st.chunk_len == 8000 and st.max_buffer_len == 4 * RATE
    # Whisper's window bounds the buffer whatever the configuration says
    st = streaming_from_config(AsrConfig(max_buffer_s=60.0), transcriber=ScriptTranscriber())
    assert st.max_buffer_len == 30 * RATE


def test_buffer_is_trimmed_at_committed_words():
    fake = ScriptTranscriber()
    run_stream(fake, 9.0, max_buffer_s=3.0)
    assert max(fake.buffer_durations_s) <= 3.0 + 1.0 + 0.05
    assert fake.calls >= 9
    # committed text trimmed out of the buffer is fed back as prompt
    assert any("No pleural effusion" in p for p in fake.prompts)


def test_early_first_words_are_sanitised_in_the_stream():
    # issue #294 style: every decode's first word starts 0.7 s too early
    fake = ScriptTranscriber(early_first_s=0.7)
    streamer, before_stop, _ = run_stream(fake, 9.0, max_buffer_s=3.0)
    rest, _ = drain_words(streamer)
    words = concat_words(before_stop + rest)
    assert words.text == EXPECTED_TEXT
    assert words.t_start[0] == pytest.approx(T_LSL0, abs=1e-9)  # clipped at the start of the audio
    assert np.all(words.t_start <= words.t_end)
    assert np.all(words.t_start[1:] >= words.t_end[:-1])
    assert words.t_end[-1] <= T_LSL0 + 9.0


def test_no_agreement_for_a_whole_buffer_force_commits_and_bounds_the_buffer():
    class Fickle:
        calls = 0
        sizes: list[float] = []

        def __call__(self, audio, prompt):
            self.calls += 1
            self.sizes.append(audio.size / RATE)
            dur = audio.size / RATE
            return [AsrWord(0.1, 0.5, f" a{self.calls}"), AsrWord(0.6, dur - 0.1, f" b{self.calls}")]

    fickle = Fickle()
    streamer, before_stop, _ = run_stream(fickle, 8.0, max_buffer_s=3.0)
    assert before_stop, "nothing emitted although the buffer was full"
    assert max(fickle.sizes) <= 3.0 + 1.0 + 0.05
    rest, _ = drain_words(streamer)
    words = concat_words(before_stop + rest)
    assert np.all(np.diff(words.t_start) >= 0) and np.all(words.t_start <= words.t_end)


def test_silence_keeps_the_buffer_bounded_and_emits_nothing():
    sizes = []

    def deaf(audio, prompt):
        sizes.append(audio.size / RATE)
        return []

    streamer, before_stop, previews = run_stream(deaf, 6.0, max_buffer_s=2.0)
    rest, errors = drain_words(streamer)
    assert not before_stop and not rest and not errors
    assert max(sizes) <= 2.0 + 1.0 + 0.05
    assert previews and previews[-1].committed_text == ""


def test_transcriber_errors_travel_on_the_words_queue():
    def broken(audio, prompt):
        raise RuntimeError("decoder exploded")

    streamer = StreamingTranscriber(broken).start()
    streamer.feed(T_LSL0, np.zeros(RATE, np.int16))
    streamer.feed(T_LSL0 + 1, np.zeros(RATE, np.int16))
    _, errors = drain_words(streamer)
    assert len(errors) == 1 and "decoder exploded" in str(errors[0])
    streamer.stop(timeout_s=5)


class HeldTranscriber(ScriptTranscriber):
    """A ScriptTranscriber whose first decode does not return until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, audio: np.ndarray, prompt: str) -> list[AsrWord]:
        self.entered.set()
        self.release.wait(timeout=60)
        return super().__call__(audio, prompt)


def test_feed_never_waits_for_a_slow_decoder():
    """All of a recording's blocks are fed while the worker is stuck inside one decode (order, not timing)."""
    held = HeldTranscriber()
    streamer = StreamingTranscriber(held).start()
    audio = encoded_audio(5.0)
    n_blocks = audio.size // BLOCK
    fed: list[int] = []

    def feed_all() -> None:
        for k in range(n_blocks):
            streamer.feed(T_LSL0 + k * 0.1, audio[k * BLOCK : (k + 1) * BLOCK])
            fed.append(k)
            if k == 15:  # enough audio for a first decode: wait until the worker is inside it
                assert held.entered.wait(timeout=30), "the worker never started decoding"

    feeder = threading.Thread(target=feed_all, daemon=True)
    feeder.start()
    feeder.join(timeout=30)  # a liveness bound only: feeding 50 blocks takes microseconds each
    finished_while_held = not feeder.is_alive() and not held.release.is_set()
    held.release.set()
    feeder.join(timeout=30)
    assert finished_while_held and len(fed) == n_blocks, f"fed {len(fed)} of {n_blocks} while decoding"
    streamer.stop(timeout_s=30)
    assert streamer.final_words().text[:3] == ["No", "pleural", "effusion"]


def test_word_times_map_through_the_audio_blocks_of_a_recording_with_a_dropout():
    # 1 s of audio, then a 2 s dropout (blocks stamped later), then more audio
    audio = encoded_audio(3.0)
    blocks = [
        (T_LSL0 + k * 0.1 + (2.0 if k >= 10 else 0.0), audio[k * BLOCK : (k + 1) * BLOCK]) for k in range(30)
    ]
    from radgaze.capture.live.audio import AudioBlock

    rec = blocks_to_audio([AudioBlock(t, s) for t, s in blocks])

    def two_words(x, prompt):
        return [AsrWord(0.2, 0.6, " heart"), AsrWord(1.5, 1.9, " normal")]

    words = transcribe_audio(two_words, rec)
    np.testing.assert_allclose(words.t_start, [T_LSL0 + 0.2, T_LSL0 + 2.0 + 1.5])
    np.testing.assert_allclose(words.t_end, [T_LSL0 + 0.6, T_LSL0 + 2.0 + 1.9])


# --- LocalAgreement-2 on hand-made hypotheses -------------------------------------------------------------


def w(text, s, e):
    return AsrWord(s, e, " " + text)


def test_local_agreement_commits_the_common_prefix_of_two_decodes():
    la = LocalAgreement()
    assert la.update([w("no", 0.5, 0.8), w("pleu", 0.9, 1.0)]) == []
    got = la.update([w("no", 0.52, 0.8), w("pleural", 0.9, 1.3), w("eff", 1.35, 1.5)])
    assert [x.text for x in got] == [" no"]
    assert got[0].start_s == 0.52  # times of the latest decode
    assert [x.text for x in la.tentative] == [" pleural", " eff"]
    got = la.update([w("No.", 0.5, 0.8), w("Pleural", 0.9, 1.3), w("effusion", 1.35, 1.9)])
    # the re-decoded committed "No." is a repeat (by normalised text) and dropped; case does not matter
    assert [x.text for x in got] == [" Pleural"]
    assert la.finish() == [w("effusion", 1.35, 1.9)]
    assert [x.text.strip() for x in la.committed] == ["no", "Pleural", "effusion"]


def test_local_agreement_drops_words_that_end_before_the_horizon():
    la = LocalAgreement()
    la.update([w("a", 0.0, 0.4), w("b", 0.5, 0.9)])
    la.update([w("a", 0.0, 0.4), w("b", 0.5, 0.9), w("c", 1.0, 1.2)])
    assert la.horizon_s == 0.9
    # a decode that starts with words from before the horizon (different text): only the new part counts
    assert la.update([w("x", 0.1, 0.3), w("c", 1.0, 1.2), w("d", 1.3, 1.5)]) == [w("c", 1.0, 1.2)]


# --- sanitiser ----------------------------------------------------------------------------------------------


def test_sanitize_fixes_hand_made_broken_word_times():
    nan = float("nan")
    start = np.array([-0.3, 2.0, 1.5, nan, 4.0, 0.5, 30.0, 9.0])
    end = np.array([0.4, 1.8, 1.9, 3.0, 14.5, 0.7, 31.0, nan])
    s, e = sanitize_word_times(start, end, audio_dur_s=11.0, max_word_dur_s=2.0)
    expected_s = [0.0, 1.8, 2.0, 3.0, 9.0, 11.0, 11.0, 11.0]
    expected_e = [0.4, 2.0, 2.0, 3.0, 11.0, 11.0, 11.0, 11.0]
    # row by row: negative start clipped; start > end swapped (#294); inside the previous word -> moved after
    # it; NaN start takes its end; a 10.5 s word (#125) shortened to 2 s ending at the audio end; a word
    # before the previous one moved after it; words past the audio clipped to its end; NaN end = start.
    np.testing.assert_allclose(s, expected_s)
    np.testing.assert_allclose(e, expected_e)


def test_sanitize_respects_a_lower_bound_from_words_already_emitted():
    s, e = sanitize_word_times(np.array([1.0, 2.0]), np.array([1.5, 2.5]), audio_dur_s=5.0, min_start_s=1.8)
    np.testing.assert_allclose(s, [1.8, 2.0])
    np.testing.assert_allclose(e, [1.8, 2.5])


times = st.one_of(st.floats(min_value=-50, max_value=80), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(times, times), max_size=30), st.floats(0.0, 60.0), st.floats(0.0, 5.0))
def test_sanitize_always_returns_ordered_times_inside_the_audio(pairs, dur, lo):
    start = np.array([p[0] for p in pairs], dtype=np.float64)
    end = np.array([p[1] for p in pairs], dtype=np.float64)
    s, e = sanitize_word_times(start, end, audio_dur_s=dur, min_start_s=lo, max_word_dur_s=2.0)
    hi = max(dur, lo)
    assert s.shape == e.shape == start.shape
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(e))
    assert np.all((s >= lo) & (e <= hi) & (s <= e))
    assert np.all(s[1:] >= e[:-1])
    assert np.all(e - s <= 2.0 + 1e-9)


def test_word_times_leave_the_pauses_for_the_nearer_speech():
    """Whole-decode artefacts seen on tiny.en (a spoken report, speech at 3.65-5.02 s and 7.04-8.48 s): the
    sentence's last word squeezed into the pause after it goes back to that speech, the first word of the next
    stamped early in the pause goes forward to it, a word running into the pause is cut at the speech's end."""
    from radgaze.capture.live.vad import bound_to_speech

    regions = np.array([[3.648, 5.024], [7.04, 8.48]])
    start = np.array([4.48, 5.78, 6.60, 7.30])  # "is" 4.48-5.78, "normal." 5.78-5.78, "There" 6.6-6.9, "is"
    end = np.array([5.78, 5.78, 6.90, 7.42])
    s, e = bound_to_speech(start, end, regions, pad_s=0.05)
    np.testing.assert_allclose(s, [4.48, 5.074, 6.99, 7.30])
    np.testing.assert_allclose(e, [5.074, 5.074, 7.29, 7.42])


def test_a_whole_decode_marks_sentences_by_the_pauses_as_the_stream_does():
    """A pause of 1.5 s or more after an utterance ends its sentence (a full stop added), a shorter one
    (0.6-1.5 s) makes Whisper's sentence mark a comma, a word run on without a pause is left as Whisper wrote
    it, and the last word keeps its mark."""
    from radgaze.capture.live.asr import AsrWord, mark_sentences_by_pause

    words = [
        AsrWord(0.0, 0.4, " My"), AsrWord(0.4, 1.0, " fellow"), AsrWord(1.0, 1.6, " Americans."),  # 1.1 s pause
        AsrWord(2.7, 3.0, " ask"), AsrWord(3.0, 3.5, " not"),  # 2.0 s pause: a sentence, no mark written
        AsrWord(5.5, 5.8, " The"), AsrWord(5.8, 6.2, " heart."), AsrWord(6.3, 6.6, " Is"),
        AsrWord(6.6, 7.0, " normal"),
    ]  # fmt: skip
    out = [w.text for w in mark_sentences_by_pause(words)]
    assert out == [" My", " fellow", " Americans,", " ask", " not.", " The", " heart.", " Is", " normal"]
