"""``radgaze retranscribe``: recorded cases re-recognised offline from their stored audio with a real Whisper
(tiny.en from its PyPI wheel), stored beside the live words as a correction is; a reader's correction is never
replaced; --dry-run writes nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.base.records import FIXATION_DTYPE, Audio, CaseRecord, DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.align import HeatmapContext, build_sentences, sentence_heatmaps
from radgaze.capture.gazemath.correction import correct_case, edits_from_text
from radgaze.capture.live.retranscribe import word_diff
from radgaze.capture.store import inspect_cmd
from radgaze.capture.store.edits import correct_session_file
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.schema import HEATMAPS_FROM
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter

JFK = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio" / "jfk.flac"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
REPORT = ("The lungs are clear.", "The heart size is normal.", "There is no pleural effusion.")
SIZE_PX = 256


def _wer(reference: str, words: Words) -> float:
    return word_diff(list(words.text), reference.split()).wer  # the stored words against the truth


@pytest.fixture(scope="module")
def tiny_en() -> str:
    models = pytest.importorskip(
        "radgaze.capture.live.whisper_models", reason="whisper_models not in this tree"
    )
    if "tiny.en" not in models.installed_wheel_models():
        pytest.skip(f"the tiny.en wheel is not installed ({models.INSTALL_HINT})")
    return str(models.wheel_model_dir("tiny.en"))


@pytest.fixture(scope="module")
def speech() -> dict[str, tuple[np.ndarray, str]]:
    """Real speech (jfk.flac, 16 kHz mono) and a spoken report (espeak-ng), with their texts."""
    if not JFK.is_file():
        pytest.skip(f"real speech clip absent: {JFK}")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    spoken = pytest.importorskip(
        "radgaze.capture.synth.speech", reason="capture/synth/speech.py not in this tree"
    )
    import soundfile as sf
    from scipy.signal import resample_poly

    x, rate = sf.read(str(JFK), dtype="float64")
    y = resample_poly(x.mean(axis=1) if x.ndim > 1 else x, 16000, rate)
    jfk = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    report = spoken.speak_report(REPORT, pauses_s=2.0, voice="en-us", words_per_min=160)
    return {"jfk": (jfk, JFK_TEXT), "report": (report.samples, report.text)}


def _garbled(text: str, t0: float, dur_s: float) -> Words:
    """What a weak live model made of ``text``: every third word wrong, times spread over the speech."""
    texts = [("uh" if i % 3 == 1 else w) for i, w in enumerate(text.split())]
    edges = t0 + np.linspace(0.3, dur_s - 0.3, len(texts) + 1)
    return Words(edges[:-1], edges[1:], texts, np.full(len(texts), 0.5, np.float32))


def _case(case_id: str, samples: np.ndarray | None, text: str, t0: float) -> CaseRecord:
    dur = (samples.size if samples is not None else 160000) / 16000
    fix = np.zeros(int(dur / 0.25), FIXATION_DTYPE)
    fix["t_start"] = t0 + 0.25 * np.arange(fix.size)
    fix["t_end"] = fix["t_start"] + 0.2
    fix["x_img_px"], fix["y_img_px"], fix["ppd_img"] = np.linspace(20, 236, fix.size), 128.0, 20.0
    words = _garbled(text, t0, dur)
    ctx = HeatmapContext(SIZE_PX, SIZE_PX, DisplayGeometry(), np.zeros(0))
    sentences, heatmaps = build_sentences(words, fix, ctx)
    audio = None if samples is None else Audio(samples, 16000, np.array([t0]), np.array([0]))
    return CaseRecord(
        case_id=case_id, image=ImageRef("x.png", "0" * 64, SIZE_PX, SIZE_PX), display=DisplayGeometry(),
        t_start=t0, t_end=t0 + dur, fixations=fix, words=words, sentences=sentences, heatmaps=heatmaps,
        audio=audio,
    )  # fmt: skip


@pytest.fixture
def session(tmp_path: Path, speech) -> Path:
    """Four recorded cases: real speech, a spoken report, a spoken report the reader corrected, no audio."""
    path = tmp_path / "reading.h5"
    jfk, jfk_text = speech["jfk"]
    report, report_text = speech["report"]
    cases = [
        _case("jfk", jfk, jfk_text, 100.0),
        _case("report", report, report_text, 200.0),
        _case("corrected", report, report_text, 300.0),
        _case("silent", None, report_text, 400.0),
    ]
    with SessionWriter(path) as w:
        for c in cases:
            w.write_case(c)
    with SessionReader(path) as r:
        mine = r.case("corrected")
    correct_session_file(path, correct_case(mine, edits_from_text(mine.words.text, report_text)))
    return path


def _read(path: Path) -> dict[str, CaseRecord]:
    with SessionReader(path) as r:
        return {cid: r.case(cid) for cid in r.case_ids}


def _run(capsys, *args: str) -> tuple[int, str]:
    from radgaze.app.cli import main

    status = main(["retranscribe", *args])
    return status, capsys.readouterr().out


def test_retranscribe_stores_the_new_words_beside_the_live_ones_and_leaves_a_reader_correction(
    session: Path, tiny_en: str, speech, capsys
):
    before = _read(session)
    status, out = _run(capsys, str(session), "--whisper", tiny_en, "--device", "cpu", "--beam", "1")
    assert status == 0, out
    after = _read(session)
    for cid in ("jfk", "report"):
        text = speech[cid][1]
        old, new = before[cid], after[cid]
        assert _wer(text, old.words) > 0.3  # the live words were poor
        assert _wer(text, new.words) <= (0.05 if cid == "jfk" else 0.2), " ".join(new.words.text)
        assert new.recognised_words.text == old.words.text  # the live words kept, exactly
        assert np.array_equal(new.recognised_words.t_start, old.words.t_start)
        assert new.correction.asr["model"] == tiny_en and new.correction.asr["beam_size"] == 1
        assert new.correction.asr["device"] == "cpu"
        # sentences and heatmaps from the new words, over the case's own gaze
        fresh_sentences, fresh_maps = sentence_heatmaps(new)
        assert new.sentences.text == fresh_sentences.text and len(new.sentences) >= 1
        np.testing.assert_allclose(new.heatmaps, fresh_maps, atol=float(fresh_maps.max()) / 65535 + 1e-7)
        assert f"case {cid}: retranscribed with {tiny_en}" in out
    assert len(after["report"].sentences) == len(REPORT)
    # the reader's correction and the case without audio are left as they were, each said in one line
    for cid in ("corrected", "silent"):
        assert after[cid].words.text == before[cid].words.text
        assert after[cid].sentences.text == before[cid].sentences.text
    assert after["corrected"].correction.asr is None and after["silent"].correction is None
    assert "case corrected: left as is: corrected by the reader" in out
    assert "case silent: left as is: no audio stored" in out
    assert len(out.strip().splitlines()) == 4
    summary = {c["case_id"]: c for c in describe_session(session)["cases"]}
    assert [summary[c]["heatmaps_from"] for c in ("jfk", "report", "corrected", "silent")] == [
        "retranscribed", "retranscribed", "corrected", "recognised",
    ]  # fmt: skip
    assert describe_session(session)["valid"]
    assert summary["jfk"]["transcript_correction"]["retranscribed"]["model"] == tiny_en
    assert summary["corrected"]["transcript_correction"]["retranscribed"] is None
    assert inspect_cmd.main([str(session)]) == 0
    assert f"transcript retranscribed with {tiny_en} (beam 1, cpu)" in capsys.readouterr().out


def test_a_reader_may_correct_a_retranscribed_case_and_retranscribe_then_leaves_it(
    session: Path, tiny_en: str, capsys
):
    args = (str(session.parent), "--whisper", tiny_en, "--device", "cpu", "--beam", "1")  # a folder
    assert _run(capsys, *args)[0] == 0
    case = _read(session)["jfk"]
    live = case.recognised_words.text
    typed = " ".join([*case.words.text[:-1], "country!"])
    corrected = correct_case(case, edits_from_text(case.words.text, typed))
    correct_session_file(session, corrected)
    back = _read(session)["jfk"]
    assert back.words.text[-1] == "country!" and back.recognised_words.text == live
    assert (
        back.correction.asr is None and len(back.correction.edits) == 2
    )  # the retranscription's, the reader's
    status, out = _run(capsys, *args)
    assert status == 0 and "case jfk: left as is: corrected by the reader" in out
    assert _read(session)["jfk"].words.text == back.words.text


def test_a_second_retranscription_starts_again_from_the_live_words(session: Path, tiny_en: str, capsys):
    args = (str(session), "--whisper", tiny_en, "--device", "cpu", "--beam", "1")
    assert _run(capsys, *args)[0] == 0
    first = _read(session)["report"]
    status, out = _run(capsys, *args, "--beam", "2")
    assert status == 0 and "case report: retranscribed" in out and "stored as correction_2" in out
    second = _read(session)["report"]
    assert second.correction.asr["beam_size"] == 2 and len(second.correction.edits) == 1
    assert second.recognised_words.text == first.recognised_words.text


def test_dry_run_prints_the_difference_from_the_live_words_and_writes_nothing(
    session: Path, tiny_en: str, capsys
):
    digest = hashlib.sha256(session.read_bytes()).hexdigest()
    status, out = _run(
        capsys, str(session), "--whisper", tiny_en, "--device", "cpu", "--beam", "1", "--dry-run"
    )
    assert status == 0
    assert hashlib.sha256(session.read_bytes()).hexdigest() == digest
    jfk_line = next(line for line in out.splitlines() if "case jfk:" in line)
    assert "would store" in jfk_line and "nothing written" in jfk_line
    # every third live word was "uh": a third of the words substituted
    assert "WER against them 0.3" in jfk_line and "substituted, 0 missing, 0 extra" in jfk_line
    assert "live: uh" in out


def test_word_diff_counts_substitutions_missing_and_extra_words():
    d = word_diff(
        ["The", "end", "lateral", "view."], ["PA", "and", "lateral", "views", "of", "the", "chest."]
    )
    assert (d.n_new, d.substituted, d.missing, d.extra) == (7, 3, 3, 0)
    assert d.wer == pytest.approx(6 / 7)
    assert d.changes == (("the end", "pa and"), ("view", "views of the chest"))
    assert word_diff(["a", "b"], ["a", "b"]).wer == 0.0


def test_bad_arguments_are_refused_in_one_line(tmp_path: Path, capsys):
    from radgaze.app.cli import main

    assert main(["retranscribe", str(tmp_path / "none.h5"), "--whisper", "tiny.en"]) == 2
    err = capsys.readouterr().err
    assert "expected a session file or a folder of them" in err and len(err.strip().splitlines()) == 1
    assert main(["retranscribe", str(tmp_path), "--whisper", "tiny.en"]) == 2
    assert "expected session files (*.h5)" in capsys.readouterr().err
    (tmp_path / "a.h5").write_bytes(b"")  # the model is loaded before any session is read
    assert (
        main(["retranscribe", str(tmp_path), "--whisper", str(tmp_path / "no-model"), "--device", "cpu"]) == 2
    )
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert main(["retranscribe", str(tmp_path), "--whisper", "tiny.en", "--beam", "0"]) == 2
    assert "--beam: expected a beam size of at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["retranscribe", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--whisper MODEL" in text and "(default: 5)" in text and "example: radgaze retranscribe" in text


def test_audio_recorded_at_another_rate_is_decoded_at_16_khz_on_the_same_clock(speech, tiny_en: str):
    from scipy.signal import resample_poly

    from radgaze.capture.gazemath.speech import audio_at_speech_rate
    from radgaze.capture.live.retranscribe import load_retranscriber

    jfk, text = speech["jfk"]
    x48 = np.clip(resample_poly(jfk.astype(np.float64), 3, 1), -32768, 32767).astype(np.int16)
    blocks = np.array([0, 48000 * 4])  # two blocks, 0.5 s of dropout between them on the LSL clock
    audio = Audio(x48, 48000, np.array([100.0, 104.5]), blocks)
    at16 = audio_at_speech_rate(audio)
    assert at16.sample_rate == 16000 and at16.block_first_sample.tolist() == [0, 64000]
    assert abs(at16.samples.size - jfk.size) <= 1 and at16.block_t_lsl.tolist() == [100.0, 104.5]
    case = _case("jfk48", jfk, text, 100.0)
    case.audio = audio
    words = load_retranscriber(tiny_en, device="cpu", beam=1).words(case)
    assert _wer(text, words) <= 0.05
    late = words.t_start >= 104.5  # words of the second block: shifted by the dropout
    assert late.any() and np.all(words.t_start[~late] < 104.0) and words.t_end[-1] <= 100.0 + 11.0 + 0.5 + 0.1


def test_the_case_attribute_says_where_the_heatmaps_come_from(session: Path, tiny_en: str, capsys):
    import h5py

    assert _run(capsys, str(session), "--whisper", tiny_en, "--device", "cpu", "--beam", "1")[0] == 0
    with h5py.File(session, "r") as f:
        g = f["cases"]["jfk"]
        assert g.attrs[HEATMAPS_FROM] == "retranscribed" and "asr_json" in g["correction_1"].attrs
        assert g["words"].shape[0] == len(_garbled(JFK_TEXT, 0, 11).text)  # the live words, untouched


def test_the_case_pass_stores_a_closed_case_decoded_whole_while_the_session_is_still_recorded(
    tmp_path: Path, speech, tiny_en: str, capsys
):
    """The live recorder's case pass (capture/live/asr.py, policy point 7): a closed case's stored audio goes
    to the ASR worker, comes back as the whole-file decode, and is stored as the case's retranscription in the
    session still being written; a reader's correction is never replaced; the same words store nothing."""
    from radgaze.capture.live.asr import AsrConfig, CaseWords, WhisperTranscriber, streaming_from_config
    from radgaze.capture.live.retranscribe import case_pass_audio, store_case_words

    report, report_text = speech["report"]
    cfg = AsrConfig(model=tiny_en, device="cpu", beam_size=1, cpu_threads=1, local_files_only=True)
    asr = streaming_from_config(cfg).start()
    assert asr.case_pass
    path = tmp_path / "live.h5"
    with SessionWriter(path, live=True) as w:
        w.write_case(_case("report", report, report_text, 200.0))
        w.write_case(_case("corrected", report, report_text, 300.0))
        mine = w.read_case("corrected")
        w.write_correction(correct_case(mine, edits_from_text(mine.words.text, report_text)))
        assert case_pass_audio(w, "corrected") is None  # the reader's words are the truth
        asr.decode_case("report", case_pass_audio(w, "report"))
        item = asr.words.get(timeout=120)
        assert isinstance(item, CaseWords) and item.case_id == "report" and item.decode_s > 0
        whole = WhisperTranscriber(cfg)
        from radgaze.capture.live.asr import transcribe_audio

        expected = transcribe_audio(whole, w.read_case("report").audio)
        assert item.words.text == expected.text  # the case pass is the whole-file decode
        np.testing.assert_allclose(item.words.t_start, expected.t_start)
        info = asr.transcriber.case_pass_info()
        # stored while the next case is being recorded (the writer leaves SWMR mode and keeps that case open)
        w.begin_case("next", ImageRef("y.png", "1" * 64, SIZE_PX, SIZE_PX), DisplayGeometry(), t_start=250.0)
        assert store_case_words(w, "report", item.words, info) == 1
        w.append_words(Words(np.array([251.0]), np.array([251.4]), ["Clear."], np.ones(1, np.float32)))
        w.end_case(252.0)
        assert store_case_words(w, "corrected", item.words, info) is None
        assert (
            store_case_words(w, "report", Words.empty(), info) is None
        )  # heard nothing: streamed words kept
        again = w.read_case("report")
        assert store_case_words(w, "report", again.words, info) is None  # nothing new: nothing stored
        w.write_case(_case("later", report, report_text, 400.0))  # the recording goes on
    asr.stop(timeout_s=60)
    cases = _read(path)
    new = cases["report"]
    assert _wer(report_text, new.words) <= 0.2 < _wer(report_text, new.recognised_words)
    assert new.correction.asr["pass"] == "case" and new.correction.asr["model"] == "tiny.en"
    assert len(new.sentences) == len(REPORT)  # sentences and heatmaps re-derived from the case pass's words
    assert cases["corrected"].correction.asr is None
    assert cases["next"].words.text == ["Clear."] and cases["next"].complete
    assert {c["case_id"]: c["heatmaps_from"] for c in describe_session(path)["cases"]} == {
        "report": "retranscribed", "corrected": "corrected", "next": "recognised", "later": "recognised",
    }  # fmt: skip
    assert inspect_cmd.main([str(path)]) == 0
    assert "transcript decoded whole at the case's end (case pass) with tiny.en (beam 1, cpu)" in (
        capsys.readouterr().out
    )
