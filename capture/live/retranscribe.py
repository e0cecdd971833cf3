"""``radgaze retranscribe SESSIONS --whisper MODEL``: re-recognise recorded cases offline with another model.

Live dictation runs a model small enough to keep up on the reading-room computer; the audio of every case is
stored, so a larger model can decode it again later (overnight, on a GPU) from the whole file at once, which is
also more accurate than streaming (issue 19: live WER 0.14-0.26 where the same model decoding the whole file
gets 0.06-0.14). The new words are stored the way a reader's transcript correction is
(capture/store/edits.py, ``correction_<n>`` groups; docs/session-format.md): the live words stay as
recorded, sentences and heatmaps are re-derived from the new words (a sentence whose text and times did not
change keeps its map), and the case's ``heatmaps_from`` becomes ``retranscribed``. A case the reader corrected
is never touched: the reader's words are the truth. A case retranscribed before is retranscribed again from
its live words (the last retranscription in use; the earlier groups stay in the file).

``--dry-run`` decodes and prints, per case, how the new words differ from the live ones (word error rate of
the live words against the new, with substitutions, deletions and insertions, and the changed stretches),
and writes nothing.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture import __version__
from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import Audio, CaseRecord, TranscriptCorrection, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.correction import edit_to_json, edits_from_text, rederive_sentences
from radgaze.capture.gazemath.findings import findings_on
from radgaze.capture.gazemath.speech import audio_at_speech_rate
from radgaze.capture.store.edits import correct_session_file
from radgaze.capture.store.reader import SessionReader

MAX_DIFF_LINES = 8  # changed stretches printed per case by --dry-run


@dataclass(frozen=True)
class WordDiff:
    """How the live words differ from the new ones, the new taken as the reference (a minimum-edit
    alignment of lower-cased words without punctuation): substituted words, new words the live ones lack
    (missing), live words the new ones lack (extra), and the changed stretches as ``(live text, new text)``."""

    n_new: int
    substituted: int
    missing: int
    extra: int
    changes: tuple[tuple[str, str], ...]

    @property
    def wer(self) -> float:
        """The live words' word error rate against the new words: (S + D + I) / new words."""
        return (self.substituted + self.missing + self.extra) / max(1, self.n_new)


def _plain(words: list[str]) -> list[str]:
    return [p for p in ("".join(c for c in w.lower() if c.isalnum() or c == "'") for w in words) if p]


def _alignment(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """A minimum-edit (Levenshtein) alignment of ``a`` to ``b`` as index pairs, -1 where a word has no partner
    (substitutions pair unequal words)."""
    d = np.zeros((len(a) + 1, len(b) + 1), np.int64)
    d[:, 0], d[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    pairs, i, j = [], len(a), len(b)
    while i or j:  # bounded: each step moves i or j (or both) towards 0
        if i and j and d[i, j] == d[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif i and d[i, j] == d[i - 1, j] + 1:
            i -= 1
            pairs.append((i, -1))
        else:
            j -= 1
            pairs.append((-1, j))
    return pairs[::-1]


def word_diff(live: list[str], new: list[str]) -> WordDiff:
    """The difference of the ``live`` words from the ``new`` ones (see :class:`WordDiff`)."""
    a, b = _plain(live), _plain(new)
    pairs = _alignment(a, b)
    same = [i >= 0 and j >= 0 and a[i] == b[j] for i, j in pairs]
    changes, run = [], []
    for (i, j), equal in zip([*pairs, (-2, -2)], [*same, True]):
        if not equal:
            run.append((i, j))
        elif run:
            changes.append(
                (" ".join(a[p] for p, _ in run if p >= 0), " ".join(b[q] for _, q in run if q >= 0))
            )
            run = []
    subs = sum(1 for (i, j), eq in zip(pairs, same) if i >= 0 and j >= 0 and not eq)
    missing = sum(1 for i, _ in pairs if i < 0)
    return WordDiff(len(b), subs, missing, sum(1 for _, j in pairs if j < 0), tuple(changes))


def live_words(case: CaseRecord) -> Words:
    """The words the live recogniser stored for ``case`` (under a retranscription, its recognised words)."""
    return case.recognised_words if case.recognised_words is not None else case.words


def skip_reason(case: CaseRecord) -> str | None:
    """Why ``case`` is left as is (None: it can be retranscribed)."""
    c = case.correction
    if c is not None and c.asr is None:
        saved = f", saved {c.saved_utc}" if c.saved_utc else ""
        return (
            f"corrected by the reader ({c.n_edits} edit(s){saved}); a reader's correction is never replaced"
        )
    if not case.complete:
        return "incomplete (the recorder stopped inside it)"
    if case.audio is None or case.audio.samples.size == 0:
        return "no audio stored (recorded without a microphone, or imported)"
    return None


def retranscribed_case(
    case: CaseRecord, words: Words, asr: dict, *, lead_s: float = EYE_VOICE_LEAD_S
) -> CaseRecord:
    """A copy of ``case`` whose words are ``words`` (a retranscription made as ``asr`` says), its live words
    kept as the recognised ones, sentences and heatmaps re-derived from the new words."""
    live = live_words(case)
    sentences, heatmaps, recomputed = rederive_sentences(case, words, lead_s=lead_s)
    out = copy.copy(case)
    out.attrs = dict(case.attrs)
    out.recognised_words = live
    out.words, out.sentences, out.heatmaps = words, sentences, heatmaps
    out.findings = findings_on(case.findings, case.sentences, sentences)
    edits = edits_from_text(list(live.text), " ".join(t.strip() for t in words.text))
    out.correction = TranscriptCorrection(
        edits=[[edit_to_json(e) for e in edits]], recomputed=recomputed, lead_s=float(lead_s), asr=dict(asr)
    )
    return out


def case_pass_audio(writer, case_id: str) -> Audio | None:
    """A closed case's stored audio at the recogniser's rate, for the case pass; None when it has none or is
    already corrected by the reader."""
    case = writer.read_case(case_id)
    if skip_reason(case) is not None:
        return None
    return audio_at_speech_rate(case.audio)


def store_case_words(writer, case_id: str, words: Words, asr: dict) -> int | None:
    """The case pass (capture/live/asr.py, policy point 7): a closed case of the session ``writer`` is
    recording, decoded whole, stored as its retranscription. Returns the correction's number; None where
    nothing is stored: the case has a reader's correction (never replaced), the words are the streamed ones
    already, or the whole decode heard nothing where the stream heard words (those are kept)."""
    case = writer.read_case(case_id)
    if case.correction is not None and case.correction.asr is None:
        return None
    if [t.strip() for t in case.words.text] == [t.strip() for t in words.text]:
        return None
    if len(words) == 0:
        return None
    live = live_words(case)
    diff = word_diff(list(live.text), list(words.text))
    record = retranscribed_case(case, words, {**asr, "live_wer": round(diff.wer, 4), "live_words": len(live)})
    return writer.write_correction(record)


@dataclass
class Retranscriber:
    """One loaded model, decoding stored case audio to words on the LSL clock."""

    transcribe: object  # a radgaze.capture.live.asr.Transcriber
    asr: dict  # what the stored retranscription says made it

    def words(self, case: CaseRecord) -> Words:
        from radgaze.capture.live.asr import transcribe_audio

        return transcribe_audio(self.transcribe, audio_at_speech_rate(case.audio))


def load_retranscriber(model: str, *, device: str = "auto", beam: int = 5) -> Retranscriber:
    """faster-whisper ``model`` (a directory, a wheel model's name such as ``tiny.en``, or a hub name)."""
    from radgaze.capture.live.asr import AsrConfig, WhisperTranscriber, resolve_compute_type, resolve_device
    from radgaze.capture.live.whisper_models import resolve_model

    if beam < 1:
        raise ConfigError(f"--beam: expected a beam size of at least 1, got {beam}")
    where = resolve_model(model)
    device = resolve_device(device)
    cfg = AsrConfig(model=where, device=device, beam_size=beam, local_files_only=Path(where).is_dir())
    asr = {
        "model": model,
        "model_path": where if Path(where).is_dir() else None,
        "device": device,
        "compute_type": resolve_compute_type(device, cfg.compute_type),
        "beam_size": beam,
        "software_version": __version__,
    }
    return Retranscriber(WhisperTranscriber(cfg), asr)


def _describe(diff: WordDiff, n_live: int) -> str:
    return (
        f"{diff.n_new} words (live {n_live}); the live words' WER against them {diff.wer:.3f} "
        f"({diff.substituted} substituted, {diff.missing} missing, {diff.extra} extra)"
    )


def retranscribe_session(
    path: Path, engine: Retranscriber, *, dry_run: bool = False, out=None
) -> dict[str, str]:
    """Retranscribe every case of session file ``path``; one line per case on ``out``. Returns
    ``{case_id: "retranscribed" | "dry-run" | "skipped"}``."""
    out = out or sys.stdout
    with SessionReader(path) as reader:
        cases = [reader.case(cid) for cid in reader.case_ids]
    done: dict[str, str] = {}
    for case in cases:
        head = f"{path.name} case {case.case_id}"
        reason = skip_reason(case)
        if reason is not None:
            print(f"{head}: left as is: {reason}", file=out)
            done[case.case_id] = "skipped"
            continue
        words = engine.words(case)
        live = live_words(case)
        diff = word_diff(list(live.text), list(words.text))
        if dry_run:
            print(f"{head}: would store {_describe(diff, len(live))}; nothing written", file=out)
            for old, new in diff.changes[:MAX_DIFF_LINES]:
                print(f"    live: {old or '-'!s:40}  new: {new or '-'}", file=out)
            more = len(diff.changes) - MAX_DIFF_LINES
            if more > 0:
                print(f"    ... and {more} more changed stretch(es)", file=out)
            done[case.case_id] = "dry-run"
            continue
        asr = {**engine.asr, "live_wer": round(diff.wer, 4), "live_words": len(live)}
        record = retranscribed_case(case, words, asr)
        n = correct_session_file(path, record)
        print(
            f"{head}: retranscribed with {engine.asr['model']}: {_describe(diff, len(live))}; "
            f"{len(record.sentences)} sentence(s), {len(record.correction.recomputed)} heatmap(s) recomputed; "
            f"stored as correction_{n}, heatmaps from the retranscribed words",
            file=out,
        )
        done[case.case_id] = "retranscribed"
    return done
