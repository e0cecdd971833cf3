"""Words typed in the transcript step get the time they were spoken: a spoken report (espeak-ng, one clip per
sentence joined with known pauses) is stored as a case's audio; the recognised words miss a sentence; the reader
types it; its words land in that sentence's speech (Silero VAD of the stored audio, or the speech-energy
measure), never zero length, and its heatmap is made from the gaze of that time, not the sentence before."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    VIEW_CASE,
    VIEW_DTYPE,
    Audio,
    CaseRecord,
    DisplayGeometry,
    ImageRef,
    Words,
)
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, HeatmapContext, build_sentences
from radgaze.capture.gazemath.correction import MIN_TYPED_WORD_S, correct_case, edits_from_text
from radgaze.capture.gazemath.speech import case_speech_t_lsl, vad_speech_s
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SENTENCES = ("The heart size is normal.", "The lungs are clear.", "The osseous structures are intact.")
PAUSE_S, LEAD_S, TAIL_S = 2.5, 0.7, 2.0
T0_LSL = 500.0  # the case's (and its audio's) start on the LSL clock
TOLERANCE_S = 0.3
SIZE_PX = 256
LOOK_AT = ((40.0, 40.0), (216.0, 40.0), (128.0, 216.0))  # where the reader looks while forming sentence k
ELSEWHERE = (40.0, 216.0)  # where the gaze rests in the pauses


@pytest.fixture(scope="module")
def report():
    speech = pytest.importorskip(
        "radgaze.capture.synth.speech", reason="spoken reports (capture/synth/speech.py) not in this tree"
    )
    spoken = speech.speak_report(SENTENCES, pauses_s=PAUSE_S, lead_s=LEAD_S, tail_s=TAIL_S)
    rng = np.random.default_rng(0)  # a quiet room: -50 dBFS of noise under the voice
    noisy = spoken.samples.astype(np.float64) + rng.normal(0, 0.003 * 32768, spoken.samples.size)
    return spoken, np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def _words_of(report, k: int) -> list[tuple[float, float, str]]:
    """Sentence k's words as a recogniser times them: spread over its true span (LSL s)."""
    spoken, _ = report
    texts = SENTENCES[k].split()
    edges = np.linspace(spoken.onset_s[k], spoken.offset_s[k], len(texts) + 1) + T0_LSL
    return [(edges[i], edges[i + 1], t) for i, t in enumerate(texts)]


def _fixations(report) -> np.ndarray:
    """A fixation every 0.25 s: at LOOK_AT[k] from 1.3 s before sentence k is spoken (the eye-voice lead, and
    the tolerance) to its end, else ELSEWHERE."""
    spoken, _ = report
    t = T0_LSL + np.arange(0.0, spoken.duration_s, 0.25)
    rows = np.zeros(t.size, FIXATION_DTYPE)
    rows["t_start"], rows["t_end"], rows["ppd_img"] = t, t + 0.2, 20.0
    rows["x_img_px"], rows["y_img_px"] = ELSEWHERE
    for k, (x, y) in enumerate(LOOK_AT):
        inside = (t >= T0_LSL + spoken.onset_s[k] - EYE_VOICE_LEAD_S - TOLERANCE_S) & (
            t < T0_LSL + spoken.offset_s[k]
        )
        rows["x_img_px"][inside], rows["y_img_px"][inside] = x, y
    return rows


def _stored_case(report, tmp_path: Path, recognised: tuple[int, ...], *, audio: bool = True) -> CaseRecord:
    """A case whose recogniser heard only sentences ``recognised``, written by the session writer (with the
    spoken report as its audio) and read back."""
    spoken, samples = report
    rows = [w for k in recognised for w in _words_of(report, k)]
    words = Words(
        np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), [r[2] for r in rows],
        np.full(len(rows), 0.9, np.float32),
    )  # fmt: skip
    image = ImageRef("phantom.png", "0" * 64, SIZE_PX, SIZE_PX)
    fixations = _fixations(report)
    views = np.array([(T0_LSL, VIEW_CASE, 4.0, 256.0, 512.0, 2048.0, 4096.0, 0)], VIEW_DTYPE)  # all shown
    ctx = HeatmapContext(SIZE_PX, SIZE_PX, DisplayGeometry(), views)
    sentences, heatmaps = build_sentences(words, fixations, ctx)
    record = CaseRecord(
        case_id="c1", image=image, display=DisplayGeometry(), t_start=T0_LSL,
        t_end=T0_LSL + spoken.duration_s, fixations=fixations, view_events=views, words=words, sentences=sentences,
        heatmaps=heatmaps,
        audio=Audio(samples, 16000, np.array([T0_LSL]), np.array([0])) if audio else None,
    )  # fmt: skip
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(record)
    with SessionReader(path) as r:
        return r.case("c1")


def _typed(case: CaseRecord) -> CaseRecord:
    """The reader types the whole report in the transcript step."""
    return correct_case(case, edits_from_text(case.words.text, " ".join(SENTENCES)))


def _assert_in_speech(out: CaseRecord, report, k: int) -> None:
    spoken, _ = report
    i0 = sum(len(s.split()) for s in SENTENCES[:k])
    i1 = i0 + len(SENTENCES[k].split())
    start, end = out.words.t_start[i0:i1] - T0_LSL, out.words.t_end[i0:i1] - T0_LSL
    assert out.words.text[i0:i1] == SENTENCES[k].split()
    assert np.all(end - start >= MIN_TYPED_WORD_S - 1e-9), (
        f"a typed word is shorter than the minimum: {end - start}"
    )
    assert np.all(start[1:] >= start[:-1]) and np.all(end[1:] >= end[:-1])
    assert abs(start[0] - spoken.onset_s[k]) <= TOLERANCE_S, (start[0], spoken.onset_s[k])
    assert abs(end[-1] - spoken.offset_s[k]) <= TOLERANCE_S, (end[-1], spoken.offset_s[k])
    assert np.all(start >= spoken.onset_s[k] - TOLERANCE_S) and np.all(
        end <= spoken.offset_s[k] + TOLERANCE_S
    )


def _assert_heatmap_from_own_gaze(out: CaseRecord, k: int) -> None:
    """Sentence k's heatmap has its mass where the reader looked while forming it (LOOK_AT[k])."""
    assert out.sentences.text[k] == SENTENCES[k]
    assert out.sentences.window_start[k] == pytest.approx(out.sentences.t_start[k] - EYE_VOICE_LEAD_S)
    hm = out.sentence_heatmap(k)
    assert hm is not None
    ys, xs = np.mgrid[0 : hm.shape[0], 0 : hm.shape[1]] * out.heatmap_scale

    def mass_near(x: float, y: float) -> float:
        return float(hm[np.hypot(xs - x, ys - y) < 60.0].sum())  # 3 sigma (1 deg = 20 px here)

    assert mass_near(*LOOK_AT[k]) > 0.95, mass_near(*LOOK_AT[k])
    assert mass_near(*LOOK_AT[k - 1]) < 0.01  # nothing of the sentence before


def test_silero_vad_finds_each_spoken_sentence_of_the_stored_audio(report, tmp_path: Path):
    spoken, _ = report
    case = _stored_case(report, tmp_path, (0, 1))
    speech = case_speech_t_lsl(case.audio) - T0_LSL
    assert speech.shape == (3, 2), speech
    np.testing.assert_allclose(speech[:, 0], spoken.onset_s, atol=TOLERANCE_S)
    np.testing.assert_allclose(speech[:, 1], spoken.offset_s, atol=TOLERANCE_S)
    # audio recorded at 48 kHz is resampled for the VAD: the same segments
    from scipy.signal import resample_poly

    x48 = np.clip(resample_poly(case.audio.samples.astype(np.float64), 3, 1), -32768, 32767).astype(np.int16)
    np.testing.assert_allclose(vad_speech_s(x48, 48000), speech, atol=0.05)


def test_a_sentence_typed_after_the_last_recognised_word_gets_its_spoken_time_and_its_own_gaze(
    report, tmp_path: Path
):
    case = _stored_case(report, tmp_path, (0, 1))  # the recogniser missed the last sentence
    out = _typed(case)
    _assert_in_speech(out, report, 2)
    _assert_heatmap_from_own_gaze(out, 2)
    assert out.correction.recomputed == [2]  # the two recognised sentences keep their maps
    for k in (0, 1):
        assert np.array_equal(out.sentence_heatmap(k), case.sentence_heatmap(k))


def test_a_sentence_typed_between_two_recognised_ones_lies_in_its_speech(report, tmp_path: Path):
    out = _typed(_stored_case(report, tmp_path, (0, 2)))
    _assert_in_speech(out, report, 1)
    _assert_heatmap_from_own_gaze(out, 1)


def test_the_speech_energy_measure_places_them_as_well(report, tmp_path: Path):
    case = _stored_case(report, tmp_path, (0, 1))
    out = correct_case(case, edits_from_text(case.words.text, " ".join(SENTENCES)), speech_method="energy")
    _assert_in_speech(out, report, 2)
    _assert_heatmap_from_own_gaze(out, 2)


def test_without_audio_typed_words_share_the_time_after_the_last_word_never_zero_length(
    report, tmp_path: Path
):
    spoken, _ = report
    case = _stored_case(report, tmp_path, (0, 1), audio=False)
    assert case.audio is None
    out = _typed(case)
    n = len(SENTENCES[2].split())
    start, end = out.words.t_start[-n:], out.words.t_end[-n:]
    assert np.all(end - start >= MIN_TYPED_WORD_S - 1e-9)
    # the time from the last recognised word to the case's end, end to end, by letters
    assert start[0] == pytest.approx(case.words.t_end[-1]) and end[-1] == pytest.approx(case.t_end)
    assert np.all(start[1:] == end[:-1])
    assert out.sentences.t_start[2] == pytest.approx(case.sentences.t_end[1])  # not at one instant
    assert out.sentences.t_end[2] - out.sentences.t_start[2] > 1.0 and out.sentences.n_fixations[2] > 0


def test_the_stored_correction_exports_to_reflacx_with_the_spoken_times(report, tmp_path: Path):
    import csv

    from radgaze.capture.exporters.cli import main as export_main
    from radgaze.capture.store.edits import correct_session_file

    spoken, _ = report
    case = _stored_case(report, tmp_path, (0, 1))
    correct_session_file(tmp_path / "s.h5", _typed(case))
    assert export_main(["reflacx", str(tmp_path / "s.h5"), str(tmp_path / "out")]) == 0
    (table,) = (tmp_path / "out" / "main_data").glob("*/timestamps_transcription.csv")
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["word"] for r in rows] == " ".join(SENTENCES).split()
    typed = rows[-len(SENTENCES[2].split()) :]  # REFLACX's times: seconds from the audio start
    start = np.array([float(r["timestamp_start_word"]) for r in typed])
    end = np.array([float(r["timestamp_end_word"]) for r in typed])
    assert np.all(end - start >= MIN_TYPED_WORD_S - 0.001)
    assert (
        abs(start[0] - spoken.onset_s[2]) <= TOLERANCE_S and abs(end[-1] - spoken.offset_s[2]) <= TOLERANCE_S
    )
