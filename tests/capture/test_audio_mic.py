"""Real microphone path: the JFK clip played into a PulseAudio virtual microphone, recorded by sounddevice.

Needs PulseAudio + the ALSA "pulse" plugin (apt: pulseaudio pulseaudio-utils libasound2-plugins); the fixture
starts the server with .ci/pulse-mic.sh when it is not running, and skips with the reason when it cannot.
The fixtures here are imported by test_asr_mic.py.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from pylsl import local_clock

from radgaze.capture.live.audio import (
    AudioBlock,
    MicrophoneSource,
    blocks_to_audio,
    list_input_devices,
    read_audio_file,
    samples_to_t_lsl,
)

REPO = Path(__file__).resolve().parents[2]
SPEAKER_SINK = "radgaze_speaker"  # see .ci/pulse-mic.sh


@pytest.fixture(scope="session")
def virtual_mic() -> str:
    """PortAudio input name recording the radgaze virtual microphone (PulseAudio's default source)."""
    missing = [t for t in ("pulseaudio", "pactl", "pacat") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"PulseAudio tools {missing} not installed (apt-get install pulseaudio pulseaudio-utils)")
    proc = subprocess.run([str(REPO / ".ci" / "pulse-mic.sh")], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f".ci/pulse-mic.sh could not start the virtual microphone: {proc.stderr.strip()}")
    # every later client (PortAudio's ALSA plugin, pacat) talks to this server, wherever XDG_CONFIG_HOME points
    for line in proc.stdout.splitlines():
        if line.startswith("Server String:"):
            os.environ["PULSE_SERVER"] = line.split(":", 1)[1].strip()
    import sounddevice

    # PortAudio enumerates devices once, at initialisation: re-enumerate now that the server runs.
    sounddevice._terminate()
    sounddevice._initialize()
    names = [d.name for d in list_input_devices()]
    if "pulse" not in names:
        pytest.skip(f"no ALSA 'pulse' input in PortAudio ({names}); apt-get install libasound2-plugins")
    return "pulse"


@pytest.fixture(scope="session")
def jfk_16k(shared_data) -> np.ndarray:
    path = shared_data / "audio" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"real speech clip {path} is absent")
    return read_audio_file(path)


def play_into_mic(samples_int16: np.ndarray) -> subprocess.Popen:
    """Play 16 kHz mono int16 samples into the sink whose monitor is the virtual microphone."""
    # pacat with raw PCM from us (paplay mis-plays the 24-bit FLAC: it ends after ~2 s of an 11 s clip)
    proc = subprocess.Popen(
        [
            "pacat",
            f"--device={SPEAKER_SINK}",
            # the whole clip in the server's buffer at once: a player starved by a CPU hog for 0.4 s left a gap
            # in the speech with 200 ms (the recording was intact, the playback was not); the drain at the end
            # of stdin starts playback without waiting for the buffer to fill
            "--latency-msec=20000",
            "--format=s16le",
            "--rate=16000",
            "--channels=1",
            "--raw",
        ],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(samples_int16.astype("<i2").tobytes())
    proc.stdin.close()
    return proc


def drain(q: queue.Queue) -> tuple[list[AudioBlock], list[BaseException]]:
    blocks, errors = [], []
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            return blocks, errors
        if item is not None:
            (errors if isinstance(item, BaseException) else blocks).append(item)


def best_lag(recorded: np.ndarray, reference: np.ndarray, *, lowpass_hz: float = 1000.0) -> tuple[int, float]:
    """Sample offset of ``reference`` inside ``recorded`` and their normalised correlation there.

    Both are low-passed first: the sound server's 16k -> 44.1k -> 16k resampling leaves a fractional-sample
    delay that would decorrelate the highest frequencies (a half-sample delay at 1 kHz costs only 2 %).
    """
    from scipy.signal import butter, correlate, sosfiltfilt

    sos = butter(8, lowpass_hz, fs=16000, output="sos")
    r = sosfiltfilt(sos, recorded.astype(np.float64))
    x = sosfiltfilt(sos, reference.astype(np.float64))
    c = correlate(r, x, mode="valid", method="fft")
    lag = int(np.argmax(c))
    seg = r[lag : lag + x.size]
    return lag, float(c[lag] / (np.linalg.norm(seg) * np.linalg.norm(x) + 1e-12))


def piecewise_offsets(recorded: np.ndarray, reference: np.ndarray, win: int = 3200) -> list[int]:
    """Offsets (recorded - reference, samples) of the loud 0.2 s windows that match well: one value when the
    recording is intact, several when samples were lost or repeated."""
    from scipy.signal import correlate

    x = reference.astype(np.float64)
    offsets = set()
    for s in range(0, recorded.size - win, win):
        seg = recorded[s : s + win].astype(np.float64)
        if np.sqrt(np.mean(seg**2)) < 3000:
            continue
        c = correlate(x, seg, mode="valid", method="fft")
        k = int(np.argmax(c))
        if c[k] > 0.9 * np.linalg.norm(seg) * np.linalg.norm(x[k : k + win]):
            offsets.add(s - k)
    return sorted(offsets)


@pytest.mark.audio
def test_virtual_mic_records_the_played_speech_stamped_on_the_lsl_clock(virtual_mic, jfk_16k, artifacts_dir):
    src = MicrophoneSource(virtual_mic)
    src.start()
    try:
        # the stream delivers before the speech starts (a loaded machine may take longer than any fixed wait)
        deadline = time.monotonic() + 30.0
        while src.queue.qsize() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.queue.qsize() >= 3, "the virtual microphone delivered nothing within 30 s"
        t_play_lsl = local_clock()
        player = play_into_mic(jfk_16k)
        assert player.wait(timeout=30) == 0
        time.sleep(0.5)
    finally:
        src.stop()
    blocks, errors = drain(src.queue)
    assert not errors
    audio = blocks_to_audio(blocks)
    rate = audio.sample_rate
    assert audio.samples.dtype == np.int16 and rate == 16000
    # all of the clip is in the recording, intact (the path resamples 16k -> 44.1k -> 16k)
    assert audio.samples.size >= jfk_16k.size
    lag, corr = best_lag(audio.samples, jfk_16k)
    if corr <= 0.9:
        np.save(artifacts_dir / "virtual_mic_recording.npy", audio.samples)
    assert corr > 0.9, (
        f"recorded audio does not match the played clip (corr {corr:.3f}, {src.n_overflows} overflows; "
        f"piecewise offsets {piecewise_offsets(audio.samples, jfk_16k)}; recording in {artifacts_dir})"
    )
    # block stamps: increasing, and advancing with the samples at the real-time rate
    assert np.all(np.diff(audio.block_t_lsl) > 0)
    span_s = audio.block_t_lsl[-1] - audio.block_t_lsl[0]
    samples_s = audio.block_first_sample[-1] / rate
    assert span_s == pytest.approx(samples_s, rel=0.02, abs=0.05)
    # the speech's first sample is stamped after we started playing it, within the sound server's latency
    t_speech_lsl = float(samples_to_t_lsl(lag, audio.block_t_lsl, audio.block_first_sample, rate))
    delay_s = t_speech_lsl - t_play_lsl
    assert -0.02 <= delay_s < 2.0, f"speech stamped {delay_s:+.3f} s after playback started"
    assert src.describe()["device"] == "pulse"
    print(
        f"virtual mic: corr {corr:.3f}, speech stamped {delay_s * 1000:+.1f} ms after playback start, "
        f"latency {src.latency_s * 1000:.0f} ms, overflows {src.n_overflows}"
    )
