"""Audio sources without a sound server: device resolution, clock mapping, the file stand-in."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest
import soundfile

from radgaze.capture.base.errors import DeviceError, RadgazeError
from radgaze.capture.live.audio import (
    AudioBlock,
    AudioFileSource,
    ClockOffsetEstimator,
    InputDevice,
    MicrophoneSource,
    blocks_to_audio,
    read_audio_file,
    resolve_input_device,
    samples_to_t_lsl,
)

DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 44100.0, False),
    InputDevice(3, "USB Dictation Mic: Audio (hw:2,0)", "ALSA", 1, 48000.0, False),
    InputDevice(5, "pulse", "ALSA", 32, 44100.0, False),
    InputDevice(6, "default", "ALSA", 32, 44100.0, True),
]


def _drain(q: queue.Queue, timeout_s: float = 10.0) -> tuple[list[AudioBlock], list[BaseException]]:
    blocks, errors = [], []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if item is None:
            return blocks, errors
        (errors if isinstance(item, BaseException) else blocks).append(item)
    raise AssertionError("source did not finish in time")


def test_resolve_by_default_index_exact_name_and_substring():
    assert resolve_input_device(None, DEVICES).name == "default"
    assert resolve_input_device(3, DEVICES).index == 3
    assert resolve_input_device("3", DEVICES).index == 3
    assert resolve_input_device("PULSE", DEVICES).index == 5
    assert resolve_input_device("dictation", DEVICES).index == 3


def test_no_input_device_is_a_clear_device_error():
    with pytest.raises(DeviceError, match="no audio input device found.*--audio-file"):
        resolve_input_device(None, [])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("radgaze-no-such-mic", "no audio input device named 'radgaze-no-such-mic'.*\\[3\\] USB Dictation"),
        (9, "index 9 does not exist"),
        ("hw:", "ambiguous"),
    ],
)
def test_unknown_or_ambiguous_device_names_the_devices_that_exist(spec, message):
    with pytest.raises(DeviceError, match=message):
        resolve_input_device(spec, DEVICES)


def test_microphone_with_a_nonexistent_name_raises_device_error_from_portaudio():
    # real PortAudio query: whatever this machine has, this name is not among its inputs
    with pytest.raises(DeviceError) as info:
        MicrophoneSource("radgaze-nonexistent-microphone-7f3a")
    assert isinstance(info.value, RadgazeError)
    assert "no audio input device" in str(info.value)


def test_clock_offset_takes_the_least_delayed_sample_and_follows_steps():
    est = ClockOffsetEstimator(window=4, step_s=0.5)
    true = 100.0
    for delay in (0.004, 0.001, 0.010, 0.003):
        est.update(true + delay)
    assert est.offset_s == pytest.approx(100.001)
    # the window forgets the old minimum: a (small) upward drift is followed after `window` samples
    for _ in range(4):
        est.update(true + 0.02 + 0.002)
    assert est.offset_s == pytest.approx(100.022)
    # the stream clock is set back by 2 s: offset jumps up at once instead of after a whole window
    assert est.update(102.022 + 0.003) == pytest.approx(102.025)
    # and forward: the minimum follows immediately
    assert est.update(99.0) == pytest.approx(99.0)


def test_samples_to_t_lsl_maps_through_blocks_with_a_dropout():
    # 3 blocks of 1600 samples; 0.5 s of audio lost before the third block
    t = np.array([10.0, 10.1, 10.7])
    first = np.array([0, 1600, 3200])
    got = samples_to_t_lsl(np.array([0, 800, 1600, 3199, 3200, 4000, -160]), t, first)
    np.testing.assert_allclose(got, [10.0, 10.05, 10.1, 10.1 + 1599 / 16000, 10.7, 10.75, 9.99])


def test_blocks_to_audio():
    blocks = [AudioBlock(5.0, np.arange(3, dtype=np.int16)), AudioBlock(5.5, np.arange(2, dtype=np.int16))]
    a = blocks_to_audio(blocks)
    np.testing.assert_array_equal(a.samples, [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(a.block_first_sample, [0, 3])
    assert a.t_start() == 5.0 and a.sample_rate == 16000


def test_file_source_resamples_to_16k_mono_and_stamps_blocks(tmp_path):
    rate = 44100
    t = np.arange(int(0.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    soundfile.write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1), rate, subtype="PCM_16")
    src = AudioFileSource(tmp_path / "tone.wav", speed=float("inf"), t_lsl_start=1000.0)
    src.start()
    blocks, errors = _drain(src.queue)
    assert not errors
    audio = blocks_to_audio(blocks)
    assert audio.samples.dtype == np.int16 and audio.samples.size == 8000
    np.testing.assert_allclose(audio.block_t_lsl, 1000.0 + audio.block_first_sample / 16000)
    # still a 440 Hz tone of amplitude 0.5 after resampling
    spectrum = np.abs(np.fft.rfft(audio.samples.astype(float)))
    assert np.argmax(spectrum) * 16000 / audio.samples.size == pytest.approx(440.0, abs=2.0)
    assert np.abs(audio.samples[1000:-1000]).max() == pytest.approx(0.5 * 32767, rel=0.02)


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_file_source_plays_in_real_time_or_faster(tmp_path, speed):
    soundfile.write(tmp_path / "s.wav", np.zeros(16000, np.int16), 16000)  # 1 s
    src = AudioFileSource(tmp_path / "s.wav", speed=speed)
    t0 = time.monotonic()
    src.start()
    blocks, _ = _drain(src.queue)
    elapsed = time.monotonic() - t0
    assert len(blocks) == 10
    # paced, not dumped: 1 s of audio at `speed` cannot all arrive before (1 / speed) s have passed (a busy
    # machine only makes it later); the upper bound is a liveness bound (10x), not a speed figure
    assert 1.0 / speed - 0.05 <= elapsed <= 10.0 / speed + 2.0


def test_file_source_stop_ends_the_stream_early(tmp_path):
    soundfile.write(tmp_path / "s.wav", np.zeros(5 * 16000, np.int16), 16000)
    src = AudioFileSource(tmp_path / "s.wav")
    src.start()
    time.sleep(0.35)
    src.stop()
    blocks, _ = _drain(src.queue, timeout_s=2.0)
    assert 2 <= len(blocks) <= 5


def test_unreadable_audio_files_are_device_errors(tmp_path):
    with pytest.raises(DeviceError, match="does not exist"):
        read_audio_file(tmp_path / "missing.flac")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DeviceError, match="cannot decode audio file"):
        AudioFileSource(tmp_path / "junk.wav")


def test_real_speech_clip_decodes_to_11_s(shared_data):
    path = shared_data / "audio" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    x = read_audio_file(path)
    assert x.size == pytest.approx(11.0 * 16000, abs=2)
    assert np.abs(x).max() > 10000  # speech at a sane level, not silence or clipping noise


def test_a_16_bit_16_khz_file_is_stored_sample_for_sample(tmp_path):
    """--audio-file on a 16-bit 16 kHz WAV: the samples the recorder stores (and the ASR hears) are the file's,
    exactly; scaling by 32767 instead of 32768 moved loud samples by one step and tiny.en's words with them
    ("The end of tracheal tube ... on the camera" became "Then the tracheal tube ... on the Camino")."""
    rng = np.random.default_rng(3)
    x = rng.integers(-32768, 32768, 16000).astype(np.int16)
    x[:4] = (-32768, 32767, 20203, -20908)
    soundfile.write(str(tmp_path / "a.wav"), x, 16000, subtype="PCM_16")
    assert np.array_equal(read_audio_file(tmp_path / "a.wav"), x)
