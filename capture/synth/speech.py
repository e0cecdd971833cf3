"""Spoken reports with known sentence times: espeak-ng speaks each sentence alone, the clips are joined with
pauses of our choosing, so every sentence's onset and offset in the joined audio is known to the sample.

Used by the ASR tests and ``radgaze bench asr`` to measure dictation against the truth (word error rate,
invented finding words, sentence count and onset error). espeak-ng (Debian package ``espeak-ng``) is a
formant synthesiser: its speech is intelligible and regular, harder for Whisper than a human's in places
("cardiomediastinal"), which is what a test of vocabulary biasing needs.

A clip's own leading and trailing silence is trimmed by energy (:func:`speech_bounds`: the first and last
10 ms frame above -40 dBFS), so the pauses between sentences are exactly the chosen ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.010
SILENCE_DBFS = -40.0

# Reports in the style of chest radiograph dictation (MIMIC-CXR / IU X-ray style sentences), written here.
# Each sentence is one entry; a report's finding words are those of FINDING_WORDS it contains.
SPOKEN_REPORTS: dict[str, tuple[str, ...]] = {
    "normal": (
        "PA and lateral views of the chest.",
        "The cardiomediastinal silhouette is within normal limits.",
        "The lungs are clear.",
        "There is no pleural effusion or pneumothorax.",
        "The osseous structures are intact.",
    ),
    "effusion": (
        "Frontal view of the chest.",
        "There is a small right pleural effusion with adjacent atelectasis.",
        "The heart size is normal.",
        "No pneumothorax is seen.",
    ),
    "lines": (
        "Portable frontal view of the chest.",
        "The endotracheal tube terminates five centimeters above the carina.",
        "The nasogastric tube courses below the diaphragm.",
        "There is mild pulmonary edema.",
        "The heart is enlarged.",
    ),
    "pneumonia": (
        "Two views of the chest.",
        "There is a focal consolidation in the left lower lobe, concerning for pneumonia.",
        "The right lung is clear.",
        "No acute osseous abnormality.",
    ),
}

# Words that name a finding, a device or a diagnosis: a transcript that holds one the speaker did not say has
# written a finding into a report. Stems, matched at word starts ("effusions", "atelectatic" count).
FINDING_WORDS = (
    "pneumothora",
    "effusion",
    "cardiomegaly",
    "consolidat",
    "atelecta",
    "edema",
    "oedema",
    "opacit",
    "nodul",
    "mass",
    "pneumonia",
    "fracture",
    "enlarge",
    "infiltrat",
    "emphysema",
    "fibrosis",
    "lesion",
    "tube",
    "catheter",
    "pacemaker",
    "hernia",
    "granuloma",
    "calcifi",
    "thickening",
)


@dataclass(frozen=True)
class SpokenReport:
    """Joined speech (int16 mono, 16 kHz) and the truth: each sentence's text, onset and offset (s)."""

    samples: np.ndarray
    sentences: tuple[str, ...]
    onset_s: np.ndarray
    offset_s: np.ndarray
    voice: str
    words_per_min: int

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE_HZ


def speech_bounds(samples: np.ndarray, rate: int = SAMPLE_RATE_HZ) -> tuple[int, int]:
    """(first, end) sample of the part of ``samples`` louder than -40 dBFS, by 10 ms frames."""
    frame = max(1, round(FRAME_S * rate))
    n = samples.size // frame
    x = samples[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    db = 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)
    loud = np.flatnonzero(db > SILENCE_DBFS)
    if loud.size == 0:
        raise ConfigError("expected speech in the synthesised clip, got silence")
    return int(loud[0] * frame), int(min(samples.size, (loud[-1] + 1) * frame))


def _espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    return exe


def speak_sentence(text: str, voice: str = "en-us", words_per_min: int = 160) -> np.ndarray:
    """One sentence spoken by espeak-ng, resampled to 16 kHz int16, its silences trimmed."""
    import soundfile as sf
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(
            [_espeak_binary(), "-v", voice, "-s", str(int(words_per_min)), "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        x, rate = sf.read(str(wav), dtype="float64")
    if x.ndim > 1:
        x = x.mean(axis=1)
    g = np.gcd(int(rate), SAMPLE_RATE_HZ)
    y = resample_poly(x, SAMPLE_RATE_HZ // g, int(rate) // g)
    y16 = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    a, b = speech_bounds(y16)
    return y16[a:b]


def speak_report(
    sentences: tuple[str, ...] | list[str],
    *,
    voice: str = "en-us",
    words_per_min: int = 160,
    pauses_s: tuple[float, ...] | list[float] | float = 1.0,
    lead_s: float = 0.5,
    tail_s: float = 3.0,
) -> SpokenReport:
    """Speak ``sentences`` one clip each, joined by ``pauses_s`` (one per gap, or one for all)."""
    n = len(sentences)
    pauses = [float(pauses_s)] * max(0, n - 1) if np.isscalar(pauses_s) else [float(p) for p in pauses_s]
    if len(pauses) != max(0, n - 1):
        raise ConfigError(f"expected {n - 1} pauses for {n} sentences, got {len(pauses)}")
    pieces = [np.zeros(round(lead_s * SAMPLE_RATE_HZ), np.int16)]
    onsets, offsets = [], []
    t = lead_s
    for i, text in enumerate(sentences):
        clip = speak_sentence(text, voice, words_per_min)
        onsets.append(t)
        t += clip.size / SAMPLE_RATE_HZ
        offsets.append(t)
        gap = pauses[i] if i < n - 1 else tail_s
        pieces += [clip, np.zeros(round(gap * SAMPLE_RATE_HZ), np.int16)]
        t += round(gap * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    return SpokenReport(
        np.concatenate(pieces), tuple(sentences), np.array(onsets), np.array(offsets), voice, words_per_min
    )


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation ("PA," -> "pa"; "5" stays "5") for word error rates."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalised words / number of reference words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    d = np.arange(len(hyp) + 1, dtype=np.int64)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / max(1, len(ref))


def finding_words(text: str) -> list[str]:
    """The finding stems (:data:`FINDING_WORDS`) that the words of ``text`` start with, one per such word
    ("enlarged" and "enlarge" are both "enlarge": a misheard ending is not an invented finding)."""
    return [
        next(s for s in FINDING_WORDS if w.startswith(s))
        for w in normalise_words(text)
        if w.startswith(FINDING_WORDS)
    ]


def invented_finding_words(reference: str, hypothesis: str) -> list[str]:
    """Finding words of ``hypothesis`` beyond those of ``reference`` (counted with multiplicity)."""
    left = finding_words(reference)
    out = []
    for w in finding_words(hypothesis):
        if w in left:
            left.remove(w)
        else:
            out.append(w)
    return out
