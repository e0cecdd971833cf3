"""Speech in a case's recorded audio, on the LSL clock.

:func:`samples_to_t_lsl` maps audio sample indices to the LSL clock through the audio's blocks (the one mapping
of audio time; capture/live/audio.py stamps the blocks).
"""

from __future__ import annotations

import numpy as np

SPEECH_RATE_HZ = 16_000  # the rate radgaze records speech at: Whisper's input rate, and Silero VAD's


def samples_to_t_lsl(
    sample_index: np.ndarray | float,
    block_t_lsl: np.ndarray,
    block_first_sample: np.ndarray,
    sample_rate_hz: int = SPEECH_RATE_HZ,
) -> np.ndarray:
    """LSL time (s) of (fractional) sample indices counted from the first captured sample.

    Each index is mapped through the block that contains it: ``block_t_lsl[k] + (i - first[k]) / rate``, so
    dropouts between blocks and clock re-estimation are honoured. Indices before the first block extrapolate
    from it. ``block_first_sample`` must be sorted ascending.
    """
    i = np.asarray(sample_index, dtype=np.float64)
    first = np.asarray(block_first_sample, dtype=np.float64)
    if first.size == 0:
        raise ValueError("samples_to_t_lsl: expected at least one audio block, got none")
    k = np.clip(np.searchsorted(first, i, side="right") - 1, 0, first.size - 1)
    return np.asarray(block_t_lsl, dtype=np.float64)[k] + (i - first[k]) / float(sample_rate_hz)
