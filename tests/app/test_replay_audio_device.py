"""The replay's audio through a real output device: PulseAudio's virtual speaker, heard on its monitor (the
virtual microphone of .ci/pulse-mic.sh). Skips with the reason when no PulseAudio server runs."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from radgaze.app.audio_player import AudioPlayer
from radgaze.capture.base.records import Audio

RATE_HZ = 16000
TONE_HZ = 440.0


@pytest.fixture(scope="module")
def pulse() -> None:
    if shutil.which("pactl") is None:
        pytest.skip("pactl not installed (apt-get install pulseaudio-utils)")
    info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    if info.returncode != 0 or "radgaze_mic" not in info.stdout:
        pytest.skip("no PulseAudio server with the radgaze virtual microphone (run .ci/pulse-mic.sh)")
    import sounddevice

    sounddevice._terminate()  # PortAudio enumerates devices once: re-enumerate with the server running
    sounddevice._initialize()


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1.0 / rate)[int(np.argmax(spectrum))])


@pytest.mark.audio
@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_recorded_audio_is_played_from_the_cued_time_at_speed(pulse, speed, monkeypatch):
    import sounddevice as sd

    # the default sink is radgaze_room (nobody listens there): play where the virtual microphone hears it
    monkeypatch.setenv("PULSE_SINK", "radgaze_speaker")

    n = 4 * RATE_HZ
    t = np.arange(n) / RATE_HZ
    tone = (12000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
    tone[: n // 2] = 0  # silent first half: cueing at 2.0 s must start straight in the tone
    audio = Audio(tone, RATE_HZ, np.array([100.0]), np.array([0], np.int64))
    heard: list[np.ndarray] = []
    with sd.InputStream(
        samplerate=RATE_HZ, channels=1, dtype="float32", callback=lambda d, *_: heard.append(d[:, 0].copy())
    ):
        player = AudioPlayer()
        player.set_audio(audio)
        t_play = time.monotonic()
        assert player.play(102.0, speed=speed), player.error
        time.sleep(0.8)
        position = player.position_t_lsl()
        wall_s = time.monotonic() - t_play
        player.close()
        time.sleep(0.3)
    x = np.concatenate(heard)
    assert np.sqrt(np.mean(x**2)) > 0.01, "nothing reached the virtual speaker"
    loud = x[np.abs(x) > 0.05]
    assert loud.size > 0.2 * RATE_HZ
    assert _peak_hz(x, RATE_HZ) == pytest.approx(TONE_HZ * speed, abs=15.0)  # the tone, pitched by speed
    # the read position moved on from the cue, at most as far as the wall time allows at that speed (plus the
    # output buffer read ahead); how soon the device started is the sound server's business, not asserted
    assert 0.0 < position - 102.0 <= speed * wall_s + 0.5
