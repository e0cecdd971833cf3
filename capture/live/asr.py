"""Dictation: faster-whisper transcription with word times, a live preview, and final words on the LSL clock.

Default model: ``small.en`` (244 M parameters). English-only Whisper models beat the multilingual ones of the
same size on English up to "small" (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak
Supervision", sec. 3.4 / Fig. 9), and small.en with int8 on a 4-core CPU decodes a few seconds of speech
in well under a second of compute per 1 s chunk, which keeps the live preview usable without a GPU. The
distilled ``distil-small.en`` is faster, but its word times come from default alignment heads rather than the
ones OpenAI published for small.en, and word times are what the heatmaps are built from. Larger models
(``medium.en``, ``large-v3``) are a ``--whisper NAME`` away on a GPU. A model is a faster-whisper hub name or
a local directory in faster-whisper (CTranslate2) format; a directory never touches the network.

Streaming policy (measured: benchmarks/README.md "ASR"; ``radgaze bench asr``). With a speech detector
(Silero VAD, :mod:`radgaze.capture.live.vad`; the default):

1. Silence is never decoded (Whisper fills silence with "Thank you." and "see you in the next video").
2. An utterance starts at speech (0.2 s of audio before it kept) and ends after ``END_SILENCE_S`` (0.6 s) of
   silence. While it lasts it is decoded every ``CHUNK_S`` (1 s) alone, for the preview only.
3. When the next utterance ends (lookahead, the default) it is decoded once more, whole, after up to
   ``CONTEXT_S`` (20 s) of the earlier utterances' speech and before the next utterance (Whisper's encoder
   sees the audio on both sides, as in a whole-file decode; the earlier text is not also given as prompt,
   whisper_streaming's rule); its words — those whose middle lies in its own audio — are final. A case's
   last utterance is final when the case ends (:meth:`StreamingTranscriber.flush`). Without lookahead an
   utterance is final as soon as it ends (a sentence sooner; measured worse on both models). Committing
   words mid-utterance once two decodes agree (LocalAgreement-2, Machacek et al. 2023, ufal/whisper_streaming)
   is kept as an option (``commit_on_agreement``) and is what an utterance longer than one decode window
   (``max_buffer_s``) falls back to; measured, it lost words where the utterance-final decode did not.
4. Whisper ends a decode's audio with a full stop. Whether an utterance's last word ends a sentence is decided
   by the pause after it: ``SENTENCE_PAUSE_S`` (1.5 s) or more ends the sentence (a full stop added where
   Whisper wrote none); the next speech coming sooner makes it a comma (the speaker paused inside a sentence:
   jfk.flac's "my fellow Americans, ask not ..." has 1.1 s pauses). The word waits until that is known.
5. Segments Whisper's own rules call non-speech are dropped (no_speech_prob > 0.6 with avg_logprob < -1.0;
   compression ratio > 2.4: a repetition loop).
6. :meth:`StreamingTranscriber.flush` (a case ends) decodes the speech pending before that instant at once:
   nothing said before a Stop is dropped, nothing carried into the next case.
7. The case pass (two-pass recognition, as in Sainath et al. 2019, "Two-Pass End-to-End Speech Recognition"):
   the streamed words above are what the reader sees while dictating and what the live sentence heatmaps
   are drawn from; once a case has closed, its whole stored audio is decoded once more, as one file
   (:func:`transcribe_audio`, :meth:`StreamingTranscriber.decode_case`: tens of ms per second of speech on
   a CPU). Whisper then hears every sentence with all the others around it, which the stream cannot wait
   for: on the spoken reports the streamed words' WER is up to 0.2 above the whole file's, the case pass's
   is the whole file's (benchmarks/README.md "ASR"). Its words are stored as a retranscription of the case
   (:func:`radgaze.capture.live.retranscribe.store_case_words`: the streamed words kept as recognised,
   sentences and heatmaps re-derived, ``heatmaps_from = retranscribed``); a reader's own correction is never
   replaced. ``--no-case-pass`` keeps the streamed words as the transcript.

Word times from Whisper are known to be imperfect: the first words of a segment may start too early or have
start > end (SYSTRAN/faster-whisper issue #294), and the first word after a long silence may start several
seconds early (issue #125). Word times are moved out of the pauses the detector found
(:func:`radgaze.capture.live.vad.bound_to_speech`), and :func:`sanitize_word_times` clamps what is left:
within the audio, start <= end, monotonic, no word longer than ``max_word_dur_s``.

Without a detector (``vad_filter=False``, and the tests' scripted transcribers) every sample is speech and
LocalAgreement-2 alone commits, over a buffer trimmed at committed words.

No vocabulary prompt by default: the earlier built-in one named findings and Whisper wrote them into reports.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.capture.base.records import Audio, Words
from radgaze.capture.gazemath.punctuation import (
    apply_dictated_punctuation,
    convert_dictated_punctuation,
    ends_sentence,
    is_punctuation,
    join_tokens,
    normalize_token,
)
from radgaze.capture.live.audio import SAMPLE_RATE_HZ, AudioBlock, samples_to_t_lsl

DEFAULT_MODEL = "small.en"
# No vocabulary prompt by default: a prompt that names findings ("no pneumothorax, no pleural effusion ...")
# writes them into reports ("Frontal view of the chest" -> "Frontal pneumothorax."). The site vocabulary file
# (assets/asr/site_vocabulary.txt: anatomy and technique terms, no finding and no negation) is opt-in with
# --asr-prompt; benchmarks/README.md "ASR" has the comparison that chose this default.
DEFAULT_VOCABULARY_PROMPT = ""
SITE_VOCABULARY = "asr/site_vocabulary.txt"  # under radgaze.assets
CHUNK_S = 1.0  # decode every ~1 s of new audio (whisper_streaming's default min-chunk-size)
MAX_BUFFER_S = 15.0  # trim decoded audio beyond this at the last committed word (whisper_streaming: 15 s)
WHISPER_WINDOW_S = 30.0  # Whisper's fixed input window; a buffer this long is force-committed
MAX_WORD_DUR_S = 2.0  # longest plausible single spoken word; longer = early-start artefact (#125)
PROMPT_CONTEXT_CHARS = 200  # committed text fed back as prompt (whisper_streaming keeps ~200 chars)
OVERLAP_TOLERANCE_S = (
    0.1  # a word ending less than this after the commit horizon is old (a new one lasts longer)
)
MAX_NGRAM_OVERLAP = 5  # longest repeated n-gram removed at the commit boundary (whisper_streaming uses 5)
END_SILENCE_S = 0.6  # this much silence after speech ends an utterance: it is decoded whole, its words final
SPEECH_PAD_S = 0.2  # audio kept before an utterance's first and after its last speech window
WORD_GAP_S = 0.1  # pauses shorter than this inside speech are not pauses for word times
CONTEXT_S = 20.0  # speech of earlier utterances decoded again before a new one (acoustic + language context)
SENTENCE_PAUSE_S = (
    1.5  # a sentence mark Whisper put at an utterance's end stands if this much silence follows
)
VAD_ONSET_LAG_S = 0.2  # Silero needs a few 32 ms windows to rise over its threshold at a speech onset
LOOKAHEAD = True  # words final one utterance later, decoded with the next one (benchmarks/README.md "ASR")
COMMIT_ON_AGREEMENT = False  # utterance mode: words final at the utterance's end (benchmarks/README.md "ASR")
CASE_PASS = True  # a closed case's whole audio decoded once more: the stored transcript (policy point 7)
# Whisper's own rules for a decode that is not speech (openai/whisper transcribe(): no_speech_threshold 0.6
# with logprob_threshold -1.0; compression_ratio_threshold 2.4 marks a repetition loop)
NO_SPEECH_PROB = 0.6
AVG_LOGPROB_MIN = -1.0
COMPRESSION_RATIO_MAX = 2.4


class AsrWord(NamedTuple):
    """A recognised word, times in seconds from the start of the audio that was decoded."""

    start_s: float
    end_s: float
    text: str
    probability: float = 1.0


# (audio float32 in [-1, 1] at 16 kHz, prompt) -> words with times relative to that audio
Transcriber = Callable[[np.ndarray, str], list[AsrWord]]


@dataclass
class AsrConfig:
    """Options of the faster-whisper transcriber (defaults: see the module docstring)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    compute_type: str = "auto"  # "auto" = int8 on CPU, float16 on CUDA
    local_files_only: bool = False  # also forced by HF_HUB_OFFLINE=1
    download_root: str | None = None
    cpu_threads: int = 0  # 0 = all cores but one (one is left to gaze capture)
    language: str | None = "en"
    beam_size: int = 5  # faster-whisper's default; tests use 1
    temperature: float = 0.0  # greedy / beam without sampling fallback: deterministic, bounded latency
    vad_filter: bool = True
    vocabulary_prompt: str = DEFAULT_VOCABULARY_PROMPT
    use_hotwords: bool = False  # pass the vocabulary as faster-whisper ``hotwords`` instead of initial_prompt
    chunk_s: float = CHUNK_S
    max_buffer_s: float = MAX_BUFFER_S
    max_word_dur_s: float = MAX_WORD_DUR_S
    end_silence_s: float = END_SILENCE_S
    commit_on_agreement: bool = COMMIT_ON_AGREEMENT
    lookahead: bool = LOOKAHEAD
    case_pass: bool = CASE_PASS


def resolve_device(device: str) -> str:
    """Device "auto" -> "cuda" when CTranslate2 sees a CUDA device, else "cpu"."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(
            f"Invalid value for the ASR 'device': allowed 'auto', 'cpu', 'cuda', but got {device!r}"
        )
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(device: str, compute_type: str = "auto") -> str:
    """Compute type "auto" -> "float16" on CUDA (tensor cores), "int8" on CPU (CTranslate2's fastest)."""
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    return compute_type


def _cpu_threads(requested: int) -> int:
    return requested if requested > 0 else max(1, (os.cpu_count() or 2) - 1)


def check_model_dir(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` holds a faster-whisper model that loads offline."""
    missing = [f for f in ("model.bin", "config.json", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        raise CheckpointError(
            f"Whisper model directory {str(path)!r} lacks {', '.join(missing)}; expected a faster-whisper "
            "(CTranslate2) model with tokenizer.json (without it faster-whisper would fetch one from the hub)"
        )


def load_whisper(cfg: AsrConfig) -> Any:
    """Load ``faster_whisper.WhisperModel`` from a directory (offline) or a hub name (cache or download)."""
    from faster_whisper import WhisperModel, available_models

    device = resolve_device(cfg.device)
    kwargs = dict(
        device=device,
        compute_type=resolve_compute_type(device, cfg.compute_type),
        cpu_threads=_cpu_threads(cfg.cpu_threads),
    )
    path = Path(cfg.model).expanduser()
    if path.is_dir():
        check_model_dir(path)
        return WhisperModel(str(path), local_files_only=True, **kwargs)
    looks_like_path = cfg.model.startswith((".", "~", os.sep, "/")) or cfg.model.count("/") > 1
    if looks_like_path or (os.sep != "/" and os.sep in cfg.model):
        raise ConfigError(f"Whisper model directory {cfg.model!r} does not exist")
    if cfg.model not in available_models() and "/" not in cfg.model:  # "org/name" = a hub repository
        raise ConfigError(
            f"Invalid Whisper model {cfg.model!r}: expected a directory, an 'org/name' hub repository or "
            f"one of {', '.join(available_models())}"
        )
    offline = cfg.local_files_only or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        return WhisperModel(cfg.model, local_files_only=offline, download_root=cfg.download_root, **kwargs)
    except Exception as e:  # huggingface_hub errors (offline, not cached), CTranslate2 load errors
        raise ConfigError(
            f"cannot load Whisper model {cfg.model!r} ({type(e).__name__}: {e}); "
            + ("it is not in the local cache and downloads are off; " if offline else "")
            + "pass --whisper DIR with a faster-whisper model directory"
        ) from e


class WhisperTranscriber:
    """A :data:`Transcriber` backed by faster-whisper (word timestamps, VAD, vocabulary prompt)."""

    def __init__(self, cfg: AsrConfig | None = None, model: Any = None) -> None:
        self.cfg = cfg or AsrConfig()
        self.model = model if model is not None else load_whisper(self.cfg)

    def __call__(self, audio_f32: np.ndarray, prompt: str = "") -> list[AsrWord]:
        cfg = self.cfg
        vocab = cfg.vocabulary_prompt.strip()
        initial = " ".join(p for p in ((None if cfg.use_hotwords else vocab), prompt.strip()) if p) or None
        segments, _info = self.model.transcribe(
            np.asarray(audio_f32, np.float32),
            language=cfg.language,
            beam_size=cfg.beam_size,
            temperature=cfg.temperature,
            word_timestamps=True,
            vad_filter=cfg.vad_filter,
            initial_prompt=initial,
            hotwords=vocab if (cfg.use_hotwords and vocab) else None,
            condition_on_previous_text=False,  # the streamer passes committed text as prompt itself
        )
        return [
            AsrWord(float(w.start), float(w.end), str(w.word), float(w.probability))
            for seg in segments
            if is_speech_segment(seg)
            for w in (seg.words or ())
        ]

    def describe(self) -> dict:
        return {
            "asr_model": self.cfg.model,
            "asr_beam_size": self.cfg.beam_size,
            "asr_vad": self.cfg.vad_filter,
        }

    def case_pass_info(self) -> dict:
        """What a stored case pass says made it (the retranscription's ``asr`` record)."""
        from radgaze.capture import __version__
        from radgaze.capture.live.whisper_models import model_name

        device = resolve_device(self.cfg.device)
        return {
            "model": model_name(self.cfg.model),
            "device": device,
            "compute_type": resolve_compute_type(device, self.cfg.compute_type),
            "beam_size": self.cfg.beam_size,
            "pass": "case",  # decoded live, once the case closed (not a later `radgaze retranscribe`)
            "software_version": __version__,
        }


def _mark_by_pause(w: AsrWord, long_pause: bool) -> AsrWord:
    """An utterance's last word after the pause that follows it: a long pause ends the sentence (a full stop
    where none), a short one does not (a sentence mark becomes a comma)."""
    if not long_pause and ends_sentence(w.text):
        return w._replace(text=w.text.rstrip().rstrip(".!?…") + ",")
    if long_pause and not ends_sentence(w.text):
        return w._replace(text=w.text.rstrip().rstrip(",;:") + ".")
    return w


def mark_sentences_by_pause(words: Sequence[AsrWord]) -> list[AsrWord]:
    """Sentence marks of a whole decode by the streaming rule (policy point 4): a word followed by a pause of
    ``END_SILENCE_S`` or more (the end of an utterance) ends a sentence when the pause lasts
    ``SENTENCE_PAUSE_S``, else its sentence mark becomes a comma; the last word keeps Whisper's mark. Times
    of ``words`` in seconds, pauses bounded by the detected speech (:func:`bound_to_speech` first)."""
    out = list(words)
    for i in range(len(out) - 1):
        gap = out[i + 1].start_s - out[i].end_s
        if gap >= END_SILENCE_S and not is_punctuation(out[i].text):
            out[i] = _mark_by_pause(out[i], gap >= SENTENCE_PAUSE_S)
    return out


def is_speech_segment(seg: Any) -> bool:
    """False for a decoded segment Whisper's own rules call non-speech or a repetition loop."""
    silent = seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < AVG_LOGPROB_MIN
    return not silent and seg.compression_ratio <= COMPRESSION_RATIO_MAX


def sanitize_word_times(
    start_s: np.ndarray,
    end_s: np.ndarray,
    *,
    audio_dur_s: float,
    min_start_s: float = 0.0,
    max_word_dur_s: float = MAX_WORD_DUR_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Repair word times (s): finite, within [min_start_s, audio_dur_s], start <= end, monotonic, short.

    Steps: non-finite -> neighbour-free fallback (clamped bounds); clip to the audio; swap start > end
    (faster-whisper #294); a word longer than ``max_word_dur_s`` starts ``max_word_dur_s`` before its end
    (#125: early first word after silence); then each word starts no earlier than the previous word's end and
    ends no earlier than its start. Returns new (n,) float64 arrays; the input order of words is kept.
    """
    s = np.asarray(start_s, np.float64).copy()
    e = np.asarray(end_s, np.float64).copy()
    lo, hi = float(min_start_s), max(float(min_start_s), float(audio_dur_s))
    s = np.where(np.isfinite(s), s, np.where(np.isfinite(e), e, lo))
    e = np.where(np.isfinite(e), e, s)
    s, e = np.clip(s, lo, hi), np.clip(e, lo, hi)
    s, e = np.minimum(s, e), np.maximum(s, e)
    s = np.maximum(s, e - max_word_dur_s)
    for i in range(1, s.size):  # sequential by nature: each word is bounded by the repaired previous one
        s[i] = max(s[i], e[i - 1])
        e[i] = max(e[i], s[i])
    return s, e


class LocalAgreement:
    """LocalAgreement-2 on word hypotheses (times in seconds on one fixed timeline).

    :meth:`update` takes the words of a new decode and returns those that become final: the longest prefix on
    which it agrees (by :func:`radgaze.capture.gazemath.punctuation.normalize_token`) with the previous decode. Words ending
    before (or within 0.1 s after) the last committed word's end, and a repeat of the committed tail (up to 5
    words), are dropped first. :attr:`tentative` is the uncommitted rest, for the preview.
    """

    def __init__(self) -> None:
        self.committed: list[AsrWord] = []
        self.tentative: list[AsrWord] = []

    @property
    def horizon_s(self) -> float:
        return self.committed[-1].end_s if self.committed else -np.inf

    def _new_part(self, hypothesis: Sequence[AsrWord]) -> list[AsrWord]:
        # by end time, not start: a decode's first word may start far too early (#294) yet be new
        new = [w for w in hypothesis if w.end_s > self.horizon_s + OVERLAP_TOLERANCE_S]
        if new and self.committed and new[0].start_s < self.horizon_s + 1.0:
            for n in range(min(MAX_NGRAM_OVERLAP, len(new), len(self.committed)), 0, -1):
                tail = [normalize_token(w.text) for w in self.committed[-n:]]
                if tail == [normalize_token(w.text) for w in new[:n]]:
                    return new[n:]
        return new

    def update(self, hypothesis: Sequence[AsrWord]) -> list[AsrWord]:
        new = self._new_part(hypothesis)
        k = 0
        while k < min(len(new), len(self.tentative)) and normalize_token(new[k].text) == normalize_token(
            self.tentative[k].text
        ):
            k += 1
        commit = new[:k]
        self.committed.extend(commit)
        self.tentative = new[k:]
        return commit

    def finish(self, hypothesis: Sequence[AsrWord] | None = None) -> list[AsrWord]:
        """End of audio: commit the last decode's words (or the tentative ones) as they are."""
        commit = self._new_part(hypothesis) if hypothesis is not None else self.tentative
        self.committed.extend(commit)
        self.tentative = []
        return list(commit)


@dataclass(frozen=True)
class Preview:
    """What the live preview shows: committed text (recent part) and the tentative rest."""

    committed_text: str
    tentative_text: str
    t_lsl: float  # LSL time of the end of the audio decoded for this preview


class Flushed(NamedTuple):
    """Put on :attr:`StreamingTranscriber.words` after :meth:`StreamingTranscriber.flush`: every word spoken
    before ``t_lsl`` has been emitted before this marker."""

    t_lsl: float


class CaseWords(NamedTuple):
    """Put on :attr:`StreamingTranscriber.words` after :meth:`StreamingTranscriber.decode_case`: the closed
    case's whole audio decoded at once (policy point 7), words on the LSL clock."""

    case_id: str
    words: Words
    decode_s: float  # seconds the decode took (the case pass's latency, less the queue's wait)


class _CaseAudio(NamedTuple):
    case_id: str
    audio: Audio


class StreamingTranscriber:
    """ASR worker thread: audio blocks in, a live preview and final :class:`Words` (LSL clock) out.

    :meth:`feed` never blocks (it only enqueues), so the capture threads are never delayed; decoding runs in
    this worker (CTranslate2 releases the GIL while it computes). Outputs:

    - ``words``: a queue of :class:`Words` batches (final, sanitised, dictated punctuation converted), a
      :class:`Flushed` marker after each :meth:`flush`, a :class:`CaseWords` after each :meth:`decode_case`,
      then ``None`` after :meth:`stop`; an exception raised in the worker is put there too.
    - ``latest_preview`` / ``on_preview`` callback (called from the worker thread): :class:`Preview`.

    With a ``speech`` detector (:class:`radgaze.capture.live.vad.SpeechDetector`) the policy is utterance
    by utterance (module docstring of :mod:`radgaze.capture.live.asr`, "Streaming policy"): silence is never
    decoded; while an utterance goes on it is decoded every ``chunk_s`` for the preview (and, with
    ``commit_on_agreement``, LocalAgreement-2 commits); ``end_silence_s`` of silence ends it and one decode
    of the whole utterance makes its words final; word times are bounded by the detected speech. Without a
    detector every sample is speech and LocalAgreement-2 alone commits (a buffer trimmed at committed words).
    """

    def __init__(
        self,
        transcriber: Transcriber,
        *,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        chunk_s: float = CHUNK_S,
        max_buffer_s: float = MAX_BUFFER_S,
        max_word_dur_s: float = MAX_WORD_DUR_S,
        on_preview: Callable[[Preview], None] | None = None,
        speech: Any = None,
        end_silence_s: float = END_SILENCE_S,
        commit_on_agreement: bool = COMMIT_ON_AGREEMENT,
        lookahead: bool = LOOKAHEAD,
    ) -> None:
        if chunk_s <= 0 or max_buffer_s < chunk_s:
            raise ValueError(f"expected 0 < chunk_s <= max_buffer_s, got {chunk_s}, {max_buffer_s}")
        self.transcriber = transcriber
        self.rate = int(sample_rate_hz)
        self.chunk_len = round(chunk_s * sample_rate_hz)
        self.max_buffer_len = round(min(max_buffer_s, WHISPER_WINDOW_S) * sample_rate_hz)
        self.max_word_dur_s = max_word_dur_s
        self.on_preview = on_preview
        self.speech = speech  # radgaze.capture.live.vad.SpeechDetector, or None: all audio is speech
        self.end_silence_len = round(end_silence_s * sample_rate_hz)
        self.pad_len = round(SPEECH_PAD_S * sample_rate_hz)
        self.commit_on_agreement = commit_on_agreement
        self.case_pass = (
            False  # whether the recorder should ask for a case pass (streaming_from_config sets it)
        )
        self.words: queue.Queue[Words | Flushed | CaseWords | BaseException | None] = queue.Queue()
        self.latest_preview: Preview | None = None
        self.agreement = LocalAgreement()
        self.n_decodes = 0
        self._inbox: queue.Queue[AudioBlock | Flushed | _CaseAudio | None] = queue.Queue()
        self._chunks: list[np.ndarray] = []  # int16 blocks from _buf_first on
        self._buf_first = 0  # absolute index of the first buffered sample
        self._n_samples = 0  # samples received in total
        self._decoded_upto = 0  # _n_samples at the last decode
        self._utterance_first: int | None = None  # first sample of the utterance being heard (speech mode)
        self._context: list[AsrWord] = []  # committed words, fed back as prompt
        self._spoken: list[tuple[int, int]] = []  # finished utterances [first, end) still buffered: context
        self._held: AsrWord | None = (
            None  # an utterance's last word with its sentence mark, until the pause is known
        )
        self._held_speech_end = 0  # sample where the speech before the held word's pause ended (VAD)
        self.lookahead = lookahead  # an utterance's words final once the next one is heard (decoded with it)
        self._provisional: tuple[int, int] | None = None  # lookahead: the utterance heard, not final yet
        self._block_t_lsl: list[float] = []
        self._block_first: list[int] = []
        self._pending: list[AsrWord] = []  # committed but held for punctuation ("new" before "paragraph")
        self._last_end_s = 0.0
        self._emitted: list[Words] = []
        self._thread: threading.Thread | None = None

    # -- producer side --------------------------------------------------------------------------------------
    def start(self) -> StreamingTranscriber:
        self._thread = threading.Thread(target=self._run, daemon=True, name="asr-worker")
        self._thread.start()
        return self

    def feed(self, t_lsl_first_sample: float, samples_int16: np.ndarray) -> None:
        """Queue one audio block (int16 mono at ``sample_rate_hz``). Never blocks."""
        self._inbox.put_nowait(AudioBlock(float(t_lsl_first_sample), np.asarray(samples_int16, np.int16)))

    def flush(self, t_lsl: float) -> None:
        """Make final every word spoken before ``t_lsl`` (a case ends there): the audio fed so far up to it is
        decoded to the end at once, its words emitted, then a :class:`Flushed` marker. Never blocks."""
        self._inbox.put_nowait(Flushed(float(t_lsl)))

    def decode_case(self, case_id: str, audio: Audio) -> None:
        """The case pass: decode a closed case's whole ``audio`` (as stored) in the worker, after what it is
        doing; a :class:`CaseWords` follows on :attr:`words`. Never blocks. Once the worker has stopped, use
        :meth:`transcribe_case` on the caller's thread."""
        self._inbox.put_nowait(_CaseAudio(str(case_id), audio))

    def transcribe_case(self, audio: Audio) -> Words:
        """The case pass on the caller's thread: ``audio`` decoded at once (:func:`transcribe_audio`)."""
        return transcribe_audio(self.transcriber, audio, max_word_dur_s=self.max_word_dur_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish: decode what is left, commit it all, emit the last words, then ``None`` on ``words``."""
        self._inbox.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the worker thread runs (a flush is answered)."""
        return self._thread is not None and self._thread.is_alive()

    def final_words(self) -> Words:
        """All words emitted so far, concatenated (use after :meth:`stop`)."""
        return concat_words(self._emitted)

    # -- worker ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            done = False
            while not done:
                got = [self._inbox.get()]
                while True:  # drain: decode once for everything that arrived meanwhile
                    try:
                        got.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                for item in got:
                    if item is None:
                        done = True
                    elif isinstance(item, Flushed):
                        self._catch_up()
                        self._flush(item.t_lsl)
                    elif isinstance(item, _CaseAudio):
                        self._decode_case(item)
                    else:
                        self._add_block(item)
                if done:
                    self._catch_up()
                    self._finish()
                elif self.speech is not None:
                    self._step_speech()
                elif self._n_samples - self._decoded_upto >= self.chunk_len:
                    self._step()
        except BaseException as e:  # travels on the queue, never swallowed
            self.words.put_nowait(e)
        finally:
            self.words.put_nowait(None)

    def _decode_case(self, item: _CaseAudio) -> None:
        t0 = time.perf_counter()
        words = self.transcribe_case(item.audio)
        self.words.put_nowait(CaseWords(item.case_id, words, time.perf_counter() - t0))

    def _catch_up(self) -> None:
        """Before a flush or the end: the utterances that ended in audio not yet stepped over, each final."""
        if self.speech is not None:
            self._step_speech()

    def _add_block(self, b: AudioBlock) -> None:
        self._block_t_lsl.append(b.t_lsl_first_sample)
        self._block_first.append(self._n_samples)
        self._chunks.append(b.samples)
        self._n_samples += b.samples.size
        if self.speech is not None:
            self.speech.push(b.samples)

    def _buffer(self) -> np.ndarray:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = [audio]
        return audio

    def _decode(self, first: int | None = None, end: int | None = None) -> list[AsrWord]:
        """Decode buffered samples [first, end) (absolute; default: the whole buffer)."""
        first = self._buf_first if first is None else max(first, self._buf_first)
        end = self._n_samples if end is None else min(end, self._n_samples)
        return self._decode_pieces([(first, end)])

    def _decode_pieces(
        self, pieces: list[tuple[int, int]], *, last_only: bool = False, from_piece: int | None = None
    ) -> list[AsrWord]:
        """Decode buffered sample ranges joined end to end; word times mapped back to the stream's timeline.

        The prompt is the committed text spoken before the first piece (whisper_streaming's rule: text whose
        audio is in the decode is not also given as prompt). ``last_only`` / ``from_piece``: only the words
        whose middle (on the joined audio) lies in the last piece / in piece ``from_piece`` or after it; the
        others were heard before."""
        if last_only:
            from_piece = len([p for p in pieces if p[1] > p[0]]) - 1
        pieces = [(a, b) for a, b in pieces if b > a]
        buf = self._buffer()
        parts = [buf[a - self._buf_first : b - self._buf_first] for a, b in pieces]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        t0 = pieces[0][0] / self.rate if pieces else 0.0
        before = [w.text for w in self._context if w.end_s <= t0 + OVERLAP_TOLERANCE_S]
        prompt = join_tokens(before)[-PROMPT_CONTEXT_CHARS:]
        words = self.transcriber(audio.astype(np.float32) / 32768.0, prompt) if audio.size else []
        self.n_decodes += 1
        self._decoded_upto = self._n_samples
        if not pieces:
            return []
        starts = np.array([a for a, _ in pieces], np.float64)
        lengths = np.array([b - a for a, b in pieces], np.float64)
        joined = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])

        def to_stream(w: AsrWord) -> AsrWord:
            """A word lies in one piece, the one holding its middle: both ends are mapped through it."""
            mid = (w.start_s + w.end_s) / 2 * self.rate
            k = int(np.clip(np.searchsorted(joined, mid, side="right") - 1, 0, starts.size - 1))
            s, e = (min(max(x * self.rate - joined[k], 0.0), lengths[k]) for x in (w.start_s, w.end_s))
            return AsrWord((starts[k] + s) / self.rate, (starts[k] + e) / self.rate, w.text, w.probability)

        first_kept = joined[max(0, from_piece)] / self.rate if from_piece is not None else -np.inf
        return [to_stream(w) for w in words if (w.start_s + w.end_s) / 2 >= first_kept]

    def _commit(self, words: list[AsrWord]) -> list[AsrWord]:
        self._context.extend(words)
        del self._context[:-400]
        return words

    def _step(self) -> None:
        committed = self._step_agreement()
        self._emit(committed, final=False)
        self._publish_preview()

    def _step_agreement(self) -> list[AsrWord]:
        committed = self.agreement.update(self._decode())
        if self._n_samples - self._buf_first >= self.max_buffer_len:
            if self.agreement.horizon_s * self.rate <= self._buf_first:
                committed += self.agreement.finish()  # no agreement for a whole buffer: take the decode as is
            cut = self.agreement.horizon_s * self.rate
            if cut <= self._buf_first:  # still nothing recognised (silence): keep only the last chunk
                cut = self._n_samples - self.chunk_len
            self._trim(cut)
        return self._commit(committed)

    def _open_utterance(self) -> bool:
        """Start an utterance at the first speech in the buffer (a pad before it); False while silent."""
        ends = [p[1] for p in self._spoken[-1:] + ([self._provisional] if self._provisional else [])]
        after = max([self._buf_first] + ends)
        first = self.speech.first_speech_from(after)
        if first is None:
            return False
        self._utterance_first = max(after, first - self.pad_len)
        self._decoded_upto = max(self._decoded_upto, self._utterance_first)
        return True

    def _step_speech(self) -> None:
        """Speech-gated: start an utterance at speech, decode it while it lasts, finalise it after a pause."""
        released: list[AsrWord] = []
        if self._utterance_first is None:
            opened = self._open_utterance()
            released = self._release_held(self._utterance_first + self.pad_len if opened else None)
            if not opened:
                # silence: nothing decoded; the context utterances and a pad's worth of audio are kept
                self._trim(self._kept_from(self._n_samples - self.pad_len))
                self._emit(released, final=False)
                return
        speech_end = self.speech.speech_end_after(self._utterance_first, self.end_silence_len)
        if speech_end is not None:  # every utterance that ended since the last step, in order
            committed = self._finish_utterance(speech_end + self.pad_len, hold_mark=True)
            self._emit(released + committed, final=False)
            self._publish_preview()
            return self._step_speech()
        # audio waiting in the inbox: the worker is behind, final decodes come before previews (an utterance
        # outgrowing one decode window is still decoded: its words are committed and its buffer trimmed)
        behind = not self._inbox.empty()
        too_long = self._n_samples - self._utterance_first >= self.max_buffer_len
        if self._n_samples - self._decoded_upto >= self.chunk_len and (too_long or not behind):
            committed = self._decode_utterance()
        else:
            committed = []
        self._emit(released + committed, final=False)
        self._publish_preview()

    def _decode_utterance(self) -> list[AsrWord]:
        """Decode the utterance so far: the preview's tentative words; LocalAgreement-2 commits when
        ``commit_on_agreement`` or when the utterance outgrows one decode (then the buffer is trimmed)."""
        # the preview decodes the utterance alone (cheap); the context is for the final decode
        pending = [self._provisional] if self._provisional is not None else []
        hypothesis = self._decode_pieces(pending + [(self._utterance_first, self._n_samples)])
        too_long = self._n_samples - self._utterance_first >= self.max_buffer_len
        if not self.commit_on_agreement and not too_long:
            self.agreement.tentative = [w for w in hypothesis if w.end_s > self.agreement.horizon_s]
            return []
        committed = self.agreement.update(hypothesis)
        if too_long:
            if self.agreement.horizon_s * self.rate <= self._utterance_first:
                committed += self.agreement.finish()  # no agreement in a whole buffer: take the decode
            cut = self.agreement.horizon_s * self.rate
            if not cut > self._utterance_first:
                cut = self._n_samples - self.chunk_len
            self._trim(cut)
            self._utterance_first = self._buf_first
        return self._commit(committed)

    def _finish_utterance(self, end: int, *, hold_mark: bool = False) -> list[AsrWord]:
        """One decode of the whole utterance up to sample ``end``: its words after the horizon are final.

        ``hold_mark``: whether the last word ends a sentence is Whisper's guess at the end of the audio it
        was given; the word is held (:meth:`_release_held`) until the pause after it is known."""
        end = min(end, self._n_samples)
        if self.lookahead:
            return self._lookahead_step((self._utterance_first, end), final=not hold_mark)
        committed = self.agreement.finish(self._utterance_words(end))
        del self.agreement.committed[:-MAX_NGRAM_OVERLAP]
        self._spoken.append((self._utterance_first, end))
        self._utterance_first = None
        self._keep_context(end)
        committed = self._commit(committed)
        if hold_mark and committed and not is_punctuation(committed[-1].text):
            self._held = committed.pop()
            self._held_speech_end = end - self.pad_len
        return committed

    def _lookahead_step(self, current: tuple[int, int], *, final: bool) -> list[AsrWord]:
        """Lookahead: the utterance before ``current`` becomes final now that ``current`` is heard (decoded
        with it, so Whisper sees the speech after it too); ``current`` waits for the next one (or ``final``)."""
        self._utterance_first = None
        committed = self._finalize_provisional(current) if self._provisional is not None else []
        self._provisional = current
        if final:
            committed += self._finalize_provisional(None)
        self._keep_context(current[1])
        return committed

    def _finalize_provisional(self, following: tuple[int, int] | None) -> list[AsrWord]:
        """Decode context + the provisional utterance (+ ``following``); the provisional's words are final,
        its last word's sentence mark decided by the pause before ``following`` (kept when None)."""
        prov, self._provisional = self._provisional, None
        context = self._context_pieces()
        pieces = context + [prov] + ([following] if following is not None else [])
        words = self._decode_pieces(pieces, from_piece=len(context))
        t_next = None if following is None else following[0] / self.rate
        own = [w for w in words if t_next is None or (w.start_s + w.end_s) / 2 < t_next]
        committed = self.agreement.finish(own)
        self.agreement.tentative = [w for w in words if w not in own]
        del self.agreement.committed[:-MAX_NGRAM_OVERLAP]
        self._spoken.append(prov)
        if following is not None and committed and not is_punctuation(committed[-1].text):
            gap = (following[0] + self.pad_len) - (prov[1] - self.pad_len)
            committed[-1] = _mark_by_pause(committed[-1], gap >= SENTENCE_PAUSE_S * self.rate)
        return self._commit(committed)

    def _release_held(self, next_speech: int | None) -> list[AsrWord]:
        """The held word once the pause after it is known: a pause of ``SENTENCE_PAUSE_S`` or more ends the
        sentence there (keeps or adds a full stop); the next speech starting sooner makes a sentence mark a comma (the reader paused inside a
        sentence: JFK's "my fellow Americans, ask not ..." has 1.1 s pauses); ``next_speech`` None: no speech
        yet (released with its mark once the silence has lasted ``SENTENCE_PAUSE_S``)."""
        w = self._held
        if w is None:
            return []
        # the pause as the VAD measures it (speech end to speech onset); while silent, the VAD may still be
        # ramping up on an onset: a margin of VAD_ONSET_LAG_S before calling the pause long
        lag = VAD_ONSET_LAG_S * self.rate if next_speech is None else 0
        gap = (self._n_samples - lag if next_speech is None else next_speech) - self._held_speech_end
        if gap < SENTENCE_PAUSE_S * self.rate and next_speech is None:
            return []
        self._held = None
        return [_mark_by_pause(w, gap >= SENTENCE_PAUSE_S * self.rate)]

    def _utterance_words(self, end: int) -> list[AsrWord]:
        """The words of the utterance [first, end), decoded after the context utterances (their words, already
        final, are dropped: a word is the utterance's when its middle lies in the utterance's audio)."""
        pieces = self._context_pieces() + [(self._utterance_first, end)]
        return self._decode_pieces(pieces, last_only=True)

    def _context_pieces(self) -> list[tuple[int, int]]:
        """The finished utterances kept as acoustic context for the next decodes (at most CONTEXT_S)."""
        return [(max(a, self._buf_first), b) for a, b in self._spoken if b > self._buf_first]

    def _keep_context(self, end: int) -> None:
        """Keep the last utterances (at most ``CONTEXT_S`` of speech) in the buffer; drop older audio."""
        total, keep = 0, []
        for a, b in reversed(self._spoken):
            if total + (b - a) > CONTEXT_S * self.rate:
                break
            total += b - a
            keep.insert(0, (a, b))
        self._spoken = keep
        self._trim(self._kept_from(end))

    def _kept_from(self, default: int) -> int:
        """First sample still needed: the context utterances' and a provisional one's, else ``default``."""
        firsts = [p[0] for p in self._spoken[:1] + ([self._provisional] if self._provisional else [])]
        return min(firsts) if firsts else default

    def _flush(self, t_lsl: float) -> None:
        """Final words for everything fed before LSL time ``t_lsl``, then the marker."""
        end = self._sample_at(t_lsl)
        if self.speech is None:
            committed = self._commit(self.agreement.finish(self._decode(None, end)))
            self.agreement = LocalAgreement()
            self._trim(end)
        else:
            committed = self._finish_speech(end)
        self._emit(committed, final=True)
        self._publish_preview()
        self.words.put_nowait(Flushed(t_lsl))

    def _finish_speech(self, end: int) -> list[AsrWord]:
        """Speech mode: the utterance heard before sample ``end`` decoded to ``end`` and made final (a held
        word first, with its mark: the case or the recording ends here)."""
        held, self._held = ([self._held] if self._held is not None else []), None
        if self._utterance_first is None and not self._open_utterance():
            return held + (self._finalize_provisional(None) if self._provisional is not None else [])
        if self._utterance_first >= end:
            self._utterance_first = None
            return held + (self._finalize_provisional(None) if self._provisional is not None else [])
        return held + self._finish_utterance(end)

    def _sample_at(self, t_lsl: float) -> int:
        """Absolute sample index of LSL time ``t_lsl`` (through the block it falls in), within what was fed."""
        if not self._block_first:
            return 0
        k = int(np.clip(np.searchsorted(self._block_t_lsl, t_lsl, side="right") - 1, 0, None))
        at = self._block_first[k] + (t_lsl - self._block_t_lsl[k]) * self.rate
        return int(np.clip(round(at), self._buf_first, self._n_samples))

    def _finish(self) -> None:
        if self.speech is None:
            has_audio = self._n_samples > self._buf_first
            committed = self._commit(self.agreement.finish(self._decode()) if has_audio else [])
        else:
            committed = self._finish_speech(self._n_samples)
        self._emit(committed, final=True)
        self._publish_preview()

    def _trim(self, at_sample: float) -> None:
        """Drop buffered audio before absolute sample ``at_sample``, keeping what is not committed."""
        cut = int(np.clip(round(at_sample), self._buf_first, self._n_samples))
        audio = self._buffer()[cut - self._buf_first :]
        self._chunks, self._buf_first = [audio], cut

    def _speech_bounded(self, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.speech is None:
            return start, end
        from radgaze.capture.live.vad import bound_to_speech

        regions = self.speech.regions(min_silence_s=WORD_GAP_S) / self.rate
        return bound_to_speech(start, end, regions)

    def _emit(self, committed: list[AsrWord], *, final: bool) -> None:
        words = self._pending + list(committed)
        if not words:
            return
        start, end = self._speech_bounded(
            np.array([w.start_s for w in words]), np.array([w.end_s for w in words])
        )
        start, end = sanitize_word_times(
            start,
            end,
            audio_dur_s=self._n_samples / self.rate,
            min_start_s=self._last_end_s,
            max_word_dur_s=self.max_word_dur_s,
        )
        raw = Words(start, end, [w.text for w in words], np.array([w.probability for w in words], np.float32))
        converted, n_used = apply_dictated_punctuation(raw, final=final)
        self._pending = words[n_used:]
        if len(converted) == 0:
            return
        self._last_end_s = float(end[n_used - 1])
        first = np.asarray(self._block_first, np.float64)
        t_lsl = np.asarray(self._block_t_lsl, np.float64)
        out = Words(
            t_start=samples_to_t_lsl(converted.t_start * self.rate, t_lsl, first, self.rate),
            t_end=samples_to_t_lsl(converted.t_end * self.rate, t_lsl, first, self.rate),
            text=converted.text,
            probability=converted.probability,
        )
        self._emitted.append(out)
        self.words.put_nowait(out)

    def _publish_preview(self) -> None:
        if not self._block_first:
            return
        # final words as emitted (punctuation converted), then what is not final yet, converted for display
        emitted = [t for batch in self._emitted[-20:] for t in batch.text]
        committed = join_tokens(emitted, keep_breaks=True)[-PROMPT_CONTEXT_CHARS:]
        rows, _ = convert_dictated_punctuation([w.text for w in self._pending + self.agreement.tentative])
        tentative = join_tokens([r[2] for r in rows], keep_breaks=True)
        t_end = float(
            samples_to_t_lsl(
                self._n_samples, np.asarray(self._block_t_lsl), np.asarray(self._block_first), self.rate
            )
        )
        self.latest_preview = Preview(committed, tentative, t_end)
        if self.on_preview is not None:
            self.on_preview(self.latest_preview)


def streaming_from_config(
    cfg: AsrConfig,
    *,
    transcriber: Transcriber | None = None,
    on_preview: Callable[[Preview], None] | None = None,
) -> StreamingTranscriber:
    """A :class:`StreamingTranscriber` with ``cfg``'s chunking (the model is loaded here unless given)."""
    speech = None
    if cfg.vad_filter:
        from radgaze.capture.live.vad import SpeechDetector

        speech = SpeechDetector()
    st = StreamingTranscriber(
        transcriber if transcriber is not None else WhisperTranscriber(cfg),
        chunk_s=cfg.chunk_s,
        max_buffer_s=cfg.max_buffer_s,
        max_word_dur_s=cfg.max_word_dur_s,
        on_preview=on_preview,
        speech=speech,
        end_silence_s=cfg.end_silence_s,
        commit_on_agreement=cfg.commit_on_agreement,
        lookahead=cfg.lookahead,
    )
    st.case_pass = bool(cfg.case_pass)
    return st


def concat_words(parts: Sequence[Words]) -> Words:
    """Concatenate :class:`Words` batches in order."""
    if not parts:
        return Words.empty()
    return Words(
        t_start=np.concatenate([p.t_start for p in parts]).astype(np.float64),
        t_end=np.concatenate([p.t_end for p in parts]).astype(np.float64),
        text=[t for p in parts for t in p.text],
        probability=np.concatenate([p.probability for p in parts]).astype(np.float32),
    )


def transcribe_audio(
    transcriber: Transcriber, audio: Audio, *, max_word_dur_s: float = MAX_WORD_DUR_S
) -> Words:
    """Offline: transcribe a whole recorded :class:`Audio` at once; final words on the LSL clock.

    Decodes in 30 s windows (Whisper's input length is handled inside faster-whisper), moves word times out
    of pauses (Silero VAD), sanitises them, marks sentences by the pauses as the stream does
    (:func:`mark_sentences_by_pause`), converts dictated punctuation, maps times through the audio blocks.
    """
    if audio.samples.size == 0:
        return Words.empty()
    rate = int(audio.sample_rate)
    words = transcriber(audio.samples.astype(np.float32) / 32768.0, "")
    start, end = np.array([w.start_s for w in words]), np.array([w.end_s for w in words])
    if rate == SAMPLE_RATE_HZ and words:  # no word starts inside a pause (Silero's speech regions)
        from radgaze.capture.live.vad import SpeechDetector, bound_to_speech

        speech = SpeechDetector()
        speech.push(audio.samples)
        start, end = bound_to_speech(start, end, speech.regions(min_silence_s=WORD_GAP_S) / rate)
    start, end = sanitize_word_times(
        start,
        end,
        audio_dur_s=audio.samples.size / rate,
        max_word_dur_s=max_word_dur_s,
    )
    bounded = [AsrWord(s, e, w.text, w.probability) for s, e, w in zip(start, end, words)]
    marked = mark_sentences_by_pause(bounded)
    raw = Words(start, end, [w.text for w in marked], np.array([w.probability for w in words], np.float32))
    converted, _ = apply_dictated_punctuation(raw, final=True)
    first = np.asarray(audio.block_first_sample, np.float64)
    return Words(
        t_start=samples_to_t_lsl(converted.t_start * rate, audio.block_t_lsl, first, rate),
        t_end=samples_to_t_lsl(converted.t_end * rate, audio.block_t_lsl, first, rate),
        text=converted.text,
        probability=converted.probability,
    )


def load_vocabulary(value: str) -> str:
    """``--asr-prompt`` value -> prompt text: "site" (the shipped site vocabulary), a file of terms (one per
    line, '#' comments), or the text itself. Terms are joined with commas."""
    if value == "site":
        from importlib.resources import files

        lines = (files("radgaze.assets") / SITE_VOCABULARY).read_text("utf-8").splitlines()
    elif os.path.isfile(value):
        lines = Path(value).read_text("utf-8").splitlines()
    else:
        return value.strip()
    terms = [ln.split("#", 1)[0].strip() for ln in lines]
    return ", ".join(t for t in terms if t)


def add_asr_options(p: Any, *, default_model: str | None = DEFAULT_MODEL) -> None:
    """The dictation options both recorders share (``record`` and ``record --headless``)."""
    p.add_argument(
        "--whisper",
        default=default_model,
        help="faster-whisper model: a hub name (downloaded once), a local model directory, or tiny.en / "
        "base from the installed asr-models wheels (used offline)"
        + ("" if default_model else f" (default: {DEFAULT_MODEL})"),
    )
    p.add_argument("--beam", type=int, default=5, help="ASR beam size")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--asr-prompt",
        default=None,
        metavar="TEXT|FILE|site",
        help="vocabulary to bias the recogniser with: text, a file of terms (one per line), or 'site' for "
        "assets/asr/site_vocabulary.txt; never put findings in it (default: none)",
    )
    g.add_argument("--no-asr-prompt", action="store_true", help="no vocabulary biasing (the default)")
    p.add_argument(
        "--asr-hotwords",
        action="store_true",
        help="pass the vocabulary as faster-whisper hotwords instead of an initial prompt",
    )
    p.add_argument(
        "--no-case-pass",
        action="store_true",
        help="keep the streamed words as the stored transcript (default: each closed case's audio is decoded "
        "once more, whole, and stored as its retranscription: the whole-file accuracy)",
    )


def asr_config_from_args(args: Any) -> AsrConfig:
    """An :class:`AsrConfig` from :func:`add_asr_options`' arguments (a wheel model name resolved offline)."""
    from radgaze.capture.live.whisper_models import resolve_model

    model = resolve_model(args.whisper or DEFAULT_MODEL)
    prompt = "" if args.no_asr_prompt or args.asr_prompt is None else load_vocabulary(args.asr_prompt)
    return AsrConfig(
        model=model,
        beam_size=args.beam,
        local_files_only=Path(model).is_dir(),
        vocabulary_prompt=prompt,
        use_hotwords=bool(args.asr_hotwords),
        case_pass=not getattr(args, "no_case_pass", False),
    )
