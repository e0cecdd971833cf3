"""``radgaze bench asr --whisper MODEL``: live dictation against the truth, beside the same model's whole-file decode.

Inputs: the spoken reports of :mod:`radgaze.capture.synth.speech` (espeak-ng, one clip per sentence, 2-3 s
pauses, 3 s of silence at the end: every sentence's onset is known) in four voices and rates, plus any real
speech given with ``--clip FILE --clip-text TEXT`` (e.g. jfk.flac). Each clip is streamed through the live
:class:`~radgaze.capture.live.asr.StreamingTranscriber` fed in real time (``--speed`` > 1 feeds faster) and
decoded whole by :func:`~radgaze.capture.live.asr.transcribe_audio`. Figures per clip and overall:

- word error rate of what a live recording stores (the case pass: the case's audio decoded whole once it has
  closed, capture/live/asr.py policy point 7) and of the streamed words the reader sees while dictating,
  beside the whole-file decode; the gap stored - whole (goal <= 0.02) and streamed - whole;
- finding words the speaker did not say (:func:`~radgaze.capture.synth.speech.invented_finding_words`): stored
  beyond what the whole-file decode invents (goal 0), and the streamed words' own;
- sentences stored and streamed vs spoken (goal: all exact) and sentence onset error at p95 (goal <= 0.3 s);
- real-time factor (decode seconds per second of audio, live worker) and the commit latency: from a spoken
  sentence's end to the moment its last streamed word is final (p50/p95), then + the sentence's heatmap
  (one :func:`~radgaze.capture.gazemath.align.sentence_heatmap`); the case pass's latency, from the end of
  the case (its audio) to its words (p50/p95).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.records import Words
from radgaze.capture.base.report import bench_result, print_result
from radgaze.capture.gazemath.align import sentence_spans
from radgaze.capture.live.asr import (
    AsrConfig,
    CaseWords,
    Flushed,
    WhisperTranscriber,
    concat_words,
    load_vocabulary,
    streaming_from_config,
    transcribe_audio,
)
from radgaze.capture.live.audio import AudioBlock, blocks_to_audio, read_audio_file
from radgaze.capture.live.whisper_models import resolve_model
from radgaze.capture.synth.speech import (
    SPOKEN_REPORTS,
    invented_finding_words,
    speak_report,
    word_error_rate,
)

T0 = 1000.0
BLOCK = 1600  # 0.1 s blocks, as the microphone source delivers them
VOICES = (  # (voice, words per minute, pauses between sentences in s): one per report of SPOKEN_REPORTS
    ("en-us", 165, (2.0, 2.5, 3.0, 2.2)),
    ("en-gb", 150, (2.5, 2.0, 3.0)),
    ("en-us+f3", 180, (2.2, 2.8, 2.0, 2.5)),
    ("en-gb-scotland", 160, (3.0, 2.0, 2.5)),
)
GOALS = {
    "wer_gap_max": ("<=", 0.02),  # what a recording stores (the case pass) vs the whole-file decode
    "invented_beyond_whole_file": ("==", 0),
    "sentences_exact_fraction": ("==", 1.0),
    "sentence_onset_error_p95_s": ("<=", 0.3),
}


@dataclass
class Clip:
    name: str
    samples: np.ndarray
    text: str
    onset_s: np.ndarray | None = None  # known sentence onsets (spoken reports)
    offset_s: np.ndarray | None = None


def spoken_clips() -> list[Clip]:
    clips = []
    for (voice, wpm, pauses), (name, sentences) in zip(VOICES, SPOKEN_REPORTS.items()):
        r = speak_report(
            sentences, voice=voice, words_per_min=wpm, pauses_s=list(pauses[: len(sentences) - 1])
        )
        clips.append(Clip(f"{name} ({voice}, {wpm} wpm)", r.samples, r.text, r.onset_s, r.offset_s))
    return clips


@dataclass
class LiveRun:
    streamed: Words  # the streamed final words (what the window shows while the reader dictates)
    stored: Words  # the case pass's words (what the recording stores), the streamed ones without it
    emitted: list[tuple[float, float]]  # (stream s a batch became final, its last word's end s)
    decode_s: float  # the streaming worker's decode time
    case_pass_latency_s: float | None  # end of the case's audio -> the case pass's words


def stream_live(cfg: AsrConfig, samples: np.ndarray, speed: float) -> LiveRun:
    """Feed ``samples`` in real time (/ speed) as one case; at its end the case closes (flush) and its audio
    goes to the case pass, as the recorders do."""
    st = streaming_from_config(cfg)
    decode_s = [0.0]
    inner = st.transcriber

    def timed(audio, prompt):
        t = time.perf_counter()
        out = inner(audio, prompt)
        decode_s[0] += time.perf_counter() - t
        return out

    st.transcriber = timed
    st.start()
    wall0 = time.perf_counter()
    batches, emitted, case = [], [], []
    for i in range(0, samples.size, BLOCK):
        due = wall0 + (i + BLOCK) / 16000 / speed
        time.sleep(max(0.0, due - time.perf_counter()))
        st.feed(T0 + i / 16000, samples[i : i + BLOCK])
        _collect(st, batches, emitted, case, wall0, speed)
    t_case_end = time.perf_counter()
    st.flush(T0 + samples.size / 16000)
    if st.case_pass:
        st.decode_case("clip", blocks_to_audio([AudioBlock(T0, samples)]))
    st.stop(timeout_s=600)
    _collect(st, batches, emitted, case, wall0, speed)
    streamed = concat_words(batches)
    stored = case[0][0] if case else streamed
    latency = case[0][1] - t_case_end if case else None
    return LiveRun(streamed, stored, emitted, decode_s[0], latency)


def _collect(st, batches: list, emitted: list, case: list, wall0: float, speed: float) -> None:
    while True:
        try:
            item = st.words.get_nowait()
        except Exception:  # queue.Empty
            return
        if item is None or isinstance(item, Flushed):
            continue
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, CaseWords):
            case.append((item.words, time.perf_counter()))
            continue
        batches.append(item)
        now_stream_s = (time.perf_counter() - wall0) * speed
        emitted.append((now_stream_s, float(item.t_end[-1] - T0)))


def commit_latencies(live: Words, emitted: list[tuple[float, float]]) -> list[float]:
    """Per live sentence: stream time its last word became final minus the time that word ended."""
    out = []
    for _, _, _, _, t1 in sentence_spans(live):
        end_s = t1 - T0
        when = [w for w, last_end in emitted if last_end >= end_s - 1e-6]
        if when:
            out.append(min(when) - end_s)
    return out


def measure_clip(cfg: AsrConfig, clip: Clip, speed: float) -> dict:
    run = stream_live(cfg, clip.samples, speed)
    whole = transcribe_audio(WhisperTranscriber(cfg), blocks_to_audio([AudioBlock(T0, clip.samples)]))
    stored_text, streamed_text = " ".join(run.stored.text), " ".join(run.streamed.text)
    whole_text = " ".join(whole.text)
    inv_stored = invented_finding_words(clip.text, stored_text)
    inv_whole = invented_finding_words(clip.text, whole_text)
    row = {
        "clip": clip.name,
        "audio_s": round(clip.samples.size / 16000, 1),
        "wer_stored": round(word_error_rate(clip.text, stored_text), 3),
        "wer_streamed": round(word_error_rate(clip.text, streamed_text), 3),
        "wer_whole_file": round(word_error_rate(clip.text, whole_text), 3),
        "invented_stored": inv_stored,
        "invented_streamed": invented_finding_words(clip.text, streamed_text),
        "invented_whole_file": inv_whole,
        "invented_beyond_whole_file": len([w for w in inv_stored if w not in inv_whole]),
        "sentences_stored": len(sentence_spans(run.stored)),
        "sentences_streamed": len(sentence_spans(run.streamed)),
        "sentences_whole_file": len(sentence_spans(whole)),
        "rtf_live": round(run.decode_s / (clip.samples.size / 16000), 3),
        "commit_latency_s": [round(x, 2) for x in commit_latencies(run.streamed, run.emitted)],
        "case_pass_latency_s": None if run.case_pass_latency_s is None else round(run.case_pass_latency_s, 2),
        "stored_text": stored_text,
        "streamed_text": streamed_text,
    }
    if clip.onset_s is not None:
        row["sentences_spoken"] = len(clip.onset_s)
        for kind, words in (("stored", run.stored), ("streamed", run.streamed)):
            row.update(_onset_errors(kind, sentence_spans(words), clip))
    return row


def _onset_errors(kind: str, spans: list, clip: Clip) -> dict:
    """Sentence onset/offset errors (s) of ``spans`` against the clip's known times (when the counts agree)."""
    if len(spans) != len(clip.onset_s):
        return {}
    return {
        f"onset_error_{kind}_s": np.round(
            np.abs(np.array([s[3] for s in spans]) - T0 - clip.onset_s), 3
        ).tolist(),
        f"offset_error_{kind}_s": np.round(
            np.abs(np.array([s[4] for s in spans]) - T0 - clip.offset_s), 3
        ).tolist(),
    }


def heatmap_ms() -> float:
    """One sentence heatmap from 8 fixations on a 640 px image (the cost added after the words are final)."""
    from radgaze.capture.base.records import FIXATION_DTYPE, VIEW_DTYPE, DisplayGeometry
    from radgaze.capture.gazemath.align import HeatmapContext, sentence_heatmap

    rng = np.random.default_rng(0)
    fix = np.zeros(8, FIXATION_DTYPE)
    fix["t_start"], fix["t_end"] = np.arange(8) * 0.25, np.arange(8) * 0.25 + 0.2
    fix["x_img_px"], fix["y_img_px"] = rng.uniform(100, 500, 8), rng.uniform(100, 500, 8)
    fix["ppd_img"] = 30.0
    ctx = HeatmapContext(640, 640, DisplayGeometry(), np.zeros(0, VIEW_DTYPE))
    t = time.perf_counter()
    sentence_heatmap(fix, 0.0, 2.0, ctx)
    return (time.perf_counter() - t) * 1000


def summarise(rows: list[dict]) -> dict:
    spoken = [r for r in rows if "sentences_spoken" in r]
    lat = [x for r in rows for x in r["commit_latency_s"]]
    case_lat = [r["case_pass_latency_s"] for r in rows if r["case_pass_latency_s"] is not None]
    out = {
        "wer_stored_mean": _mean(rows, "wer_stored"),
        "wer_streamed_mean": _mean(rows, "wer_streamed"),
        "wer_whole_file_mean": _mean(rows, "wer_whole_file"),
        "wer_gap_max": round(float(max(r["wer_stored"] - r["wer_whole_file"] for r in rows)), 3),
        "wer_gap_streamed_max": round(float(max(r["wer_streamed"] - r["wer_whole_file"] for r in rows)), 3),
        "invented_beyond_whole_file": int(sum(r["invented_beyond_whole_file"] for r in rows)),
        "rtf_live_mean": _mean(rows, "rtf_live"),
        "commit_latency_p50_s": _pct(lat, 50, 2),
        "commit_latency_p95_s": _pct(lat, 95, 2),
        "case_pass_latency_p50_s": _pct(case_lat, 50, 2),
        "case_pass_latency_p95_s": _pct(case_lat, 95, 2),
    }
    for kind in ("stored", "streamed"):
        exact = [r[f"sentences_{kind}"] == r["sentences_spoken"] for r in spoken]
        onsets = [e for r in spoken for e in r.get(f"onset_error_{kind}_s", [])]
        offsets = [e for r in spoken for e in r.get(f"offset_error_{kind}_s", [])]
        key = "" if kind == "stored" else "_streamed"
        out[f"sentences_exact_fraction{key}"] = round(float(np.mean(exact)), 3) if exact else 1.0
        out[f"sentence_onset_error_p95_s{key}"] = _pct(onsets, 95, 3)
        out[f"sentence_offset_error_p95_s{key}"] = _pct(offsets, 95, 3)
    return out


def _mean(rows: list[dict], key: str) -> float:
    return round(float(np.mean([r[key] for r in rows])), 3)


def _pct(values: list[float], q: float, digits: int) -> float | None:
    return round(float(np.percentile(values, q)), digits) if values else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze bench asr",
        description="Live dictation vs the same model's whole-file decode on spoken reports with known "
        "sentence times (espeak-ng) and on real speech clips: word error rate of what a recording stores (the "
        "case pass) and of the streamed words, invented finding words, sentence count and onset error, "
        "real-time factor, commit latency, the case pass's latency; with the load average.",
        epilog="example: radgaze bench asr --whisper tiny.en --clip jfk.flac --clip-text 'And so my fellow ...'",
    )
    p.add_argument(
        "--whisper", required=True, help="model: a directory, a hub name, or tiny.en / base (wheels)"
    )
    p.add_argument("--beam", type=int, default=5, help="ASR beam size (default 5)")
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads for the decoder (default: all but one)"
    )
    p.add_argument("--asr-prompt", default=None, help="vocabulary: TEXT, FILE or 'site' (default: none)")
    p.add_argument("--asr-hotwords", action="store_true", help="the vocabulary as hotwords")
    p.add_argument("--clip", type=Path, action="append", default=[], help="a real speech file (repeatable)")
    p.add_argument(
        "--clip-text", action="append", default=[], help="what is said in the --clip of the same rank"
    )
    p.add_argument("--speed", type=float, default=1.0, help="feed the audio this many times real time")
    p.add_argument("--no-reports", action="store_true", help="only the --clip files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.clip) != len(args.clip_text):
        raise SystemExit("radgaze bench asr: expected one --clip-text per --clip")
    model = resolve_model(args.whisper)
    cfg = AsrConfig(
        model=model,
        beam_size=args.beam,
        cpu_threads=args.threads,
        local_files_only=Path(model).is_dir(),
        vocabulary_prompt=load_vocabulary(args.asr_prompt) if args.asr_prompt else "",
        use_hotwords=args.asr_hotwords,
    )
    clips = [] if args.no_reports else spoken_clips()
    clips += [Clip(p.name, read_audio_file(p), t) for p, t in zip(args.clip, args.clip_text)]
    rows = [measure_clip(cfg, c, args.speed) for c in clips]
    figures = {"model": args.whisper, "prompt": args.asr_prompt or "none", **summarise(rows), "clips": rows}
    notes = {"heatmap": f"a sentence's heatmap adds {heatmap_ms():.1f} ms after its last word is final"}
    print_result(bench_result(figures, GOALS, notes), args.json)
    return 0
